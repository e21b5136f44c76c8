"""Every (state, message) pair of both protocol engines, against the tables in
the docstrings of teep.protocol.tam and teep.protocol.agent.

Each of the five message types is sent in five variants: valid, invalid (a
field of the wrong size), unsigned (bare CBOR), wrongly signed (a corrupted
signature) and in the other numbering (pre-RFC to a final-numbering peer).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from typing import Any

import pytest

from teep import cbor, cose
from teep.keys import KeyKind, PrivateKey, PublicKey
from teep.protocol import codec
from teep.protocol.agent import Agent, AgentConfig, ErrorSent
from teep.protocol.messages import (
    Attestation,
    Error,
    Message,
    QueryRequest,
    QueryResponse,
    RequestedTC,
    Success,
    Update,
)
from teep.protocol.registry import FINAL, PRE_RFC, ErrCode, Label, MessageType
from teep.protocol.signing import open_signed, peek
from teep.protocol.tam import (
    CHALLENGE,
    TAM,
    TOKEN,
    Appraised,
    Plan,
    TAMConfig,
)
from teep.suit.store import ComponentId

TAM_KEY = PrivateKey.generate(KeyKind.P256)
AGENT_KEY = PrivateKey.generate(KeyKind.P256)
CHALLENGE_VALUE = b"c" * 32
TOKEN_VALUE = b"t" * 16
URI = "http://tam.test/tam"

MTYPES = tuple(MessageType)
VARIANTS = ("valid", "invalid", "unsigned", "wrongly-signed", "other-numbering")
TAM_STATES = ("none", "awaiting-query-response", "awaiting-result")


class FakeTAMHost:
    """A TAMHost in memory: one enrolled device, Evidence = the bare nonce."""

    def __init__(self) -> None:
        self.values: dict[tuple[bytes, str], bytes] = {}
        self.owners: dict[tuple[bytes, str], bytes | None] = {}
        self.recorded: list[Any] = []

    def message(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def issue(self, value: bytes, kind: str, data: bytes, device: bytes | None) -> None:
        self.values[(value, kind)] = data
        self.owners[(value, kind)] = device

    def consume(
        self, value: bytes, kind: str, device_kid: bytes | None = None
    ) -> bytes | None:
        owner = self.owners.get((value, kind))
        if device_kid is not None and owner not in (None, device_kid):
            return None
        return self.values.pop((value, kind), None)

    def device_key(self, kid: bytes) -> PublicKey | None:
        return AGENT_KEY.public if kid == AGENT_KEY.kid else None

    def enrollment_key(self, response: QueryResponse, kid: bytes) -> PublicKey | None:
        return None

    def session_nonce(self, payload: bytes, payload_format: str | None) -> bytes:
        return payload

    def appraise(
        self, payload: bytes | None, fmt: str | None, nonce: bytes | None, key: Any
    ) -> Appraised:
        return Appraised(True, "affirming", "fake")

    def open_report(self, key: PublicKey, report: bytes) -> bytes:
        return report

    def plan(self, key: PublicKey, response: QueryResponse, verdict: Any) -> Plan:
        return Plan(install=(("hello", b"envelope"),))

    def finished(self, key: PublicKey, message: Any, session: Any) -> None:
        self.recorded.append(message)

    def agent_error(self, key: PublicKey, error: Error) -> None:
        self.recorded.append(error)


class FakeAgentHost:
    """An AgentHost in memory that trusts TAM_KEY and installs anything."""

    def tam_keys(self, tam_uri: str) -> list[PublicKey]:
        return [TAM_KEY.public]

    def pre_rfc_enabled(self, tam_uri: str) -> bool:
        return False

    def attestation(self, nonce: bytes | None, request: QueryRequest) -> Attestation:
        return Attestation(nonce or b"timestamped")

    def verify_tam_attestation(self, *args: Any) -> None:
        return None

    def tc_list(self) -> list[dict[Any, Any]]:
        return []

    def requested_tcs(self) -> list[RequestedTC]:
        return []

    def unneeded_manifests(self) -> list[ComponentId]:
        return []

    def install(self, envelope: bytes, report_nonce: bytes | None) -> bytes:
        return b"report"

    def uninstall(self, manifest_id: ComponentId, report_nonce: bytes | None) -> bytes:
        return b"report"


def sample(mtype: MessageType, with_token: bool = True) -> Message:
    """A valid message of each type; tokens make the numbering recognisable."""
    token = TOKEN_VALUE if with_token else None
    if mtype is MessageType.QUERY_REQUEST:
        return QueryRequest(token=token)
    if mtype is MessageType.QUERY_RESPONSE:
        return QueryResponse(token=token, attestation_payload=CHALLENGE_VALUE)
    if mtype is MessageType.UPDATE:
        return Update(token=token)
    if mtype is MessageType.SUCCESS:
        return Success(token=token)
    return Error(err_code=ErrCode.ERR_PERMANENT_ERROR, token=token)


def variant(message: Message, how: str, key: PrivateKey) -> bytes:
    """``message`` as bytes, in one of the five VARIANTS."""
    dialect = PRE_RFC if how == "other-numbering" else FINAL
    value = codec.encode_value(message, dialect)
    if how == "invalid":
        # teep-protocol 5: a token is 8..64 bytes.
        value[1][FINAL.labels[Label.token]] = b"short"
    payload = cbor.dumps(value)
    if how == "unsigned":
        return payload
    signed = cose.sign1(payload, key)
    if how == "wrongly-signed":
        return signed[:-1] + bytes([signed[-1] ^ 1])
    return signed


def tam_in(state: str) -> tuple[TAM, FakeTAMHost]:
    """A TAM engine whose host holds the one-time values of ``state``."""
    host = FakeTAMHost()
    tam = TAM(TAMConfig(keys=(TAM_KEY,)), host)
    session = cbor.dumps({"dialect": "final", "freshness": 0})
    if state == "awaiting-query-response":
        host.issue(CHALLENGE_VALUE, CHALLENGE, session, None)
    if state == "awaiting-result":
        update = cbor.dumps({"device": AGENT_KEY.public.thumbprint})
        host.issue(TOKEN_VALUE, TOKEN, update, AGENT_KEY.public.thumbprint)
    return tam, host


def tam_expected(state: str, mtype: MessageType, how: str) -> str:
    """The TAM table (teep.protocol.tam docstring), as a function."""
    if how == "valid" and mtype is MessageType.ERROR:
        # An enrolled Agent's Error names an Update token only when one is
        # outstanding; otherwise it cannot be matched and is dropped.
        return "recorded" if state == "awaiting-result" else "dropped"
    if how != "valid" or mtype in (MessageType.QUERY_REQUEST, MessageType.UPDATE):
        return "dropped"
    if mtype is MessageType.QUERY_RESPONSE:
        return "Update" if state == "awaiting-query-response" else "dropped"
    return "recorded" if state == "awaiting-result" else "dropped"


def tam_outcome(tam: TAM, data: bytes) -> str:
    result = tam.process(data)
    if result.dropped:
        return "dropped"
    if result.reply is None:
        return "recorded"
    message = open_signed(peek(result.reply), [TAM_KEY.public], dialect=FINAL).message
    return type(message).__name__


def tam_message(mtype: MessageType) -> Message:
    if mtype is MessageType.QUERY_RESPONSE:
        # Under nonce freshness the Evidence's nonce names the session.
        return QueryResponse(attestation_payload=CHALLENGE_VALUE)
    return sample(mtype)


@pytest.mark.parametrize(
    ("state", "mtype", "how"), list(itertools.product(TAM_STATES, MTYPES, VARIANTS))
)
def test_tam_table(state: str, mtype: MessageType, how: str) -> None:
    """The TAM's outcome for each (state, message, variant) follows its table."""
    tam, _ = tam_in(state)
    data = variant(tam_message(mtype), how, AGENT_KEY)
    assert tam_outcome(tam, data) == tam_expected(state, mtype, how)


