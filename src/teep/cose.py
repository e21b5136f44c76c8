"""The one place teep touches COSE (RFC 9052): signing and verifying.

teep builds the COSE structures and the Sig_structure itself and leaves only
the signature primitive to ``cryptography`` (ECDSA P-256 with SHA-256, whose
DER signature is carried as the fixed-size ``r || s`` of RFC 9053 section
2.1, and Ed25519).  Around that, this module adds what a protocol endpoint
needs:

* the structure of an incoming message is checked first (tag, array shape,
  header types), and a signature is checked over the received protected
  header and payload bytes, never over a re-encoding;
* keys are matched by ``kid`` (teep uses RFC 9679 thumbprints) and, where a
  message carries no kid or an unknown one, every candidate key is tried;
* the legacy algorithms ES256 (-7) and EdDSA (-8) verify with the same keys
  as their fully specified successors ESP256 (-9) and Ed25519 (-19);
* a COSE_Mac0 (HMAC 256/256, 384/384, 512/512) is verified with shared
  keys by :func:`verify_mac0`, for SUIT manifests authenticated that way;
* every failure becomes :class:`COSEDecodeError` or :class:`teep.errors.VerifyError`.

Verification raises; it never returns a bool.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _hmac
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from teep import cbor
from teep.errors import DecodeError, VerifyError
from teep.keys import ALG_KINDS, COSEAlgorithm, PrivateKey, PublicKey

__all__ = [
    "SIGNATURE_ALGS",
    "COSEDecodeError",
    "COSEHeader",
    "COSEMessage",
    "COSETag",
    "MACKey",
    "Verified",
    "parse",
    "sign",
    "sign1",
    "verify",
    "verify_mac0",
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
# plain ints and a tuple: the hot paths test them once per message
_ALG = int(COSEHeader.alg)
_KID = int(COSEHeader.kid)
_BYTES_LIKE = (bytes, bytearray, memoryview)
_SIGNED_TAGS = {int(t): t for t in (COSETag.COSE_Sign1, COSETag.COSE_Sign)}
_ALGORITHMS: dict[int, COSEAlgorithm] = {int(alg): alg for alg in COSEAlgorithm}
# Header parameters a receiver understands; anything else listed in crit fails.
_UNDERSTOOD = frozenset(int(h) for h in COSEHeader)


class COSEDecodeError(DecodeError):
    """The bytes are not a well-formed COSE signed structure."""


@dataclass(frozen=True, slots=True)
class Signature:
    """One signer's part of a COSE_Sign (or the single one of a COSE_Sign1)."""

    protected: bytes
    """The encoded protected header of this signature."""
    alg: COSEAlgorithm
    """The signature algorithm from the protected header."""
    kid: bytes | None
    """The key id, from either header, if given."""
    signature: bytes
    """The signature as received."""


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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
    to_be_signed_head, message_head, signer = _sign1_parts(key, alg)
    payload_item = _bstr(payload)
    signature = signer(to_be_signed_head + payload_item)
    # 18([protected, {4: kid}, payload / nil, signature]), written directly:
    # the generic encoder costs as much as a signature on small messages.
    return b"".join(
        (message_head, b"\xf6" if detached else payload_item, _bstr(signature))
    )


def sign(
    payload: bytes,
    keys: Sequence[PrivateKey],
    *,
    algs: Sequence[COSEAlgorithm] | None = None,
) -> bytes:
    """Sign ``payload`` as a tagged COSE_Sign with one signature per key.

    The body carries no header parameters; each COSE_Signature carries
    ``{1: alg}`` protected and ``{4: kid}`` unprotected.

    :param algs: the algorithm of each signature, in the order of ``keys``;
        defaults to each key kind's fully specified algorithm.
    :raises ValueError: if ``keys`` is empty, or ``algs`` does not fit them.
    """
    if not keys:
        raise ValueError("COSE_Sign needs at least one key")
    if algs is not None and len(algs) != len(keys):
        raise ValueError("one algorithm per key is needed")
    signatures = [_head(0x80, len(keys))]
    for index, key in enumerate(keys):
        alg = _check_alg(key, None if algs is None else algs[index])
        protected = _alg_header(alg)
        signature = _signer(key)(_sig_structure(b"", protected, payload))
        # [protected, {4: kid}, signature]
        signatures.append(
            b"".join((b"\x83", _bstr(protected), b"\xa1\x04", _bstr(key.kid)))
        )
        signatures.append(_bstr(signature))
    # 98([h'', {}, payload, [COSE_Signature, ...]])
    return b"".join((b"\xd8\x62\x84\x40\xa0", _bstr(payload), *signatures))


