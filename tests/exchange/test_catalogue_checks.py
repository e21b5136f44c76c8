"""Envelopes a device could never install are refused by the catalogue,
and refusing one spends no sequence number."""

from __future__ import annotations

import dataclasses
import time

import pytest

from teep import cbor, components
from teep.errors import ConfigError
from teep.protocol.errors import ManifestProcessingFailed
from teep.suit.builder import build_envelope, encode_sequence, sever_envelope
from teep.suit.builder import envelope_of as sign
from teep.suit.envelope import SuitDigest, SuitEnvelope
from teep.suit.registry import SuitCommand, SuitManifestKey, SuitParameter
from teep.tam.catalogue import add_component

from .conftest import NAME, World, envelope, module

SEQUENCE = 2
TA_ID = "TEEP-Device/SecureFS/hello/ta"


def catalogue(world: World, data: bytes) -> None:
    add_component(world.store, NAME, data, now=time.time())


def newest_sequence(world: World) -> int:
    record = world.store.get_component(NAME)
    assert record is not None
    return record.sequence_number


def flip_in(data: bytes, part: bytes) -> bytes:
    """``data`` with one bit flipped in the middle of ``part``."""
    at = data.index(part) + len(part) // 2
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_flipped_integrated_payload_refused(world: World) -> None:
    """A bit flipped in '#tc' is refused (the device would fail install);
    the good envelope with the same sequence number is catalogued after."""
    good = envelope(NAME, world.signer, SEQUENCE)
    bad = flip_in(good, module(SEQUENCE))
    with pytest.raises(ManifestProcessingFailed, match="a condition failed in section"):
        world.new_device("probe").install(bad, None)
    with pytest.raises(ConfigError) as refused:
        catalogue(world, bad)
    assert str(refused.value) == (
        "envelope refused: the integrated payload '#tc' does not match the "
        f"manifest's image digest for {TA_ID}"
    )
    assert newest_sequence(world) == 1
    catalogue(world, good)
    assert newest_sequence(world) == SEQUENCE


def _manifest(size_delta: int) -> bytes:
    """A manifest fetching '#tc' whose image size is off by ``size_delta``."""
    payload = module(SEQUENCE)
    params = {
        int(SuitParameter.image_digest): SuitDigest.of(payload).encode(),
        int(SuitParameter.image_size): len(payload) + size_delta,
    }
    common = {
        2: [list(components.component_id(NAME))],
        4: encode_sequence((SuitCommand.directive_override_parameters, params)),
    }
    install = encode_sequence(
        (
            SuitCommand.directive_override_parameters,
            {int(SuitParameter.uri): "#tc"},
        ),
        (SuitCommand.directive_fetch, 2),
        (SuitCommand.condition_image_match, 15),
    )
    return cbor.det_dumps(
        {
            int(SuitManifestKey.manifest_version): 1,
            int(SuitManifestKey.manifest_sequence_number): SEQUENCE,
            int(SuitManifestKey.common): cbor.det_dumps(common),
            int(SuitManifestKey.manifest_component_id): list(
                components.manifest_id(NAME)
            ),
            int(SuitManifestKey.install): install,
        }
    )


def test_wrong_image_size_refused(world: World) -> None:
    """A payload matching the digest but not the size the manifest gives is
    refused; the same manifest with the right size is catalogued."""
    payload = module(SEQUENCE)
    bad = sign(_manifest(1), world.signer, {"#tc": payload})
    with pytest.raises(ManifestProcessingFailed, match="a condition failed in section"):
        world.new_device("probe").install(bad, None)
    with pytest.raises(ConfigError, match=f"image size for {TA_ID}$"):
        catalogue(world, bad)
    catalogue(world, sign(_manifest(0), world.signer, {"#tc": payload}))
    assert newest_sequence(world) == SEQUENCE


def test_missing_integrated_payload_refused(world: World) -> None:
    """An envelope without the '#tc' its manifest fetches is refused."""
    bad = sign(_manifest(0), world.signer, {})
    with pytest.raises(
        ConfigError, match=f"'#tc' the manifest fetches for {TA_ID} is not in"
    ):
        catalogue(world, bad)


def severable(world: World) -> bytes:
    """An envelope whose install and text are long enough to sever."""
    return build_envelope(
        manifest_component_id=components.manifest_id(NAME),
        component_id=components.component_id(NAME),
        payload=module(SEQUENCE),
        sequence_number=SEQUENCE,
        signer=world.signer,
        uri="#hello-trusted-component-version-2",
        text={"": {1: "hello, the Trusted Component, version 2 of it"}},
    )


def test_stripped_severed_members_refused(world: World) -> None:
    """A severed envelope without its severed members is refused; the full
    one, with the same sequence number, is catalogued after."""
    full, severed = sever_envelope(severable(world), world.signer)
    assert severed == (SuitManifestKey.install, SuitManifestKey.text)
    env = SuitEnvelope.decode(full)
    stripped = dataclasses.replace(env, severable={}).encode()
    with pytest.raises(ManifestProcessingFailed, match="member 20 is severed"):
        world.new_device("probe").install(stripped, None)
    with pytest.raises(ConfigError) as refused:
        catalogue(world, stripped)
    assert str(refused.value) == (
        "envelope refused: severed member install is not in the envelope: "
        "catalogue the full envelope"
    )
    no_text = dataclasses.replace(
        env, severable={k: v for k, v in env.severable.items() if k != 23}
    ).encode()
    with pytest.raises(ConfigError, match="severed member text is not in"):
        catalogue(world, no_text)
    catalogue(world, full)
    assert newest_sequence(world) == SEQUENCE


def test_damaged_severed_member_refused(world: World) -> None:
    """A severed member that no longer matches its digest is refused."""
    full, _ = sever_envelope(severable(world), world.signer)
    install = SuitEnvelope.decode(full).severable[SuitManifestKey.install]
    with pytest.raises(ConfigError, match="severed member 20 does not match"):
        catalogue(world, flip_in(full, install))
    catalogue(world, full)
    assert newest_sequence(world) == SEQUENCE


def test_fetched_payload_not_checked(world: World) -> None:
    """A payload the device fetches by URI is not fetched by the TAM."""
    fetched = build_envelope(
        manifest_component_id=components.manifest_id(NAME),
        component_id=components.component_id(NAME),
        payload=module(SEQUENCE),
        sequence_number=SEQUENCE,
        signer=world.signer,
        integrated=False,
        uri="https://tc.test/hello.wasm",
    )
    catalogue(world, fetched)
    assert newest_sequence(world) == SEQUENCE