@pytest.mark.parametrize("state", TAM_STATES)
def test_tam_error_about_query_request(state: str) -> None:
    """An enrolled Agent's tokenless Error is recorded in every state; the
    session ends (no retry is possible for ERR_PERMANENT_ERROR)."""
    tam, host = tam_in(state)
    data = variant(sample(MessageType.ERROR, with_token=False), "valid", AGENT_KEY)
    assert tam_outcome(tam, data) == "recorded"
    assert isinstance(host.recorded[-1], Error)


@pytest.mark.parametrize("state", TAM_STATES)
def test_tam_error_from_unknown_signer_not_recorded(state: str) -> None:
    """An Error nobody can verify is not recorded and leaves the state alone."""
    tam, host = tam_in(state)
    stranger = PrivateKey.generate(KeyKind.P256)
    before = dict(host.values)
    data = variant(sample(MessageType.ERROR), "valid", stranger)
    assert tam_outcome(tam, data) == "recorded"
    assert host.recorded == [] and host.values == before


def agent_expected(mtype: MessageType, how: str) -> str:
    """The Agent table (teep.protocol.agent docstring), as a function."""
    if how == "unsigned":
        return "dropped"
    if how == "other-numbering":
        return "Error 4 pre-rfc"
    if how in ("invalid", "wrongly-signed"):
        return "Error 1"
    if mtype is MessageType.QUERY_REQUEST:
        return "QueryResponse"
    if mtype is MessageType.UPDATE:
        return "Success"
    return "Error 1"


