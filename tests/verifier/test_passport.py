"""The passport model: the Agent presents an EAR from `teep verifier serve`."""

from __future__ import annotations

import dataclasses

from exchange.conftest import NAME, World
from teep import components
from teep.attestation.ear import EAR_MEDIA_TYPE
from teep.device.runtime import Device
from teep.keys import KeyKind, PrivateKey, PublicKey
from teep.protocol.messages import Attestation, QueryRequest, QueryResponse, Update
from teep.protocol.registry import FINAL, ErrCode
from teep.protocol.signing import open_signed, peek
from teep.verifier.client import VerifierClient

from .conftest import VERIFIER_KEY, Served

URI = "http://tam.test/tam"


def passport(device: Device, url: str) -> None:
    """Point the device at a Verifier: it now presents EARs."""
    device.settings = dataclasses.replace(device.settings, verifier_url=url)


def held(device: Device) -> bool:
    """Whether the device holds the demo component."""
    return device.tee.components.manifest(components.manifest_id(NAME)) is not None


def response_of(device: Device, data: bytes) -> QueryResponse:
    """Decode a QueryResponse the device signed."""
    key = device.tee.agent_key.public
    message = open_signed(peek(data), [key], dialect=FINAL).message
    assert isinstance(message, QueryResponse)
    return message


def update_of(world: World, data: bytes) -> Update:
    """Decode an Update the TAM signed."""
    keys = [k.public for k in world.tam_keys]
    message = open_signed(peek(data), keys, dialect=FINAL).message
    assert isinstance(message, Update)
    return message


def trust_verifier(world: World, *keys: PublicKey) -> None:
    """The TAM trusts these Verifier keys and knows no attestation key."""
    world.service.verifier_keys = keys
    world.service.attestation_verifier = VerifierClient("http://127.0.0.1:9")


def test_passport_installs(world: World, served: Served) -> None:
    """An EAR from a trusted Verifier enrolls the device and gets it served."""
    passport(world.device, served.url)
    trust_verifier(world, VERIFIER_KEY.public)
    steps = world.session()
    response = response_of(world.device, steps[0].agent.reply or b"")
    assert response.attestation_payload_format == EAR_MEDIA_TYPE
    assert held(world.device)
    kid = world.device.tee.agent_key.kid
    (record, *_) = world.store.list_appraisals(kid)
    assert record.status == "affirming"


def test_untrusted_verifier_refused(world: World, served: Served) -> None:
    """An EAR from a Verifier the TAM does not trust earns err-code 7."""
    passport(world.device, served.url)
    trust_verifier(world)
    steps = world.session()
    assert steps[0].after is not None and steps[0].after.reply is not None
    update = update_of(world, steps[0].after.reply)
    assert update.err_code == ErrCode.ERR_ATTESTATION_REQUIRED
    assert not held(world.device)
    (record, *_) = world.store.list_appraisals(None)
    assert "no trusted Verifier key" in record.reason


def test_another_devices_result_is_refused(world: World, served: Served) -> None:
    """A device presenting an EAR bound to another Agent's key gets nothing."""
    thief = world.new_device("thief")
    world.endorse(thief)
    world.session(thief)  # enrolled by a normal background check
    passport(world.device, served.url)
    trust_verifier(world, VERIFIER_KEY.public)
    client = VerifierClient(served.url)

    def stolen(nonce: bytes | None, request: QueryRequest) -> Attestation:
        ear = client.attestation_result(world.device.evidence(nonce), nonce=nonce)
        return Attestation(ear, EAR_MEDIA_TYPE)

    thief.attestation = stolen  # type: ignore[method-assign]
    world.catalogue("extra")
    world.store.add_policy("extra", selector="*")
    steps = world.session(thief)
    assert steps[0].after is not None and steps[0].after.reply is not None
    # Contraindicated: by the default policy the thief loses what it held.
    update = update_of(world, steps[0].after.reply)
    assert not update.manifest_list
    assert not held(thief)
    (record, *_) = world.store.list_appraisals(thief.tee.agent_key.kid)
    assert record.status == "contraindicated"
    assert record.reason == "the result is bound to another key"


