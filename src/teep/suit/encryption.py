"""Encrypted payloads (draft-ietf-suit-firmware-encryption).

A manifest that ships an encrypted payload sets the ``encryption-info``
parameter to a SUIT_Encryption_Info: a tagged COSE_Encrypt (96) whose
ciphertext is detached (``nil``) and whose recipients each carry the
content-encryption key (CEK) wrapped for one key-encryption key (KEK).
``write`` and ``copy`` decrypt while they store.

Two ways to distribute the CEK are supported, as the draft defines them:

* AES Key Wrap (A128KW, A256KW) under a pre-shared symmetric KEK
  (:class:`SymmetricKEK`);
* ECDH-ES + A128KW: the KEK is derived with HKDF-SHA-256 from an ECDH
  secret between an ephemeral key and the device's P-256 key
  (:class:`teep.keys.PrivateKey`), with the COSE_KDF_Context the draft
  fixes (its ``other`` member is ``"SUIT Payload Encryption"``).

Content may be encrypted with A128GCM, A256GCM, ChaCha20/Poly1305 or the
non-AEAD A128CTR (which the MTI profile suit-sha256-esp256-ecdh-a128ctr
uses, and which the author must pair with an image digest).  The COSE work
is done by ``cwt``; this module checks the structures before handing them
over, turns every failure into a :class:`~teep.suit.errors.SuitError`, and
never logs key material.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cwt import COSE, COSEKey, Recipient

from teep import cbor
from teep.cose import COSETag
from teep.errors import DecodeError
from teep.keys import COSEAlgorithm, KeyKind, PrivateKey, PublicKey
from teep.suit.errors import SuitDecodeError, SuitDecryptionError, SuitUnsupportedError
from teep.suit.registry import SuitReportReason

__all__ = [
    "CONTENT_ALGORITHMS",
    "KDF_OTHER",
    "KEY_DISTRIBUTION_ALGORITHMS",
    "DecryptionKey",
    "EncryptionRecipient",
    "SuitEncryptionInfo",
    "SuitRecipient",
    "SymmetricKEK",
    "encrypt_payload",
]

KDF_OTHER = b"SUIT Payload Encryption"
"""SuppPubInfo.other of the COSE_KDF_Context for payload encryption."""

CONTENT_ALGORITHMS = {
    COSEAlgorithm.A128GCM: 16,
    COSEAlgorithm.A256GCM: 32,
    COSEAlgorithm.CHACHA20_POLY1305: 32,
    COSEAlgorithm.A128CTR: 16,
}
"""Supported content-encryption algorithms and their key sizes."""
_IV_SIZES = {
    COSEAlgorithm.A128GCM: 12,
    COSEAlgorithm.A256GCM: 12,
    COSEAlgorithm.CHACHA20_POLY1305: 12,
    COSEAlgorithm.A128CTR: 16,
}
_NON_AEAD = frozenset({COSEAlgorithm.A128CTR})

KEY_DISTRIBUTION_ALGORITHMS = {
    COSEAlgorithm.A128KW: 16,
    COSEAlgorithm.A256KW: 32,
    COSEAlgorithm.ECDH_ES_A128KW: 16,
}
"""Supported recipient algorithms and the size of the KEK each uses."""
_ECDH_WRAP = {COSEAlgorithm.ECDH_ES_A128KW: COSEAlgorithm.A128KW}

_ALG, _KID, _IV, _EPHEMERAL = 1, 4, 5, -1


@dataclass(frozen=True)
class SymmetricKEK:
    """A pre-shared key-encryption key for AES Key Wrap recipients."""

    key: bytes
    """The KEK itself: 16 bytes (A128KW) or 32 bytes (A256KW)."""
    kid: bytes | None = None
    """Its key id; None matches a recipient with any (or no) kid."""

    @property
    def algorithm(self) -> COSEAlgorithm:
        """A128KW or A256KW, by key size.

        :raises SuitUnsupportedError: for any other size.
        """
        for alg in (COSEAlgorithm.A128KW, COSEAlgorithm.A256KW):
            if KEY_DISTRIBUTION_ALGORITHMS[alg] == len(self.key):
                return alg
        raise SuitUnsupportedError(
            f"a {len(self.key)}-byte AES-KW key",
            reason=SuitReportReason.alg_unsupported,
        )


DecryptionKey = PrivateKey | SymmetricKEK
"""What a device may hold to open payloads: a P-256 key (ECDH-ES) or a KEK."""
EncryptionRecipient = PublicKey | SymmetricKEK
"""Whom an author encrypts for: a device's P-256 public key or a shared KEK."""


