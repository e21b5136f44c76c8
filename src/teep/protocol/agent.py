"""The TEEP Agent's side of the protocol, sans I/O.

:class:`Agent` takes the bytes a TAM sent (through the Broker) and returns
the bytes to send back, or nothing, plus events describing what happened.
Everything device-specific (trust anchors, Evidence, the component store) is
reached through an :class:`AgentHost` the caller supplies.

Processing of one incoming message (teep-protocol 8.3 and 12):

====================  ==============================  ===========================
input                 condition                       outcome
====================  ==============================  ===========================
not CBOR / not COSE   -                               dropped, no reply
COSE, no usable alg   -                               Error 5 (suites listed)
COSE, bad signature   -                               Error 1
pre-RFC numbering     profile off for this TAM        Error 4 in pre-RFC numbering
not a valid message   -                               Error 1 naming the field
QueryRequest          version / freshness unusable    Error 4 / Error 3
QueryRequest          otherwise                       QueryResponse
Update                every manifest processed        Success
Update                a manifest failed               Error 11 with SUIT Reports
Success/Error/QResp   -                               Error 1 (TAM never gets them)
====================  ==============================  ===========================
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from teep.errors import DecodeError, VerifyError
from teep.keys import ALG_KINDS, COSEAlgorithm, PrivateKey, PublicKey
from teep.protocol import codec
from teep.protocol.errors import (
    AttestationRequired,
    MalformedMessage,
    ManifestProcessingFailed,
    ProtocolError,
    UnsupportedCipherSuites,
    UnsupportedFreshness,
    UnsupportedVersion,
)
from teep.protocol.messages import (
    Error,
    Message,
    QueryRequest,
    QueryResponse,
    RequestedTC,
    Success,
    Update,
)
from teep.protocol.registry import (
    FINAL,
    PRE_RFC,
    CipherSuite,
    DataItem,
    Dialect,
    ErrCode,
    FreshnessMechanism,
)
from teep.protocol.signing import Peeked, open_signed, peek, suite_of
from teep.suit.store import ComponentId

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


class AgentHost(Protocol):
    """What the Agent needs from the device it runs on."""

    def tam_keys(self, tam_uri: str) -> list[PublicKey]:
        """The TAM keys trusted for this TAM URI."""

    def pre_rfc_enabled(self, tam_uri: str) -> bool:
        """Whether the pre-RFC numbering is accepted from this TAM URI."""

    def attestation(self, nonce: bytes, request: QueryRequest) -> Attestation:
        """The attestation payload for a QueryRequest: Evidence (or an
        Attestation Result) carrying ``nonce`` as eat_nonce."""

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
class Attestation:
    """An attestation payload and its media type."""

    payload: bytes
    """Evidence or an Attestation Result, possibly encrypted to the TAM."""
    payload_format: str | None = None
    """attestation-payload-format; None means the TEEP EAT profile."""


@dataclass(frozen=True)
class AgentConfig:
    """How the Agent behaves."""

    key: PrivateKey
    """The Agent's TEEP signing key."""
    freshness: tuple[FreshnessMechanism, ...] = (FreshnessMechanism.NONCE,)
    """Freshness mechanisms this Agent supports."""


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


