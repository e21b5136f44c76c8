"""The built-in Verifier: appraisal of TEEP-profile EAT Evidence.

It serves the background-check model (RFC 9334 section 5.2): the TAM hands
over the Evidence from a QueryResponse together with the challenge it issued
and the Agent key that signed the QueryResponse, and gets an appraisal back.

Theory of operation.  :meth:`Verifier.verify_evidence` runs the checks in an
order where nothing is believed before it is authenticated:

1. structure: a COSE_Sign1 with an allowed algorithm;
2. attester: the ``kid`` names an endorsed attestation key, and the signature
   verifies under it;
3. claims: the signed payload is a TEEP-profile claims set (strict decode);
4. profile and freshness: ``eat_profile``, ``eat_nonce`` (or ``iat`` when no
   nonce was issued), ``iat``/``nbf`` not in the future, ``exp`` not past;
5. binding: ``cnf`` names the key that signed the TEEP message;
6. endorsement: the claimed device class is the one the key is endorsed for;
7. reference values: the class's policy accepts the claimed hardware version,
   manifests, measurements, debug and boot state.

Each step raises its own :class:`~teep.attestation.errors.EvidenceError`
subclass.  :meth:`Verifier.appraise` runs the same checks and turns the
outcome into an :class:`Appraisal` with an AR4SI status and vector; it never
raises on bad input.  Nothing here reads a clock: ``now`` is a parameter.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from teep import cose
from teep.attestation.ar4si import TrustClaim, TrustTier, TrustValue, status_of
from teep.attestation.claims import EAT_PROFILE_TEEP, DebugStatus, EATClaim, EATClaims
from teep.attestation.errors import (
    AlgorithmError,
    CnfMismatchError,
    EndorsementMismatchError,
    EvidenceError,
    ExpiredError,
    FreshnessError,
    MissingClaimError,
    NonceMismatchError,
    NotYetValidError,
    ProfileError,
    ReferenceValueError,
    SignatureError,
    UnknownAttesterError,
)
from teep.attestation.evidence import decode_claims_payload, parse_token
from teep.errors import TeepError, VerifyError
from teep.keys import COSEAlgorithm, PublicKey

__all__ = [
    "ACCEPTED_ALGS",
    "Appraisal",
    "AttestationVerifier",
    "Endorsement",
    "ReferenceValues",
    "VerifiedEvidence",
    "Verifier",
    "VerifierConfig",
]

_log = logging.getLogger("teep.attestation")

#: Evidence algorithms: the fully specified ones and their legacy spellings.
ACCEPTED_ALGS = frozenset(
    {
        COSEAlgorithm.ESP256,
        COSEAlgorithm.Ed25519,
        COSEAlgorithm.ES256,
        COSEAlgorithm.EdDSA,
    }
)


@dataclass(frozen=True)
class Endorsement:
    """An attestation public key the Verifier trusts for one device class."""

    key: PublicKey
    """The TEE's attestation key (Evidence is signed with it)."""
    oemid: bytes | int
    """The manufacturer the key is endorsed for."""
    hwmodel: bytes
    """The device class the key is endorsed for."""
    ueid: bytes | None = None
    """If set, the one device the key belongs to."""
    name: str = ""
    """A label for logs and appraisal reasons."""


@dataclass(frozen=True)
class ReferenceValues:
    """What the appraisal policy accepts for a device class.

    ``None`` in a selector field matches every device; ``None`` in an
    accepted-values field accepts any value.
    """

    oemid: bytes | int | None = None
    """Selector: the manufacturer these values apply to."""
    hwmodel: bytes | None = None
    """Selector: the device class these values apply to."""
    hwversions: frozenset[str] | None = None
    """Accepted ``hwversion`` version strings."""
    manifest_digests: frozenset[bytes] | None = None
    """Digests every ``manifests`` entry must be among."""
    measurement_digests: frozenset[bytes] | None = None
    """If set, ``measurements`` must be present and every digest among these."""
    min_dbgstat: DebugStatus | None = None
    """If set, ``dbgstat`` must be present and at least this."""
    require_oemboot: bool = False
    """Whether ``oemboot`` must be present and true."""
    blocked_ueids: frozenset[bytes] = frozenset()
    """Devices refused whatever they claim."""
    name: str = ""
    """A label for logs and appraisal reasons."""

    def applies_to(self, claims: EATClaims) -> bool:
        """Whether these values are the policy for the claims' device class."""
        return (self.oemid is None or self.oemid == claims.oemid) and (
            self.hwmodel is None or self.hwmodel == claims.hwmodel
        )