def test_unknown_device_with_stolen_result_dropped(
    world: World, served: Served
) -> None:
    """An unknown device cannot enroll with another Agent's EAR: dropped."""
    stranger = world.new_device("stranger")
    trust_verifier(world, VERIFIER_KEY.public)
    client = VerifierClient(served.url)

    def stolen(nonce: bytes | None, request: QueryRequest) -> Attestation:
        ear = client.attestation_result(world.device.evidence(nonce), nonce=nonce)
        return Attestation(ear, EAR_MEDIA_TYPE)

    stranger.attestation = stolen  # type: ignore[method-assign]
    steps = world.session(stranger)
    assert steps[0].after is not None and steps[0].after.dropped
    assert world.store.get_device(stranger.tee.agent_key.kid) is None


def test_verifier_down_falls_back_to_evidence(world: World) -> None:
    """When its Verifier does not answer, the Agent sends Evidence instead."""
    passport(world.device, "http://127.0.0.1:9")
    steps = world.session()
    response = response_of(world.device, steps[0].agent.reply or b"")
    assert response.attestation_payload_format is None
    assert held(world.device)


def test_remote_refusal_keeps_the_verifiers_reason(
    world: World, served: Served
) -> None:
    """A device the remote Verifier does not endorse is refused with the
    Verifier's own reason recorded, not a nonce or binding complaint."""
    world.service.verifier_keys = (VERIFIER_KEY.public,)
    world.service.attestation_verifier = VerifierClient(
        served.url, (VERIFIER_KEY.public,)
    )
    stranger = world.new_device("stranger")
    world.endorse(stranger)
    world.session(stranger)
    assert not held(stranger)
    (record, *_) = world.store.list_appraisals()
    assert record.status == "contraindicated"
    assert "nonce" not in record.reason
    assert "cnf" not in record.reason


def test_enrolled_device_with_an_untrusted_verifier_keeps_its_components(
    world: World, served: Served
) -> None:
    """A device that holds components and then presents an EAR from a
    Verifier the TAM does not trust is asked to attest again (err-code 7,
    status none): nothing is removed, as no appraisal was made."""
    world.session()  # enrolled and served by a normal background check
    assert held(world.device)
    passport(world.device, served.url)
    world.service.verifier_keys = ()
    steps = world.session()
    assert steps[0].after is not None and steps[0].after.reply is not None
    update = update_of(world, steps[0].after.reply)
    assert update.err_code == ErrCode.ERR_ATTESTATION_REQUIRED
    assert not update.unneeded_manifest_list
    assert held(world.device)
    kid = world.device.tee.agent_key.kid
    (record, *_) = world.store.list_appraisals(kid)
    assert record.status == "none"
    assert "no trusted Verifier key" in record.reason


def test_tam_misconfigured_verifier_key_removes_nothing(
    world: World, served: Served
) -> None:
    """Background check through a remote Verifier whose key the TAM has
    wrong: its results cannot be checked, which says nothing about the
    device; the device keeps what it holds."""
    world.session()
    assert held(world.device)
    stranger = PrivateKey.generate(KeyKind.P256).public
    world.service.attestation_verifier = VerifierClient(served.url, (stranger,))
    steps = world.session()
    assert steps[0].after is not None and steps[0].after.reply is not None
    update = update_of(world, steps[0].after.reply)
    assert update.err_code == ErrCode.ERR_ATTESTATION_REQUIRED
    assert not update.unneeded_manifest_list
    assert held(world.device)
    (record, *_) = world.store.list_appraisals(world.device.tee.agent_key.kid)
    assert record.status == "none"
    assert record.reason.startswith("the Verifier's result is unusable")
