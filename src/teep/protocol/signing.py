"""TEEP messages inside COSE: sign on the way out, verify on the way in.

teep-protocol 8: every message is the payload of a COSE_Sign1 or, for a
TAM's first QueryRequest, a COSE_Sign with one signature per cipher suite.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from teep import cbor, cose
from teep.keys import COSEAlgorithm, PrivateKey, PublicKey
from teep.protocol import codec
from teep.protocol.errors import MalformedMessage
from teep.protocol.messages import Message
from teep.protocol.registry import FINAL, CipherSuite, Dialect

__all__ = ["Opened", "open_signed", "peek", "sign_message", "suite_of"]

_COSE_TAGS = frozenset({18, 98})
_NO_TAGS: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Opened:
    """A verified, decoded TEEP message."""

    message: Message
    """The decoded message."""
    dialect: Dialect
    """The numbering it was decoded in."""
    alg: COSEAlgorithm
    """The algorithm of the signature that verified."""
    signer: PublicKey
    """The key that verified it."""


@dataclass(frozen=True, slots=True)
class Peeked:
    """A signed message's structure and payload before verification."""

    cose: cose.COSEMessage
    """The parsed COSE structure."""
    payload: Any
    """The decoded payload (the TEEP message's CBOR data model): well formed
    and in preferred serialization, but its items' types are checked only by
    :func:`teep.protocol.codec.decode_value`; read it raw only with
    ``isinstance`` checks."""
    kids: tuple[bytes, ...]
    """Key ids named by the signatures."""


def sign_message(
    message: Message,
    keys: Sequence[PrivateKey],
    *,
    dialect: Dialect = FINAL,
    alg: COSEAlgorithm | None = None,
    algs: Sequence[COSEAlgorithm] | None = None,
) -> bytes:
    """Encode ``message`` and sign it.

    One key gives a COSE_Sign1 (with ``alg`` if given); several give a
    COSE_Sign with one signature each (with ``algs``, one per key, if given).

    :raises ValueError: if an algorithm does not fit its key.
    """
    payload = codec.encode(message, dialect)
    if len(keys) == 1:
        return cose.sign1(payload, keys[0], alg=alg)
    return cose.sign(payload, keys, algs=algs)


def peek(data: bytes) -> Peeked:
    """Parse a signed message without verifying it.

    :raises teep.cose.COSEDecodeError: if it is not a COSE signed structure.
    :raises teep.protocol.errors.MalformedMessage: if the payload is missing or not CBOR.
    """
    parsed = cose.parse(data, tags=_COSE_TAGS)
    if parsed.payload is None:
        raise MalformedMessage("the TEEP message payload is detached")
    try:
        # The codec checks the type of every item it reads (and those it
        # keeps raw), so the generic walk over the items is left out here.
        payload = cbor.loads(parsed.payload, tags=_NO_TAGS, item_types=False)
    except cbor.CBORDecodeError as exc:
        raise MalformedMessage(f"payload is not CBOR: {exc}") from None
    kids = tuple([s.kid for s in parsed.signatures if s.kid is not None])
    return Peeked(parsed, payload, kids)


def open_signed(
    peeked: Peeked,
    keys: Iterable[PublicKey],
    *,
    dialect: Dialect,
    algs: Iterable[COSEAlgorithm] = cose.SIGNATURE_ALGS,
) -> Opened:
    """Verify a peeked message and decode it in ``dialect``.

    The signature is checked before the payload is interpreted.

    :raises teep.errors.VerifyError: if no accepted signature verifies.
    :raises teep.protocol.errors.MalformedMessage: if the payload is not a
        valid message in that numbering.
    """
    verified = cose.verify(peeked.cose, keys, algs=algs)
    message = codec.decode_value(peeked.payload, dialect)
    return Opened(message, dialect, verified.alg, verified.key)


def suite_of(alg: COSEAlgorithm) -> CipherSuite:
    """The single-operation Sign1 cipher suite of an algorithm."""
    return ((18, int(alg)),)