@dataclass(frozen=True)
class VerifierConfig:
    """Appraisal policy settings that do not depend on the device class."""

    eat_profile: str = EAT_PROFILE_TEEP
    """The profile label Evidence must name (when it names one)."""
    require_profile_claim: bool = False
    """Whether ``eat_profile`` must be present (else the media type implies it)."""
    leeway: float = 60.0
    """Allowed clock skew, in seconds, for ``iat``, ``nbf`` and ``exp``."""
    max_age: float = 300.0
    """Oldest ``iat`` accepted when freshness comes from timestamps."""
    algs: frozenset[COSEAlgorithm] = ACCEPTED_ALGS
    """COSE algorithms accepted on Evidence."""


@dataclass(frozen=True)
class VerifiedEvidence:
    """Evidence that passed every check."""

    claims: EATClaims
    """The verified claims."""
    endorsement: Endorsement
    """The endorsement whose key signed the Evidence."""
    reference_values: ReferenceValues
    """The reference values the claims were appraised against."""
    alg: COSEAlgorithm
    """The algorithm of the signature."""
    trust_vector: Mapping[TrustClaim, int]
    """The AR4SI values the checks support."""


@dataclass(frozen=True)
class Appraisal:
    """The outcome of appraising one piece of Evidence."""

    status: TrustTier
    """Overall tier: the worst of the vector."""
    trust_vector: Mapping[TrustClaim, int]
    """AR4SI trustworthiness vector."""
    reason: str
    """Why, in one sentence."""
    claims: EATClaims | None
    """The claims, if the signature verified and they decoded."""
    attester_kid: bytes | None
    """The kid the Evidence names (authenticated only when affirming)."""
    cnf_kid: bytes | None
    """The TEEP Agent key the Evidence is bound to, if it was read."""
    nonce: bytes | None
    """The ``eat_nonce`` of the Evidence, if it was read."""
    error: type[EvidenceError] | None = None
    """The kind of refusal, or None when the Evidence passed."""

    @property
    def affirming(self) -> bool:
        """Whether the Evidence passed the appraisal policy."""
        return self.status is TrustTier.affirming


class AttestationVerifier(Protocol):
    """What a Relying Party needs from a Verifier, wherever it runs.

    The built-in :class:`Verifier` and :class:`teep.verifier.client.VerifierClient`
    (a remote ``teep verifier serve`` or a Veraison-style service) both
    satisfy it.
    """

    def appraise(
        self,
        evidence: bytes,
        *,
        nonce: bytes | None,
        cnf_key: PublicKey | None,
        now: float,
    ) -> Appraisal:
        """Appraise Evidence; a refusal is an appraisal, never an exception.

        :param evidence: the attestation payload, as the Attester sent it.
        :param nonce: the challenge issued, or None (timestamp freshness).
        :param cnf_key: the key that signed the TEEP message carrying the
            Evidence; the result must be bound to it.  None skips the check.
        :param now: the current time, seconds since the epoch.
        """
        ...


@dataclass
class _Trace:
    """What the checks have read so far, for the appraisal of a failure."""

    kid: bytes | None = None
    claims: EATClaims | None = None


