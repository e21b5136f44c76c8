"""Rows of the Agent's processing table (teep.protocol.agent docstring) that
need a whole TAM and device: the TAM's error channel in an Update, Error 5
for a non-QueryRequest, EdDSA on the pre-RFC profile, the SUIT Report nonce
in Error 11, and the naming of older dialects in what the Agent drops."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from teep import components, cose
from teep.keys import COSEAlgorithm, KeyKind, PrivateKey
from teep.protocol.agent import Dropped, ErrorSent, TAMReported
from teep.protocol.messages import (
    Error,
    Message,
    QueryRequest,
    QueryResponse,
    Success,
    Update,
)
from teep.protocol.registry import (
    FINAL,
    PRE_RFC,
    SUITE_EDDSA,
    Dialect,
    ErrCode,
)
from teep.protocol.signing import open_signed, peek, sign_message
from teep.suit.report import decode_report
from teep.tam.catalogue import add_component

from .conftest import NAME, URI, World, envelope, trust_signer

TOKEN = b"u" * 16


def from_agent(world: World, data: bytes, dialect: Dialect = FINAL) -> Message:
    """Verify and decode a message the device's Agent signed."""
    key = world.device.tee.agent_key.public
    return open_signed(peek(data), [key], dialect=dialect).message


def installed(world: World) -> int | None:
    held = world.device.tee.components.manifest(components.manifest_id(NAME))
    return None if held is None else held.sequence_number


# -- (a) Update with err-code: the TAM's error channel --------------------------


@pytest.mark.parametrize(
    "code", [ErrCode.ERR_PERMANENT_ERROR, ErrCode.ERR_UNSUPPORTED_MSG_VERSION, 99]
)
def test_update_with_err_code_gets_no_reply(world: World, code: ErrCode | int) -> None:
    """An Update that only reports a problem (err-code, nothing to install or
    remove) gets no reply, and the TAM's code and text are surfaced as a
    TAMReported event."""
    update = Update(token=TOKEN, err_code=code, err_msg="device not entitled")
    data = sign_message(update, world.tam_keys[:1])
    result = world.device.agent.process(data, URI)
    assert result.reply is None
    assert result.events == [TAMReported(code, "device not entitled")]
    assert installed(world) is None


def test_update_with_err_code_and_manifest_still_processed(world: World) -> None:
    """err-code alongside a manifest is reported, and the manifest processed."""
    update = Update(
        token=TOKEN,
        err_code=ErrCode.ERR_PERMANENT_ERROR,
        manifest_list=(envelope(NAME, world.signer),),
    )
    result = world.device.agent.process(sign_message(update, world.tam_keys[:1]), URI)
    assert result.reply is not None
    assert isinstance(from_agent(world, result.reply), Success)
    assert installed(world) == 1


# -- (b) Error 5 for a message signed with an unusable algorithm ----------------


@pytest.mark.parametrize(
    "message",
    [
        Update(token=TOKEN),
        Update(token=TOKEN, manifest_list=(b"not an envelope",)),
        Success(token=TOKEN),
    ],
    ids=["update", "update-with-manifest", "success"],
)
def test_non_query_request_with_unusable_alg_gets_error_5(
    world: World, message: Message
) -> None:
    """A non-QueryRequest signed only in a suite the (P-256) Agent cannot use
    (Ed25519) gets Error 5 listing the Agent's suites, signed with the MTI
    ESP256 and echoing the token; nothing is processed."""
    data = sign_message(message, [world.tam_keys[1]])  # Ed25519
    result = world.device.agent.process(data, URI)
    assert result.reply is not None
    assert [type(e) for e in result.events] == [ErrorSent]
    error = from_agent(world, result.reply)
    assert isinstance(error, Error)
    assert error.err_code == ErrCode.ERR_UNSUPPORTED_CIPHER_SUITES
    assert error.token == TOKEN
    assert error.supported_teep_cipher_suites == (((18, -7),), ((18, -9),))
    assert error.err_msg and error.err_lang == "en"
    assert [s.alg for s in cose.parse(result.reply).signatures] == [
        COSEAlgorithm.ESP256
    ]
    assert installed(world) is None


def test_pre_rfc_update_with_unusable_alg_gets_error_5_in_pre_rfc(
    world: World,
) -> None:
    """The same row in the pre-RFC numbering: Error 5 is type 6 there, and the
    token (label 20) is echoed."""
    world.device.tee.set_setting("pre_rfc_tams", [URI])
    data = sign_message(Update(token=TOKEN), [world.tam_keys[1]], dialect=PRE_RFC)
    result = world.device.agent.process(data, URI)
    assert result.reply is not None
    assert peek(result.reply).payload[0] == 6
    error = from_agent(world, result.reply, PRE_RFC)
    assert isinstance(error, Error)
    assert error.err_code == ErrCode.ERR_UNSUPPORTED_CIPHER_SUITES
    assert error.token == TOKEN
    # err-lang is not sent in the pre-RFC numbering, which reserved its label.
    assert error.err_msg and error.err_lang is None


# -- (c) EdDSA (-8) on the pre-RFC profile, end to end ---------------------------


