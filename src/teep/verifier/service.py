"""The Verifier service, sans I/O: challenge-response sessions and appraisals.

Two ways in, as RATS deployments use them:

* challenge-response (the Veraison API, draft-ietf-rats-reference-
  interaction-models): :meth:`VerifierService.new_session` mints or accepts
  a nonce, :meth:`VerifierService.submit` appraises Evidence against it
  once, and the session holds the signed EAR until it is deleted or expires;
* direct (background check, RFC 9334 section 5.2): the Relying Party already
  issued its own challenge and calls :meth:`VerifierService.appraise` with
  it.

Session states, per id:

=========  =====================  =====================================
state      input                  outcome
=========  =====================  =====================================
(none)     new_session            waiting
waiting    submit, type accepted  complete (the EAR may be affirming or not)
waiting    submit, type refused   waiting (415; the nonce is not spent)
complete   submit                 SessionStateError (a nonce is used once)
any        get / delete           the session / gone
any        past its expiry        gone (UnknownSession)
=========  =====================  =====================================

Every result is an EAR (draft-ietf-rats-ear) signed with the Verifier's key,
with ``cnf`` copied from the Evidence so that the Relying Party can check the
binding to the key that presents it (teep-protocol 10.3).
"""

from __future__ import annotations

import enum
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from teep.attestation.claims import (
    EAT_CWT_MEDIA_TYPE,
    EAT_PROFILE_TEEP,
    EATClaim,
    parse_media_type,
)
from teep.attestation.ear import DEFAULT_VERIFIER_ID, VerifierID, make_ear
from teep.attestation.evidence import decode_claims_payload, parse_token
from teep.attestation.verifier import Appraisal, Verifier
from teep.errors import TeepError
from teep.keys import PrivateKey
from teep.verifier.errors import (
    BadRequest,
    SessionStateError,
    UnknownSession,
    UnsupportedMediaType,
)

__all__ = [
    "EVIDENCE_MEDIA_TYPES",
    "ChallengeSession",
    "ServiceConfig",
    "SessionStatus",
    "VerifierService",
]

log = logging.getLogger("teep.verifier")

#: Evidence media types the service appraises (RFC 9782 with the TEEP profile).
EVIDENCE_MEDIA_TYPES = (
    f'{EAT_CWT_MEDIA_TYPE}; eat_profile="{EAT_PROFILE_TEEP}"',
    EAT_CWT_MEDIA_TYPE,
)

# RFC 9711 4.1: an eat_nonce is 8 to 64 bytes; Veraison enforces the same.
MIN_NONCE, MAX_NONCE = 8, 64


class SessionStatus(enum.Enum):
    """A challenge-response session's status, as the session JSON spells it."""

    waiting = "waiting"
    complete = "complete"


@dataclass(frozen=True)
class ChallengeSession:
    """One challenge-response session."""

    id: str
    """Random identifier (a UUID), the last segment of its URL."""
    nonce: bytes
    """The challenge the Evidence's ``eat_nonce`` must carry."""
    expiry: float
    """When the session disappears, seconds since the epoch."""
    status: SessionStatus = SessionStatus.waiting
    """Where the session is."""
    evidence_type: str | None = None
    """The media type of the Evidence submitted."""
    evidence: bytes | None = None
    """The Evidence submitted."""
    result: bytes | None = None
    """The signed EAR, once complete."""


@dataclass(frozen=True)
class ServiceConfig:
    """Settings of the Verifier service."""

    session_ttl: float = 150.0
    """Seconds a session lives (Veraison's default, 2 min 30 s)."""
    result_validity: float = 300.0
    """Seconds an EAR is valid (``exp``); RFC 9397 9.6 asks for short."""
    nonce_size: int = 32
    """Bytes of a nonce the service mints."""
    max_sessions: int = 10_000
    """Live sessions kept at most; the oldest are dropped beyond it."""
    include_raw_evidence: bool = False
    """Whether EARs carry the Evidence (privacy: off by default)."""
    verifier_id: VerifierID = DEFAULT_VERIFIER_ID
    """Who the EARs say made them."""


