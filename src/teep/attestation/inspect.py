"""Reading EAT and EAR tokens for tools (``teep decode``).

:func:`inspect_token` tells Evidence from an Attestation Result, names the
claims it knows, and verifies the signature when keys are given.  Nothing
is appraised: claims are shown as they are, with no policy applied.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from teep import cose
from teep.attestation.claims import EATClaim
from teep.attestation.ear import EAR_PROFILES, EARClaim
from teep.attestation.errors import SignatureError
from teep.attestation.evidence import decode_claims_payload, parse_token
from teep.errors import TeepError
from teep.keys import PublicKey

__all__ = ["TokenView", "claim_name", "inspect_token"]


@dataclass(frozen=True)
class TokenView:
    """What a token holds, for display."""

    kind: str
    """``"EAR"`` (an Attestation Result) or ``"EAT"`` (Evidence)."""
    claims: dict[Any, Any]
    """The claims map, as decoded."""
    kid: bytes | None
    """The ``kid`` of the signature."""
    signer: PublicKey | None
    """The key that verified the signature; None when no key was given."""


def claim_name(key: Any) -> str | None:
    """The name of an EAT, CWT or EAR claim key, if teep knows it."""
    for registry in (EARClaim, EATClaim):
        try:
            return registry(key).name
        except ValueError:
            continue
    return None


def inspect_token(data: bytes, keys: Iterable[PublicKey] = ()) -> TokenView:
    """Decode an EAT or EAR and, if ``keys`` are given, verify it.

    :raises EvidenceDecodeError: not a COSE_Sign1 over a CBOR claims map.
    :raises SignatureError: keys were given and none verifies the signature.
    """
    message = parse_token(data)
    claims = decode_claims_payload(message.payload or b"")
    candidates = list(keys)
    signer = None
    if candidates:
        try:
            signer = cose.verify(message, candidates).key
        except TeepError as exc:
            raise SignatureError(f"token signature: {exc}") from None
    profile = claims.get(EATClaim.eat_profile)
    kind = "EAR" if profile in EAR_PROFILES else "EAT"
    return TokenView(kind, claims, message.signatures[0].kid, signer)
