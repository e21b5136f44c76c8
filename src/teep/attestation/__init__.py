"""Attestation: TEEP-profile EAT Evidence, the built-in Verifier and EAR results.

- :mod:`.claims`: EAT claim keys, the TEEP EAT profile, :class:`EATClaims`;
- :mod:`.evidence`: signing and reading Evidence (COSE_Sign1 CWTs);
- :mod:`.verifier`: appraisal against endorsements and reference values;
- :mod:`.ear`: EAT Attestation Results, made and verified;
- :mod:`.ar4si`: trust tiers and the trustworthiness vector;
- :mod:`.errors`: why Evidence or a result was refused.

Everything here is sans-I/O: keys, bytes and the time come in as arguments.
"""

from teep.attestation.ar4si import TrustClaim, TrustTier
from teep.attestation.claims import (
    EAT_PROFILE_TEEP,
    TEEP_ATTESTATION_PAYLOAD_FORMAT,
    EATClaim,
    EATClaims,
    is_teep_profile_format,
)
from teep.attestation.ear import AttestationResult, make_ear, verify_ear
from teep.attestation.errors import AttestationError, EvidenceError
from teep.attestation.evidence import make_evidence, peek_evidence
from teep.attestation.verifier import (
    Appraisal,
    Endorsement,
    ReferenceValues,
    Verifier,
    VerifierConfig,
)

__all__ = [
    "EAT_PROFILE_TEEP",
    "TEEP_ATTESTATION_PAYLOAD_FORMAT",
    "Appraisal",
    "AttestationError",
    "AttestationResult",
    "EATClaim",
    "EATClaims",
    "Endorsement",
    "EvidenceError",
    "ReferenceValues",
    "TrustClaim",
    "TrustTier",
    "Verifier",
    "VerifierConfig",
    "is_teep_profile_format",
    "make_ear",
    "make_evidence",
    "peek_evidence",
    "verify_ear",
]