@dataclass(frozen=True)
class SuitRecipient:
    """One COSE_recipient of a SUIT_Encryption_Info."""

    algorithm: COSEAlgorithm
    """The key-distribution algorithm (A128KW, A256KW, ECDH-ES + A128KW)."""
    kid: bytes | None
    """The KEK's key id, if the author named it."""
    protected: bytes
    """The recipient's protected header bstr, as received."""
    value: list[Any]
    """The whole decoded COSE_recipient array."""


@dataclass(frozen=True)
class SuitEncryptionInfo:
    """A decoded SUIT_Encryption_Info (tagged COSE_Encrypt, detached)."""

    raw: bytes
    """The encoding as received (the content of the parameter's bstr)."""
    content_algorithm: COSEAlgorithm
    """The content-encryption algorithm."""
    iv: bytes
    """The content IV (nonce, or initial counter block for CTR)."""
    recipients: tuple[SuitRecipient, ...]
    """The recipients, in order."""

    @classmethod
    def decode(cls, data: bytes) -> SuitEncryptionInfo:
        """Decode and check a SUIT_Encryption_Info.

        :raises SuitDecodeError: if it is not a COSE_Encrypt with detached
            ciphertext, an IV and at least one recipient.
        :raises SuitUnsupportedError: for an algorithm teep does not know.
        """
        try:
            value = cbor.loads(data, tags=frozenset({COSETag.COSE_Encrypt}))
        except DecodeError as exc:
            raise SuitDecodeError(f"SUIT_Encryption_Info: {exc}") from None
        if not isinstance(value, cbor.CBORTag) or value.tag != COSETag.COSE_Encrypt:
            raise SuitDecodeError("SUIT_Encryption_Info must be a tagged COSE_Encrypt")
        body = value.value
        if not (
            isinstance(body, list)
            and len(body) == 4
            and isinstance(body[0], bytes)
            and isinstance(body[1], dict)
            and body[2] is None
            and isinstance(body[3], list)
            and body[3]
        ):
            raise SuitDecodeError(
                "SUIT_Encryption_Info must be [protected, unprotected, nil, recipients]"
            )
        protected = _header_map(body[0])
        alg = _algorithm(protected, body[1], CONTENT_ALGORITHMS, "content")
        # firmware-encryption 6.2: AES-CTR has no integrity, so nothing may
        # sit in a protected header that nobody authenticates.
        if alg in _NON_AEAD and body[0]:
            raise SuitDecodeError("AES-CTR needs a zero-length protected header")
        iv = body[1].get(_IV)
        if not isinstance(iv, bytes) or len(iv) != _IV_SIZES[alg]:
            raise SuitDecodeError(f"{alg.name} needs a {_IV_SIZES[alg]}-byte IV")
        return cls(bytes(data), alg, iv, tuple(_recipient(r) for r in body[3]))

    def decrypt(self, ciphertext: bytes, keys: Iterable[DecryptionKey]) -> bytes:
        """Decrypt a payload with the first key that opens a recipient.

        :raises SuitDecryptionError: if no key fits any recipient, or the
            ciphertext fails authentication.
        """
        candidates = list(keys)
        tried = False
        for recipient in self.recipients:
            for key in candidates:
                cose_key = _cwt_key(recipient, key)
                if cose_key is None:
                    continue
                tried = True
                plaintext = self._open(recipient, cose_key, ciphertext)
                if plaintext is not None:
                    return plaintext
        if not tried:
            raise SuitDecryptionError("no decryption key matches any recipient")
        raise SuitDecryptionError("the payload does not decrypt with the device's keys")

    def _open(
        self, recipient: SuitRecipient, key: Any, ciphertext: bytes
    ) -> bytes | None:
        body = cbor.loads(self.raw, tags=frozenset({COSETag.COSE_Encrypt})).value
        # cwt edits headers in place, so it gets a fresh copy each time.
        message = cbor.CBORTag(
            COSETag.COSE_Encrypt,
            [body[0], body[1], ciphertext, [copy.deepcopy(recipient.value)]],
        )
        try:
            plaintext = COSE.new().decode(
                message,
                keys=[key],
                context=_kdf_context(recipient.algorithm, recipient.protected),
                enable_non_aead=self.content_algorithm in _NON_AEAD,
            )
        except Exception:  # cwt raises several types; any means "not this key"
            return None
        return bytes(plaintext)