def parse(data: bytes | Any, *, tags: Iterable[int] = cbor.DEFAULT_TAGS) -> COSEMessage:
    """Check that ``data`` is a COSE_Sign1 or COSE_Sign (tagged or not).

    :param data: encoded bytes, or an item already decoded by :func:`teep.cbor.loads`.
    :param tags: the CBOR tags that may appear in ``data`` when it is bytes.
    :raises COSEDecodeError: with the reason when it is not.
    """
    if isinstance(data, _BYTES_LIKE):
        value = cbor.loads(bytes(data), tags=frozenset(tags))
    else:
        value = data
    if isinstance(value, cbor.CBORTag):
        tag = _SIGNED_TAGS.get(value.tag)
        if tag is None:
            raise COSEDecodeError(f"CBOR tag {value.tag} is not a COSE signed message")
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
        signatures = (_signature(protected, header, unprotected, last),)
    else:
        signatures = _cose_sign_signatures(last)
    if isinstance(value, cbor.CBORTag):
        return COSEMessage(tag, value, payload, signatures)
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
    payload = message.payload if message.payload is not None else detached_payload
    if payload is None:
        raise VerifyError("the payload is detached and was not supplied")
    payload = bytes(payload)
    accepted = algs if isinstance(algs, frozenset) else frozenset(algs)
    candidates = list(keys)
    tried = False
    for sig in message.signatures:
        usable = _ordered(candidates, sig) if sig.alg in accepted else []
        if not usable:
            continue
        tried = True
        to_be_signed = _to_be_signed(message, sig, payload)
        for key in usable:
            try:
                _verifier(key)(sig.signature, to_be_signed)
            except InvalidSignature:
                continue
            return Verified(payload, sig.alg, key, message)
    if not tried:
        names = ", ".join(_alg_name(s.alg) for s in message.signatures)
        raise VerifyError(f"no trusted key for the message's algorithm(s): {names}")
    raise VerifyError("signature does not verify under any trusted key")


def _to_be_signed(message: COSEMessage, sig: Signature, payload: bytes) -> bytes:
    """The Sig_structure of one signature, from the received header bytes."""
    if message.tag is COSETag.COSE_Sign1:
        return _sig_structure1(sig.protected, payload)
    return _sig_structure(message.value.value[0], sig.protected, payload)


def _sig_structure1(protected: bytes, payload: bytes) -> bytes:
    # RFC 9052 section 4.4: ["Signature1", protected, external_aad = h'',
    # payload], in preferred serialization.
    return b"".join((_SIGNATURE1_HEAD, _bstr(protected), b"\x40", _bstr(payload)))


def _sig_structure(body_protected: bytes, protected: bytes, payload: bytes) -> bytes:
    # RFC 9052 section 4.4: ["Signature", body_protected, sign_protected,
    # external_aad = h'', payload].
    return b"".join(
        (
            _SIGNATURE_HEAD,
            _bstr(body_protected),
            _bstr(protected),
            b"\x40",
            _bstr(payload),
        )
    )


_SIGNATURE1_HEAD = b"\x84\x6aSignature1"
_SIGNATURE_HEAD = b"\x85\x69Signature"


def _bstr(value: bytes) -> bytes:
    """A CBOR byte string with its shortest head (RFC 8949 4.2.1)."""
    return _head(0x40, len(value)) + value


def _head(major: int, size: int) -> bytes:
    """The shortest head of a string or array of ``size`` (``major`` << 5)."""
    if size < 24:
        return bytes((major | size,))
    if size < 0x100:
        return bytes((major | 24, size))
    if size < 0x10000:
        return bytes((major | 25,)) + size.to_bytes(2, "big")
    if size < 0x100000000:
        return bytes((major | 26,)) + size.to_bytes(4, "big")
    return bytes((major | 27,)) + size.to_bytes(8, "big")


