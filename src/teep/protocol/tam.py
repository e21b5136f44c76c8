"""The TAM's side of the protocol, sans I/O.

A TAM keeps no state between HTTP requests: what it must remember (the
challenge it sent, the token of an Update) is handed to a :class:`TAMHost`,
which stores it where every worker can consume it exactly once.

A session, as the TAM sees it (teep-protocol 11):

======================  ===============================  ==========================
input                   condition                        outcome
======================  ===============================  ==========================
connect (empty POST)    -                                QueryRequest (COSE_Sign,
                                                         one signature per suite),
                                                         challenge remembered
QueryResponse           unsigned, unknown signer, bad    dropped
                        signature, malformed, unknown
                        or already used challenge
QueryResponse           Evidence not affirmed            Update with err-code 7,
                                                         nothing installed
QueryResponse           device compliant                 nothing (session ends)
QueryResponse           work to do                       Update (token remembered)
Success / Error         token unknown, used, or signer   dropped
                        is not the device it was for
Success / Error         otherwise                        recorded, session ends
QueryRequest / Update   -                                dropped (TAMs never get them)
======================  ===============================  ==========================
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from teep import cbor
from teep.errors import DecodeError, VerifyError
from teep.keys import COSEAlgorithm, PrivateKey, PublicKey
from teep.protocol import codec
from teep.protocol.errors import MalformedMessage, ProtocolError, UnknownPeer
from teep.protocol.messages import (
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
    DataItem,
    Dialect,
    ErrCode,
    FreshnessMechanism,
)
from teep.protocol.signing import open_signed, peek, sign_message
from teep.suit.store import ComponentId

__all__ = [
    "TAM",
    "Appraised",
    "Plan",
    "TAMConfig",
    "TAMHost",
    "TAMResult",
]

log = logging.getLogger("teep.tam")

CHALLENGE = "challenge"
EAT_NONCE = 10
TOKEN = "token"


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

    @property
    def empty(self) -> bool:
        """True when the device is compliant."""
        return not self.install and not self.unneeded


class TAMHost(Protocol):
    """What the TAM protocol needs from storage, policy and the Verifier."""

    def issue(
        self, value: bytes, kind: str, data: bytes, device_kid: bytes | None
    ) -> None:
        """Remember a one-time value with opaque session data."""

    def consume(self, value: bytes, kind: str) -> bytes | None:
        """Use up a one-time value; its data, or None if unknown, used or expired."""

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
        nonce: bytes,
        agent_key: PublicKey,
    ) -> Appraised:
        """Appraise the device's attestation payload (None when it sent none):
        Evidence goes to a Verifier, an Attestation Result is checked."""

    def plan(
        self, agent_key: PublicKey, response: QueryResponse, verdict: Appraised
    ) -> Plan:
        """What the device must install or remove, from policy and its report."""

    def finished(
        self, agent_key: PublicKey, message: Success | Error, session: dict[str, Any]
    ) -> None:
        """Record the outcome of an Update."""


@dataclass(frozen=True)
class TAMConfig:
    """How the TAM speaks."""

    keys: tuple[PrivateKey, ...]
    """The TAM's TEEP signing keys; one per cipher suite it offers."""
    dialect: Dialect = FINAL
    """The numbering spoken on this endpoint."""
    challenge_ttl: float = 600.0
    """Seconds a challenge stays valid."""
    token_ttl: float = 6 * 3600.0
    """Seconds an Update's token stays valid (SUIT procedures can take hours)."""
    random: Callable[[int], bytes] = os.urandom
    """Source of challenges and tokens."""


@dataclass(frozen=True)
class SessionEvent:
    """Something that happened in a TAM session, for logs and the console."""

    kind: str
    """Short name: query-request, query-response, appraisal, update, success, error, dropped, compliant."""
    detail: str
    """One line of detail."""
    device: bytes | None = None
    """The device's kid, when known."""


@dataclass
class TAMResult:
    """What processing one request produced."""

    reply: bytes | None
    """The signed message to return, or None for an empty (204) response."""
    dropped: bool = False
    """True when the input was refused."""
    events: list[SessionEvent] = field(default_factory=list)
    """What happened."""


