"""AR4SI trustworthiness tiers and vector claims (draft-ietf-rats-ar4si).

An appraisal ends in one trust tier and a vector of int8 values, one per
trustworthiness claim.  The tier of a value follows from its range, and the
overall status is the worst tier found in the vector.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

__all__ = [
    "TrustClaim",
    "TrustTier",
    "TrustValue",
    "status_of",
    "tier_of",
]


class TrustTier(enum.IntEnum):
    """Trustworthiness tiers, as EAR ``ear_status`` carries them."""

    none = 0
    affirming = 2
    warning = 32
    contraindicated = 96


class TrustClaim(enum.IntEnum):
    """Keys of the AR4SI trustworthiness vector (CBOR form)."""

    instance_identity = 0
    configuration = 1
    executables = 2
    file_system = 3
    hardware = 4
    runtime_opaque = 5
    storage_opaque = 6
    sourced_data = 7

    @property
    def json_name(self) -> str:
        """The JSON spelling, for example ``instance-identity``."""
        return self.name.replace("_", "-")


class TrustValue(enum.IntEnum):
    """The standard AR4SI values teep's Verifier assigns."""

    no_claim = 0
    affirming = 2
    approved_boot_only = 3
    known_vulnerabilities = 32
    unrecognized_executables = 33
    contraindicated = 96
    unrecognized = 97
    cryptographic_validation_failed = 99


def tier_of(value: int) -> TrustTier:
    """The tier a vector value falls in (AR4SI: standard and private ranges).

    :raises ValueError: if ``value`` is not an int8.
    """
    if not -128 <= value <= 127:
        raise ValueError(f"trust vector value {value} is not an int8")
    magnitude = value if value >= 0 else -value - 1
    if value in (-1, 0, 1):
        return TrustTier.none
    if magnitude >= 96:
        return TrustTier.contraindicated
    if magnitude >= 32:
        return TrustTier.warning
    return TrustTier.affirming


def status_of(vector: Mapping[TrustClaim, int]) -> TrustTier:
    """The overall tier: the worst over the vector, ``none`` if it is empty.

    EAR requires that a status is never better than its worst vector entry.
    """
    tiers = [tier_of(v) for v in vector.values()]
    meaningful = [t for t in tiers if t is not TrustTier.none]
    return max(meaningful, default=TrustTier.none)