def agent_outcome(result_reply: bytes | None, events: list[Any]) -> str:
    if result_reply is None:
        return "dropped"
    peeked = peek(result_reply)
    dialect = codec.classify(peeked.payload) or FINAL
    message = open_signed(peeked, [AGENT_KEY.public], dialect=dialect).message
    if isinstance(message, Error):
        assert any(isinstance(e, ErrorSent) for e in events)
        suffix = " pre-rfc" if dialect is PRE_RFC else ""
        return f"Error {int(message.err_code)}{suffix}"
    return type(message).__name__


@pytest.mark.parametrize(("mtype", "how"), list(itertools.product(MTYPES, VARIANTS)))
def test_agent_table(mtype: MessageType, how: str) -> None:
    """The Agent's outcome for each (message, variant) follows its table."""
    agent = Agent(AgentConfig(key=AGENT_KEY), FakeAgentHost())
    message = sample(mtype)
    if isinstance(message, QueryRequest):
        message = QueryRequest(challenge=CHALLENGE_VALUE, token=TOKEN_VALUE)
    result = agent.process(variant(message, how, TAM_KEY), URI)
    assert agent_outcome(result.reply, result.events) == agent_expected(mtype, how)


@pytest.mark.parametrize(("mtype", "how"), list(itertools.product(MTYPES, VARIANTS)))
def test_agent_error_echoes_token(mtype: MessageType, how: str) -> None:
    """Every Error the Agent sends echoes the token of the message it answers."""
    agent = Agent(AgentConfig(key=AGENT_KEY), FakeAgentHost())
    result = agent.process(variant(sample(mtype), how, TAM_KEY), URI)
    if result.reply is None:
        return
    peeked = peek(result.reply)
    dialect = codec.classify(peeked.payload) or FINAL
    message = open_signed(peeked, [AGENT_KEY.public], dialect=dialect).message
    if isinstance(message, Error) and how != "invalid":
        assert message.token == TOKEN_VALUE


def test_agent_remembers_tam_challenge_once() -> None:
    """After Error 7 the Agent holds one challenge for that TAM, used up by the
    next QueryRequest whatever it carries."""
    agent = Agent(
        AgentConfig(key=AGENT_KEY, require_tam_attestation=True), FakeAgentHost()
    )
    request = QueryRequest(challenge=CHALLENGE_VALUE)
    first = agent.process(variant(request, "valid", TAM_KEY), URI)
    assert agent_outcome(first.reply, first.events) == "Error 7"
    attested = QueryRequest(challenge=CHALLENGE_VALUE, attestation_payload=b"tam")
    second = agent.process(variant(attested, "valid", TAM_KEY), URI)
    assert agent_outcome(second.reply, second.events) == "QueryResponse"
    third = agent.process(variant(attested, "valid", TAM_KEY), URI)
    assert agent_outcome(third.reply, third.events) == "Error 7"


def test_error_7_challenge_differs_each_time() -> None:
    """Each ERR_ATTESTATION_REQUIRED carries a new challenge."""
    agent = Agent(
        AgentConfig(key=AGENT_KEY, require_tam_attestation=True, random=os.urandom),
        FakeAgentHost(),
    )
    request = variant(QueryRequest(challenge=CHALLENGE_VALUE), "valid", TAM_KEY)
    seen = set()
    for _ in range(3):
        reply = agent.process(request, URI).reply
        assert reply is not None
        error = open_signed(peek(reply), [AGENT_KEY.public], dialect=FINAL).message
        assert isinstance(error, Error) and error.challenge is not None
        seen.add(error.challenge)
    assert len(seen) == 3


