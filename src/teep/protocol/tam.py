"""The TAM's side of the protocol, sans I/O.

A TAM keeps no state between HTTP requests: what it must remember (the
challenge or token of a QueryRequest, the token of an Update) is handed to a
:class:`TAMHost`, which stores it where every worker can consume it exactly
once.  The session's state is therefore the set of outstanding one-time
values: *awaiting-query-response* (a challenge or query token issued),
*awaiting-result* (an Update token issued) or *none*.

A session, as the TAM sees it (teep-protocol 11), first row that applies:

=====================  =================================  =========================
input                  condition                          outcome
=====================  =================================  =========================
connect (empty POST)   -                                  QueryRequest (COSE_Sign,
                                                          one signature per suite)
                                                          with a challenge, or a
                                                          token under timestamp
                                                          freshness or in the
                                                          passport model;
                                                          remembered
Error from an          (about a QueryRequest: Update      as "Error answering a
unknown signer         tokens go to enrolled devices)     QueryRequest", unverified
                                                          and not recorded
any message            not COSE, unknown signer, bad      dropped
                       signature, malformed, other
                       numbering
QueryRequest, Update   -                                  dropped (TAMs never get
                                                          them)
QueryResponse          challenge or token unknown,        dropped
                       expired or already used
QueryResponse          SUIT Report nonce != token         Update with err-code 1
QueryResponse          Evidence not affirmed              Update with err-code 7,
                                                          nothing installed
QueryResponse          device compliant                   nothing (session ends)
QueryResponse          all it lacks is held back          nothing (session ends)
QueryResponse          work to do                         Update (token remembered)
Error answering a      code 3 or 5 and the Agent lists    new QueryRequest with
QueryRequest (no       a mechanism or suite the TAM can   the Agent's lists
token, or a query      use and did not offer
token)                 code 7 and the TAM can attest      new QueryRequest with the
                                                          TAM's Evidence (eat_nonce
                                                          = the Agent's challenge)
                       otherwise                          recorded, session ends
Success / Error        token unknown, used, or issued     dropped
                       to another device; SUIT Report
                       nonce != token
Success / Error        otherwise                          recorded, session ends
QueryResponse,         the device was removed (by an      dropped, as from an
Success / Error        operator) while it was handled     unknown signer
=====================  =================================  =========================
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from teep import cbor, cose
from teep.errors import DecodeError, VerifyError
from teep.keys import ALG_KINDS, COSEAlgorithm, PrivateKey, PublicKey
from teep.protocol import codec
from teep.protocol.errors import (
    LegacyDialect,
    MalformedMessage,
    ProtocolError,
    UnknownPeer,
)
from teep.protocol.messages import (
    Attestation,
    Error,
    QueryRequest,
    QueryResponse,
    Success,
    Update,
)
from teep.protocol.registry import (
    FINAL,
    LEGACY_CIPHER_SUITES,
    MTI_CIPHER_SUITES,
    CipherSuite,
    DataItem,
    Dialect,
    ErrCode,
    FreshnessMechanism,
)
from teep.protocol.signing import Peeked, open_signed, peek, sign_message, suite_of
from teep.suit.errors import SuitError
from teep.suit.report import decode_report
from teep.suit.store import ComponentId
from teep.text import escape_controls

__all__ = [
    "TAM",
    "Appraised",
    "AttestationModel",
    "Plan",
    "SessionEvent",
    "TAMConfig",
    "TAMHost",
    "TAMResult",
]

log = logging.getLogger("teep.tam")

# Kinds of one-time value.  A QueryRequest's token (timestamp freshness)
# shares the challenge's kind: both are consumed by the QueryResponse and
# live as long.
CHALLENGE = "challenge"
TOKEN = "token"
CHALLENGE_SIZE = 32
TOKEN_SIZE = 16
FRESHNESS_SUPPORTED = (FreshnessMechanism.NONCE, FreshnessMechanism.TIMESTAMP)


class AttestationModel(enum.Enum):
    """The RATS model a TAM asks Agents to attest in (RFC 9334 5)."""

    BACKGROUND_CHECK = "background-check"
    """The Agent sends Evidence, which the TAM has appraised."""
    PASSPORT = "passport"
    """The Agent presents an Attestation Result from its own Verifier."""


@dataclass(frozen=True)
class Appraised:
    """The TAM's verdict on a device's attestation."""

    ok: bool
    """Whether components may be installed."""
    status: str
    """The appraisal status (affirming, warning, contraindicated, none)."""
    reason: str
    """Why, in one line."""
    manifests: frozenset[bytes] | None = None
    """SHA-256 digests of the SUIT manifests the verified Evidence lists
    (None when the Evidence lists none teep can compare)."""


@dataclass(frozen=True)
class Plan:
    """What a device must change to meet its policy."""

    install: tuple[tuple[str, bytes], ...] = ()
    """(component name, SUIT envelope) to send."""
    unneeded: tuple[ComponentId, ...] = ()
    """Manifest ids to unlink."""
    held_back: tuple[str, ...] = ()
    """Names of what the device lacks but is not sent (its deliveries kept
    failing); the device is not compliant while any is held back."""

    @property
    def empty(self) -> bool:
        """True when there is nothing to send."""
        return not self.install and not self.unneeded


class TAMHost(Protocol):
    """What the TAM protocol needs from storage, policy and the Verifier."""

    def message(self) -> AbstractContextManager[object]:
        """The scope of one incoming message: the host's other calls while
        it is handled happen inside it (a store keeps them in one
        transaction, committed before the reply leaves)."""

    def issue(
        self, value: bytes, kind: str, data: bytes, device_kid: bytes | None
    ) -> None:
        """Remember a one-time value with opaque session data."""

    def consume(
        self, value: bytes, kind: str, device_kid: bytes | None = None
    ) -> bytes | None:
        """Use up a one-time value; its data, or None if unknown, used,
        expired, or issued to a device other than ``device_kid`` (if given)."""

    def device_key(self, kid: bytes) -> PublicKey | None:
        """The TEEP key of an enrolled device."""

    def enrollment_key(self, response: QueryResponse, kid: bytes) -> PublicKey | None:
        """A not-yet-enrolled Agent key the response's Evidence vouches for."""

    def session_nonce(self, payload: bytes, payload_format: str | None) -> bytes | None:
        """The eat_nonce an attestation payload carries, read before it is
        appraised, to find the session (None if it cannot be read)."""

    def appraise(
        self,
        payload: bytes | None,
        payload_format: str | None,
        nonce: bytes | None,
        agent_key: PublicKey,
    ) -> Appraised:
        """Appraise the device's attestation payload (None when it sent none):
        Evidence goes to a Verifier, an Attestation Result is checked.
        ``nonce`` is None under timestamp freshness (the age of ``iat``
        counts instead)."""

    def open_report(self, agent_key: PublicKey, report: bytes) -> bytes:
        """A SUIT Report from a verified message, decrypted when the Agent
        encrypted it to the TAM (teep-protocol 7.2), so its nonce can be read.

        :raises DecodeError: if it is encrypted and does not open.
        """

    def plan(
        self, agent_key: PublicKey, response: QueryResponse, verdict: Appraised
    ) -> Plan:
        """What the device must install or remove, from policy and its report.

        :raises UnknownPeer: if the device is no longer enrolled (an operator
            removed it while its message was handled).
        """

    def finished(
        self, agent_key: PublicKey, message: Success | Error, session: dict[str, Any]
    ) -> None:
        """Record the outcome of an Update.

        ``session`` is what the Update carried: ``install`` (the plan's
        names), ``digests`` (the SHA-256 of each envelope, in the same
        order) and ``unneeded`` (manifest ids).

        :raises UnknownPeer: if the device is no longer enrolled (an operator
            removed it after its Update).
        """

    def agent_error(self, agent_key: PublicKey, error: Error) -> None:
        """Record an Error an enrolled Agent sent about a QueryRequest."""