def _sign1_parts(
    key: PrivateKey, alg: COSEAlgorithm | None
) -> tuple[bytes, bytes, Callable[[bytes], bytes]]:
    """What every COSE_Sign1 of ``key`` with ``alg`` starts with (its
    Sig_structure up to the payload, and the message up to the payload), and
    the signature function.

    All depend only on the (immutable) key and the algorithm, so they are
    kept on the key.

    :raises ValueError: if ``alg`` does not fit the key.
    """
    parts: dict[COSEAlgorithm | None, tuple[bytes, bytes, Callable[[bytes], bytes]]]
    parts = key._cache.setdefault("sign1_parts", {})
    cached = parts.get(alg)
    if cached is None:
        protected = _bstr(_alg_header(_check_alg(key, alg)))
        # ["Signature1", protected, external_aad = h'', ...
        to_be_signed = _SIGNATURE1_HEAD + protected + b"\x40"
        # 18([protected, {4: kid}, ...
        message = b"\xd2\x84" + protected + b"\xa1\x04" + _bstr(key.kid)
        cached = parts[alg] = (to_be_signed, message, _signer(key))
    return cached


@functools.lru_cache(maxsize=16)
def _alg_header(alg: COSEAlgorithm) -> bytes:
    return cbor.dumps({int(COSEHeader.alg): int(alg)})


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
# RFC 9053 section 2.1: an ECDSA signature is r and s, each left-padded to
# the size of the curve order (32 bytes for P-256), not DER.
_P256_HALF = 32


def _signer(key: PrivateKey) -> Callable[[bytes], bytes]:
    """The key's signature function over a Sig_structure, made once and kept
    on the (immutable) key."""
    signer: Callable[[bytes], bytes] | None = key._cache.get("cose_signer")
    if signer is None:
        signer = key._cache["cose_signer"] = _make_signer(key.key)
    return signer


def _make_signer(
    private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
) -> Callable[[bytes], bytes]:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return private.sign
    sign = private.sign

    def sign_p256(to_be_signed: bytes) -> bytes:
        r, s = decode_dss_signature(sign(to_be_signed, _ECDSA_SHA256))
        return r.to_bytes(_P256_HALF, "big") + s.to_bytes(_P256_HALF, "big")

    return sign_p256


def _verifier(key: PublicKey) -> Callable[[bytes, bytes], None]:
    """The key's check of a signature over a Sig_structure, made once and
    kept on the (immutable) key; it raises ``InvalidSignature`` for any
    signature that does not verify, including one of the wrong size or with
    r or s out of range."""
    verifier: Callable[[bytes, bytes], None] | None = key._cache.get("cose_verifier")
    if verifier is None:
        verifier = key._cache["cose_verifier"] = _make_verifier(key.key)
    return verifier


def _make_verifier(
    public: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey,
) -> Callable[[bytes, bytes], None]:
    if isinstance(public, ed25519.Ed25519PublicKey):
        return public.verify
    verify = public.verify

    def verify_p256(signature: bytes, to_be_signed: bytes) -> None:
        if len(signature) != 2 * _P256_HALF:
            raise InvalidSignature(f"{len(signature)} bytes, not r || s")
        r = int.from_bytes(signature[:_P256_HALF], "big")
        s = int.from_bytes(signature[_P256_HALF:], "big")
        verify(encode_dss_signature(r, s), to_be_signed, _ECDSA_SHA256)

    return verify_p256


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


@dataclass(frozen=True)
class MACKey:
    """A shared symmetric key for COSE_Mac0 (HMAC, RFC 9053 section 3.1)."""

    key: bytes
    """The secret."""
    kid: bytes | None = None
    """Its key id; None matches a message with any (or no) kid."""

    def __repr__(self) -> str:  # never print the secret
        kid = self.kid.hex() if self.kid is not None else None
        return f"MACKey(kid={kid}, {len(self.key)} bytes)"


_HMAC_ALGS: dict[int, tuple[Callable[[], hashes.HashAlgorithm], int]] = {
    # RFC 9053 section 3.1: HMAC 256/256, 384/384, 512/512 (full-length tags).
    5: (hashes.SHA256, 32),
    6: (hashes.SHA384, 48),
    7: (hashes.SHA512, 64),
}
_MAC0_HEAD = b"\x84\x64MAC0"


