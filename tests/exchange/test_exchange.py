"""Whole TEEP exchanges between a TAM and a device, in memory (no HTTP)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from teep import components
from teep.errors import ConfigError
from teep.keys import COSEAlgorithm, KeyKind, PrivateKey
from teep.protocol.agent import ComponentsChanged, Dropped, ErrorSent, QueryAnswered
from teep.protocol.messages import (
    Error,
    Message,
    QueryResponse,
    RequestedTC,
    Success,
    Update,
)
from teep.protocol.registry import FINAL, PRE_RFC, Dialect, ErrCode
from teep.protocol.signing import open_signed, peek, sign_message
from teep.protocol.tam import TAM, Appraised, TAMConfig
from teep.suit.builder import build_envelope
from teep.tam.catalogue import add_component

from .conftest import NAME, URI, Step, World, envelope, module, trust_signer

CDDL_DIR = Path(__file__).resolve().parent.parent / "vectors" / "teep" / "cddl"
GREETING = "Hello from a Trusted Component"


def installed(world: World, name: str = NAME) -> int | None:
    """The sequence number of ``name`` on the device, None if absent."""
    held = world.device.tee.components.manifest(components.manifest_id(name))
    return None if held is None else held.sequence_number


def from_agent(world: World, data: bytes, dialect: Dialect = FINAL) -> Message:
    """Verify and decode a message the device's Agent signed."""
    key = world.device.tee.agent_key.public
    return open_signed(peek(data), [key], dialect=dialect).message


def from_tam(world: World, data: bytes, dialect: Dialect = FINAL) -> Message:
    """Verify and decode a message the TAM signed."""
    keys = [k.public for k in world.tam_keys]
    return open_signed(peek(data), keys, dialect=dialect).message


def kinds(steps: list[Step], world: World) -> list[str]:
    """The names of the messages exchanged, in order."""
    names = []
    for step in steps:
        names.append(type(from_tam(world, step.tam)).__name__)
        if step.agent.reply is not None:
            names.append(type(from_agent(world, step.agent.reply)).__name__)
    return names


def test_first_session_installs_component(world: World) -> None:
    """A device missing a required component gets it and can run it."""
    steps = world.session()
    assert kinds(steps, world) == ["QueryRequest", "QueryResponse", "Update", "Success"]
    assert installed(world) == 1
    last = steps[-1].after
    assert last is not None and last.reply is None and not last.dropped
    assert [e.kind for e in last.events] == ["success"]
    result = world.device.invoke(NAME)
    assert GREETING in result.stdout.decode()


def test_second_session_is_compliant(world: World) -> None:
    """A device that meets its policy gets no Update: the TAM ends the session."""
    world.session()
    steps = world.session()
    assert kinds(steps, world) == ["QueryRequest", "QueryResponse"]
    last = steps[-1].after
    assert last is not None and last.reply is None and not last.dropped
    assert "compliant" in [e.kind for e in last.events]


def test_policy_removed_component_uninstalled(world: World) -> None:
    """A catalogued component no policy requires is unlinked (unneeded-manifest-list)."""
    world.session()
    assert world.store.remove_policy(NAME, selector="*")
    steps = world.session()
    update = from_tam(world, steps[1].tam)
    assert isinstance(update, Update)
    assert update.manifest_list is None
    assert update.unneeded_manifest_list == (components.manifest_id(NAME),)
    assert isinstance(from_agent(world, steps[1].agent.reply or b""), Success)
    assert installed(world) is None
    kid = world.device.tee.agent_key.kid
    (event,) = world.store.list_events(kid, 1, kinds=["update-applied"])
    assert event.message == f"removed TEEP-Device/SecureFS/{NAME}/suit"


def test_request_and_unrequest(world: World) -> None:
    """RequestTA installs a catalogued component; UnrequestTA removes it."""
    world.catalogue("extra")
    world.session()
    assert installed(world, "extra") is None
    world.device.request("extra")
    steps = world.session()
    response = from_agent(world, steps[0].agent.reply or b"")
    assert isinstance(response, QueryResponse) and response.requested_tc_list
    assert installed(world, "extra") == 1
    assert world.device.tee.requested == []
    assert kinds(world.session(), world)[-1] == "QueryResponse"

    world.device.unrequest("extra")
    steps = world.session()
    update = from_tam(world, steps[1].tam)
    assert isinstance(update, Update)
    assert update.unneeded_manifest_list == (components.manifest_id("extra"),)
    assert installed(world, "extra") is None
    assert installed(world) == 1
    assert world.device.tee.unneeded == []


