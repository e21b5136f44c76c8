"""The one place teep touches COSE (RFC 9052): signing and verifying.

The heavy lifting is done by the ``cwt`` library.  This facade adds what a
protocol endpoint needs around it:

* the structure of an incoming message is checked here first (tag, array
  shape, header types), because cwt dispatches on the tag and leaks odd
  exceptions on malformed input;
* keys are matched by ``kid`` (teep uses RFC 9679 thumbprints) and, where a
  message carries no kid or an unknown one, every candidate key is tried;
* the legacy algorithms ES256 (-7) and EdDSA (-8) verify with the same keys
  as their fully specified successors ESP256 (-9) and Ed25519 (-19);
* every failure becomes :class:`COSEDecodeError` or :class:`teep.errors.VerifyError`.

Verification raises; it never returns a bool.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import cwt

from teep import cbor
from teep.errors import DecodeError, VerifyError
from teep.keys import ALG_KINDS, COSEAlgorithm, PrivateKey, PublicKey

__all__ = [
    "SIGNATURE_ALGS",
    "COSEDecodeError",
    "COSEHeader",
    "COSEMessage",
    "COSETag",
    "Verified",
    "parse",
    "sign",
    "sign1",
    "verify",
]


class COSETag(enum.IntEnum):
    """CBOR tags of the COSE structures (RFC 9052 section 2)."""

    COSE_Encrypt0 = 16
    COSE_Mac0 = 17
    COSE_Sign1 = 18
    COSE_Encrypt = 96
    COSE_Mac = 97
    COSE_Sign = 98


class COSEHeader(enum.IntEnum):
    """COSE common header parameters (RFC 9052 section 3.1)."""

    alg = 1
    crit = 2
    content_type = 3
    kid = 4
    IV = 5
    Partial_IV = 6


SIGNATURE_ALGS = frozenset(ALG_KINDS)
_CWT_NAMES = {
    COSEAlgorithm.ESP256: "ESP256",
    COSEAlgorithm.ES256: "ES256",
    COSEAlgorithm.Ed25519: "Ed25519",
    COSEAlgorithm.EdDSA: "EdDSA",
}
# Header parameters a receiver understands; anything else listed in crit fails.
_UNDERSTOOD = frozenset(int(h) for h in COSEHeader)


class COSEDecodeError(DecodeError):
    """The bytes are not a well-formed COSE signed structure."""


@dataclass(frozen=True)
class Signature:
    """One signer's part of a COSE_Sign (or the single one of a COSE_Sign1)."""

    protected: bytes
    """The encoded protected header of this signature."""
    alg: COSEAlgorithm
    """The signature algorithm from the protected header."""
    kid: bytes | None
    """The key id, from either header, if given."""


@dataclass(frozen=True)
class COSEMessage:
    """A structurally checked COSE_Sign1 or COSE_Sign, not yet verified."""

    tag: COSETag
    """COSE_Sign1 or COSE_Sign."""
    value: cbor.CBORTag
    """The tagged structure, as decoded (tag added if the input was untagged)."""
    payload: bytes | None
    """The attached payload, or None when it is detached."""
    signatures: tuple[Signature, ...]
    """The signers, one for COSE_Sign1."""


@dataclass(frozen=True)
class Verified:
    """The result of a successful verification."""

    payload: bytes
    """The verified payload (the detached one if it was detached)."""
    alg: COSEAlgorithm
    """The algorithm of the signature that verified."""
    key: PublicKey
    """The key that verified it."""
    message: COSEMessage
    """The parsed structure."""


