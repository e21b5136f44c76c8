"""Confidentiality of EATs and SUIT Reports sent to the TAM.

teep-protocol 7.2 asks the Agent to encrypt its Evidence (and SUIT Reports)
to the TAM with ES-DH + AES-KW + HKDF, in two layers as RFC 9052 section
8.5.5 draws them: a COSE_Encrypt whose content is sealed under a random
content key (never detached), and one recipient that wraps that key with a
key-encryption key derived by ECDH-ES over P-256 and HKDF-SHA-256.  The KDF
context is the one of draft-ietf-suit-firmware-encryption, with
``SuppPubInfo.other`` naming what is protected ("EAT Encryption" or "SUIT
Report Encryption"), so a key derived for one use cannot open the other.

The profile is suit-sha256-esp256-ecdh-a128gcm: ECDH-ES+A128KW (-29) for the
recipient and A128GCM (1) for the content.

How a TAM says it accepts encrypted payloads: its (signed) QueryRequest
carries the option :data:`ENCRYPTION_KEY_OPTION` whose value is the TAM's
key-agreement COSE_Key.  The label lies outside the TEEP CBOR label registry
(0..1023), so no assignment can collide with it, and peers that do not know
it ignore it as teep-protocol section 4 asks.  An Agent that sees it sends
the attestation payload as a tagged COSE_Encrypt (tag 96); the
attestation-payload-format still names the plaintext's media type.

This module is the one place the ``cwt`` encryption API is used; its errors
become :class:`EncryptionError`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import cwt
from cryptography.hazmat.primitives import serialization

from teep import cbor
from teep.attestation.errors import AttestationError
from teep.errors import DecodeError, KeyLoadError
from teep.keys import KeyKind, PrivateKey, PublicKey

__all__ = [
    "EAT_ENCRYPTION",
    "ENCRYPTION_KEY_OPTION",
    "SUIT_REPORT_ENCRYPTION",
    "EncryptionError",
    "KDFPurpose",
    "decrypt",
    "encrypt",
    "encryption_offer",
    "is_encrypted",
    "offered_key",
]

#: TEEP option label (QueryRequest) carrying the TAM's key-agreement COSE_Key.
ENCRYPTION_KEY_OPTION = 65536


class KDFPurpose(bytes, enum.Enum):
    """``COSE_KDF_Context.SuppPubInfo.other`` values (teep-protocol 7.2)."""

    EAT = b"EAT Encryption"
    SUIT_REPORT = b"SUIT Report Encryption"


EAT_ENCRYPTION = KDFPurpose.EAT
SUIT_REPORT_ENCRYPTION = KDFPurpose.SUIT_REPORT

_COSE_ENCRYPT = 96
_ECDH_ES_A128KW = -29
_A128KW = -3
_A128GCM = 1
_KEY_BITS = 128


class EncryptionError(AttestationError, DecodeError):
    """An encrypted payload could not be made or opened."""


def _kdf_context(purpose: KDFPurpose) -> list[Any]:
    # suit-firmware-encryption 6.2.4: AlgorithmID is the key-wrap algorithm,
    # the party infos are empty, and "protected" is the recipient's header.
    protected = cbor.dumps({1: _ECDH_ES_A128KW})
    return [_A128KW, [None] * 3, [None] * 3, [_KEY_BITS, protected, purpose.value]]


def encrypt(payload: bytes, recipient: PublicKey, purpose: KDFPurpose) -> bytes:
    """Encrypt ``payload`` to ``recipient`` as a tagged COSE_Encrypt.

    :param recipient: a P-256 key-agreement key (the TAM's).
    :param purpose: which KDF context string to bind the key to.
    :raises EncryptionError: if the key is not a P-256 key.
    """
    if recipient.kind is not KeyKind.P256:
        raise EncryptionError("encryption needs a P-256 key-agreement key")
    cose_key = {**recipient.cose_key(), 3: _ECDH_ES_A128KW, 2: recipient.kid}
    try:
        recipient_key = cwt.COSEKey.new(cose_key)
        wrap = cwt.Recipient.new(
            protected={1: _ECDH_ES_A128KW},
            unprotected={4: recipient.kid},
            recipient_key=recipient_key,
            context=_kdf_context(purpose),
        )
        cek = cwt.COSEKey.generate_symmetric_key(alg=_A128GCM)
        # DEPS pitfall 11: the content algorithm must be in the protected
        # header, or other implementations cannot decrypt.
        return bytes(
            cwt.COSE.new().encode(
                payload, cek, protected={1: _A128GCM}, recipients=[wrap]
            )
        )
    except (cwt.CWTError, ValueError) as exc:
        raise EncryptionError(f"cannot encrypt: {exc}") from None


def is_encrypted(data: bytes) -> bool:
    """Whether ``data`` starts as a tagged COSE_Encrypt."""
    return cbor.peek_tag(data) == _COSE_ENCRYPT


def decrypt(data: bytes, key: PrivateKey, purpose: KDFPurpose) -> bytes:
    """Open a COSE_Encrypt made by :func:`encrypt`.

    :param key: the recipient's P-256 private key-agreement key.
    :param purpose: the KDF context string the sender must have used.
    :raises EncryptionError: if the structure is malformed, names other
        algorithms, or does not open with this key and purpose.
    """
    message = _parse_encrypt(data)
    pem = key.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        private = cwt.COSEKey.from_pem(pem, alg=_ECDH_ES_A128KW, kid=key.kid)
        return bytes(
            cwt.COSE.new().decode(message, private, context=_kdf_context(purpose))
        )
    except Exception as exc:  # cwt raises several types on bad input
        raise EncryptionError(f"cannot decrypt: {type(exc).__name__}") from None


def _parse_encrypt(data: bytes) -> cbor.CBORTag:
    try:
        message = cbor.loads(data, tags=frozenset({_COSE_ENCRYPT}))
    except cbor.CBORDecodeError as exc:
        raise EncryptionError(f"not a COSE_Encrypt: {exc}") from None
    if not isinstance(message, cbor.CBORTag) or message.tag != _COSE_ENCRYPT:
        raise EncryptionError("not a tagged COSE_Encrypt")
    body = message.value
    shape = (bytes, dict, bytes, list)
    if not isinstance(body, list) or len(body) != 4:
        raise EncryptionError("a COSE_Encrypt is an array of four")
    if not all(isinstance(v, t) for v, t in zip(body, shape, strict=True)):
        raise EncryptionError("a COSE_Encrypt needs an attached ciphertext")
    recipients = body[3]
    if len(recipients) != 1 or not _is_es_recipient(recipients[0]):
        raise EncryptionError("expected one ECDH-ES+A128KW recipient")
    return message


def _is_es_recipient(recipient: Any) -> bool:
    if not isinstance(recipient, list) or len(recipient) != 3:
        return False
    protected, unprotected, wrapped = recipient
    if not isinstance(protected, bytes) or not isinstance(unprotected, dict):
        return False
    try:
        header = cbor.loads(protected)
    except cbor.CBORDecodeError:
        return False
    ephemeral = unprotected.get(-1)
    return (
        isinstance(header, dict)
        and header.get(1) == _ECDH_ES_A128KW
        and isinstance(ephemeral, dict)
        and ephemeral.get(1) == 2
        and ephemeral.get(-1) == 1
        and isinstance(wrapped, bytes)
    )


def encryption_offer(key: PublicKey) -> dict[int, Any]:
    """The QueryRequest extension offering ``key`` for encrypted payloads.

    :raises EncryptionError: if the key is not a P-256 key.
    """
    if key.kind is not KeyKind.P256:
        raise EncryptionError("the key-agreement key must be P-256")
    return {ENCRYPTION_KEY_OPTION: {**key.cose_key(), 3: _ECDH_ES_A128KW}}


def offered_key(extensions: Mapping[int, Any]) -> PublicKey | None:
    """The TAM key a QueryRequest offers for encryption, if any usable one."""
    value = extensions.get(ENCRYPTION_KEY_OPTION)
    if not isinstance(value, dict) or value.get(3, _ECDH_ES_A128KW) != _ECDH_ES_A128KW:
        return None
    plain = {k: v for k, v in value.items() if k != 3}
    try:
        key = PublicKey.from_cose_key(plain)
    except KeyLoadError:
        return None
    return key if key.kind is KeyKind.P256 else None