def test_unrequest_of_a_component_policy_requires_is_kept_and_recorded(
    world: World,
) -> None:
    """A device gives up a component the TAM's policy requires on it: its
    own request goes, the component stays and the TAM records why; the
    device sees it kept, and request takes the give-up back."""
    world.session()
    kid = world.device.tee.agent_key.public.thumbprint
    world.store.add_policy(NAME, selector=kid.hex())  # as if it had asked
    assert world.device.unrequest(NAME) is False
    steps = world.session()
    assert kinds(steps, world) == ["QueryRequest", "QueryResponse"]
    assert installed(world) == 1
    events = world.store.list_events(kid, kinds=["unrequested", "unrequest-kept"])
    assert [(e.kind, e.message) for e in events] == [
        (
            "unrequest-kept",
            f"{NAME}: given up by the device and kept: policy requires it on *",
        ),
        ("unrequested", NAME),
    ]
    assert world.device.kept_unneeded() == [NAME]
    assert world.device.request(NAME) is True
    assert world.device.tee.unneeded == [] and world.device.kept_unneeded() == []
    response = from_agent(world, world.session()[0].agent.reply or b"")
    assert isinstance(response, QueryResponse)
    assert not response.unneeded_manifest_list and not response.requested_tc_list


def test_request_the_tam_cannot_meet_stays_pending_until_withdrawn(
    world: World,
) -> None:
    """A request for a component the TAM does not catalogue is refused
    (recorded on the TAM) and stays pending on the device, which can
    withdraw it; a name neither installed nor requested is refused."""
    world.device.request("nosuch")
    world.session()
    kid = world.device.tee.agent_key.public.thumbprint
    (event,) = world.store.list_events(kid, 1, kinds=["request-refused"])
    assert event.message == "unknown component requested"
    assert world.device.pending_requests() == ["nosuch"]
    assert world.device.unrequest("nosuch") is True
    assert world.device.pending_requests() == []
    steps = world.session()
    response = from_agent(world, steps[0].agent.reply or b"")
    assert isinstance(response, QueryResponse)
    assert not response.requested_tc_list and not response.unneeded_manifest_list
    with pytest.raises(ConfigError, match="neither installed nor requested"):
        world.device.unrequest("nosuch")
    with pytest.raises(ConfigError, match=f"component '{NAME}' is already installed"):
        world.device.request(NAME)
    assert world.device.pending_requests() == []


def test_request_for_a_newer_version_than_catalogued_refused(world: World) -> None:
    """A requested-tc-list entry asking for a sequence number above the
    catalogue's newest is refused and recorded; no policy is added."""
    world.catalogue("extra")
    world.session()
    key = world.device.tee.agent_key.public
    wanted = RequestedTC(
        components.component_id("extra"), tc_manifest_sequence_number=2
    )
    response = QueryResponse(
        tc_list=tuple(world.device.tc_list()), requested_tc_list=(wanted,)
    )
    plan = world.service.plan(key, response, Appraised(True, "affirming", "test"))
    assert plan.empty
    assert not [p for p in world.store.list_policies() if p.component == "extra"]
    refused = [
        e
        for e in world.store.list_events(key.thumbprint)
        if e.kind == "request-refused"
    ]
    assert refused and "sequence 2 or newer" in refused[0].message


def test_new_version_is_installed_as_update(world: World) -> None:
    """A higher sequence number in the catalogue replaces the installed one."""
    world.session()
    world.catalogue(NAME, sequence=2)
    steps = world.session()
    assert kinds(steps, world)[-2:] == ["Update", "Success"]
    assert installed(world) == 2
    assert GREETING in world.device.invoke(NAME).stdout.decode()


def test_replayed_query_response_dropped(world: World) -> None:
    """A QueryResponse sent again is dropped: its challenge is single use."""
    steps = world.session()
    response = steps[0].agent.reply
    assert response is not None
    again = world.tam().process(response)
    assert again.dropped and again.reply is None


def test_replayed_success_dropped(world: World) -> None:
    """A Success sent again is dropped: the Update's token is single use."""
    steps = world.session()
    success = steps[1].agent.reply
    assert success is not None
    again = world.tam().process(success)
    assert again.dropped and again.reply is None


def test_unendorsed_device_refused(world: World) -> None:
    """Evidence from a key the TAM did not endorse gets Update err-code 7, no install."""
    stranger = world.new_device("stranger")
    steps = world.session(stranger)
    update = from_tam(world, steps[1].tam)
    assert isinstance(update, Update)
    assert update.err_code == ErrCode.ERR_ATTESTATION_REQUIRED
    assert update.err_msg and update.err_lang == "en"
    assert not update.manifest_list
    assert stranger.tee.components.manifest(components.manifest_id(NAME)) is None
    kid = stranger.tee.agent_key.public.thumbprint
    assert world.store.get_device(kid) is None
    appraisals = world.store.list_appraisals()
    assert appraisals and appraisals[0].status != "affirming"
    assert appraisals[0].reason