def sign1(
    payload: bytes,
    key: PrivateKey,
    *,
    alg: COSEAlgorithm | None = None,
    detached: bool = False,
) -> bytes:
    """Sign ``payload`` as a tagged COSE_Sign1 with ``{1: alg}`` protected
    and ``{4: kid}`` unprotected.

    :param alg: defaults to the key kind's fully specified algorithm.
    :param detached: leave the payload out (nil) of the structure.
    :raises ValueError: if ``alg`` does not fit the key.
    """
    alg = _check_alg(key, alg)
    # The structure is built here and only the signature is left to cwt:
    # cwt's own encoder re-validates and re-encodes everything per call.
    protected = _alg_header(alg)
    signature = _cwt_private(key, alg).sign(_sig_structure1(protected, payload))
    # 18([protected, {4: kid}, payload / nil, signature]), written directly:
    # the generic encoder costs as much as a signature on small messages.
    return b"".join(
        (
            b"\xd2\x84",
            _bstr(protected),
            b"\xa1\x04",
            _bstr(key.kid),
            b"\xf6" if detached else _bstr(payload),
            _bstr(signature),
        )
    )


def sign(
    payload: bytes,
    keys: Sequence[PrivateKey],
    *,
    algs: Sequence[COSEAlgorithm] | None = None,
) -> bytes:
    """Sign ``payload`` as a tagged COSE_Sign with one signature per key.

    :param algs: the algorithm of each signature, in the order of ``keys``;
        defaults to each key kind's fully specified algorithm.
    :raises ValueError: if ``keys`` is empty, or ``algs`` does not fit them.
    """
    if not keys:
        raise ValueError("COSE_Sign needs at least one key")
    if algs is not None and len(algs) != len(keys):
        raise ValueError("one algorithm per key is needed")
    signers = []
    for index, key in enumerate(keys):
        alg = _check_alg(key, None if algs is None else algs[index])
        signers.append(
            cwt.Signer.new(
                cose_key=_cwt_private(key, alg),
                protected={1: int(alg)},
                unprotected={4: key.kid},
            )
        )
    ctx = cwt.COSE.new(alg_auto_inclusion=False, kid_auto_inclusion=False)
    return bytes(ctx.encode(payload, signers=signers))


def parse(data: bytes | Any) -> COSEMessage:
    """Check that ``data`` is a COSE_Sign1 or COSE_Sign (tagged or not).

    :param data: encoded bytes, or an item already decoded by :func:`teep.cbor.loads`.
    :raises COSEDecodeError: with the reason when it is not.
    """
    value = cbor.loads(bytes(data)) if isinstance(data, bytes | bytearray) else data
    if isinstance(value, cbor.CBORTag):
        if value.tag not in (COSETag.COSE_Sign1, COSETag.COSE_Sign):
            raise COSEDecodeError(f"CBOR tag {value.tag} is not a COSE signed message")
        tag = COSETag(value.tag)
        body = value.value
    elif isinstance(value, list):
        body = value
        tag = COSETag.COSE_Sign if _looks_like_sign(body) else COSETag.COSE_Sign1
    else:
        raise COSEDecodeError("not a COSE structure (expected a tagged array)")
    if not isinstance(body, list) or len(body) != 4:
        raise COSEDecodeError("a COSE signed message is an array of four elements")
    protected, unprotected, payload, last = body
    header = _protected_map(protected, "body")
    if not isinstance(unprotected, dict):
        raise COSEDecodeError("the unprotected header must be a map")
    if payload is not None and not isinstance(payload, bytes):
        raise COSEDecodeError("the payload must be a byte string or nil")
    signatures: tuple[Signature, ...]
    if tag is COSETag.COSE_Sign1:
        if not isinstance(last, bytes):
            raise COSEDecodeError("the signature must be a byte string")
        signatures = (_signature(protected, header, unprotected),)
    else:
        signatures = _cose_sign_signatures(last)
    return COSEMessage(tag, cbor.CBORTag(tag, body), payload, signatures)


