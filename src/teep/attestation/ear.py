"""EAR: EAT Attestation Results (draft-ietf-rats-ear), as CWTs.

The built-in Verifier signs its appraisal as an EAR: one submodule appraisal
(status, AR4SI vector, the TEEP claims extension) plus the TEEP profile's
``cnf`` binding at the top level, so the TAM (or an Agent in the passport
model) can check the result is bound to the key that presents it.

Three profile strings are in use for the same CBOR keys (Veraison's, the
-00..-02 drafts', and -03's).  teep writes the -03 one and accepts all three.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import teep
from teep import cbor, cose
from teep.attestation.ar4si import TrustClaim, TrustTier, status_of, tier_of
from teep.attestation.claims import EATClaim, EATClaims, check_claims_set
from teep.attestation.errors import (
    AlgorithmError,
    ClaimsError,
    CnfMismatchError,
    EvidenceError,
    ExpiredError,
    InvalidClaimError,
    MissingClaimError,
    NonceMismatchError,
    NotYetValidError,
    ProfileError,
    SignatureError,
    UnknownAttesterError,
)
from teep.attestation.evidence import decode_claims_payload, parse_token
from teep.attestation.verifier import ACCEPTED_ALGS, Appraisal
from teep.errors import TeepError, VerifyError
from teep.keys import PrivateKey, PublicKey

__all__ = [
    "EAR_MEDIA_TYPE",
    "EAR_PROFILE",
    "EAR_PROFILES",
    "AttestationResult",
    "EARAppraisal",
    "EARClaim",
    "VerifierID",
    "appraisal_of",
    "make_ear",
    "verify_ear",
]

#: The profile teep writes (draft-ietf-rats-ear-03).
EAR_PROFILE = "tag:ietf.org,2026:rats/ear#03"

#: Profiles accepted on input: -03, -00..-02, and Veraison's.
EAR_PROFILES = frozenset(
    {EAR_PROFILE, "tag:ietf.org,2025-07:ear", "tag:github.com,2023:veraison/ear"}
)

#: The attestation-payload-format of an EAR in CWT form (RFC 9782 type).
EAR_MEDIA_TYPE = f'application/eat+cwt; eat_profile="{EAR_PROFILE}"'

_SUBMOD = "teep"
_TEEP_CLAIMS = (
    EATClaim.eat_nonce,
    EATClaim.ueid,
    EATClaim.oemid,
    EATClaim.hwmodel,
    EATClaim.hwversion,
    EATClaim.manifests,
)


class EARClaim(enum.IntEnum):
    """EAR claim keys (draft-ietf-rats-ear), beside the EAT ones."""

    ear_status = 1000
    ear_trustworthiness_vector = 1001
    ear_raw_evidence = 1002
    ear_appraisal_policy_ids = 1003
    ear_verifier_id = 1004
    ear_teep_claims = 65000
    teep_appraisal_reason = -70100
    """teep's private claim: the Verifier's reason, one line of text."""


class _VerifierIDLabel(enum.IntEnum):
    developer = 0
    build = 1


@dataclass(frozen=True)
class VerifierID:
    """Who made the result (AR4SI verifier-id)."""

    developer: str
    """The organisation or project that wrote the Verifier."""
    build: str
    """The Verifier's version."""


DEFAULT_VERIFIER_ID = VerifierID("teep", teep.__version__)


@dataclass(frozen=True)
class EARAppraisal:
    """One submodule's appraisal in an EAR."""

    status: TrustTier
    """Its trust tier."""
    trust_vector: Mapping[TrustClaim, int]
    """Its AR4SI vector (may be empty)."""
    nonce: bytes | None
    """The ``eat_nonce`` of the appraised Evidence."""
    policy_ids: tuple[str, ...]
    """The appraisal policies applied, in order."""
    teep_claims: Mapping[int, Any]
    """The ``ear_teep_claims`` extension (EAT claim key -> value)."""
    reason: str | None = None
    """The Verifier's reason (teep's private claim), if given."""


