"""Whole exchanges exercising the protocol's conditional rules: Error codes and
the lists they carry, the TAM's reaction to them, TAM attestation, freshness by
timestamp and the SUIT Report nonce."""

from __future__ import annotations

import os
from dataclasses import replace

from teep import cbor, cose
from teep.attestation.evidence import peek_evidence
from teep.device import tam_trust
from teep.device.runtime import Device
from teep.keys import COSEAlgorithm, KeyKind, PrivateKey
from teep.protocol.agent import Agent, AgentConfig, ErrorSent
from teep.protocol.messages import (
    Error,
    Message,
    QueryRequest,
    QueryResponse,
    Success,
    Update,
)
from teep.protocol.registry import FINAL, DataItem, ErrCode, FreshnessMechanism
from teep.protocol.signing import open_signed, peek, sign_message
from teep.protocol.tam import TAM, TAMConfig
from teep.suit.envelope import SuitDigest
from teep.suit.report import SuitReport
from teep.tam.attester import TAM_HWMODEL, TAM_OEMID, tam_attester

from .conftest import URI, Step, World


def run(world: World, tam: TAM, device: Device | None = None) -> list[Step]:
    """One whole session between ``tam`` and a device, every round trip."""
    device = device or world.device
    steps: list[Step] = []
    reply = tam.connect().reply
    while reply and len(steps) < 8:
        step = Step(reply, device.agent.process(reply, URI))
        steps.append(step)
        if step.agent.reply is None:
            break
        step.after = tam.process(step.agent.reply)
        reply = step.after.reply
    return steps


def from_tam(world: World, data: bytes) -> Message:
    """Verify and decode a message the TAM signed."""
    keys = [k.public for k in world.tam_keys]
    return open_signed(peek(data), keys, dialect=FINAL).message


def from_agent(world: World, data: bytes) -> Message:
    """Verify and decode a message the device's Agent signed."""
    key = world.device.tee.agent_key.public
    return open_signed(peek(data), [key], dialect=FINAL).message


def names(world: World, steps: list[Step]) -> list[str]:
    """The messages exchanged, in order."""
    out = []
    for step in steps:
        out.append(type(from_tam(world, step.tam)).__name__)
        if step.agent.reply is not None:
            out.append(type(from_agent(world, step.agent.reply)).__name__)
    return out


def requiring_tam_attestation(world: World, attestation_key: PrivateKey) -> None:
    """Make the device demand TAM attestation and trust ``attestation_key``."""
    tee = world.device.tee
    tee.set_setting(tam_trust.REQUIRE_SETTING, True)
    tam_trust.add_tam_attestation_key(
        tee, attestation_key.public, hwmodel=TAM_HWMODEL, oemid=TAM_OEMID
    )
    world.device = Device(world.device.folder, tee)


def attesting_tam(world: World, attestation_key: PrivateKey) -> TAM:
    """A TAM over the world's store that can produce its own Evidence."""
    config = TAMConfig(keys=world.tam_keys, attester=tam_attester(attestation_key))
    return TAM(config, world.service)


def test_agent_demands_tam_attestation_and_tam_attests(world: World) -> None:
    """Error 7 carries a challenge and mechanisms; the TAM re-queries with its
    Evidence bound to that challenge and to its signing key; the session goes on."""
    attestation_key = PrivateKey.generate(KeyKind.P256)
    requiring_tam_attestation(world, attestation_key)
    steps = run(world, attesting_tam(world, attestation_key))
    assert names(world, steps) == [
        "QueryRequest",
        "Error",
        "QueryRequest",
        "QueryResponse",
        "Update",
        "Success",
    ]
    assert steps[0].agent.reply is not None
    error = from_agent(world, steps[0].agent.reply)
    assert isinstance(error, Error)
    assert error.err_code == ErrCode.ERR_ATTESTATION_REQUIRED
    assert error.challenge is not None and error.supported_freshness_mechanisms
    second = from_tam(world, steps[1].tam)
    assert isinstance(second, QueryRequest) and second.attestation_payload
    claims = peek_evidence(second.attestation_payload)
    assert claims.nonce == error.challenge
    signer = cose.parse(steps[1].tam).signatures
    assert len(signer) == 1
    signing_key = next(k for k in world.tam_keys if k.kid == signer[0].kid)
    assert claims.cnf_kid == signing_key.public.thumbprint


def test_tam_that_cannot_attest_ends_session(world: World) -> None:
    """A TAM without an attestation key records Error 7 and sends nothing more."""
    requiring_tam_attestation(world, PrivateKey.generate(KeyKind.P256))
    steps = run(world, world.tam())
    assert names(world, steps) == ["QueryRequest", "Error"]
    last = steps[-1].after
    assert last is not None and last.reply is None and not last.dropped
    assert any("ERR_ATTESTATION_REQUIRED" in e.detail for e in last.events)