def verify(
    data: bytes | COSEMessage,
    keys: Iterable[PublicKey],
    *,
    algs: Iterable[COSEAlgorithm] = SIGNATURE_ALGS,
    detached_payload: bytes | None = None,
) -> Verified:
    """Verify a COSE_Sign1 or COSE_Sign against trusted keys.

    For a COSE_Sign, the first signature (in message order) whose algorithm is
    in ``algs`` and that verifies under a trusted key wins.

    :param keys: the trust anchors to try.
    :param algs: the algorithms the caller accepts.
    :param detached_payload: the payload when the structure carries nil.
    :raises COSEDecodeError: if the structure is malformed.
    :raises VerifyError: if no accepted signature verifies under any key.
    """
    message = data if isinstance(data, COSEMessage) else parse(data)
    if message.payload is None and detached_payload is None:
        raise VerifyError("the payload is detached and was not supplied")
    accepted = frozenset(algs)
    candidates = list(keys)
    if message.tag is COSETag.COSE_Sign1:
        return _verify1(message, candidates, accepted, detached_payload)
    ctx = cwt.COSE.new()
    tried = False
    for sig in message.signatures:
        if sig.alg not in accepted:
            continue
        for key in _ordered(candidates, sig):
            tried = True
            cwt_key = _cwt_public(key, sig.alg, sig.kid)
            try:
                payload = ctx.decode(
                    message.value, cwt_key, detached_payload=detached_payload
                )
            except cwt.VerifyError:
                continue
            except Exception as exc:
                raise COSEDecodeError(f"malformed COSE message: {exc}") from None
            return Verified(bytes(payload), sig.alg, key, message)
    if not tried:
        names = ", ".join(_alg_name(s.alg) for s in message.signatures)
        raise VerifyError(f"no trusted key for the message's algorithm(s): {names}")
    raise VerifyError("signature does not verify under any trusted key")


def _sig_structure1(protected: bytes, payload: bytes) -> bytes:
    # RFC 9052 section 4.4: ["Signature1", protected, external_aad = h'',
    # payload], in preferred serialization.
    return b"".join((_SIGNATURE1_HEAD, _bstr(protected), b"\x40", _bstr(payload)))


_SIGNATURE1_HEAD = b"\x84\x6aSignature1"


def _bstr(value: bytes) -> bytes:
    """A CBOR byte string with its shortest head (RFC 8949 4.2.1)."""
    size = len(value)
    if size < 24:
        head = bytes((0x40 | size,))
    elif size < 0x100:
        head = bytes((0x58, size))
    elif size < 0x10000:
        head = b"\x59" + size.to_bytes(2, "big")
    elif size < 0x100000000:
        head = b"\x5a" + size.to_bytes(4, "big")
    else:
        head = b"\x5b" + size.to_bytes(8, "big")
    return head + value


@functools.lru_cache(maxsize=16)
def _alg_header(alg: COSEAlgorithm) -> bytes:
    return cbor.dumps({int(COSEHeader.alg): int(alg)})


def _verify1(
    message: COSEMessage,
    keys: list[PublicKey],
    accepted: frozenset[COSEAlgorithm],
    detached_payload: bytes | None,
) -> Verified:
    """Verify a COSE_Sign1 over its original bytes (nothing is re-encoded
    but the Sig_structure, built from the received protected header)."""
    sig = message.signatures[0]
    if sig.alg not in accepted:
        raise VerifyError(f"no trusted key for the algorithm {_alg_name(sig.alg)}")
    protected, _unprotected, attached, signature = message.value.value
    payload = attached if attached is not None else detached_payload
    assert payload is not None  # verify() refused a missing payload
    to_be_signed = _sig_structure1(protected, payload)
    usable = _ordered(keys, sig)
    if not usable:
        raise VerifyError(f"no trusted key for the algorithm {_alg_name(sig.alg)}")
    for key in usable:
        try:
            _cwt_public(key, sig.alg, sig.kid).verify(to_be_signed, signature)
        except cwt.VerifyError:
            continue
        except Exception as exc:
            raise COSEDecodeError(f"malformed COSE_Sign1: {exc}") from None
        return Verified(bytes(payload), sig.alg, key, message)
    raise VerifyError("signature does not verify under any trusted key")


def _alg_name(alg: int) -> str:
    try:
        return COSEAlgorithm(alg).name
    except ValueError:
        return str(alg)


def _check_alg(key: PrivateKey, alg: COSEAlgorithm | None) -> COSEAlgorithm:
    if alg is None:
        return key.kind.default_alg
    if ALG_KINDS.get(alg) is not key.kind:
        raise ValueError(f"algorithm {alg!r} does not fit a {key.kind.value} key")
    return alg