@dataclass(frozen=True)
class AttestationResult:
    """A verified EAR."""

    profile: str
    """The EAR profile string it carries."""
    status: TrustTier
    """The overall status: the top-level one, or the worst submodule's."""
    iat: int
    """When the Verifier issued it."""
    exp: int | None
    """When it stops being valid, if stated."""
    verifier_id: VerifierID
    """Who issued it."""
    submods: Mapping[str, EARAppraisal]
    """The appraisals, by submodule name."""
    nonce: bytes | None
    """The top-level ``eat_nonce`` (freshness of the result)."""
    cnf_kid: bytes | None
    """The key the result is bound to."""
    signer: PublicKey
    """The Verifier key that signed it."""

    @property
    def affirming(self) -> bool:
        """Whether the overall status is affirming."""
        return self.status is TrustTier.affirming


_UNSET: Any = object()


def make_ear(
    appraisal: Appraisal,
    verifier_key: PrivateKey,
    *,
    now: float,
    verifier_id: VerifierID = DEFAULT_VERIFIER_ID,
    validity: float | None = 300.0,
    nonce: bytes | None = _UNSET,
    policy_ids: Iterable[str] = (),
    raw_evidence: bytes | None = None,
    cnf: Mapping[int, Any] | None = None,
) -> bytes:
    """Sign an appraisal as an EAR (COSE_Sign1 CWT, tagged).

    :param now: issue time, seconds since the epoch.
    :param validity: seconds until ``exp``; None leaves ``exp`` out (keep it
        short: RFC 9397 section 9.6).
    :param nonce: the result's top-level ``eat_nonce``; defaults to the
        Evidence nonce of the appraisal.
    :param policy_ids: the policies applied, for ``ear_appraisal_policy_ids``.
    :param raw_evidence: include the Evidence bytes (off by default: privacy).
    :param cnf: the ``cnf`` claim to write; defaults to ``{3: kid}`` with the
        appraisal's ``cnf_kid``.  A Verifier passes the Evidence's own
        ``cnf`` (a whole COSE_Key) so a TAM can enroll the key it names.
    :raises ValueError: if the key cannot sign.
    """
    top_nonce = appraisal.nonce if nonce is _UNSET else nonce
    claims: dict[int, Any] = {
        EATClaim.eat_profile: EAR_PROFILE,
        EATClaim.iat: int(now),
        EARClaim.ear_status: int(appraisal.status),
        EARClaim.ear_verifier_id: {
            _VerifierIDLabel.developer: verifier_id.developer,
            _VerifierIDLabel.build: verifier_id.build,
        },
        EATClaim.submods: {_SUBMOD: _submod(appraisal, tuple(policy_ids))},
    }
    if validity is not None:
        claims[EATClaim.exp] = int(now + validity)
    if top_nonce is not None:
        claims[EATClaim.eat_nonce] = top_nonce
    if cnf is not None:
        claims[EATClaim.cnf] = dict(cnf)
    elif appraisal.cnf_kid is not None:
        claims[EATClaim.cnf] = {3: appraisal.cnf_kid}
    if raw_evidence is not None:
        claims[EARClaim.ear_raw_evidence] = raw_evidence
    return cose.sign1(cbor.det_dumps(_plain(claims)), verifier_key)


def _submod(appraisal: Appraisal, policy_ids: tuple[str, ...]) -> dict[int, Any]:
    submod: dict[int, Any] = {
        EARClaim.ear_status: int(appraisal.status),
        EARClaim.ear_trustworthiness_vector: {
            int(k): int(v) for k, v in appraisal.trust_vector.items()
        },
    }
    if policy_ids:
        submod[EARClaim.ear_appraisal_policy_ids] = list(policy_ids)
    if appraisal.nonce is not None:
        submod[EATClaim.eat_nonce] = appraisal.nonce
    if appraisal.reason:
        submod[EARClaim.teep_appraisal_reason] = appraisal.reason
    if appraisal.claims is not None:
        evidence = appraisal.claims.to_map()
        teep_claims = {int(c): evidence[c] for c in _TEEP_CLAIMS if c in evidence}
        submod[EARClaim.ear_teep_claims] = teep_claims
    return submod


def _plain(value: Any) -> Any:
    # IntEnum keys encode as integers already; this makes the map plain so
    # that deterministic sorting sees only ints and strings.
    if isinstance(value, dict):
        return {
            int(k) if isinstance(k, int) else k: _plain(v) for k, v in value.items()
        }
    return value


