"""The TEEP Agent's side of the protocol, sans I/O.

:class:`Agent` takes the bytes a TAM sent (through the Broker) and returns
the bytes to send back, or nothing, plus events describing what happened.
Everything device-specific (trust anchors, Evidence, the component store, the
appraisal of a TAM's own attestation) is reached through an
:class:`AgentHost` the caller supplies.

The Agent has one state, idle: every message is judged on its own.  The only
memory it keeps between messages, per TAM URI, is the challenge it sent a TAM
with ERR_ATTESTATION_REQUIRED, which the TAM's next QueryRequest must answer,
and the key-agreement key the TAM's last QueryRequest offered, to which the
SUIT Reports of the Update that follows are encrypted (teep-protocol 7.2).
Processing of one incoming message (teep-protocol 8.3 and 12), first row
that applies:

=====================  ===================================  ======================
input                  condition                            outcome
=====================  ===================================  ======================
not CBOR / not COSE    -                                    dropped, no reply
COSE, no usable alg    -                                    Error 5 with suites,
                                                            signed with an MTI suite
pre-RFC numbering      profile off for this TAM             Error 4 with versions,
                                                            in pre-RFC numbering
COSE, bad signature    -                                    Error 1
not a valid message    -                                    Error 1 naming the field
QueryRequest           no offered suite usable              Error 5 with suites
QueryRequest           no common version                    Error 4 with versions
QueryRequest           attestation asked, no common         Error 3 with freshness
                       freshness mechanism                  mechanisms
QueryRequest           TAM attestation required, none sent  Error 7 with a fresh
                       or no challenge of ours outstanding  challenge and freshness
                                                            mechanisms [nonce]
QueryRequest           TAM attestation refused              Error 1
QueryRequest           SUIT Report in an unusable profile   Error 8 with profiles
QueryRequest           otherwise                            QueryResponse
Update                 err-code and nothing to do           no reply (TAMReported)
Update                 every manifest processed             Success
Update                 a manifest failed                    Error 11 with SUIT Reports
QueryResponse,         -                                    Error 1 (a TAM never
Success, Error                                              sends them)
=====================  ===================================  ======================

Every Error echoes the token of the message it answers, when that message had
one (in either numbering), and is encoded in the numbering the TAM used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from teep import cbor, cose
from teep.attestation.encryption import (
    EncryptionError,
    KDFPurpose,
    encrypt,
    offered_key,
)
from teep.errors import DecodeError, TeepError, VerifyError
from teep.keys import ALG_KINDS, COSEAlgorithm, PrivateKey, PublicKey
from teep.protocol import codec, legacy
from teep.protocol.errors import (
    AttestationRequired,
    MalformedMessage,
    ManifestProcessingFailed,
    PermanentError,
    ProtocolError,
    UnsupportedCipherSuites,
    UnsupportedFreshness,
    UnsupportedSuitReport,
    UnsupportedVersion,
)
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
from teep.protocol.registry import (
    ALL_SUIT_COSE_PROFILES,
    FINAL,
    PRE_RFC,
    CipherSuite,
    DataItem,
    Dialect,
    ErrCode,
    FreshnessMechanism,
    SuitCoseProfile,
)
from teep.protocol.signing import Peeked, open_signed, peek, sign_message, suite_of
from teep.suit.store import ComponentId
from teep.text import escape_controls

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentEvent",
    "AgentHost",
    "AgentResult",
    "Attestation",
    "ComponentsChanged",
    "Dropped",
    "ErrorSent",
    "QueryAnswered",
    "TAMReported",
]

log = logging.getLogger("teep.agent")

SUPPORTED_VERSIONS = (0,)
CHALLENGE_SIZE = 32
# teep-protocol 18 P19: err-msg holds at most 128 bytes of UTF-8.
MAX_TEXT = 128
ERR_LANG = "en"
"""The language of the err-msg texts this Agent writes (an RFC 5646 tag)."""
# Tags a protected SUIT Report may carry: COSE_Encrypt0, COSE_Mac0,
# COSE_Sign1, COSE_Encrypt, COSE_Mac, COSE_Sign.
_REPORT_TAGS = frozenset({16, 17, 18, 96, 97, 98})


class AgentHost(Protocol):
    """What the Agent needs from the device it runs on."""

    def tam_keys(self, tam_uri: str) -> list[PublicKey]:
        """The TAM keys trusted for this TAM URI."""

    def pre_rfc_enabled(self, tam_uri: str) -> bool:
        """Whether the pre-RFC numbering is accepted from this TAM URI."""

    def attestation(self, nonce: bytes | None, request: QueryRequest) -> Attestation:
        """The attestation payload for a QueryRequest: Evidence (or an
        Attestation Result) carrying ``nonce`` as eat_nonce, or only a
        timestamp (``iat``) when ``nonce`` is None."""

    def verify_tam_attestation(
        self, attestation: Attestation, nonce: bytes | None, tam_key: PublicKey
    ) -> None:
        """Appraise a TAM's own attestation payload.

        :param nonce: the challenge the Agent sent in ERR_ATTESTATION_REQUIRED,
            or None when freshness must come from a timestamp.
        :param tam_key: the TAM key that signed the QueryRequest (cnf binding).
        :raises teep.errors.TeepError: if the TAM is not trusted.
        """

    def tc_list(self) -> list[dict[Any, Any]]:
        """system-property-claims of each installed Trusted Component."""

    def requested_tcs(self) -> list[RequestedTC]:
        """Components an untrusted app asked for (RequestTA)."""

    def unneeded_manifests(self) -> list[ComponentId]:
        """Manifest ids no longer needed (UnrequestTA)."""

    def install(self, envelope: bytes, report_nonce: bytes | None) -> bytes:
        """Process one SUIT envelope; return its encoded SUIT Report.

        :raises ManifestProcessingFailed: with the report, if it fails.
        """

    def uninstall(self, manifest_id: ComponentId, report_nonce: bytes | None) -> bytes:
        """Unlink a manifest and what it installed; return its SUIT Report.

        :raises ManifestProcessingFailed: with the report, if it fails.
        """


@dataclass(frozen=True)
class AgentConfig:
    """How the Agent behaves."""

    key: PrivateKey
    """The Agent's TEEP signing key."""
    freshness: tuple[FreshnessMechanism, ...] = (
        FreshnessMechanism.NONCE,
        FreshnessMechanism.TIMESTAMP,
    )
    """Freshness mechanisms this Agent supports (its Evidence carries iat)."""
    require_tam_attestation: bool = False
    """Whether a TAM must attest (ERR_ATTESTATION_REQUIRED otherwise)."""
    suit_cose_profiles: tuple[SuitCoseProfile, ...] | None = None
    """SUIT COSE profiles the Agent can read reports in; None means those
    whose signature algorithm the Agent's key supports."""
    random: Callable[[int], bytes] = os.urandom
    """Source of the challenges sent to a TAM."""