def verify_mac0(
    data: bytes, keys: Iterable[MACKey], *, detached_payload: bytes | None = None
) -> MACKey:
    """Verify a COSE_Mac0 (tagged 17 or not) with shared keys.

    The tag is checked over the MAC_structure ``["MAC0", protected,
    external_aad = h'', payload]`` (RFC 9052 section 6.3) built from the
    received protected header bytes.

    :param keys: the keys to try (by kid first when the message names one).
    :param detached_payload: the payload when the structure carries nil.
    :returns: the key that verified the tag.
    :raises COSEDecodeError: if the structure is malformed.
    :raises VerifyError: for an unsupported algorithm or a tag no key verifies.
    """
    value = cbor.loads(bytes(data), tags=frozenset({int(COSETag.COSE_Mac0)}))
    if isinstance(value, cbor.CBORTag):
        if value.tag != COSETag.COSE_Mac0:
            raise COSEDecodeError(f"CBOR tag {value.tag} is not a COSE_Mac0")
        value = value.value
    if not isinstance(value, list) or len(value) != 4:
        raise COSEDecodeError("a COSE_Mac0 is an array of four elements")
    protected, unprotected, payload, tag = value
    header = _protected_map(protected, "body")
    if not isinstance(tag, bytes):
        raise COSEDecodeError("the MAC tag must be a byte string")
    if payload is not None and not isinstance(payload, bytes):
        raise COSEDecodeError("the payload must be a byte string or nil")
    sig = _signature(protected, header, unprotected, tag)
    payload = payload if payload is not None else detached_payload
    if payload is None:
        raise VerifyError("the payload is detached and was not supplied")
    known = _HMAC_ALGS.get(int(sig.alg))
    if known is None:
        raise VerifyError(f"unsupported MAC algorithm {_alg_name(sig.alg)}")
    hash_alg, size = known
    if len(tag) != size:
        raise VerifyError(f"a {len(tag)}-byte tag for a {size}-byte MAC")
    to_be_maced = b"".join(
        (_MAC0_HEAD, _bstr(protected), b"\x40", _bstr(bytes(payload)))
    )
    candidates = list(keys)
    exact = [k for k in candidates if sig.kid is not None and k.kid == sig.kid]
    for key in exact or [k for k in candidates if k.kid is None or sig.kid is None]:
        mac = _hmac.HMAC(key.key, hash_alg())
        mac.update(to_be_maced)
        try:
            mac.verify(tag)
        except InvalidSignature:
            continue
        return key
    raise VerifyError("the MAC does not verify under any shared key")


def _protected_map(protected: Any, where: str) -> Mapping[Any, Any]:
    if not isinstance(protected, bytes):
        raise COSEDecodeError(f"the {where} protected header must be a byte string")
    return _decode_protected(protected, where)


@functools.lru_cache(maxsize=64)
def _decode_protected(protected: bytes, where: str) -> Mapping[Any, Any]:
    """The checked header map of an encoded protected header.

    Cached (read-only) because peers send the same few headers, typically
    ``{1: alg}``, with every message; a refusal is never cached.
    """
    if protected == b"":
        return MappingProxyType({})
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
    return MappingProxyType(header)


def _signature(
    protected: bytes, header: Mapping[Any, Any], unprotected: Any, signature: bytes
) -> Signature:
    if not isinstance(unprotected, dict):
        raise COSEDecodeError("the unprotected header must be a map")
    alg = header.get(_ALG)
    if alg is None:
        raise COSEDecodeError("the protected header carries no alg")
    if not isinstance(alg, int) or isinstance(alg, bool):
        raise COSEDecodeError("alg must be an integer")
    if _ALG in unprotected:
        raise COSEDecodeError("alg must not also appear in the unprotected header")
    kid = header.get(_KID, unprotected.get(_KID))
    if kid is not None and not isinstance(kid, bytes):
        raise COSEDecodeError("kid must be a byte string")
    # An unregistered algorithm stays a plain int: no key or caller accepts it.
    known = _ALGORITHMS.get(alg, alg)
    return Signature(protected, known, kid, signature)  # type: ignore[arg-type]


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
        result.append(_signature(protected, header, unprotected, signature))
    return tuple(result)


def _ordered(keys: list[PublicKey], sig: Signature) -> list[PublicKey]:
    kind = ALG_KINDS.get(sig.alg)
    usable = [k for k in keys if k.kind is kind]
    if sig.kid is None:
        return usable
    exact = [k for k in usable if k.thumbprint == sig.kid]
    # A peer may use a kid that is not a thumbprint; then every key is a
    # candidate, but the exact match (if any) is tried alone.
    return exact or usable
