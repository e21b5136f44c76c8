"""Signing keys: generation, loading, COSE_Key form and RFC 9679 thumbprints.

teep signs with two kinds of key, the two the TEEP MTI cipher suites need:
ECDSA on P-256 (COSE ESP256, -9; legacy ES256, -7) and Ed25519 (COSE Ed25519,
-19; legacy EdDSA, -8).  A key is identified everywhere by its RFC 9679 COSE
Key Thumbprint, which is also the ``kid`` teep puts on what it signs.

A key file is PEM, DER or a COSE_Key.  Where a public key is wanted, an
X.509 certificate also serves: teep takes the public key out of it and does
not validate the certificate or its chain.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from teep import cbor
from teep.errors import KeyLoadError

__all__ = [
    "COSEAlgorithm",
    "KeyKind",
    "PrivateKey",
    "PublicKey",
    "TrustAnchorStore",
    "read_key_file",
]


class COSEAlgorithm(enum.IntEnum):
    """COSE algorithm identifiers used by teep (IANA COSE Algorithms)."""

    A128GCM = 1
    A192GCM = 2
    A256GCM = 3
    A128KW = -3
    A192KW = -4
    A256KW = -5
    ES256 = -7
    EdDSA = -8
    ESP256 = -9
    SHA256 = -16
    Ed25519 = -19
    ECDH_ES_HKDF_256 = -25
    ECDH_ES_A128KW = -29
    ES384 = -35
    A128CTR = -65534
    CHACHA20_POLY1305 = 24


class KeyKind(enum.Enum):
    """The kinds of signing key teep can hold."""

    P256 = "p256"
    ED25519 = "ed25519"

    @property
    def default_alg(self) -> COSEAlgorithm:
        """The fully specified COSE algorithm for this kind of key."""
        if self is KeyKind.P256:
            return COSEAlgorithm.ESP256
        return COSEAlgorithm.Ed25519

    @property
    def algs(self) -> frozenset[COSEAlgorithm]:
        """Every COSE signature algorithm this kind of key can verify."""
        if self is KeyKind.P256:
            return frozenset({COSEAlgorithm.ESP256, COSEAlgorithm.ES256})
        return frozenset({COSEAlgorithm.Ed25519, COSEAlgorithm.EdDSA})

    @classmethod
    def parse(cls, text: str) -> KeyKind:
        """Read a user's spelling: ``p256``/``esp256``/``es256`` or ``ed25519``."""
        name = text.strip().lower().replace("-", "")
        if name in ("p256", "esp256", "es256", "secp256r1", "prime256v1"):
            return cls.P256
        if name in ("ed25519", "eddsa"):
            return cls.ED25519
        raise KeyLoadError(f"unknown key type {text!r} (use p256 or ed25519)")


ALG_KINDS: dict[COSEAlgorithm, KeyKind] = {
    COSEAlgorithm.ESP256: KeyKind.P256,
    COSEAlgorithm.ES256: KeyKind.P256,
    COSEAlgorithm.Ed25519: KeyKind.ED25519,
    COSEAlgorithm.EdDSA: KeyKind.ED25519,
}