def verify_ear(
    data: bytes,
    verifier_keys: Iterable[PublicKey],
    *,
    now: float,
    nonce: bytes | None,
    cnf_key: PublicKey | None,
    max_age: float,
    leeway: float = 60.0,
) -> AttestationResult:
    """Verify an EAR the way teep-protocol says a TAM checks an
    Attestation Result.

    The status is returned, not judged: acting on a non-affirming result is
    the caller's policy.

    :param verifier_keys: the Verifier keys the caller trusts.
    :param now: the current time, seconds since the epoch.
    :param nonce: the expected top-level ``eat_nonce``, or None not to check.
    :param cnf_key: the key that signed the TEEP message carrying the result;
        ``cnf`` must name it.  None skips the binding check.
    :param max_age: the oldest ``iat`` accepted, in seconds.
    :param leeway: allowed clock skew, in seconds.
    :raises EvidenceDecodeError: not a COSE_Sign1 over a CBOR map.
    :raises AlgorithmError: a signature algorithm teep does not accept.
    :raises UnknownAttesterError: the kid names no trusted Verifier key.
    :raises SignatureError: the signature does not verify.
    :raises ProfileError: not an EAR profile.
    :raises MissingClaimError: or :class:`InvalidClaimError` for a malformed EAR.
    :raises ExpiredError: past ``exp`` or older than ``max_age``.
    :raises NotYetValidError: issued in the future.
    :raises NonceMismatchError: ``eat_nonce`` differs from ``nonce``.
    :raises CnfMismatchError: ``cnf`` is absent or names another key.
    """
    verified = _authenticate(data, list(verifier_keys))
    claims = decode_claims_payload(verified.payload)
    decoded = check_claims_set(claims)
    result = _result(claims, decoded, verified.key)
    _check_fresh(result, now, max_age, leeway)
    if nonce is not None and (
        result.nonce is None or not hmac.compare_digest(result.nonce, nonce)
    ):
        raise NonceMismatchError("the result's eat_nonce does not match")
    if cnf_key is not None and result.status is TrustTier.affirming:
        # teep-protocol EAT profile: the result must name the presenting key,
        # or one Agent could replay another Agent's result.  A result that
        # affirms nothing grants nothing, so its own reason is kept instead.
        if result.cnf_kid is None:
            raise CnfMismatchError("the result carries no cnf")
        if not hmac.compare_digest(result.cnf_kid, cnf_key.thumbprint):
            raise CnfMismatchError("the result is bound to another key")
    return result


def _authenticate(data: bytes, keys: list[PublicKey]) -> cose.Verified:
    message = parse_token(data)
    signature = message.signatures[0]
    if signature.alg not in ACCEPTED_ALGS:
        raise AlgorithmError(f"algorithm {signature.alg} is not accepted")
    if signature.kid is not None and all(k.thumbprint != signature.kid for k in keys):
        raise UnknownAttesterError("the result's kid names no trusted Verifier key")
    try:
        return cose.verify(message, keys, algs=ACCEPTED_ALGS)
    except VerifyError as exc:
        raise SignatureError(f"result signature: {exc}") from None
    except TeepError as exc:
        raise SignatureError(f"result signature unusable: {exc}") from None


def _result(
    claims: dict[Any, Any], decoded: dict[Any, Any], signer: PublicKey
) -> AttestationResult:
    profile = decoded.get(EATClaim.eat_profile)
    if profile not in EAR_PROFILES:
        raise ProfileError(f"eat_profile {profile!r} is not an EAR profile")
    iat = decoded.get(EATClaim.iat)
    submods = claims.get(EATClaim.submods)
    if iat is None or submods is None:
        raise MissingClaimError("an EAR needs iat and submods")
    appraisals = {name: _appraisal(name, sub) for name, sub in submods.items()}
    worst = max(a.status for a in appraisals.values())
    status = _status(claims.get(EARClaim.ear_status, int(worst)), "ear_status")
    if status < worst:
        raise InvalidClaimError("ear_status is better than a submodule's status")
    return AttestationResult(
        str(profile),
        status,
        iat,
        decoded.get(EATClaim.exp),
        _verifier_id(claims.get(EARClaim.ear_verifier_id)),
        MappingProxyType(appraisals),
        decoded.get(EATClaim.eat_nonce),
        decoded.get(EATClaim.cnf),
        signer,
    )