@dataclass(frozen=True)
class QueryAnswered:
    """A QueryResponse was built."""

    dialect: str
    """Numbering spoken."""
    attested: bool
    """Whether Evidence was included."""


@dataclass(frozen=True)
class ComponentsChanged:
    """An Update was applied."""

    installed: tuple[bytes, ...]
    """SUIT Reports of installed manifests."""
    removed: tuple[ComponentId, ...]
    """Manifest ids unlinked."""


@dataclass(frozen=True)
class ErrorSent:
    """An Error message was built."""

    code: ErrCode | int
    """The err-code sent."""
    reason: str
    """Why."""


@dataclass(frozen=True)
class TAMReported:
    """The TAM reported a problem in an Update (its error channel)."""

    code: ErrCode | int
    """The err-code the TAM sent."""
    reason: str
    """The TAM's err-msg, if any."""


@dataclass(frozen=True)
class Dropped:
    """The input was dropped without an answer."""

    reason: str
    """Why."""


AgentEvent = QueryAnswered | ComponentsChanged | ErrorSent | TAMReported | Dropped


@dataclass
class AgentResult:
    """What processing one message produced."""

    reply: bytes | None
    """The signed message to send back, if any."""
    events: list[AgentEvent] = field(default_factory=list)
    """What happened, in order."""