Attester = Callable[[bytes | None, PublicKey], Attestation]
"""Makes the TAM's own attestation payload: (eat_nonce or None for a
timestamp only, the TAM key the QueryRequest is signed with) -> payload."""


@dataclass(frozen=True)
class TAMConfig:
    """How the TAM speaks."""

    keys: tuple[PrivateKey, ...]
    """The TAM's TEEP signing keys; one per cipher suite it offers."""
    dialect: Dialect = FINAL
    """The numbering spoken on this endpoint."""
    challenge_ttl: float = 600.0
    """Seconds a challenge (or a QueryRequest's token) stays valid."""
    token_ttl: float = 6 * 3600.0
    """Seconds an Update's token stays valid (SUIT procedures can take hours)."""
    random: Callable[[int], bytes] = os.urandom
    """Source of challenges and tokens."""
    freshness: FreshnessMechanism = FreshnessMechanism.NONCE
    """How the QueryRequest asks for fresh Evidence: a challenge (NONCE) or,
    with TIMESTAMP, no challenge, a token to match the session and the
    Verifier judging the age of ``iat``."""
    attester: Attester | None = None
    """Produces the TAM's own Evidence when an Agent demands it
    (ERR_ATTESTATION_REQUIRED); None when this TAM cannot attest."""
    query_extensions: dict[int, Any] = field(default_factory=dict)
    """Extra QueryRequest options, for example the TAM's encryption offer."""
    attestation_model: AttestationModel = AttestationModel.BACKGROUND_CHECK
    """With PASSPORT, a nonce-fresh QueryRequest carries a token and no
    challenge; the token matches the session and is the result's eat_nonce."""