def _appraisal(name: str, value: Any) -> EARAppraisal:
    if not isinstance(value, dict):
        raise InvalidClaimError(f"submodule {name!r} is not an EAR appraisal")
    status = _status(value.get(EARClaim.ear_status), f"{name}: ear_status")
    vector = _vector(value.get(EARClaim.ear_trustworthiness_vector, {}), name)
    # EAR: a status is never better than the worst entry of its vector.
    if status < status_of(vector):
        raise InvalidClaimError(f"{name}: ear_status is better than its vector")
    policies = value.get(EARClaim.ear_appraisal_policy_ids, [])
    if isinstance(policies, str):  # drafts up to -02: a single policy id
        policies = [policies]
    if not isinstance(policies, list) or not all(isinstance(p, str) for p in policies):
        raise InvalidClaimError(f"{name}: appraisal policy ids must be text")
    teep_claims = value.get(EARClaim.ear_teep_claims, {})
    if not isinstance(teep_claims, dict):
        raise InvalidClaimError(f"{name}: ear_teep_claims must be a map")
    check_claims_set(teep_claims)
    nonce = value.get(EATClaim.eat_nonce)
    reason = value.get(EARClaim.teep_appraisal_reason)
    return EARAppraisal(
        status,
        vector,
        nonce,
        tuple(policies),
        MappingProxyType(dict(teep_claims)),
        reason if isinstance(reason, str) else None,
    )


def _status(value: Any, where: str) -> TrustTier:
    if value is None:
        raise MissingClaimError(f"{where} is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidClaimError(f"{where} must be an integer")
    try:
        return TrustTier(value)
    except ValueError:
        raise InvalidClaimError(f"{where} {value} is not a trust tier") from None


def _vector(value: Any, name: str) -> Mapping[TrustClaim, int]:
    if not isinstance(value, dict):
        raise InvalidClaimError(f"{name}: the trustworthiness vector must be a map")
    vector: dict[TrustClaim, int] = {}
    for key, item in value.items():
        if isinstance(key, bool) or type(item) is not int:
            raise InvalidClaimError(f"{name}: vector entries are integers")
        try:
            claim = TrustClaim(key)
            tier_of(item)
        except (ValueError, TypeError):
            raise InvalidClaimError(f"{name}: bad vector entry {key!r}") from None
        vector[claim] = item
    return MappingProxyType(vector)


def _verifier_id(value: Any) -> VerifierID:
    if not isinstance(value, dict):
        raise MissingClaimError("ear_verifier_id is missing or not a map")
    developer = value.get(_VerifierIDLabel.developer)
    build = value.get(_VerifierIDLabel.build)
    if not isinstance(developer, str) or not isinstance(build, str):
        raise InvalidClaimError("ear_verifier_id needs developer and build text")
    return VerifierID(developer, build)


def _check_fresh(
    result: AttestationResult, now: float, max_age: float, leeway: float
) -> None:
    if result.iat > now + leeway:
        raise NotYetValidError(f"issued {result.iat - now:.0f} s in the future")
    if now - result.iat > max_age + leeway:
        raise ExpiredError(f"issued {now - result.iat:.0f} s ago (max {max_age:.0f})")
    if result.exp is not None and result.exp + leeway < now:
        raise ExpiredError(f"expired {now - result.exp:.0f} s ago")


def appraisal_of(result: AttestationResult) -> Appraisal:
    """The appraisal a verified EAR reports, in the built-in Verifier's terms.

    The status is the result's overall one; the vector, nonce and reason are
    those of the submodule that decides it.  The claims are rebuilt from
    ``ear_teep_claims`` and ``cnf`` when they form a TEEP-profile claims set
    (a refused appraisal usually carries none).
    """
    worst = max(result.submods.values(), key=lambda a: a.status)
    claims = None
    if result.cnf_kid is not None and worst.teep_claims:
        teep_claims = {**worst.teep_claims, int(EATClaim.cnf): {3: result.cnf_kid}}
        try:
            claims = EATClaims.from_map(teep_claims)
        except ClaimsError:
            claims = None
    reason = worst.reason or f"the Verifier found {result.status.name}"
    return Appraisal(
        result.status,
        worst.trust_vector,
        reason,
        claims,
        None,
        result.cnf_kid,
        worst.nonce,
        None if result.affirming else EvidenceError,
    )