class VerifierService:
    """Appraises Evidence with a :class:`Verifier` and signs EARs."""

    def __init__(
        self,
        verifier: Verifier,
        key: PrivateKey,
        config: ServiceConfig | None = None,
        *,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        """
        :param verifier: the appraisal policy (endorsements, reference values).
        :param key: the EAR signing key; Relying Parties trust its public half.
        :param random: source of nonces and session ids.
        """
        self.verifier = verifier
        self.key = key
        self.config = config or ServiceConfig()
        self.random = random
        self._sessions: dict[str, ChallengeSession] = {}

    @property
    def media_types(self) -> tuple[str, ...]:
        """The Evidence media types accepted."""
        return EVIDENCE_MEDIA_TYPES

    # -- challenge-response ---------------------------------------------------

    def new_session(
        self, *, now: float, nonce: bytes | None = None, nonce_size: int | None = None
    ) -> ChallengeSession:
        """Open a session with the given nonce, or a fresh one.

        :raises BadRequest: both ``nonce`` and ``nonce_size`` given, or a
            nonce (or ``nonce_size``) outside 8..64 bytes; a ``nonce_size``
            of 0 is refused too, not taken as the default.
        """
        if nonce is not None and nonce_size is not None:
            raise BadRequest("nonce and nonceSize are mutually exclusive")
        if nonce is None:
            size = self.config.nonce_size if nonce_size is None else nonce_size
            _check_nonce_size(size)
            nonce = self.random(size)
        _check_nonce_size(len(nonce))
        self._purge(now)
        sid = str(uuid.UUID(bytes=self.random(16), version=4))
        session = ChallengeSession(sid, nonce, now + self.config.session_ttl)
        self._sessions[sid] = session
        log.debug("session %s opened", sid[:8])
        return session

    def get(self, sid: str, *, now: float) -> ChallengeSession:
        """The live session ``sid``.

        :raises UnknownSession: if there is none.
        """
        self._purge(now)
        session = self._sessions.get(sid)
        if session is None:
            raise UnknownSession(f"no session {sid[:36]!r}")
        return session

    def delete(self, sid: str, *, now: float) -> None:
        """Forget a session.

        :raises UnknownSession: if there is none.
        """
        self.get(sid, now=now)
        del self._sessions[sid]

    def submit(
        self, sid: str, media_type: str, evidence: bytes, *, now: float
    ) -> ChallengeSession:
        """Appraise Evidence against the session's nonce, once.

        :raises UnknownSession: no live session ``sid``.
        :raises SessionStateError: the session already has a result.
        :raises UnsupportedMediaType: ``media_type`` is not accepted.
        :raises BadRequest: the body is empty.
        """
        session = self.get(sid, now=now)
        if session.status is not SessionStatus.waiting:
            raise SessionStateError("this session already appraised Evidence")
        _, ear = self.appraise(evidence, media_type, nonce=session.nonce, now=now)
        done = replace(
            session,
            status=SessionStatus.complete,
            evidence_type=media_type,
            evidence=evidence,
            result=ear,
        )
        self._sessions[sid] = done
        return done

    def _purge(self, now: float) -> None:
        expired = [s for s, v in self._sessions.items() if v.expiry <= now]
        for sid in expired:
            del self._sessions[sid]
        excess = len(self._sessions) - self.config.max_sessions + 1
        for sid in list(self._sessions)[: max(excess, 0)]:
            del self._sessions[sid]

    # -- appraisal ------------------------------------------------------------

    def appraise(
        self, evidence: bytes, media_type: str, *, nonce: bytes | None, now: float
    ) -> tuple[Appraisal, bytes]:
        """Appraise Evidence and sign the outcome as an EAR.

        The Verifier does not know the TEEP key the Evidence will be presented
        with; it copies the Evidence's ``cnf`` into the EAR and the Relying
        Party checks it.

        :raises UnsupportedMediaType: ``media_type`` is not accepted.
        :raises BadRequest: the body is empty, or ``nonce`` is outside 8..64
            bytes.
        """
        if nonce is not None:
            _check_nonce_size(len(nonce))
        check_media_type(media_type)
        if not evidence:
            raise BadRequest("the Evidence is empty")
        appraisal = self.verifier.appraise(evidence, nonce=nonce, cnf_key=None, now=now)
        ear = make_ear(
            appraisal,
            self.key,
            now=now,
            verifier_id=self.config.verifier_id,
            validity=self.config.result_validity,
            raw_evidence=evidence if self.config.include_raw_evidence else None,
            # A refusal answers the request's nonce too, so the Relying Party
            # can match it and read why (the Evidence's own nonce may be
            # unreadable or wrong).
            nonce=nonce if nonce is not None else appraisal.nonce,
            cnf=_evidence_cnf(evidence) if appraisal.claims is not None else None,
        )
        log.info(
            "appraised evidence %s: %s", _short(appraisal.nonce), appraisal.status.name
        )
        return appraisal, ear


def _check_nonce_size(size: int) -> None:
    if not MIN_NONCE <= size <= MAX_NONCE:
        raise BadRequest(f"a nonce is {MIN_NONCE} to {MAX_NONCE} bytes")


def check_media_type(media_type: str) -> None:
    """Check that ``media_type`` is TEEP-profile EAT Evidence.

    :raises UnsupportedMediaType: if it is anything else.
    """
    try:
        kind, params = parse_media_type(media_type)
    except ValueError:
        raise UnsupportedMediaType(f"malformed media type {media_type!r}") from None
    profile = params.get("eat_profile", EAT_PROFILE_TEEP)
    if kind != EAT_CWT_MEDIA_TYPE or profile != EAT_PROFILE_TEEP:
        raise UnsupportedMediaType(f"no appraisal for {media_type[:80]!r}")


def _evidence_cnf(evidence: bytes) -> dict[int, Any] | None:
    # Only called for Evidence whose signature verified, so these bytes are
    # the authenticated claims.
    try:
        claims = decode_claims_payload(parse_token(evidence).payload or b"")
    except TeepError:
        return None
    cnf = claims.get(EATClaim.cnf)
    return cnf if isinstance(cnf, dict) else None


def _short(nonce: bytes | None) -> str:
    return "-" if nonce is None else nonce[:4].hex()