def test_forged_query_response_dropped(world: World) -> None:
    """A QueryResponse with a flipped signature bit is dropped and spends nothing."""
    tam = world.tam()
    request = tam.connect().reply
    assert request is not None
    response = world.device.agent.process(request, URI).reply
    assert response is not None
    forged = response[:-1] + bytes([response[-1] ^ 1])
    result = tam.process(forged)
    assert result.dropped and result.reply is None
    # teep-protocol 18 P3: the forger did not use up the challenge.
    genuine = tam.process(response)
    assert not genuine.dropped
    assert isinstance(from_tam(world, genuine.reply or b""), Update)


def agent_error(world: World, data: bytes, dialect: Dialect = FINAL) -> Error:
    """Run ``data`` through the device's Agent, expecting a signed Error."""
    result = world.device.agent.process(data, URI)
    assert result.reply is not None
    assert any(isinstance(e, ErrorSent) for e in result.events)
    error = from_agent(world, result.reply, dialect)
    assert isinstance(error, Error)
    return error


def test_agent_refuses_untrusted_tam(world: World) -> None:
    """A QueryRequest signed by a key the device does not trust gets Error 1."""
    rogue = TAM(TAMConfig(keys=(PrivateKey.generate(KeyKind.P256),)), world.service)
    request = rogue.connect().reply or b""
    assert agent_error(world, request).err_code == ErrCode.ERR_PERMANENT_ERROR


def test_agent_refuses_forged_tam_message(world: World) -> None:
    """A QueryRequest with a flipped signature bit gets Error 1."""
    single = TAM(TAMConfig(keys=world.tam_keys[:1]), world.service)
    request = single.connect().reply or b""
    forged = request[:-1] + bytes([request[-1] ^ 1])
    assert agent_error(world, forged).err_code == ErrCode.ERR_PERMANENT_ERROR


@pytest.mark.parametrize("garbage", [b"", b"\xff", b"hello", bytes(64), b"\xa0"])
def test_agent_drops_garbage(world: World, garbage: bytes) -> None:
    """Bytes that are not a signed message get no reply at all."""
    result = world.device.agent.process(garbage, URI)
    assert result.reply is None
    assert [type(e) for e in result.events] == [Dropped]


def test_pre_rfc_refused_unless_enabled(world: World) -> None:
    """A pre-RFC QueryRequest gets Error 4 in pre-RFC numbering (type 6)."""
    request = world.tam(PRE_RFC).connect().reply or b""
    result = world.device.agent.process(request, URI)
    assert result.reply is not None
    assert peek(result.reply).payload[0] == 6
    error = from_agent(world, result.reply, PRE_RFC)
    assert isinstance(error, Error)
    assert error.err_code == ErrCode.ERR_UNSUPPORTED_MSG_VERSION
    assert installed(world) is None


def test_pre_rfc_session_when_enabled(world: World) -> None:
    """With the profile enabled for the TAM's URI, a whole pre-RFC session works."""
    world.device.tee.set_setting("pre_rfc_tams", [URI])
    steps = world.session(dialect=PRE_RFC)
    types = [peek(s.tam).payload[0] for s in steps]
    types += [peek(s.agent.reply).payload[0] for s in steps if s.agent.reply]
    assert sorted(types) == [1, 2, 3, 5]  # Success is 5 in pre-RFC numbering
    assert installed(world) == 1
    assert steps[-1].after is not None
    assert [e.kind for e in steps[-1].after.events] == ["success"]


def test_untrusted_manifest_signer_refused(world: World) -> None:
    """A manifest from a signer the device does not trust gets Error 11 with a report."""
    rogue = PrivateKey.generate(KeyKind.P256)
    trust_signer(world.store, rogue.public, "rogue signer")
    world.store.remove_policy(NAME, selector="*")
    from teep.tam.catalogue import add_component

    add_component(world.store, "rogue", envelope("rogue", rogue), now=0.0)
    world.store.add_policy("rogue", selector="*")
    before = world.device.tee.components.manifests()
    steps = world.session()
    error = from_agent(world, steps[1].agent.reply or b"")
    assert isinstance(error, Error)
    assert error.err_code == ErrCode.ERR_MANIFEST_PROCESSING_FAILED
    assert error.suit_reports
    assert world.device.tee.components.manifests() == before
    assert steps[1].after is not None and not steps[1].after.dropped
    assert [e.kind for e in steps[1].after.events] == ["error"]