def test_untrusted_tam_attestation_refused(world: World) -> None:
    """Evidence from a TAM attestation key the device does not trust gets Error 1."""
    requiring_tam_attestation(world, PrivateKey.generate(KeyKind.P256))
    steps = run(world, attesting_tam(world, PrivateKey.generate(KeyKind.P256)))
    assert names(world, steps) == ["QueryRequest", "Error", "QueryRequest", "Error"]
    assert steps[1].agent.reply is not None
    error = from_agent(world, steps[1].agent.reply)
    assert isinstance(error, Error)
    assert error.err_code == ErrCode.ERR_PERMANENT_ERROR
    assert error.err_msg is not None and "TAM attestation refused" in error.err_msg


def test_tam_challenge_is_single_use(world: World) -> None:
    """A replay of the attested QueryRequest meets no outstanding challenge and
    is answered with a new ERR_ATTESTATION_REQUIRED."""
    attestation_key = PrivateKey.generate(KeyKind.P256)
    requiring_tam_attestation(world, attestation_key)
    steps = run(world, attesting_tam(world, attestation_key))
    replay = world.device.agent.process(steps[1].tam, URI)
    assert replay.reply is not None
    error = from_agent(world, replay.reply)
    assert isinstance(error, Error)
    assert error.err_code == ErrCode.ERR_ATTESTATION_REQUIRED


def timestamp_tam(world: World) -> TAM:
    """A TAM asking for timestamp freshness."""
    config = TAMConfig(keys=world.tam_keys, freshness=FreshnessMechanism.TIMESTAMP)
    return TAM(config, world.service)


def test_timestamp_freshness_session(world: World) -> None:
    """Under timestamp freshness the QueryRequest has a token and no challenge,
    the Evidence carries iat and no nonce, and the install goes through."""
    steps = run(world, timestamp_tam(world))
    assert names(world, steps) == ["QueryRequest", "QueryResponse", "Update", "Success"]
    request = from_tam(world, steps[0].tam)
    assert isinstance(request, QueryRequest)
    assert request.challenge is None and request.token is not None
    assert request.supported_freshness_mechanisms == (FreshnessMechanism.TIMESTAMP,)
    assert steps[0].agent.reply is not None
    response = from_agent(world, steps[0].agent.reply)
    assert isinstance(response, QueryResponse) and response.attestation_payload
    assert response.token == request.token
    claims = peek_evidence(response.attestation_payload)
    assert claims.nonce is None and claims.iat is not None


def test_timestamp_query_token_single_use(world: World) -> None:
    """A replayed QueryResponse under timestamp freshness is dropped."""
    steps = run(world, timestamp_tam(world))
    assert steps[0].agent.reply is not None
    again = timestamp_tam(world).process(steps[0].agent.reply)
    assert again.dropped


def test_never_issued_query_token_refused(world: World) -> None:
    """A QueryResponse echoing a token the TAM never issued is dropped."""
    tam = timestamp_tam(world)
    request = from_tam(world, tam.connect().reply or b"")
    assert isinstance(request, QueryRequest)
    forged = replace(request, token=os.urandom(16))
    data = sign_message(forged, [world.tam_keys[0]])
    reply = world.device.agent.process(data, URI).reply
    assert reply is not None
    assert tam.process(reply).dropped


def test_freshness_refusal_then_retry_with_agent_mechanism(world: World) -> None:
    """Error 3 lists the Agent's mechanisms; the TAM re-queries with one of them."""
    device = world.device
    device.agent = Agent(
        AgentConfig(key=device.tee.agent_key, freshness=(FreshnessMechanism.NONCE,)),
        device,
    )
    steps = run(world, timestamp_tam(world))
    assert names(world, steps) == [
        "QueryRequest",
        "Error",
        "QueryRequest",
        "QueryResponse",
        "Update",
        "Success",
    ]
    assert steps[0].agent.reply is not None
    error = from_agent(world, steps[0].agent.reply)
    assert isinstance(error, Error)
    assert error.err_code == ErrCode.ERR_UNSUPPORTED_FRESHNESS_MECHANISMS
    assert error.supported_freshness_mechanisms == (FreshnessMechanism.NONCE,)
    retry = from_tam(world, steps[1].tam)
    assert isinstance(retry, QueryRequest) and retry.challenge is not None


def test_unsupported_suites_error_lists_suites_and_uses_mti(world: World) -> None:
    """Error 5 lists the Agent's suites and is signed with an MTI algorithm,
    even when the Agent could have used a legacy one."""
    ed_only = TAM(TAMConfig(keys=(world.tam_keys[1],)), world.service)
    steps = run(world, ed_only)
    assert names(world, steps) == ["QueryRequest", "Error"]
    reply = steps[0].agent.reply
    assert reply is not None
    error = from_agent(world, reply)
    assert isinstance(error, Error)
    assert error.err_code == ErrCode.ERR_UNSUPPORTED_CIPHER_SUITES
    assert error.supported_teep_cipher_suites == (((18, -7),), ((18, -9),))
    assert cose.parse(reply).signatures[0].alg == COSEAlgorithm.ESP256