class TAM:
    """A TAM protocol endpoint."""

    def __init__(self, config: TAMConfig, host: TAMHost) -> None:
        if not config.keys:
            raise ValueError("a TAM needs at least one signing key")
        self.config = config
        self.host = host

    @property
    def suites(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """The cipher suites offered: the MTI ones the keys cover, plus legacy
        ones on the pre-RFC profile."""
        kinds = {key.kind for key in self.config.keys}
        offered = [s for s in MTI_CIPHER_SUITES if _kind_of(s[0][1]) in kinds]
        if self.config.dialect is not FINAL:
            offered += [s for s in LEGACY_CIPHER_SUITES if _kind_of(s[0][1]) in kinds]
        return tuple(offered)

    def connect(self) -> TAMResult:
        """Answer an empty POST: a fresh, attested QueryRequest."""
        challenge = self.config.random(32)
        session = cbor.dumps({"dialect": self.config.dialect.name})
        self.host.issue(challenge, CHALLENGE, session, None)
        request = QueryRequest(
            data_item_requested=DataItem.ATTESTATION | DataItem.TRUSTED_COMPONENTS,
            supported_teep_cipher_suites=self.suites,
            challenge=challenge,
            supported_freshness_mechanisms=(FreshnessMechanism.NONCE,),
        )
        # teep-protocol 7.1: the first QueryRequest carries one signature
        # per algorithm of the suites offered.
        reply = sign_message(request, self.config.keys, dialect=self.config.dialect)
        event = SessionEvent("query-request", f"challenge {challenge[:4].hex()}..")
        return TAMResult(reply, events=[event])

    def process(self, data: bytes) -> TAMResult:
        """Handle a non-empty POST.  Never raises for bad input."""
        try:
            return self._process(data)
        except (DecodeError, VerifyError, ProtocolError) as exc:
            # teep-protocol 8.3: a TAM drops what it cannot validate.
            log.warning("dropped a message: %s", exc)
            return TAMResult(None, True, [SessionEvent("dropped", str(exc))])

    def _process(self, data: bytes) -> TAMResult:
        peeked = peek(data)
        kid = next(iter(peeked.kids), None)
        if kid is None:
            raise UnknownPeer("the message names no key (kid)")
        key = self.host.device_key(kid)
        enrolling = key is None
        if key is None:
            value = codec.decode_value(peeked.payload, self.config.dialect)
            if not isinstance(value, QueryResponse):
                raise UnknownPeer(f"unknown device key {kid.hex()[:16]}")
            key = self.host.enrollment_key(value, kid)
            if key is None:
                raise UnknownPeer(
                    f"unknown device key {kid.hex()[:16]} and no Evidence for it"
                )
        opened = open_signed(peeked, [key], dialect=self.config.dialect)
        message = opened.message
        if isinstance(message, QueryResponse):
            return self._query_response(message, key, opened.alg, enrolling)
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
        nonce = None
        if response.attestation_payload is not None:
            nonce = self.host.session_nonce(
                response.attestation_payload, response.attestation_payload_format
            )
        if nonce is None:
            raise MalformedMessage("the QueryResponse carries no Evidence")
        # teep-protocol 18 P3: the signature was checked above, so consuming
        # the challenge now cannot be triggered by a forger.
        if self.host.consume(nonce, CHALLENGE) is None:
            raise MalformedMessage("unknown, expired or already used challenge")
        events = [SessionEvent("query-response", f"signed with {alg.name}", device)]
        verdict = self.host.appraise(
            response.attestation_payload,
            response.attestation_payload_format,
            nonce,
            key,
        )
        events.append(
            SessionEvent("appraisal", f"{verdict.status}: {verdict.reason}", device)
        )
        if not verdict.ok:
            update = Update(
                err_code=ErrCode.ERR_ATTESTATION_REQUIRED,
                err_msg=f"attestation {verdict.status}"[:128],
            )
            events.append(SessionEvent("update", "refused: attestation failed", device))
            return TAMResult(self._sign(update, key, alg), events=events)
        plan = self.host.plan(key, response, verdict)
        if plan.empty:
            events.append(
                SessionEvent("compliant", "device already meets its policy", device)
            )
            return TAMResult(None, events=events)
        return self._update(plan, key, alg, events)

    def _update(
        self, plan: Plan, key: PublicKey, alg: COSEAlgorithm, events: list[SessionEvent]
    ) -> TAMResult:
        token = self.config.random(16)
        session = {
            "device": key.thumbprint,
            "install": [name for name, _ in plan.install],
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
        return TAMResult(self._sign(update, key, alg), events=events)

    def _result(self, message: Success | Error, key: PublicKey) -> TAMResult:
        if message.token is None:
            raise MalformedMessage(f"{type(message).__name__} without a token")
        raw = self.host.consume(message.token, TOKEN)
        if raw is None:
            raise MalformedMessage("unknown, expired or already used token")
        session = cbor.loads(raw)
        if not isinstance(session, dict) or session.get("device") != key.thumbprint:
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

    def _sign(self, message: Update, key: PublicKey, alg: COSEAlgorithm) -> bytes:
        # teep-protocol 7.1: the suite the Agent chose is used both ways.
        own = [k for k in self.config.keys if alg in k.kind.algs]
        return sign_message(message, own[:1], dialect=self.config.dialect, alg=alg)


def _kind_of(alg: int) -> Any:
    from teep.keys import ALG_KINDS

    try:
        return ALG_KINDS.get(COSEAlgorithm(alg))
    except ValueError:
        return None


def ordered_keys(keys: Sequence[PrivateKey]) -> tuple[PrivateKey, ...]:
    """TAM keys with the P-256 key first (the suite most Agents pick)."""
    return tuple(sorted(keys, key=lambda k: k.kind.value != "p256"))