def _looks_like_sign(body: Any) -> bool:
    return isinstance(body, list) and len(body) == 4 and isinstance(body[3], list)


def _protected_map(protected: Any, where: str) -> dict[Any, Any]:
    if not isinstance(protected, bytes):
        raise COSEDecodeError(f"the {where} protected header must be a byte string")
    if protected == b"":
        return {}
    header = cbor.loads(protected)
    if not isinstance(header, dict):
        raise COSEDecodeError(f"the {where} protected header must encode a map")
    crit = header.get(COSEHeader.crit)
    if crit is not None:
        # RFC 9052 section 3.1: a receiver that does not understand a
        # critical header parameter must reject the message.
        if not isinstance(crit, list) or not crit:
            raise COSEDecodeError("crit must be a non-empty array")
        unknown = [c for c in crit if not isinstance(c, int) or c not in _UNDERSTOOD]
        if unknown:
            raise COSEDecodeError(f"unsupported critical header parameter(s) {unknown}")
    return header


def _signature(protected: bytes, header: dict[Any, Any], unprotected: Any) -> Signature:
    if not isinstance(unprotected, dict):
        raise COSEDecodeError("the unprotected header must be a map")
    alg = header.get(COSEHeader.alg)
    if alg is None:
        raise COSEDecodeError("the protected header carries no alg")
    if not isinstance(alg, int) or isinstance(alg, bool):
        raise COSEDecodeError("alg must be an integer")
    if COSEHeader.alg in unprotected:
        raise COSEDecodeError("alg must not also appear in the unprotected header")
    kid = header.get(COSEHeader.kid, unprotected.get(COSEHeader.kid))
    if kid is not None and not isinstance(kid, bytes):
        raise COSEDecodeError("kid must be a byte string")
    try:
        known = COSEAlgorithm(alg)
    except ValueError:
        known = alg  # type: ignore[assignment]
    return Signature(protected, known, kid)


def _cose_sign_signatures(items: Any) -> tuple[Signature, ...]:
    if not isinstance(items, list) or not items:
        raise COSEDecodeError("COSE_Sign needs a non-empty array of signatures")
    result = []
    for item in items:
        if not isinstance(item, list) or len(item) != 3:
            raise COSEDecodeError("a COSE_Signature is an array of three elements")
        protected, unprotected, signature = item
        if not isinstance(signature, bytes):
            raise COSEDecodeError("the signature must be a byte string")
        header = _protected_map(protected, "signature")
        result.append(_signature(protected, header, unprotected))
    return tuple(result)


def _ordered(keys: list[PublicKey], sig: Signature) -> list[PublicKey]:
    usable = [k for k in keys if sig.alg in k.kind.algs]
    if sig.kid is None:
        return usable
    exact = [k for k in usable if k.thumbprint == sig.kid]
    # A peer may use a kid that is not a thumbprint; then every key is a
    # candidate, but the exact match (if any) is tried alone.
    return exact or usable


def _cwt_private(key: PrivateKey, alg: COSEAlgorithm) -> Any:
    slot = f"cwt:{int(alg)}"
    cached = key._cache.get(slot)
    if cached is None:
        cached = cwt.COSEKey.from_pem(key.to_pem(), alg=_CWT_NAMES[alg], kid=key.kid)
        key._cache[slot] = cached
    return cached


def _cwt_public(key: PublicKey, alg: int, kid: bytes | None) -> Any:
    # cwt only tries a key whose kid equals the message's, so the key object
    # carries the message's kid (or none).
    slot = f"cwt:{int(alg)}:{(kid or b'').hex()}"
    cached = key._cache.get(slot)
    if cached is None:
        params = dict(key.cose_key())
        params[3] = int(alg)
        if kid is not None:
            params[2] = kid
        cached = cwt.COSEKey.new(params)
        if len(key._cache) > 64:
            key._cache.clear()
        key._cache[slot] = cached
    return cached
