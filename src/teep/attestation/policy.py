"""The TAM's appraisal policy for Attestation Results (RFC 9334 section 8.4).

An appraisal ends in one AR4SI tier; this module says what the TAM lets a
device with that tier do.  The rules, with their defaults:

================  =====================================================
status            what the TAM does
================  =====================================================
affirming         install what policy requires, keep what it holds
warning           keep what it holds; no new installs (configurable)
contraindicated   remove every TAM-managed component (or: quarantine,
                  which installs and removes nothing and refuses the
                  device until an operator releases it)
none              nothing: the TAM answers ERR_ATTESTATION_REQUIRED
================  =====================================================

teep-protocol 10.3 (a): when attestation fails and the TAM may not repair
the device, it sends an Update with err-code 7; that is what ``none`` and
``quarantine`` lead to.  Sans-I/O: a table lookup, nothing else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from teep.attestation.ar4si import TrustTier

__all__ = [
    "QUARANTINED",
    "AttestationPolicy",
    "ContraindicatedAction",
    "PolicyDecision",
]

#: The device status a quarantined device keeps until it is released.
QUARANTINED = "quarantined"


class ContraindicatedAction(enum.Enum):
    """What the TAM does with a contraindicated device."""

    remove = "remove"
    """Unlink every catalogued component the device holds."""
    quarantine = "quarantine"
    """Change nothing and refuse the device until an operator releases it."""


@dataclass(frozen=True)
class PolicyDecision:
    """What one appraisal allows."""

    serve: bool
    """Whether the TAM plans an Update at all (False: err-code 7)."""
    install: bool
    """Whether new components may be installed."""
    remove_managed: bool
    """Whether every catalogued component the device holds is removed."""
    quarantine: bool
    """Whether the device is put in quarantine."""
    rule: str
    """The rule that applied, for the appraisal record."""


@dataclass(frozen=True)
class AttestationPolicy:
    """The TAM operator's settings for acting on an appraisal."""

    warning_installs: bool = False
    """Whether a device appraised ``warning`` still gets new installs."""
    contraindicated: ContraindicatedAction = ContraindicatedAction.remove
    """What a ``contraindicated`` appraisal leads to."""

    def decide(self, status: TrustTier | str) -> PolicyDecision:
        """The decision for an appraisal status (a tier or its name).

        Unknown names are treated as ``none``: by default the Relying Party
        does not believe the Attester (RFC 9334 section 8.4).
        """
        tier = _tier(status)
        if tier is TrustTier.affirming:
            return PolicyDecision(True, True, False, False, "affirming: serve")
        if tier is TrustTier.warning:
            rule = "warning: keep" + (", install" if self.warning_installs else "")
            return PolicyDecision(True, self.warning_installs, False, False, rule)
        if tier is TrustTier.contraindicated:
            if self.contraindicated is ContraindicatedAction.quarantine:
                return PolicyDecision(False, False, False, True, "quarantine")
            return PolicyDecision(True, False, True, False, "remove managed")
        return PolicyDecision(False, False, False, False, "none: refuse")


def _tier(status: TrustTier | str) -> TrustTier:
    if isinstance(status, TrustTier):
        return status
    try:
        return TrustTier[status]
    except KeyError:
        return TrustTier.none
