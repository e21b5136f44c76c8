"""EAT Evidence: a COSE_Sign1 (CWT) over a TEEP-profile claims set.

This module is the one boundary where the CBOR and COSE decoders' errors
become :class:`~teep.attestation.errors.EvidenceDecodeError`.
"""

from __future__ import annotations

from typing import Any

from teep import cbor, cose
from teep.attestation.claims import EATClaims
from teep.attestation.errors import EvidenceDecodeError
from teep.errors import DecodeError
from teep.keys import COSEAlgorithm, PrivateKey

__all__ = ["decode_claims_payload", "make_evidence", "parse_token", "peek_evidence"]

# teep-protocol EAT profile: no CBOR tags inside the claims set.
_NO_TAGS: frozenset[int] = frozenset()


def make_evidence(
    claims: EATClaims,
    attestation_key: PrivateKey,
    *,
    alg: COSEAlgorithm | None = None,
) -> bytes:
    """Sign ``claims`` with the TEE's attestation key as a tagged COSE_Sign1.

    The payload is the deterministic CBOR encoding of the claims map; the
    ``kid`` is the key's RFC 9679 thumbprint.

    :param alg: defaults to ESP256 or Ed25519 according to the key.
    :raises ValueError: if ``alg`` does not fit the key.
    """
    payload = cbor.det_dumps(claims.to_map())
    return cose.sign1(payload, attestation_key, alg=alg)


def parse_token(data: Any) -> cose.COSEMessage:
    """Check that ``data`` is a COSE_Sign1 with an attached payload.

    :raises EvidenceDecodeError: if it is not.
    """
    if not isinstance(data, bytes | bytearray):
        raise EvidenceDecodeError("a token must be bytes")
    try:
        message = cose.parse(bytes(data))
    except DecodeError as exc:
        raise EvidenceDecodeError(f"not a COSE_Sign1: {exc}") from None
    if message.tag is not cose.COSETag.COSE_Sign1:
        raise EvidenceDecodeError("a CWT must be a COSE_Sign1, not a COSE_Sign")
    if message.payload is None:
        raise EvidenceDecodeError("the token's payload is detached")
    return message


def decode_claims_payload(payload: bytes) -> dict[Any, Any]:
    """Decode a CWT payload into its claims map, without checking claims.

    :raises EvidenceDecodeError: if it is not a CBOR map.
    """
    try:
        claims = cbor.loads(payload, tags=_NO_TAGS)
    except cbor.CBORDecodeError as exc:
        raise EvidenceDecodeError(f"the claims set is not valid CBOR: {exc}") from None
    if not isinstance(claims, dict):
        raise EvidenceDecodeError("the claims set is not a CBOR map")
    return claims


def peek_evidence(data: bytes) -> EATClaims:
    """Read the claims of Evidence *without verifying its signature*.

    For logs and diagnostic tools only; nothing read here may be trusted.

    :raises EvidenceDecodeError: if the bytes are not a CWT with a claims map.
    :raises ClaimsError: if the claims break the TEEP EAT profile.
    """
    message = parse_token(data)
    return EATClaims.from_map(decode_claims_payload(message.payload or b""))