def _header_map(protected: bytes) -> dict[Any, Any]:
    if not protected:
        return {}
    try:
        value = cbor.loads(protected, tags=())
    except DecodeError as exc:
        raise SuitDecodeError(f"protected header: {exc}") from None
    if not isinstance(value, dict):
        raise SuitDecodeError("a protected header must encode a map")
    return value


def _algorithm(
    protected: dict[Any, Any],
    unprotected: dict[Any, Any],
    known: dict[COSEAlgorithm, int],
    what: str,
) -> COSEAlgorithm:
    if _ALG in protected and _ALG in unprotected:
        raise SuitDecodeError(f"the {what} algorithm appears in both headers")
    alg = protected.get(_ALG, unprotected.get(_ALG))
    if not isinstance(alg, int) or isinstance(alg, bool):
        raise SuitDecodeError(f"the {what} algorithm is missing")
    try:
        parsed = COSEAlgorithm(alg)
    except ValueError:
        parsed = None
    if parsed is None or parsed not in known:
        raise SuitUnsupportedError(
            f"{what} algorithm {alg}", reason=SuitReportReason.alg_unsupported
        )
    return parsed


def _recipient(value: Any) -> SuitRecipient:
    if not (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], bytes)
        and isinstance(value[1], dict)
        and isinstance(value[2], bytes)
    ):
        raise SuitDecodeError("a COSE_recipient must be [bstr, map, bstr]")
    protected = _header_map(value[0])
    alg = _algorithm(protected, value[1], KEY_DISTRIBUTION_ALGORITHMS, "recipient")
    kid = value[1].get(_KID, protected.get(_KID))
    if kid is not None and not isinstance(kid, bytes):
        raise SuitDecodeError("a recipient kid must be a byte string")
    if alg in _ECDH_WRAP:
        if not value[0]:
            raise SuitDecodeError("an ECDH-ES recipient protects its algorithm")
        if not isinstance(value[1].get(_EPHEMERAL), dict):
            raise SuitDecodeError("an ECDH-ES recipient needs an ephemeral key")
    elif value[0]:
        # RFC 9052 8.5.2 (AES Key Wrap): the protected header is empty.
        raise SuitDecodeError("an AES-KW recipient has an empty protected header")
    return SuitRecipient(alg, kid, value[0], value)


def _kdf_context(alg: COSEAlgorithm, protected: bytes) -> list[Any]:
    # firmware-encryption 5.2.2: AlgorithmID is the key-wrap algorithm, not
    # the ECDH one; the parties are unnamed; SuppPubInfo binds the
    # recipient's protected header and the purpose.
    wrap = _ECDH_WRAP.get(alg, COSEAlgorithm.A128KW)
    bits = KEY_DISTRIBUTION_ALGORITHMS[wrap] * 8
    return [int(wrap), [None] * 3, [None] * 3, [bits, protected, KDF_OTHER]]