class Verifier:
    """Appraises EAT Evidence against endorsements and reference values."""

    def __init__(
        self,
        endorsements: Iterable[Endorsement],
        reference_values: Iterable[ReferenceValues],
        config: VerifierConfig | None = None,
    ) -> None:
        """
        :param endorsements: the trusted attestation keys and their device classes.
        :param reference_values: the policies; the first one that applies to
            a device's class is used, and a device no entry applies to is
            refused.  Pass ``[ReferenceValues()]`` to accept any endorsed device.
        :param config: settings; the defaults follow the TEEP profile.
        """
        self.endorsements = tuple(endorsements)
        self.reference_values = tuple(reference_values)
        self.config = config or VerifierConfig()

    def appraise(
        self,
        evidence: bytes,
        *,
        nonce: bytes | None,
        cnf_key: PublicKey | None,
        now: float,
    ) -> Appraisal:
        """Appraise Evidence; see :meth:`verify_evidence` for the parameters.

        Never raises on bad input: a refusal is an appraisal with status
        ``contraindicated`` (or ``none`` when nothing could be read) and a
        reason.
        """
        trace = _Trace()
        try:
            verified = self._verify(evidence, nonce, cnf_key, now, trace)
        except EvidenceError as exc:
            return self._refused(exc, trace)
        except TeepError as exc:  # a lower layer's error that escaped conversion
            return self._refused(EvidenceError(f"unexpected failure: {exc}"), trace)
        claims = verified.claims
        reason = f"endorsed as {verified.endorsement.name or 'unnamed'}"
        _log.info("evidence from %s affirming", _short(trace.kid))
        return Appraisal(
            status_of(verified.trust_vector),
            verified.trust_vector,
            reason,
            claims,
            trace.kid,
            claims.cnf_kid,
            claims.nonce,
        )

    def verify_evidence(
        self,
        evidence: bytes,
        *,
        nonce: bytes | None,
        cnf_key: PublicKey | None,
        now: float,
    ) -> VerifiedEvidence:
        """Verify Evidence and apply the appraisal policy.

        :param evidence: the COSE_Sign1 bytes from the attestation-payload.
        :param nonce: the challenge issued for this session (nonce mechanism),
            or None when freshness comes from ``iat`` (timestamp mechanism).
        :param cnf_key: the TEEP Agent key that signed the TEEP message
            carrying the Evidence; None skips the binding check.
        :param now: the current time, seconds since the epoch.
        :raises EvidenceDecodeError: not a COSE_Sign1 over a CBOR map.
        :raises AlgorithmError: an algorithm the policy does not accept.
        :raises UnknownAttesterError: the kid names no endorsed key.
        :raises SignatureError: the signature does not verify.
        :raises ClaimsError: a claim is missing or malformed, or the profile
            is wrong (:class:`MissingClaimError`, :class:`InvalidClaimError`,
            :class:`ProfileError`).
        :raises FreshnessError: :class:`NonceMismatchError`,
            :class:`ExpiredError` or :class:`NotYetValidError`.
        :raises CnfMismatchError: ``cnf`` does not name ``cnf_key``.
        :raises EndorsementMismatchError: the claims do not fit the endorsement.
        :raises ReferenceValueError: the policy refuses a claim.
        """
        return self._verify(evidence, nonce, cnf_key, now, _Trace())

    # -- the checks, in order ------------------------------------------------

    def _verify(
        self,
        evidence: bytes,
        nonce: bytes | None,
        cnf_key: PublicKey | None,
        now: float,
        trace: _Trace,
    ) -> VerifiedEvidence:
        message = parse_token(evidence)
        signature = message.signatures[0]
        trace.kid = signature.kid
        if signature.alg not in self.config.algs:
            raise AlgorithmError(f"algorithm {signature.alg} is not accepted")
        candidates, verified = self._authenticate(message)

        claims = EATClaims.from_map(decode_claims_payload(verified.payload))
        trace.claims = claims
        self._check_profile(claims)
        _check_freshness(claims, nonce, now, self.config)
        if cnf_key is not None and not hmac.compare_digest(
            claims.cnf_kid, cnf_key.thumbprint
        ):
            # teep-protocol EAT profile: cnf binds the result to the Agent key.
            raise CnfMismatchError(
                f"cnf names key {_short(claims.cnf_kid)}, but the TEEP message "
                f"was signed by {_short(cnf_key.thumbprint)}"
            )

        endorsement = self._match_endorsement(candidates, claims)
        values = self._reference_values(claims)
        vector = _check_reference_values(values, claims)
        return VerifiedEvidence(claims, endorsement, values, verified.alg, vector)

    def _authenticate(
        self, message: cose.COSEMessage
    ) -> tuple[list[Endorsement], cose.Verified]:
        kid = message.signatures[0].kid
        candidates = [
            e for e in self.endorsements if kid is None or e.key.thumbprint == kid
        ]
        if not candidates:
            raise UnknownAttesterError(
                f"no endorsed attestation key has kid {_short(kid)}"
            )
        try:
            verified = cose.verify(
                message, [e.key for e in candidates], algs=self.config.algs
            )
        except VerifyError as exc:
            raise SignatureError(f"evidence signature: {exc}") from None
        except TeepError as exc:
            raise SignatureError(f"evidence signature unusable: {exc}") from None
        signer = verified.key.thumbprint
        return [e for e in candidates if e.key.thumbprint == signer], verified

    def _check_profile(self, claims: EATClaims) -> None:
        profile = claims.eat_profile
        if profile is None:
            if self.config.require_profile_claim:
                raise MissingClaimError("required claim missing: eat_profile")
            return
        if profile != self.config.eat_profile:
            raise ProfileError(
                f"eat_profile is {profile!r}, expected {self.config.eat_profile!r}"
            )

    @staticmethod
    def _match_endorsement(
        endorsements: list[Endorsement], claims: EATClaims
    ) -> Endorsement:
        for endorsement in endorsements:
            if endorsement.oemid != claims.oemid:
                continue
            if endorsement.hwmodel != claims.hwmodel:
                continue
            if endorsement.ueid is not None and endorsement.ueid != claims.ueid:
                raise EndorsementMismatchError(
                    f"the attestation key {endorsement.name!r} belongs to another "
                    "device (ueid differs)"
                )
            return endorsement
        names = ", ".join(repr(e.name) for e in endorsements)
        raise EndorsementMismatchError(
            f"oemid {_show(claims.oemid)} / hwmodel {claims.hwmodel.hex()} is not "
            f"the device class the attestation key is endorsed for ({names})"
        )

    def _reference_values(self, claims: EATClaims) -> ReferenceValues:
        for values in self.reference_values:
            if values.applies_to(claims):
                return values
        raise ReferenceValueError(
            f"no reference values for oemid {_show(claims.oemid)} / "
            f"hwmodel {claims.hwmodel.hex()}",
            TrustClaim.hardware,
        )

    @staticmethod
    def _refused(exc: EvidenceError, trace: _Trace) -> Appraisal:
        vector = exc.vector
        status = status_of(vector)
        if vector and status is TrustTier.none:
            status = TrustTier.contraindicated
        _log.info(
            "evidence from %s refused (%s): %s",
            _short(trace.kid),
            type(exc).__name__,
            exc,
        )
        claims = trace.claims
        return Appraisal(
            status,
            vector,
            str(exc),
            claims,
            trace.kid,
            claims.cnf_kid if claims else None,
            claims.nonce if claims else None,
            type(exc),
        )