def test_eddsa_pre_rfc_session(world: World) -> None:
    """A pre-RFC TAM offering only EdDSA (-8), as libteep-era TAMs do: the
    Ed25519 Agent answers in -8, the TAM's Update follows in -8, the Agent
    installs and its Success (-8) closes the session."""
    device = world.new_device("ed", key_kind=KeyKind.ED25519)
    world.endorse(device)
    device.tee.set_setting("pre_rfc_tams", [URI])
    tam = world.tam(PRE_RFC)
    tam_keys = [k.public for k in world.tam_keys]
    first = tam.connect().reply or b""
    offered = open_signed(peek(first), tam_keys, dialect=PRE_RFC).message
    assert isinstance(offered, QueryRequest)
    assert SUITE_EDDSA in offered.supported_teep_cipher_suites
    # The TAM's own QueryRequest, re-signed as a TAM offering only EdDSA.
    request = replace(offered, supported_teep_cipher_suites=(SUITE_EDDSA,))
    data = sign_message(
        request, [world.tam_keys[1]], dialect=PRE_RFC, alg=COSEAlgorithm.EdDSA
    )

    def alg(signed: bytes) -> int:
        return int(cose.parse(signed).signatures[0].alg)

    answer = device.agent.process(data, URI).reply or b""
    agent_key = [device.tee.agent_key.public]
    response = open_signed(peek(answer), agent_key, dialect=PRE_RFC).message
    assert isinstance(response, QueryResponse) and alg(answer) == -8
    after = tam.process(answer)
    assert not after.dropped and after.reply is not None
    assert alg(after.reply) == -8
    update = open_signed(peek(after.reply), tam_keys, dialect=PRE_RFC).message
    assert isinstance(update, Update) and update.manifest_list
    result = device.agent.process(after.reply, URI)
    assert result.reply is not None and alg(result.reply) == -8
    assert peek(result.reply).payload[0] == 5  # Success in pre-RFC numbering
    done = tam.process(result.reply)
    assert [e.kind for e in done.events] == ["success"]
    held = device.tee.components.manifest(components.manifest_id(NAME))
    assert held is not None


# -- (d) the SUIT Report nonce in Error 11 ----------------------------------------


def _report_nonces(error: Error) -> list[bytes | None]:
    assert error.suit_reports
    return [decode_report(report).nonce for report in error.suit_reports]


def test_error_11_reports_carry_the_update_token(world: World) -> None:
    """A failed Update (rollback) gets Error 11 whose SUIT Reports carry the
    Update's token as suit-report-nonce, and which echoes that token."""
    world.catalogue(NAME, sequence=2)
    world.session()
    assert installed(world) == 2
    token = os.urandom(16)
    update = Update(token=token, manifest_list=(envelope(NAME, world.signer, 1),))
    result = world.device.agent.process(sign_message(update, world.tam_keys[:1]), URI)
    assert result.reply is not None
    error = from_agent(world, result.reply)
    assert isinstance(error, Error)
    assert error.err_code == ErrCode.ERR_MANIFEST_PROCESSING_FAILED
    assert error.token == token
    assert _report_nonces(error) == [token] * len(error.suit_reports or ())


def test_error_11_in_a_session_accepted_by_tam(world: World) -> None:
    """In a whole session, the Error 11 the TAM's Update earns carries that
    Update's token in every report, and the TAM records it (not dropped)."""
    rogue = PrivateKey.generate()
    trust_signer(world.store, rogue.public, "rogue signer")
    world.store.remove_policy(NAME, selector="*")
    add_component(world.store, "rogue", envelope("rogue", rogue), now=0.0)
    world.store.add_policy("rogue", selector="*")
    steps = world.session()
    keys = [k.public for k in world.tam_keys]
    update = open_signed(peek(steps[1].tam), keys, dialect=FINAL).message
    assert isinstance(update, Update) and update.token is not None
    error = from_agent(world, steps[1].agent.reply or b"")
    assert isinstance(error, Error)
    assert error.err_code == ErrCode.ERR_MANIFEST_PROCESSING_FAILED
    assert _report_nonces(error) == [update.token] * len(error.suit_reports or ())
    assert steps[1].after is not None and not steps[1].after.dropped
    assert [e.kind for e in steps[1].after.events] == ["error"]


# -- older dialects: dropped with their name ---------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            bytes.fromhex("a201f602a364545950450165544f4b454e410367524551554553548102"),
            "-00/-01",
        ),
        (b'{"TYPE": 1, "TOKEN": "a1"}', "TEEP over JSON"),
        (bytes.fromhex("84011a77777777a3018101038100044301020302"), "-02 to -04"),
    ],
    ids=["draft01-cbor", "teep-json", "draft04"],
)
def test_agent_names_dropped_legacy_dialect(
    world: World, body: bytes, words: str
) -> None:
    """An older dialect from a TAM is dropped without a reply (it cannot be
    answered in kind), the event naming the dialect."""
    result = world.device.agent.process(body, URI)
    assert result.reply is None
    assert len(result.events) == 1 and isinstance(result.events[0], Dropped)
    assert words in result.events[0].reason