_PublicCrypto = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
_PrivateCrypto = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True, eq=False)
class PublicKey:
    """A public signing key, identified by its RFC 9679 thumbprint."""

    key: _PublicCrypto
    """The ``cryptography`` key object."""
    kind: KeyKind
    """Which of the supported kinds it is."""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_crypto(cls, key: Any) -> PublicKey:
        """Wrap a ``cryptography`` public key.

        :raises KeyLoadError: if it is not P-256 or Ed25519.
        """
        if isinstance(key, ed25519.Ed25519PublicKey):
            return cls(key, KeyKind.ED25519)
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(
            key.curve, ec.SECP256R1
        ):
            return cls(key, KeyKind.P256)
        raise KeyLoadError("only P-256 and Ed25519 keys are supported")

    def cose_key(self) -> dict[int, Any]:
        """The COSE_Key map of the public key (RFC 9052/9053 labels)."""
        if isinstance(self.key, ed25519.Ed25519PublicKey):
            raw = self.key.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            return {1: 1, -1: 6, -2: raw}
        numbers = self.key.public_numbers()
        return {
            1: 2,
            -1: 1,
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }

    @property
    def thumbprint(self) -> bytes:
        """RFC 9679 COSE Key Thumbprint with SHA-256 (the key's ``kid``)."""
        cached = self._cache.get("thumbprint")
        if cached is None:
            # RFC 9679 section 3: only the required parameters, deterministic.
            cached = hashlib.sha256(cbor.det_dumps(self.cose_key())).digest()
            self._cache["thumbprint"] = cached
        return bytes(cached)

    @property
    def kid(self) -> bytes:
        """The key id teep uses: the thumbprint."""
        return self.thumbprint

    def to_pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM."""
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def equals(self, other: PublicKey) -> bool:
        """Whether both objects hold the same key."""
        return self.thumbprint == other.thumbprint

    @classmethod
    def from_cose_key(cls, value: Any) -> PublicKey:
        """Build a key from a decoded COSE_Key map.

        :raises KeyLoadError: if the map is not an EC2 P-256 or OKP Ed25519 key.
        """
        if not isinstance(value, dict):
            raise KeyLoadError("a COSE_Key must be a map")
        kty, crv = value.get(1), value.get(-1)
        x = value.get(-2)
        try:
            if kty == 1 and crv == 6 and isinstance(x, bytes):
                return cls(
                    ed25519.Ed25519PublicKey.from_public_bytes(x), KeyKind.ED25519
                )
            y = value.get(-3)
            if kty == 2 and crv == 1 and isinstance(x, bytes) and isinstance(y, bytes):
                if len(x) != 32 or len(y) != 32:
                    raise KeyLoadError("P-256 coordinates must be 32 bytes")
                point = b"\x04" + x + y
                pub = ec.EllipticCurvePublicKey.from_encoded_point(
                    ec.SECP256R1(), point
                )
                return cls(pub, KeyKind.P256)
        except ValueError as exc:
            raise KeyLoadError(f"invalid COSE_Key: {exc}") from None
        raise KeyLoadError("COSE_Key is not an EC2 P-256 or OKP Ed25519 public key")

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKey:
        """Load a public key from PEM, DER (SPKI) or an encoded COSE_Key.

        A private key in any of those forms yields its public half, and an
        X.509 certificate the public key it holds (the certificate is not
        validated).

        :raises KeyLoadError: if nothing usable is found.
        """
        if _is_pem(data):
            for label, der in _pem_blocks(data):
                if label.endswith("PRIVATE KEY"):
                    return PrivateKey.from_der(der).public
                if label.endswith("PUBLIC KEY"):
                    return cls.from_crypto(_der_public_key(der))
                if label in _CERTIFICATE_LABELS:
                    return cls.from_crypto(_certificate_key(der))
            raise KeyLoadError("the PEM file holds no key or certificate")
        try:
            return cls.from_crypto(serialization.load_der_public_key(data))
        except (ValueError, TypeError, UnsupportedAlgorithm):
            pass
        if _is_der_certificate(data):
            return cls.from_crypto(_certificate_key(data))
        try:
            value = cbor.loads(data)
        except cbor.CBORDecodeError:
            raise KeyLoadError("not a PEM, DER or COSE_Key public key") from None
        return cls.from_cose_key(value)

    @classmethod
    def load(cls, path: str | Path) -> PublicKey:
        """Load a public key file (see :meth:`from_bytes`).

        :raises KeyLoadError: if the file cannot be read or parsed.
        """
        return cls.from_bytes(read_key_file(path))


@dataclass(frozen=True, eq=False)
class PrivateKey:
    """A private signing key and its public half."""

    key: _PrivateCrypto
    """The ``cryptography`` key object."""
    public: PublicKey
    """The matching public key."""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def generate(cls, kind: KeyKind = KeyKind.P256) -> PrivateKey:
        """Make a fresh key of the given kind."""
        key: _PrivateCrypto
        if kind is KeyKind.P256:
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            key = ed25519.Ed25519PrivateKey.generate()
        return cls.from_crypto(key)

    @classmethod
    def from_crypto(cls, key: Any) -> PrivateKey:
        """Wrap a ``cryptography`` private key.

        :raises KeyLoadError: if it is not P-256 or Ed25519.
        """
        if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise KeyLoadError("only P-256 and Ed25519 keys are supported")
        return cls(key, PublicKey.from_crypto(key.public_key()))

    @property
    def kind(self) -> KeyKind:
        """The kind of key."""
        return self.public.kind

    @property
    def kid(self) -> bytes:
        """The RFC 9679 thumbprint of the public key."""
        return self.public.thumbprint

    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PrivateKey:
        """Load a private key from PEM or DER (PKCS#8, SEC1).

        An ``EC PARAMETERS`` block before the key (``openssl ecparam
        -genkey`` writes one) is skipped.

        :raises KeyLoadError: if the bytes hold no usable private key.
        """
        if not _is_pem(data):
            if _is_der_certificate(data):
                raise KeyLoadError(_NO_PRIVATE_IN_CERTIFICATE)
            return cls.from_der(data)
        labels = []
        for label, der in _pem_blocks(data):
            if label.endswith("PRIVATE KEY"):
                return cls.from_der(der)
            labels.append(label)
        if any(label in _CERTIFICATE_LABELS for label in labels):
            raise KeyLoadError(_NO_PRIVATE_IN_CERTIFICATE)
        if any(label.endswith("PUBLIC KEY") for label in labels):
            raise KeyLoadError("the file holds a public key; a private key is needed")
        raise KeyLoadError("the PEM file holds no private key")

    @classmethod
    def from_der(cls, der: bytes) -> PrivateKey:
        """Load an unencrypted DER private key (PKCS#8 or SEC1).

        :raises KeyLoadError: if it is not one, or not P-256 or Ed25519.
        """
        try:
            key = serialization.load_der_private_key(der, password=None)
        except TypeError:
            raise KeyLoadError(_ENCRYPTED) from None
        except UnsupportedAlgorithm:
            raise KeyLoadError("only P-256 and Ed25519 keys are supported") from None
        except ValueError:
            raise KeyLoadError(
                "unreadable private key (not an unencrypted PKCS#8 or SEC1 key)"
            ) from None
        return cls.from_crypto(key)

    @classmethod
    def load(cls, path: str | Path) -> PrivateKey:
        """Load a private key file.

        :raises KeyLoadError: if the file cannot be read or parsed.
        """
        return cls.from_bytes(read_key_file(path))

    def save(self, path: str | Path) -> None:
        """Write the key as PEM, readable by the owner only."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_bytes(self.to_pem())
        tmp.chmod(0o600)
        tmp.replace(target)


class TrustAnchorStore:
    """A set of trusted public keys, looked up by thumbprint."""

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        self._keys: dict[bytes, PublicKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: PublicKey) -> None:
        """Trust a key."""
        self._keys[key.thumbprint] = key

    def remove(self, thumbprint: bytes) -> None:
        """Stop trusting the key with this thumbprint (no error if absent)."""
        self._keys.pop(thumbprint, None)

    def get(self, thumbprint: bytes) -> PublicKey | None:
        """The trusted key with this thumbprint, if any."""
        return self._keys.get(thumbprint)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, PublicKey) and key.thumbprint in self._keys

    def __iter__(self) -> Iterator[PublicKey]:
        return iter(list(self._keys.values()))

    def __len__(self) -> int:
        return len(self._keys)

    @classmethod
    def load_dir(cls, path: str | Path) -> TrustAnchorStore:
        """Trust every key file (``*.pem``, ``*.cose``) in a folder.

        :raises KeyLoadError: if a file in it cannot be parsed.
        """
        store = cls()
        folder = Path(path)
        if folder.is_dir():
            for item in sorted(folder.iterdir()):
                if item.suffix in (".pem", ".cose", ".der"):
                    store.add(PublicKey.load(item))
        return store


_CERTIFICATE_LABELS = ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE")
_NO_PRIVATE_IN_CERTIFICATE = (
    "a certificate holds no private key: give the private key file"
)
_ENCRYPTED = (
    "the private key is encrypted: teep reads unencrypted keys only"
    " (openssl pkey -in KEY -out PLAIN.pem)"
)
_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL
)