def _cwt_key(recipient: SuitRecipient, key: DecryptionKey) -> Any:
    """The cwt key that could open ``recipient``, or None if ``key`` cannot."""
    if isinstance(key, SymmetricKEK):
        size = KEY_DISTRIBUTION_ALGORITHMS[recipient.algorithm]
        fits = recipient.algorithm not in _ECDH_WRAP and size == len(key.key)
        # A KEK with an id of its own opens only the recipients that name
        # it, or name nothing.
        named_other = key.kid is not None and recipient.kid not in (None, key.kid)
        if not fits or named_other:
            return None
        alg = int(recipient.algorithm)
        return COSEKey.from_symmetric_key(key.key, alg=alg, kid=recipient.kid or b"")
    private = key.key
    if recipient.algorithm not in _ECDH_WRAP or not isinstance(
        private, ec.EllipticCurvePrivateKey
    ):
        return None
    # Authors name a device key by any id (the drafts use 'kid-2'), so an
    # ECDH key is tried on every ECDH-ES recipient; a wrong one fails the
    # key unwrap's integrity check.
    value = dict(key.public.cose_key())
    value[-4] = private.private_numbers().private_value.to_bytes(32, "big")
    value[3] = int(recipient.algorithm)
    if recipient.kid is not None:
        value[2] = recipient.kid
    return COSEKey.new(value)


def encrypt_payload(
    plaintext: bytes,
    recipients: Sequence[EncryptionRecipient],
    *,
    content_algorithm: COSEAlgorithm = COSEAlgorithm.A128GCM,
) -> tuple[bytes, bytes]:
    """Encrypt a payload under a fresh CEK wrapped for each recipient.

    A device public key gets an ECDH-ES + A128KW recipient named by the
    key's thumbprint; a :class:`SymmetricKEK` an AES-KW recipient named by
    its kid.

    :returns: (the encoded SUIT_Encryption_Info, the detached ciphertext).
    :raises SuitUnsupportedError: for an unsupported algorithm or key.
    :raises ValueError: if ``recipients`` is empty.
    """
    if not recipients:
        raise ValueError("a payload needs at least one recipient")
    if content_algorithm not in CONTENT_ALGORITHMS:
        raise SuitUnsupportedError(
            f"content algorithm {content_algorithm}",
            reason=SuitReportReason.alg_unsupported,
        )
    cek = COSEKey.generate_symmetric_key(alg=int(content_algorithm))
    iv = secrets.token_bytes(_IV_SIZES[content_algorithm])
    if content_algorithm in _NON_AEAD:
        # firmware-encryption 6.2: AES-CTR keeps its algorithm unprotected
        # and the protected header empty.
        protected: dict[int, Any] = {}
        unprotected: dict[int, Any] = {_ALG: int(content_algorithm), _IV: iv}
    else:
        # The content algorithm always goes in the protected header: cwt
        # would otherwise leave it out when an ECDH-ES recipient is present.
        protected, unprotected = {_ALG: int(content_algorithm)}, {_IV: iv}
    encoded = COSE.new().encode(
        plaintext,
        cek,
        protected=protected,
        unprotected=unprotected,
        recipients=[_cwt_recipient(r) for r in recipients],
        enable_non_aead=content_algorithm in _NON_AEAD,
    )
    message = cbor.loads(encoded, tags=frozenset({COSETag.COSE_Encrypt}))
    body = list(message.value)
    ciphertext = body[2]
    body[2] = None
    info = cbor.dumps(cbor.CBORTag(COSETag.COSE_Encrypt, body))
    return info, bytes(ciphertext)


def _cwt_recipient(recipient: EncryptionRecipient) -> Any:
    if isinstance(recipient, SymmetricKEK):
        alg = int(recipient.algorithm)
        header: dict[int, Any] = {_ALG: alg}
        if recipient.kid is not None:
            header[_KID] = recipient.kid
        kek = COSEKey.from_symmetric_key(
            recipient.key, alg=alg, kid=recipient.kid or b""
        )
        return Recipient.new(unprotected=header, sender_key=kek)
    if recipient.kind is not KeyKind.P256:
        raise SuitUnsupportedError(
            "ECDH-ES needs a P-256 recipient key",
            reason=SuitReportReason.alg_unsupported,
        )
    alg = COSEAlgorithm.ECDH_ES_A128KW
    public = COSEKey.new({**recipient.cose_key(), 3: int(alg)})
    protected = cbor.dumps({_ALG: int(alg)})
    return Recipient.new(
        protected={_ALG: int(alg)},
        unprotected={_KID: recipient.kid},
        recipient_key=public,
        context=_kdf_context(alg, protected),
    )