def test_unsupported_version_error_lists_versions(world: World) -> None:
    """Error 4 carries the versions the Agent supports."""
    request = QueryRequest(challenge=os.urandom(32), versions=(7,))
    data = sign_message(request, [world.tam_keys[0]])
    result = world.device.agent.process(data, URI)
    assert result.reply is not None
    error = from_agent(world, result.reply)
    assert isinstance(error, Error)
    assert error.err_code == ErrCode.ERR_UNSUPPORTED_MSG_VERSION
    assert error.versions == (0,)


def test_unreadable_suit_report_profile_gets_error_8(world: World) -> None:
    """A MACed SUIT Report in a QueryRequest gets Error 8 with the Agent's profiles."""
    maced = cbor.dumps(cbor.CBORTag(17, [b"\xa1\x01\x05", {}, b"report", b"tag"]))
    request = QueryRequest(challenge=os.urandom(32), suit_reports=(maced,))
    data = sign_message(request, [world.tam_keys[0]])
    result = world.device.agent.process(data, URI)
    assert result.reply is not None
    error = from_agent(world, result.reply)
    assert isinstance(error, Error)
    assert error.err_code == ErrCode.ERR_UNSUPPORTED_SUIT_REPORT
    assert error.supported_suit_cose_profiles
    assert all(p[1] in (-9, -7) for p in error.supported_suit_cose_profiles)


def test_bare_suit_report_in_query_request_accepted(world: World) -> None:
    """An unprotected SUIT Report from the TAM does not stop the QueryResponse."""
    report = SuitReport("", SuitDigest(-16, bytes(32)), None, (), None).encode()
    request = QueryRequest(
        challenge=os.urandom(32),
        suit_reports=(report,),
        data_item_requested=DataItem.TRUSTED_COMPONENTS,
    )
    data = sign_message(request, [world.tam_keys[0]])
    result = world.device.agent.process(data, URI)
    assert result.reply is not None
    assert isinstance(from_agent(world, result.reply), QueryResponse)


def until_update(world: World) -> tuple[TAM, Success]:
    """Run a session up to the Agent's Success, which the TAM has not seen."""
    tam = world.tam()
    reply = tam.connect().reply or b""
    answer = world.device.agent.process(reply, URI).reply or b""
    update = tam.process(answer).reply or b""
    assert isinstance(from_tam(world, update), Update)
    success = world.device.agent.process(update, URI).reply or b""
    message = from_agent(world, success)
    assert isinstance(message, Success)
    return tam, message


def test_success_with_wrong_report_nonce_dropped(world: World) -> None:
    """A Success whose SUIT Report nonce is not the token is dropped, and the
    token stays usable for the genuine Success."""
    tam, success = until_update(world)
    assert success.token is not None and success.suit_reports
    wrong = SuitReport("", SuitDigest(-16, bytes(32)), b"\x00" * 16, (), None)
    forged = replace(success, suit_reports=(wrong.encode(),))
    key = world.device.tee.agent_key
    assert tam.process(sign_message(forged, [key])).dropped
    genuine = tam.process(sign_message(success, [key]))
    assert not genuine.dropped and [e.kind for e in genuine.events] == ["success"]


def test_success_reports_carry_the_token(world: World) -> None:
    """Every SUIT Report in a Success carries the Update's token (P11)."""
    from teep.suit.report import decode_report

    _, success = until_update(world)
    assert success.suit_reports
    for report in success.suit_reports:
        assert decode_report(report).nonce == success.token


def test_never_issued_update_token_refused(world: World) -> None:
    """A Success naming a token the TAM never issued is dropped."""
    tam, success = until_update(world)
    forged = replace(success, token=os.urandom(16), suit_reports=None)
    assert tam.process(sign_message(forged, [world.device.tee.agent_key])).dropped


def test_agent_error_about_query_recorded(world: World) -> None:
    """An enrolled Agent's Error about a QueryRequest is recorded for the device."""
    world.session()
    requiring_tam_attestation(world, PrivateKey.generate(KeyKind.P256))
    run(world, world.tam())
    kid = world.device.tee.agent_key.public.thumbprint
    kinds = [e.kind for e in world.store.list_events(kid)]
    assert "agent-error" in kinds


def test_error_messages_fit_128_bytes(world: World) -> None:
    """err-msg is clipped to 128 bytes of UTF-8 whatever the reason's length."""
    request = QueryRequest(challenge=os.urandom(32), versions=tuple(range(1, 60)))
    data = sign_message(request, [world.tam_keys[0]])
    result = world.device.agent.process(data, URI)
    sent = [e for e in result.events if isinstance(e, ErrorSent)]
    assert sent and len(sent[0].reason.encode()) <= 128
    assert result.reply is not None
    assert isinstance(from_agent(world, result.reply), Error)