@dataclass(frozen=True)
class SessionEvent:
    """Something that happened in a TAM session, for logs and the console."""

    kind: str
    """Short name: query-request, query-response, appraisal, update, success,
    error, dropped, compliant, held-back."""
    detail: str
    """One line of detail; control characters in it (from a peer's err-msg,
    say) are escaped, so it cannot forge a log line or drive a terminal."""
    device: bytes | None = None
    """The device's kid, when known."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", escape_controls(self.detail))


@dataclass
class TAMResult:
    """What processing one request produced."""

    reply: bytes | None
    """The signed message to return, or None for an empty (204) response."""
    dropped: bool = False
    """True when the input was refused."""
    events: list[SessionEvent] = field(default_factory=list)
    """What happened."""
    refusal: str | None = None
    """For a dropped message of another dialect or numbering: one line
    naming it, which the transport may show the peer."""


@dataclass(frozen=True)
class _Offer:
    """What one QueryRequest offers, and who signs it."""

    suites: tuple[CipherSuite, ...]
    freshness: FreshnessMechanism
    attestation: Attestation | None = None


class TAM:
    """A TAM protocol endpoint."""

    def __init__(self, config: TAMConfig, host: TAMHost) -> None:
        if not config.keys:
            raise ValueError("a TAM needs at least one signing key")
        self.config = config
        self.host = host

    @property
    def suites(self) -> tuple[CipherSuite, ...]:
        """The cipher suites offered: the MTI ones the keys cover, plus legacy
        ones on the pre-RFC profile."""
        offered = [s for s in MTI_CIPHER_SUITES if self._signer(s) is not None]
        if self.config.dialect is not FINAL:
            offered += [s for s in LEGACY_CIPHER_SUITES if self._signer(s) is not None]
        return tuple(offered)

    def connect(self) -> TAMResult:
        """Answer an empty POST: a fresh, attested QueryRequest."""
        with self.host.message():
            return self._query_request(_Offer(self.suites, self.config.freshness))

    def process(self, data: bytes) -> TAMResult:
        """Handle a non-empty POST.  Never raises for bad input."""
        with self.host.message():
            try:
                return self._process(data)
            except (DecodeError, VerifyError, ProtocolError) as exc:
                # teep-protocol 8.3: a TAM drops what it cannot validate.  What
                # the host recorded on the way (a refused report, say) stays.
                log.info("dropped a message: %s", escape_controls(str(exc)))
                refusal = self._refusal(data, exc)
                events = [SessionEvent("dropped", str(exc))]
                return TAMResult(None, True, events, refusal)

    def _refusal(self, data: bytes, exc: Exception) -> str | None:
        """A one-line text naming the dialect of a message refused for it."""
        if isinstance(exc, LegacyDialect):
            return str(exc)
        try:
            numbering = codec.classify(peek(data).payload)
        except (DecodeError, ProtocolError):
            return _unsigned_legacy(data)
        if numbering is None:
            # A COSE-signed message of an older draft (legacy/VERSIONS.md 2.2).
            return _unsigned_legacy(data)
        if numbering is self.config.dialect:
            return None
        return (
            f"unsupported protocol version: the peer uses the {numbering.name}"
            f" TEEP numbering ({numbering.description}); this endpoint speaks"
            f" {self.config.dialect.name}"
        )

    # -- QueryRequest ---------------------------------------------------------

    def _query_request(self, offer: _Offer) -> TAMResult:
        session = {"dialect": self.config.dialect.name, "freshness": offer.freshness}
        # teep-protocol 18 P1: in the passport model the QueryRequest carries
        # a token and no challenge; the token is the result's eat_nonce.
        passport = self.config.attestation_model is AttestationModel.PASSPORT
        nonce_mode = offer.freshness is FreshnessMechanism.NONCE and not passport
        value = self.config.random(CHALLENGE_SIZE if nonce_mode else TOKEN_SIZE)
        self.host.issue(value, CHALLENGE, cbor.dumps(session), None)
        attestation = offer.attestation
        request = QueryRequest(
            data_item_requested=DataItem.ATTESTATION | DataItem.TRUSTED_COMPONENTS,
            supported_teep_cipher_suites=offer.suites,
            # teep-protocol 18 P1: with attestation, a challenge or a token,
            # never both; the token matches the session under timestamps.
            challenge=value if nonce_mode else None,
            token=None if nonce_mode else value,
            supported_freshness_mechanisms=(offer.freshness,),
            attestation_payload=attestation.payload if attestation else None,
            attestation_payload_format=attestation.payload_format
            if attestation
            else None,
            extensions=self.config.query_extensions,
        )
        signers = [pair for pair in map(self._signer, offer.suites) if pair]
        # teep-protocol 7.1: the first QueryRequest carries one signature
        # per algorithm of the suites offered.
        reply = sign_message(
            request,
            [key for key, _ in signers],
            dialect=self.config.dialect,
            alg=signers[0][1],
            algs=[alg for _, alg in signers],
        )
        kind = "challenge" if nonce_mode else "token"
        event = SessionEvent("query-request", f"{kind} {value[:4].hex()}..")
        return TAMResult(reply, events=[event])

    def _signer(self, suite: CipherSuite) -> tuple[PrivateKey, COSEAlgorithm] | None:
        """The key and algorithm that sign in ``suite``, if the TAM has one."""
        if len(suite) != 1 or suite[0][0] != 18:
            return None
        try:
            alg = COSEAlgorithm(suite[0][1])
        except ValueError:
            return None
        if alg not in ALG_KINDS:
            return None
        own = [k for k in self.config.keys if alg in k.kind.algs]
        return (own[0], alg) if own else None

    # -- incoming messages ------------------------------------------------------

    def _process(self, data: bytes) -> TAMResult:
        peeked = peek(data)
        kid = next(iter(peeked.kids), None)
        key = self.host.device_key(kid) if kid is not None else None
        enrolling = key is None
        if key is None:
            value = codec.decode_value(peeked.payload, self.config.dialect)
            if isinstance(value, Error):
                # Update tokens go to enrolled devices only, so this Error is
                # about a QueryRequest.  Nothing can verify it: it is not
                # recorded and uses nothing up; it can only earn a new
                # QueryRequest, which an empty POST gets as well.
                return self._query_error(value, None, _first_alg(peeked))
            if not isinstance(value, QueryResponse) or kid is None:
                raise UnknownPeer(f"unknown device key {(kid or b'').hex()[:16]}")
            key = self.host.enrollment_key(value, kid)
            if key is None:
                raise UnknownPeer(
                    f"unknown device key {kid.hex()[:16]} and no Evidence for it"
                )
        opened = open_signed(peeked, [key], dialect=self.config.dialect)
        message = opened.message
        if isinstance(message, QueryResponse):
            return self._query_response(message, key, opened.alg, enrolling)
        if isinstance(message, Error) and self._answers_query(message):
            return self._query_error(message, key, opened.alg)
        if isinstance(message, Success | Error):
            return self._result(message, key)
        raise MalformedMessage(f"a TAM does not accept {type(message).__name__}")

    def _query_response(
        self,
        response: QueryResponse,
        key: PublicKey,
        alg: COSEAlgorithm,
        enrolling: bool,
    ) -> TAMResult:
        device = key.thumbprint
        session, nonce = self._session_of(response)
        events = [SessionEvent("query-response", f"signed with {alg.name}", device)]
        if response.token is not None and not _reports_carry(
            self._opened(response.suit_reports, key), response.token
        ):
            # teep-protocol 11 step 3a: drop it, and say why in an Update.
            return self._refuse(
                ErrCode.ERR_PERMANENT_ERROR,
                "suit-report-nonce does not match the token",
                key,
                alg,
                events,
            )
        verdict = self.host.appraise(
            response.attestation_payload,
            response.attestation_payload_format,
            nonce if _freshness(session) is FreshnessMechanism.NONCE else None,
            key,
        )
        events.append(
            SessionEvent("appraisal", f"{verdict.status}: {verdict.reason}", device)
        )
        if not verdict.ok:
            return self._refuse(
                ErrCode.ERR_ATTESTATION_REQUIRED,
                f"attestation {verdict.status}",
                key,
                alg,
                events,
            )
        plan = self.host.plan(key, response, verdict)
        if plan.empty and plan.held_back:
            held = ", ".join(plan.held_back)
            events.append(
                SessionEvent(
                    "held-back",
                    f"nothing sent: {held} held back after failed deliveries",
                    device,
                )
            )
            return TAMResult(None, events=events)
        if plan.empty:
            events.append(
                SessionEvent("compliant", "device already meets its policy", device)
            )
            return TAMResult(None, events=events)
        return self._update(plan, key, alg, events)

    def _session_of(self, response: QueryResponse) -> tuple[dict[str, Any], bytes]:
        """The outstanding QueryRequest a response answers, and its value.

        Under timestamp freshness the token names it; under nonce freshness
        the eat_nonce of the Evidence does.

        :raises MalformedMessage: if there is none (unknown, expired, used).
        """
        value = response.token
        if value is None and response.attestation_payload is not None:
            value = self.host.session_nonce(
                response.attestation_payload, response.attestation_payload_format
            )
        if value is None:
            raise MalformedMessage("the QueryResponse carries neither token nor nonce")
        # teep-protocol 18 P3: the signature was checked before, so consuming
        # the value now cannot be triggered by a forger.
        raw = self.host.consume(value, CHALLENGE)
        if raw is None:
            raise MalformedMessage("unknown, expired or already used challenge/token")
        return _session_map(raw), value

    def _refuse(
        self,
        code: ErrCode,
        reason: str,
        key: PublicKey,
        alg: COSEAlgorithm,
        events: list[SessionEvent],
    ) -> TAMResult:
        # teep-protocol 5.3: the TAM's error channel is an Update.
        # err-lang is a final-numbering label: the pre-RFC table reserved it.
        lang = "en" if self.config.dialect is FINAL else None
        update = Update(err_code=code, err_msg=reason[:128], err_lang=lang)
        events.append(SessionEvent("update", f"refused: {reason}", key.thumbprint))
        return TAMResult(self._sign(update, alg), events=events)

    def _update(
        self, plan: Plan, key: PublicKey, alg: COSEAlgorithm, events: list[SessionEvent]
    ) -> TAMResult:
        token = self.config.random(TOKEN_SIZE)
        session = {
            "device": key.thumbprint,
            "install": [name for name, _ in plan.install],
            "digests": [hashlib.sha256(env).digest() for _, env in plan.install],
            "unneeded": [list(m) for m in plan.unneeded],
        }
        self.host.issue(token, TOKEN, cbor.dumps(session), key.thumbprint)
        update = Update(
            token=token,
            manifest_list=tuple(env for _, env in plan.install) or None,
            unneeded_manifest_list=plan.unneeded or None,
        )
        names = ", ".join(name for name, _ in plan.install) or "-"
        detail = f"install {names}; remove {len(plan.unneeded)}"
        events.append(SessionEvent("update", detail, key.thumbprint))
        return TAMResult(self._sign(update, alg), events=events)

    def _result(self, message: Success | Error, key: PublicKey) -> TAMResult:
        if message.token is None:
            raise MalformedMessage(f"{type(message).__name__} without a token")
        # teep-protocol 18 P11: reports whose nonce is not the token are
        # dropped with their message, before the token is used up.
        if not _reports_carry(self._opened(message.suit_reports, key), message.token):
            raise MalformedMessage("suit-report-nonce does not match the token")
        # Only the device the token was issued to can use it up, so another
        # enrolled device that learned it cannot burn the real Success.
        raw = self.host.consume(message.token, TOKEN, key.thumbprint)
        if raw is None:
            raise MalformedMessage("unknown, expired or already used token")
        session = _session_map(raw)
        if session.get("device") != key.thumbprint:
            raise UnknownPeer("the token was issued to another device")
        self.host.finished(key, message, session)
        if isinstance(message, Success):
            event = SessionEvent(
                "success", message.msg or "update applied", key.thumbprint
            )
        else:
            name = codec.error_code_name(message.err_code)
            event = SessionEvent(
                "error", f"{name}: {message.err_msg or ''}", key.thumbprint
            )
        return TAMResult(None, events=[event])

    def _opened(
        self, reports: Sequence[bytes] | None, key: PublicKey
    ) -> tuple[bytes, ...]:
        # An encrypted report hides its nonce: the host, which holds the
        # TAM's key-agreement key, opens it first.
        return tuple(self.host.open_report(key, report) for report in reports or ())

    # -- the Agent's Error about a QueryRequest ---------------------------------

    def _answers_query(self, error: Error) -> bool:
        """Whether a verified Error is about a QueryRequest: it has no token,
        or the token of a QueryRequest (timestamp freshness), now used up."""
        if error.token is None:
            return True
        return self.host.consume(error.token, CHALLENGE) is not None

    def _query_error(
        self, error: Error, key: PublicKey | None, alg: COSEAlgorithm | None
    ) -> TAMResult:
        device = key.thumbprint if key is not None else None
        name = codec.error_code_name(error.err_code)
        events = [SessionEvent("error", f"{name}: {error.err_msg or ''}", device)]
        if key is not None:
            self.host.agent_error(key, error)
        offer = self._retry(error, alg)
        if offer is None:
            return TAMResult(None, events=events)
        result = self._query_request(offer)
        result.events[:0] = events
        return result

    def _retry(self, error: Error, alg: COSEAlgorithm | None) -> _Offer | None:
        """teep-protocol 11 step 4: the QueryRequest that answers an Error.

        None when the Agent's lists leave nothing new to offer, so that a
        session cannot loop on the same refusal.
        """
        code = error.err_code
        if code == ErrCode.ERR_UNSUPPORTED_FRESHNESS_MECHANISMS:
            common = [
                m
                for m in error.supported_freshness_mechanisms or ()
                if m in FRESHNESS_SUPPORTED and m != self.config.freshness
            ]
            return (
                _Offer(self.suites, FreshnessMechanism(common[0])) if common else None
            )
        if code == ErrCode.ERR_UNSUPPORTED_CIPHER_SUITES:
            common_suites = tuple(
                s
                for s in error.supported_teep_cipher_suites or ()
                if self._signer(s) is not None
            )
            if not common_suites or set(common_suites) <= set(self.suites):
                return None
            return _Offer(common_suites, self.config.freshness)
        if code == ErrCode.ERR_ATTESTATION_REQUIRED:
            return self._attested_offer(error, alg)
        return None

    def _attested_offer(self, error: Error, alg: COSEAlgorithm | None) -> _Offer | None:
        suite = suite_of(alg) if alg is not None else None
        signer = self._signer(suite) if suite is not None else None
        if self.config.attester is None or signer is None or suite is None:
            log.info("an Agent requires TAM attestation; this TAM cannot attest")
            return None
        offered = error.supported_freshness_mechanisms or (FreshnessMechanism.NONCE,)
        freshness = self.config.freshness
        if freshness not in offered:
            usable = [m for m in offered if m in FRESHNESS_SUPPORTED]
            freshness = FreshnessMechanism(usable[0]) if usable else freshness
        # teep-protocol 5.5: the TAM's Evidence carries the Agent's challenge
        # as eat_nonce and is bound (cnf) to the key signing the request.
        attestation = self.config.attester(error.challenge, signer[0].public)
        return _Offer((suite,), freshness, attestation)

    def _sign(self, message: Update, alg: COSEAlgorithm) -> bytes:
        # teep-protocol 7.1: the suite the Agent chose is used both ways.
        signer = self._signer(suite_of(alg))
        if signer is None:
            raise MalformedMessage(f"no TAM key for the Agent's algorithm {alg.name}")
        return sign_message(
            message, [signer[0]], dialect=self.config.dialect, alg=signer[1]
        )


def _unsigned_legacy(data: bytes) -> str | None:
    """The refusal for a body of an older dialect (CBOR, COSE-wrapped or JSON
    sent as teep+cbor), if it is one (legacy/VERSIONS.md 2.2-2.4)."""
    from teep.protocol.legacy import recognise_bytes, refusal_text

    dialect = recognise_bytes(data)
    return None if dialect is None else refusal_text(dialect)


def _session_map(raw: bytes) -> dict[str, Any]:
    try:
        session = cbor.loads(raw)
    except DecodeError:
        session = None
    if not isinstance(session, dict):
        raise MalformedMessage("the session record is unreadable")
    return session


def _freshness(session: dict[str, Any]) -> FreshnessMechanism:
    # Sessions recorded before timestamps were offered used a challenge.
    value = session.get("freshness", FreshnessMechanism.NONCE)
    try:
        return FreshnessMechanism(value)
    except ValueError:
        raise MalformedMessage("the session record is unreadable") from None


def _first_alg(peeked: Peeked) -> COSEAlgorithm | None:
    for signature in peeked.cose.signatures:
        if signature.alg in ALG_KINDS:
            return COSEAlgorithm(signature.alg)
    return None


def _reports_carry(reports: Sequence[bytes] | None, token: bytes) -> bool:
    """Whether every SUIT Report's suit-report-nonce is ``token``."""
    return all(_report_nonce(report) == token for report in reports or ())


def _report_nonce(report: bytes) -> bytes | None:
    """The suit-report-nonce of a bare or COSE_Sign1-protected SUIT Report.

    An unreadable report yields None, which matches no token.
    """
    data = report
    try:
        parsed = cose.parse(report)
    except DecodeError:
        pass
    else:
        data = parsed.payload or b""
    try:
        return decode_report(data).nonce
    except SuitError:
        return None


def ordered_keys(keys: Sequence[PrivateKey]) -> tuple[PrivateKey, ...]:
    """TAM keys with the P-256 key first (the suite most Agents pick)."""
    return tuple(sorted(keys, key=lambda k: k.kind.value != "p256"))