def test_rollback_refused(world: World) -> None:
    """A manifest with a lower sequence number than installed gets Error 11."""
    world.catalogue(NAME, sequence=2)
    world.session()
    assert installed(world) == 2
    old = envelope(NAME, world.signer, sequence=1)
    update = Update(token=bytes(16), manifest_list=(old,))
    data = sign_message(update, world.tam_keys[:1], dialect=FINAL)
    error = agent_error(world, data)
    assert error.err_code == ErrCode.ERR_MANIFEST_PROCESSING_FAILED
    assert error.suit_reports
    assert installed(world) == 2


def test_ed25519_agent_session(world: World) -> None:
    """An Ed25519 Agent completes a session; the TAM answers it in Ed25519."""
    device = world.new_device("ed", key_kind=KeyKind.ED25519)
    world.endorse(device)
    steps = world.session(device)
    assert len(steps) == 2
    assert steps[1].after is not None
    assert [e.kind for e in steps[1].after.events] == ["success"]
    update = peek(steps[1].tam).cose.signatures
    assert [s.alg for s in update] == [COSEAlgorithm.Ed25519]
    held = device.tee.components.manifest(components.manifest_id(NAME))
    assert held is not None
    assert any(isinstance(e, ComponentsChanged) for e in steps[1].agent.events)
    assert any(isinstance(e, QueryAnswered) for e in steps[0].agent.events)


@pytest.fixture(scope="module")
def teep_cddl() -> object:
    """A validator for the final-numbering TEEP CDDL."""
    validator = pytest.importorskip("cddl_verifier").Validator
    files = [CDDL_DIR / "teep.cddl", CDDL_DIR / "teep-validation-stubs.cddl"]
    missing = [p.name for p in files if not p.exists()]
    if missing:
        pytest.skip(f"TEEP CDDL not in tests/vectors/teep/cddl: {missing}")
    return validator("\n".join(p.read_text() for p in files))


def test_session_messages_match_cddl(world: World, teep_cddl: object) -> None:
    """Every message of a normal session validates against the TEEP CDDL."""
    # The session is an update, so the device's tc-list is not empty: an
    # Agent holding nothing sends tc-list as [] (teep-protocol 18 P8), which
    # the CDDL's [+ ...] does not allow.
    world.session()
    world.catalogue(NAME, sequence=2)
    steps = world.session()
    sent = [steps[0].tam, steps[0].agent.reply, steps[1].tam, steps[1].agent.reply]
    rules = ["query-request", "query-response", "update", "success"]
    for data, rule in zip(sent, rules, strict=True):
        assert data is not None
        payload = peek(data).cose.payload
        assert payload is not None
        for root in (rule, "teep-message"):
            result = teep_cddl.validate(payload, root)  # type: ignore[attr-defined]
            assert result.valid, f"{rule}: {result.format()}"


def test_new_version_with_same_image_is_sent(world: World) -> None:
    """A new manifest version is sent even when its image is unchanged: the
    attested manifest digests tell the versions apart."""
    world.session()
    same_image = build_envelope(
        manifest_component_id=components.manifest_id(NAME),
        component_id=components.component_id(NAME),
        payload=module(1),
        sequence_number=5,
        signer=world.signer,
    )
    add_component(world.store, NAME, same_image, now=time.time())
    steps = world.session()
    assert kinds(steps, world)[-2:] == ["Update", "Success"]
    assert installed(world) == 5
    assert kinds(world.session(), world) == ["QueryRequest", "QueryResponse"]


def test_device_record_follows_success(world: World) -> None:
    """After a Success the TAM's record of the device's components is current."""
    world.session()
    held = world.store.device_manifests(world.device.tee.agent_key.kid)
    assert [seq for _mid, seq in held] == [1]


def test_token_cannot_be_burned_by_another_device(world: World) -> None:
    """A Success carrying another device's token is dropped without using the
    token up, so the device it was issued to still completes its session."""
    world.catalogue("extra")
    world.store.add_policy("extra", selector="*")
    tam = world.tam()
    reply = tam.connect().reply
    assert reply is not None
    response = world.device.agent.process(reply, URI).reply
    assert response is not None
    update = tam.process(response).reply
    assert update is not None
    token = from_tam(world, update).token
    assert token is not None
    intruder = world.new_device("intruder")
    world.endorse(intruder)
    world.session(intruder)
    forged = sign_message(Success(token=token), [intruder.tee.agent_key])
    assert tam.process(forged).dropped
    success = world.device.agent.process(update, URI).reply
    assert success is not None
    result = tam.process(success)
    assert not result.dropped