@dataclass(frozen=True)
class _Context:
    dialect: Dialect
    alg: COSEAlgorithm
    token: bytes | None
    tam_uri: str


class Agent:
    """A TEEP Agent protocol endpoint (one per TEE)."""

    def __init__(self, config: AgentConfig, host: AgentHost) -> None:
        self.config = config
        self.host = host
        # teep-protocol 12.2: the challenge sent with ERR_ATTESTATION_REQUIRED,
        # per TAM URI, until the TAM's next QueryRequest uses it up.
        self._tam_challenges: dict[str, bytes] = {}
        # teep-protocol 7.2: the key the TAM's last QueryRequest offered; the
        # SUIT Reports of the Update that follows are encrypted to it.
        self._report_keys: dict[str, PublicKey] = {}

    @property
    def algs(self) -> frozenset[COSEAlgorithm]:
        """Algorithms the Agent can verify and sign with."""
        return self.config.key.kind.algs

    @property
    def suit_cose_profiles(self) -> tuple[SuitCoseProfile, ...]:
        """SUIT COSE profiles the Agent reads SUIT Reports in."""
        if self.config.suit_cose_profiles is not None:
            return self.config.suit_cose_profiles
        return tuple(p for p in ALL_SUIT_COSE_PROFILES if p[1] in self.algs)

    def process(self, data: bytes, tam_uri: str) -> AgentResult:
        """Process one message from the TAM at ``tam_uri``.

        Never raises for bad input: every failure becomes an Error reply or a
        dropped message, reported in the result's events.
        """
        try:
            peeked = peek(data)
        except DecodeError as exc:
            # teep-protocol 8.3: unsigned garbage cannot be answered safely;
            # an older dialect is named (legacy/VERSIONS.md 3.2).
            known = legacy.recognise_bytes(data)
            reason = str(exc) if known is None else legacy.refusal_text(known)
            log.warning(
                "dropped a message from %s: %s", tam_uri, escape_controls(reason)
            )
            return AgentResult(None, [Dropped(reason)])
        dialect = codec.classify(peeked.payload) or FINAL
        alg = self.config.key.kind.default_alg
        ctx = _Context(dialect, alg, _token_of(peeked), tam_uri)
        try:
            return self._dispatch(peeked, ctx)
        except ProtocolError as exc:
            return self._error(exc, ctx)

    def _dispatch(self, peeked: Peeked, ctx: _Context) -> AgentResult:
        usable = [s.alg for s in peeked.cose.signatures if s.alg in self.algs]
        if not usable:
            raise UnsupportedCipherSuites(
                "no signature in a cipher suite this Agent supports"
            )
        ctx = replace(ctx, alg=COSEAlgorithm(usable[0]))
        if ctx.dialect is PRE_RFC and not self.host.pre_rfc_enabled(ctx.tam_uri):
            # teep-protocol 18 P0: refuse in the numbering the peer used.
            raise UnsupportedVersion(
                "the pre-RFC numbering is not enabled for this TAM"
            )
        keys = self.host.tam_keys(ctx.tam_uri)
        if not any(key.kind.algs & self.algs for key in keys):
            raise MalformedMessage(self._no_key_for_suite(keys))
        try:
            opened = open_signed(peeked, keys, dialect=ctx.dialect, algs=self.algs)
        except VerifyError as exc:
            raise MalformedMessage(f"TAM signature not accepted: {exc}") from None
        ctx = replace(ctx, alg=opened.alg)
        message = opened.message
        if isinstance(message, QueryRequest):
            return self._query(message, ctx, opened.signer)
        if isinstance(message, Update):
            return self._update(message, ctx)
        raise MalformedMessage(f"a TAM does not send {type(message).__name__}")

    def _no_key_for_suite(self, keys: Sequence[PublicKey]) -> str:
        """Why a TAM cannot be heard when none of its trusted keys is of the
        kind this Agent signs with (a cipher suite is used both ways)."""
        suite = self.config.key.kind.default_alg.name
        if not keys:
            return "TAM signature not accepted: no key is trusted for this TAM"
        kinds = ", ".join(sorted({key.kind.default_alg.name for key in keys}))
        return (
            f"TAM signature not accepted: this Agent uses {suite} and trusts no "
            f"{suite} key of this TAM (its trusted keys are {kinds})"
        )

    # -- QueryRequest -----------------------------------------------------------

    def _query(
        self, request: QueryRequest, ctx: _Context, tam_key: PublicKey
    ) -> AgentResult:
        # teep-protocol 12.2 step 1: suite, version and freshness, in the
        # order the draft lists them, then the TAM's attestation (step 2)
        # and its SUIT Reports (step 3).
        ctx = replace(
            ctx,
            alg=self._choose_alg(request.supported_teep_cipher_suites),
            token=request.token,
        )
        self._remember_offer(request, ctx.tam_uri)
        versions = request.versions or (0,)
        if not set(versions) & set(SUPPORTED_VERSIONS):
            raise UnsupportedVersion(f"no supported version among {list(versions)}")
        nonce = None
        if request.data_item_requested & DataItem.ATTESTATION:
            nonce = self._freshness(request)
        self._check_tam(request, ctx, tam_key)
        self._check_suit_reports(request.suit_reports or ())

        response = self._build_response(request, nonce)
        reply = self._sign(response, ctx)
        attested = response.attestation_payload is not None
        log.info(
            "answering QueryRequest from %s (%s, attested=%s)",
            ctx.tam_uri,
            ctx.dialect.name,
            attested,
        )
        return AgentResult(reply, [QueryAnswered(ctx.dialect.name, attested)])

    def _remember_offer(self, request: QueryRequest, tam_uri: str) -> None:
        key = offered_key(request.extensions)
        if key is None:
            self._report_keys.pop(tam_uri, None)
        else:
            self._report_keys[tam_uri] = key

    def _freshness(self, request: QueryRequest) -> bytes | None:
        """The eat_nonce the Evidence carries; None for a timestamp only."""
        offered = request.supported_freshness_mechanisms or (FreshnessMechanism.NONCE,)
        usable = [m for m in offered if m in self.config.freshness]
        if not usable:
            raise UnsupportedFreshness("no supported freshness mechanism offered")
        nonce = request.challenge or request.token
        if FreshnessMechanism.NONCE in usable and nonce is not None:
            # A challenge (background check) or the token (passport model,
            # teep-protocol 18 P1) becomes eat_nonce.
            return nonce
        if FreshnessMechanism.TIMESTAMP in usable:
            return None
        raise MalformedMessage("attestation requested without a challenge or token")

    def _check_tam(
        self, request: QueryRequest, ctx: _Context, tam_key: PublicKey
    ) -> None:
        challenge = self._tam_challenges.pop(ctx.tam_uri, None)
        if not self.config.require_tam_attestation:
            # An attestation the Agent did not ask for is not needed.
            return
        if request.attestation_payload is None or challenge is None:
            # The TAM's Evidence is only believed fresh when it answers a
            # challenge this Agent issued (nonce freshness): a replayed
            # attested QueryRequest meets no outstanding challenge.
            raise AttestationRequired("this Agent requires the TAM to attest")
        attestation = Attestation(
            request.attestation_payload, request.attestation_payload_format
        )
        try:
            self.host.verify_tam_attestation(attestation, challenge, tam_key)
        except TeepError as exc:
            raise PermanentError(f"TAM attestation refused: {exc}") from None
        log.info("TAM at %s attested", ctx.tam_uri)

    def _check_suit_reports(self, reports: Sequence[bytes]) -> None:
        # teep-protocol 12.2 step 3: a TAM's report the Agent cannot read
        # in one of its profiles is refused with the profiles it can.
        algs = {profile[1] for profile in self.suit_cose_profiles}
        for report in reports:
            alg = _report_alg(report)
            if alg is not None and alg not in algs:
                raise UnsupportedSuitReport(
                    "a SUIT Report in the QueryRequest uses an unsupported profile"
                )

    def _build_response(
        self, request: QueryRequest, nonce: bytes | None
    ) -> QueryResponse:
        wants = request.data_item_requested
        attestation = None
        if wants & DataItem.ATTESTATION:
            attestation = self.host.attestation(nonce, request)
        requested = tuple(self.host.requested_tcs()) or None
        unneeded = tuple(self.host.unneeded_manifests()) or None
        return QueryResponse(
            token=request.token,
            attestation_payload=attestation.payload if attestation else None,
            attestation_payload_format=attestation.payload_format
            if attestation
            else None,
            # teep-protocol 18 P8: an empty list where the draft demands one.
            tc_list=tuple(self.host.tc_list())
            if wants & DataItem.TRUSTED_COMPONENTS
            else None,
            ext_list=() if wants & DataItem.EXTENSIONS else None,
            requested_tc_list=requested,
            unneeded_manifest_list=unneeded,
        )

    def _choose_alg(self, suites: Sequence[CipherSuite]) -> COSEAlgorithm:
        own = self.config.key.kind
        preferred = sorted(
            (suite for suite in suites if _suite_alg(suite) in self.algs),
            key=lambda s: _suite_alg(s) != own.default_alg,
        )
        alg = _suite_alg(preferred[0]) if preferred else None
        if alg is None:
            raise UnsupportedCipherSuites(
                "none of the offered cipher suites is supported"
            )
        return alg

    # -- Update -------------------------------------------------------------------

    def _update(self, update: Update, ctx: _Context) -> AgentResult:
        ctx = replace(ctx, token=update.token)
        if update.err_code is not None:
            name = codec.error_code_name(update.err_code)
            text = escape_controls(update.err_msg or "")
            log.info("TAM at %s reports %s: %s", ctx.tam_uri, name, text)
            if not update.manifest_list and not update.unneeded_manifest_list:
                # teep-protocol 5.3: an Update that only reports a problem
                # needs no answer; a Success would be matched to nothing.
                report = TAMReported(update.err_code, update.err_msg or "")
                return AgentResult(None, [report])
        reports: list[bytes] = []
        removed: list[ComponentId] = []
        # teep-protocol 18 P11: every SUIT Report carries the Update's token
        # as suit-report-nonce; the host's SUIT processor writes it.
        try:
            for manifest_id in update.unneeded_manifest_list or ():
                reports.append(self.host.uninstall(manifest_id, update.token))
                removed.append(manifest_id)
            for envelope in update.manifest_list or ():
                reports.append(self.host.install(envelope, update.token))
        except ManifestProcessingFailed as exc:
            # The reports of what was done before the failure go with it.
            raise ManifestProcessingFailed(str(exc), (*reports, *exc.reports)) from None
        success = Success(
            token=update.token, suit_reports=self._sealed(reports, ctx.tam_uri)
        )
        event = ComponentsChanged(tuple(reports), tuple(removed))
        return AgentResult(self._sign(success, ctx), [event])

    # -- Error --------------------------------------------------------------------

    def _error(self, exc: ProtocolError, ctx: _Context) -> AgentResult:
        reason = clip_text(str(exc)) or type(exc).__name__
        error = Error(
            err_code=exc.err_code,
            token=ctx.token,
            err_msg=reason,
            # err-lang is a final-numbering label: the pre-RFC table reserved it.
            err_lang=ERR_LANG if ctx.dialect is FINAL else None,
            suit_reports=self._sealed(getattr(exc, "reports", None), ctx.tam_uri),
        )
        error = self._with_required_lists(error, exc, ctx)
        if isinstance(exc, UnsupportedCipherSuites):
            # teep-protocol 5.5: this Error MUST be signed with one of the
            # suites every TAM supports (ESP256 or Ed25519).
            ctx = replace(ctx, alg=self.config.key.kind.default_alg)
        log.info("sending Error %s to %s: %s", exc.err_code.name, ctx.tam_uri, reason)
        return AgentResult(self._sign(error, ctx), [ErrorSent(exc.err_code, reason)])

    def _with_required_lists(
        self, error: Error, exc: ProtocolError, ctx: _Context
    ) -> Error:
        """teep-protocol 5.5: some codes MUST carry what the Agent supports."""
        if isinstance(exc, UnsupportedCipherSuites):
            suites = tuple(suite_of(alg) for alg in sorted(self.algs, key=lambda a: -a))
            return replace(error, supported_teep_cipher_suites=suites)
        if isinstance(exc, UnsupportedVersion):
            return replace(error, versions=SUPPORTED_VERSIONS)
        if isinstance(exc, UnsupportedSuitReport):
            return replace(error, supported_suit_cose_profiles=self.suit_cose_profiles)
        if isinstance(exc, UnsupportedFreshness):
            return replace(error, supported_freshness_mechanisms=self.config.freshness)
        if isinstance(exc, AttestationRequired):
            # teep-protocol 5.5: a fresh challenge for the TAM's Evidence,
            # remembered until the TAM's next QueryRequest.
            challenge = self.config.random(CHALLENGE_SIZE)
            self._tam_challenges[ctx.tam_uri] = challenge
            return replace(
                error,
                challenge=challenge,
                supported_freshness_mechanisms=(FreshnessMechanism.NONCE,),
            )
        return error

    def _sealed(
        self, reports: Sequence[bytes] | None, tam_uri: str
    ) -> tuple[bytes, ...] | None:
        """SUIT Reports as sent: encrypted when the TAM offered a key."""
        key = self._report_keys.get(tam_uri)
        if key is None or not reports:
            return tuple(reports or ()) or None
        sealed = []
        for report in reports:
            try:
                sealed.append(encrypt(report, key, KDFPurpose.SUIT_REPORT))
            except EncryptionError as exc:
                # Never sent in the clear to a TAM that asked otherwise.
                log.warning("SUIT Report left out: %s", exc)
        return tuple(sealed) or None

    def _sign(self, message: Message, ctx: _Context) -> bytes:
        return sign_message(
            message, [self.config.key], dialect=ctx.dialect, alg=ctx.alg
        )


