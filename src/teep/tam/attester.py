"""The TAM's own attestation: Evidence an Agent can demand before it answers.

teep-protocol 5.5 and 11: an Agent that requires TAM attestation answers a
QueryRequest with ERR_ATTESTATION_REQUIRED and a challenge; the TAM then
sends a new QueryRequest whose attestation-payload is an EAT in the TEEP
profile, signed by the TAM's attestation key (not a TEEP signing key), with
``eat_nonce`` = that challenge and ``cnf`` = the TEEP key signing the
QueryRequest, so the Evidence cannot be replayed under another TAM key.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from teep import __version__
from teep.attestation.claims import (
    EAT_PROFILE_TEEP,
    EATClaims,
    HWVersion,
    ManifestEntry,
    SUITReference,
)
from teep.attestation.evidence import make_evidence
from teep.keys import PrivateKey, PublicKey
from teep.protocol.messages import Attestation
from teep.protocol.tam import Attester

__all__ = ["TAM_HWMODEL", "TAM_OEMID", "tam_attester"]

TAM_HWMODEL = b"teep-tam"
"""The class a TAM's attestation key is endorsed for on a device."""
TAM_OEMID = b"\x00\x00\x00"
"""The manufacturer named in a TAM's Evidence."""
_SHA256 = -16
_SUIT_CONTENT_FORMAT = 742
_UEID_RAND = b"\x01"


def tam_attester(
    attestation_key: PrivateKey,
    *,
    hwmodel: bytes = TAM_HWMODEL,
    oemid: bytes = TAM_OEMID,
    clock: Callable[[], float] = time.time,
) -> Attester:
    """An :data:`~teep.protocol.tam.Attester` signing with ``attestation_key``.

    The TAM's UEID is derived from the attestation key's thumbprint, so it is
    stable for one TAM folder.
    """
    ueid = _UEID_RAND + hashlib.sha256(attestation_key.public.thumbprint).digest()
    software = f"teep-tam:{__version__}"
    reference = SUITReference(
        software, _SHA256, hashlib.sha256(software.encode()).digest()
    )

    def attest(nonce: bytes | None, tam_key: PublicKey) -> Attestation:
        claims = EATClaims(
            ueid=ueid,
            oemid=oemid,
            hwmodel=hwmodel,
            hwversion=HWVersion(__version__, 1),
            manifests=(ManifestEntry(_SUIT_CONTENT_FORMAT, reference),),
            cnf_kid=tam_key.thumbprint,
            nonce=nonce,
            eat_profile=EAT_PROFILE_TEEP,
            iat=int(clock()),
        )
        return Attestation(make_evidence(claims, attestation_key))

    return attest