def _is_pem(data: bytes) -> bool:
    return b"-----BEGIN " in data


def _pem_blocks(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Each PEM block's label and DER bytes, in file order.

    ``EC PARAMETERS`` blocks are skipped; the key itself is read from its
    bytes, whatever its label says (some tools put PKCS#8 under ``EC
    PRIVATE KEY``).

    :raises KeyLoadError: for an encrypted key or a block that is not base64.
    """
    for match in _PEM_BLOCK.finditer(data):
        label = match.group(1).decode("ascii")
        body = match.group(2)
        if label == "EC PARAMETERS":
            continue
        if "ENCRYPTED" in label or b"Proc-Type:" in body:
            raise KeyLoadError(_ENCRYPTED)
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            raise KeyLoadError(f"the PEM {label} block is not valid base64") from None
        yield label, der


def _der_public_key(der: bytes) -> Any:
    try:
        return serialization.load_der_public_key(der)
    except UnsupportedAlgorithm:
        raise KeyLoadError("only P-256 and Ed25519 keys are supported") from None
    except (ValueError, TypeError):
        raise KeyLoadError("unreadable PEM public key") from None


def _is_der_certificate(data: bytes) -> bool:
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        return False
    return True


def _certificate_key(der: bytes) -> Any:
    """The public key of a DER certificate (which is not validated)."""
    try:
        return x509.load_der_x509_certificate(der).public_key()
    except ValueError:
        raise KeyLoadError("unreadable certificate") from None
    except UnsupportedAlgorithm:
        raise KeyLoadError("only P-256 and Ed25519 keys are supported") from None


def read_key_file(path: str | Path) -> bytes:
    """The bytes of a key file.

    :raises KeyLoadError: if it cannot be read.
    """
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyLoadError(f"cannot read key file {path}: {exc.strerror}") from None
