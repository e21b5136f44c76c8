"""Why Evidence or an Attestation Result was refused.

Every refusal is an :class:`EvidenceError` subclass.  Each class also says how
the built-in Verifier renders it as an appraisal: the AR4SI values it puts in
the trustworthiness vector, from which the status follows.  Decoding failures
leave nothing to judge, so they yield an empty vector (tier ``none``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from teep.attestation.ar4si import TrustClaim, TrustValue
from teep.errors import DecodeError, TeepError, VerifyError

__all__ = [
    "AlgorithmError",
    "AttestationError",
    "ClaimsError",
    "CnfMismatchError",
    "EndorsementMismatchError",
    "EvidenceDecodeError",
    "EvidenceError",
    "ExpiredError",
    "FreshnessError",
    "InvalidClaimError",
    "MissingClaimError",
    "NonceMismatchError",
    "NotYetValidError",
    "ProfileError",
    "ReferenceValueError",
    "SignatureError",
    "UnknownAttesterError",
]

_FAILED = TrustValue.cryptographic_validation_failed


def _vector(**values: int) -> Mapping[TrustClaim, int]:
    return MappingProxyType({TrustClaim[k]: v for k, v in values.items()})


class AttestationError(TeepError):
    """Root of the attestation errors."""


class EvidenceError(AttestationError):
    """Evidence (or an Attestation Result) was refused; the message says why."""

    trust_vector: ClassVar[Mapping[TrustClaim, int]] = _vector(
        instance_identity=TrustValue.contraindicated
    )
    """The AR4SI rendering of this kind of refusal in an appraisal."""

    @property
    def vector(self) -> Mapping[TrustClaim, int]:
        """The trustworthiness vector an appraisal reports for this refusal."""
        return self.trust_vector


class EvidenceDecodeError(EvidenceError, DecodeError):
    """The bytes are not a COSE_Sign1 carrying a CBOR claims map."""

    trust_vector = _vector()


class SignatureError(EvidenceError, VerifyError):
    """The signature does not verify under the attester's (or Verifier's) key."""

    trust_vector = _vector(
        instance_identity=_FAILED,
        configuration=_FAILED,
        executables=_FAILED,
        hardware=_FAILED,
    )


class AlgorithmError(SignatureError):
    """The COSE algorithm is not one the appraisal policy accepts."""


class UnknownAttesterError(EvidenceError, VerifyError):
    """No endorsed attestation key (or trusted Verifier key) matches the kid."""

    trust_vector = _vector(instance_identity=TrustValue.unrecognized)


class FreshnessError(EvidenceError):
    """The token is not fresh: wrong nonce, expired, or from the future."""

    trust_vector = _vector(instance_identity=_FAILED)


class NonceMismatchError(FreshnessError):
    """``eat_nonce`` is absent or differs from the challenge that was issued."""


class ExpiredError(FreshnessError):
    """The token is past its ``exp``, or older than the accepted age."""


class NotYetValidError(FreshnessError):
    """``iat`` or ``nbf`` lies in the future beyond the allowed clock skew."""


class ClaimsError(EvidenceError):
    """The claims set breaks RFC 9711 or the TEEP EAT profile."""

    trust_vector = _vector(configuration=TrustValue.contraindicated)


class MissingClaimError(ClaimsError):
    """A claim the TEEP EAT profile requires is absent."""


class InvalidClaimError(ClaimsError):
    """A claim has the wrong type, size or value, or lacks a claim it needs."""


class ProfileError(ClaimsError):
    """``eat_profile`` names a profile other than the expected one."""


class CnfMismatchError(EvidenceError, VerifyError):
    """``cnf`` does not name the key that signed the TEEP message."""

    trust_vector = _vector(instance_identity=TrustValue.contraindicated)


class EndorsementMismatchError(EvidenceError):
    """The device claims a class or identity its attestation key is not
    endorsed for."""

    trust_vector = _vector(hardware=TrustValue.unrecognized)


class ReferenceValueError(EvidenceError):
    """A claim does not match the reference values for the device class."""

    def __init__(
        self, message: str, claim: TrustClaim = TrustClaim.configuration
    ) -> None:
        super().__init__(message)
        self.claim = claim
        """The trustworthiness claim the mismatch contraindicates."""

    @property
    def vector(self) -> Mapping[TrustClaim, int]:
        """One contraindicated value, on the claim the mismatch concerns."""
        return _vector(**{self.claim.name: TrustValue.contraindicated})