def tam_reply_to(error: Error) -> QueryRequest | None:
    """The QueryRequest a final-numbering TAM sends in answer to ``error``."""
    tam = TAM(TAMConfig(keys=(TAM_KEY,)), FakeTAMHost())
    result = tam.process(variant(error, "valid", AGENT_KEY))
    assert not result.dropped
    if result.reply is None:
        return None
    message = open_signed(peek(result.reply), [TAM_KEY.public], dialect=FINAL)
    assert isinstance(message.message, QueryRequest)
    return message.message


def test_tam_retries_with_a_suite_it_did_not_offer() -> None:
    """Error 5 listing a suite the TAM can sign in (legacy ES256) earns a
    QueryRequest offering exactly the common suites."""
    error = Error(
        err_code=ErrCode.ERR_UNSUPPORTED_CIPHER_SUITES,
        supported_teep_cipher_suites=(((18, -7),), ((18, -35),)),
    )
    request = tam_reply_to(error)
    assert request is not None
    assert request.supported_teep_cipher_suites == (((18, -7),),)


def test_tam_does_not_loop_on_suites_already_offered() -> None:
    """Error 5 listing only suites already offered ends the session."""
    error = Error(
        err_code=ErrCode.ERR_UNSUPPORTED_CIPHER_SUITES,
        supported_teep_cipher_suites=(((18, -9),),),
    )
    assert tam_reply_to(error) is None


def test_tam_retries_with_agent_freshness() -> None:
    """Error 3 listing timestamps earns a QueryRequest with a token, no challenge."""
    error = Error(
        err_code=ErrCode.ERR_UNSUPPORTED_FRESHNESS_MECHANISMS,
        supported_freshness_mechanisms=(1,),
    )
    request = tam_reply_to(error)
    assert request is not None
    assert request.challenge is None and request.token is not None
    assert request.supported_freshness_mechanisms == (1,)


def test_tam_without_attester_ends_on_error_7() -> None:
    """Error 7 to a TAM that cannot attest ends the session."""
    error = Error(err_code=ErrCode.ERR_ATTESTATION_REQUIRED, challenge=b"c" * 32)
    assert tam_reply_to(error) is None


def test_first_query_request_signed_once_per_suite() -> None:
    """The first QueryRequest carries one signature per suite offered: the two
    MTI ones, plus ES256 and EdDSA on the pre-RFC profile."""
    keys = (TAM_KEY, PrivateKey.generate(KeyKind.ED25519))
    final = TAM(TAMConfig(keys=keys), FakeTAMHost()).connect().reply
    pre_rfc = TAM(TAMConfig(keys=keys, dialect=PRE_RFC), FakeTAMHost()).connect().reply
    assert final is not None and pre_rfc is not None
    assert [s.alg for s in cose.parse(final).signatures] == [-9, -19]
    assert [s.alg for s in cose.parse(pre_rfc).signatures] == [-9, -19, -7, -8]


def test_agent_trusting_no_key_of_its_suite_says_so() -> None:
    """An Agent that signs with ESP256 but trusts only the TAM's Ed25519 key
    cannot take part in either suite: its Error names its suite and the kinds
    of key it trusts, not only the algorithms of the message."""
    ed25519 = PrivateKey.generate(KeyKind.ED25519)

    class TrustsEd25519(FakeAgentHost):
        def tam_keys(self, tam_uri: str) -> list[PublicKey]:
            return [ed25519.public]

    request = TAM(TAMConfig(keys=(TAM_KEY, ed25519)), FakeTAMHost()).connect().reply
    assert request is not None
    result = Agent(AgentConfig(key=AGENT_KEY), TrustsEd25519()).process(request, URI)
    (event,) = [e for e in result.events if isinstance(e, ErrorSent)]
    assert event.code == ErrCode.ERR_PERMANENT_ERROR
    assert event.reason == (
        "TAM signature not accepted: this Agent uses ESP256 and trusts no ESP256 "
        "key of this TAM (its trusted keys are Ed25519)"
    )