class Agent:
    """A TEEP Agent protocol endpoint (one per TEE)."""

    def __init__(self, config: AgentConfig, host: AgentHost) -> None:
        self.config = config
        self.host = host

    @property
    def algs(self) -> frozenset[COSEAlgorithm]:
        """Algorithms the Agent can verify and sign with."""
        return self.config.key.kind.algs

    def process(self, data: bytes, tam_uri: str) -> AgentResult:
        """Process one message from the TAM at ``tam_uri``.

        Never raises for bad input: every failure becomes an Error reply or a
        dropped message, reported in the result's events.
        """
        try:
            peeked = peek(data)
        except DecodeError as exc:
            # teep-protocol 8.3: unsigned garbage cannot be answered safely.
            log.warning("dropped a message from %s: %s", tam_uri, exc)
            return AgentResult(None, [Dropped(str(exc))])
        dialect = codec.classify(peeked.payload) or FINAL
        ctx = _Context(dialect, self.config.key.kind.default_alg, _token_of(peeked))
        try:
            return self._dispatch(peeked, tam_uri, ctx)
        except ProtocolError as exc:
            return self._error(exc, ctx)

    def _dispatch(self, peeked: Peeked, tam_uri: str, ctx: _Context) -> AgentResult:
        usable = [s.alg for s in peeked.cose.signatures if s.alg in self.algs]
        if not usable:
            raise UnsupportedCipherSuites(
                "no signature in a cipher suite this Agent supports"
            )
        ctx = _Context(ctx.dialect, COSEAlgorithm(usable[0]), ctx.token)
        if ctx.dialect is PRE_RFC and not self.host.pre_rfc_enabled(tam_uri):
            # teep-protocol 18 P0: refuse in the numbering the peer used.
            raise UnsupportedVersion(
                "the pre-RFC numbering is not enabled for this TAM"
            )
        try:
            opened = open_signed(
                peeked, self.host.tam_keys(tam_uri), dialect=ctx.dialect, algs=self.algs
            )
        except VerifyError as exc:
            raise MalformedMessage(f"TAM signature not accepted: {exc}") from None
        ctx = _Context(ctx.dialect, opened.alg, ctx.token)
        message = opened.message
        if isinstance(message, QueryRequest):
            return self._query(message, ctx)
        if isinstance(message, Update):
            return self._update(message, ctx)
        raise MalformedMessage(f"a TAM does not send {type(message).__name__}")

    def _query(self, request: QueryRequest, ctx: _Context) -> AgentResult:
        alg = self._choose_alg(request.supported_teep_cipher_suites, ctx)
        ctx = _Context(ctx.dialect, alg, request.token)
        versions = request.versions or (0,)
        if not set(versions) & set(SUPPORTED_VERSIONS):
            raise UnsupportedVersion(f"no supported version among {list(versions)}")
        wants = request.data_item_requested
        offered = request.supported_freshness_mechanisms or (FreshnessMechanism.NONCE,)
        if wants & DataItem.ATTESTATION and not set(offered) & set(
            self.config.freshness
        ):
            raise UnsupportedFreshness("no supported freshness mechanism offered")
        response = self._build_response(request, wants)
        reply = self._sign(response, ctx)
        attested = response.attestation_payload is not None
        log.info("answering QueryRequest (%s, attested=%s)", ctx.dialect.name, attested)
        return AgentResult(reply, [QueryAnswered(ctx.dialect.name, attested)])

    def _build_response(self, request: QueryRequest, wants: DataItem) -> QueryResponse:
        attestation = None
        if wants & DataItem.ATTESTATION:
            nonce = request.challenge or request.token
            if nonce is None:
                raise MalformedMessage(
                    "attestation requested without a challenge or token"
                )
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

    def _choose_alg(
        self, suites: Sequence[CipherSuite], ctx: _Context
    ) -> COSEAlgorithm:
        own = self.config.key.kind
        preferred = sorted(
            (suite for suite in suites if _suite_alg(suite) in self.algs),
            key=lambda s: _suite_alg(s) != own.default_alg,
        )
        if not preferred:
            raise UnsupportedCipherSuites(
                "none of the offered cipher suites is supported"
            )
        alg = _suite_alg(preferred[0])
        assert alg is not None
        return alg

    def _update(self, update: Update, ctx: _Context) -> AgentResult:
        ctx = _Context(ctx.dialect, ctx.alg, update.token)
        if update.err_code is not None:
            name = codec.error_code_name(update.err_code)
            log.info("TAM reports %s: %s", name, update.err_msg)
            if not update.manifest_list and not update.unneeded_manifest_list:
                # teep-protocol 5.3: an Update that only reports a problem
                # needs no answer; a Success would be matched to nothing.
                report = TAMReported(update.err_code, update.err_msg or "")
                return AgentResult(None, [report])
        reports: list[bytes] = []
        removed: list[ComponentId] = []
        for manifest_id in update.unneeded_manifest_list or ():
            reports.append(self.host.uninstall(manifest_id, update.token))
            removed.append(manifest_id)
        for envelope in update.manifest_list or ():
            try:
                reports.append(self.host.install(envelope, update.token))
            except ManifestProcessingFailed as exc:
                raise ManifestProcessingFailed(
                    str(exc), (*reports, *exc.reports)
                ) from None
        success = Success(token=update.token, suit_reports=tuple(reports) or None)
        event = ComponentsChanged(tuple(reports), tuple(removed))
        return AgentResult(self._sign(success, ctx), [event])

    def _error(self, exc: ProtocolError, ctx: _Context) -> AgentResult:
        reason = str(exc)[:120] or type(exc).__name__
        error = Error(
            err_code=exc.err_code,
            token=ctx.token,
            err_msg=reason,
            suit_reports=getattr(exc, "reports", None) or None,
        )
        error = _with_required_lists(error, exc, self)
        log.info("sending Error %s: %s", exc.err_code.name, reason)
        return AgentResult(self._sign(error, ctx), [ErrorSent(exc.err_code, reason)])

    def _sign(self, message: Message, ctx: _Context) -> bytes:
        from teep.protocol.signing import sign_message

        return sign_message(
            message, [self.config.key], dialect=ctx.dialect, alg=ctx.alg
        )


def _with_required_lists(error: Error, exc: ProtocolError, agent: Agent) -> Error:
    """teep-protocol 5.5: some codes MUST carry what the Agent supports."""
    from dataclasses import replace

    if isinstance(exc, UnsupportedCipherSuites):
        suites = tuple(suite_of(alg) for alg in sorted(agent.algs, key=lambda a: -a))
        return replace(error, supported_teep_cipher_suites=suites)
    if isinstance(exc, UnsupportedVersion):
        return replace(error, versions=SUPPORTED_VERSIONS)
    if isinstance(exc, UnsupportedFreshness | AttestationRequired):
        return replace(error, supported_freshness_mechanisms=agent.config.freshness)
    return error


def _suite_alg(suite: CipherSuite) -> COSEAlgorithm | None:
    if len(suite) != 1 or suite[0][0] != 18:
        return None
    try:
        alg = COSEAlgorithm(suite[0][1])
    except ValueError:
        return None
    return alg if alg in ALG_KINDS else None


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