def _check_freshness(
    claims: EATClaims, nonce: bytes | None, now: float, config: VerifierConfig
) -> None:
    leeway = config.leeway
    if nonce is not None:
        # RFC 9334 section 10.2: the nonce must be the one issued for this
        # session; compared in constant time.
        if claims.nonce is None:
            raise NonceMismatchError("eat_nonce is missing; a challenge was issued")
        if not hmac.compare_digest(claims.nonce, nonce):
            raise NonceMismatchError("eat_nonce does not match the challenge")
    elif claims.iat is None:
        raise FreshnessError("no challenge was issued and the evidence has no iat")
    elif now - claims.iat > config.max_age + leeway:
        raise ExpiredError(
            f"issued {now - claims.iat:.0f} s ago (max {config.max_age:.0f})"
        )
    if claims.iat is not None and claims.iat > now + leeway:
        raise NotYetValidError(f"iat lies {claims.iat - now:.0f} s in the future")
    nbf = claims.extra.get(EATClaim.nbf)
    if isinstance(nbf, int) and nbf > now + leeway:
        raise NotYetValidError(f"nbf lies {nbf - now:.0f} s in the future")
    if claims.exp is not None and claims.exp + leeway < now:
        raise ExpiredError(f"expired {now - claims.exp:.0f} s ago")


def _check_reference_values(
    values: ReferenceValues, claims: EATClaims
) -> Mapping[TrustClaim, int]:
    vector = {
        TrustClaim.instance_identity: TrustValue.affirming,
        TrustClaim.hardware: TrustValue.affirming,
    }
    if claims.ueid in values.blocked_ueids:
        raise ReferenceValueError(
            f"device {claims.ueid.hex()} is blocked", TrustClaim.instance_identity
        )
    if values.hwversions is not None:
        if claims.hwversion.version not in values.hwversions:
            raise ReferenceValueError(
                f"hwversion {claims.hwversion.version!r} is not accepted",
                TrustClaim.hardware,
            )
    if values.manifest_digests is not None or values.measurement_digests is not None:
        _check_digests(values, claims)
        vector[TrustClaim.executables] = TrustValue.affirming
    if values.min_dbgstat is not None or values.require_oemboot:
        _check_configuration(values, claims)
        vector[TrustClaim.configuration] = TrustValue.affirming
    return MappingProxyType(dict(vector))


def _check_digests(values: ReferenceValues, claims: EATClaims) -> None:
    known = values.manifest_digests
    if known is not None:
        for entry in claims.manifests:
            if entry.digest not in known:
                raise ReferenceValueError(
                    f"manifest digest {entry.digest.hex()[:16]}... is not a known-good "
                    "manifest",
                    TrustClaim.executables,
                )
    measured = values.measurement_digests
    if measured is not None:
        if not claims.measurements:
            raise ReferenceValueError(
                "the policy needs measurements and there are none",
                TrustClaim.executables,
            )
        for entry in claims.measurements:
            if entry.digest not in measured:
                raise ReferenceValueError(
                    f"measurement {entry.digest.hex()[:16]}... is not a known-good "
                    "value",
                    TrustClaim.executables,
                )


def _check_configuration(values: ReferenceValues, claims: EATClaims) -> None:
    if values.min_dbgstat is not None and (
        claims.dbgstat is None or claims.dbgstat < values.min_dbgstat
    ):
        shown = "absent" if claims.dbgstat is None else claims.dbgstat.name
        raise ReferenceValueError(
            f"dbgstat is {shown}, the policy needs {values.min_dbgstat.name}",
            TrustClaim.configuration,
        )
    if values.require_oemboot and claims.oemboot is not True:
        raise ReferenceValueError("oemboot is not true", TrustClaim.configuration)


def _short(kid: bytes | None) -> str:
    return "(no kid)" if kid is None else kid.hex()[:16]


def _show(oemid: bytes | int) -> str:
    return str(oemid) if isinstance(oemid, int) else oemid.hex()