def clip_text(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, on a character boundary."""
    data = text.encode("utf-8", "replace")[:limit]
    return data.decode("utf-8", "ignore")


def _suite_alg(suite: CipherSuite) -> COSEAlgorithm | None:
    if len(suite) != 1 or suite[0][0] != 18:
        return None
    try:
        alg = COSEAlgorithm(suite[0][1])
    except ValueError:
        return None
    return alg if alg in ALG_KINDS else None


def _report_alg(report: bytes) -> int | None:
    """The signature algorithm of a protected SUIT Report (None if bare).

    A MACed or encrypted report counts as algorithm 0, which no profile has.
    """
    try:
        value = cbor.loads(report, tags=_REPORT_TAGS)
    except DecodeError:
        raise MalformedMessage("a SUIT Report is not CBOR") from None
    if isinstance(value, dict):
        return None
    if not isinstance(value, cbor.CBORTag) or value.tag != 18:
        return 0
    try:
        return int(cose.parse(value).signatures[0].alg)
    except DecodeError:
        raise MalformedMessage("a SUIT Report is a malformed COSE_Sign1") from None


def _token_of(peeked: Peeked) -> bytes | None:
    # The token is echoed even in an Error about a message that could not be
    # decoded, when it can be found in either numbering.
    payload = peeked.payload
    if isinstance(payload, list) and len(payload) >= 2 and isinstance(payload[1], dict):
        for label in (19, 20):
            value = payload[1].get(label)
            if isinstance(value, bytes) and 8 <= len(value) <= 64:
                return value
    return None
