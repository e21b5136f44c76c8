"""Signing keys: generation, loading, COSE_Key form and RFC 9679 thumbprints.

teep signs with two kinds of key, the two the TEEP MTI cipher suites need:
ECDSA on P-256 (COSE ESP256, -9; legacy ES256, -7) and Ed25519 (COSE Ed25519,
-19; legacy EdDSA, -8).  A key is identified everywhere by its RFC 9679 COSE
Key Thumbprint, which is also the ``kid`` teep puts on what it signs.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

        A private key in any of those forms yields its public half.

        :raises KeyLoadError: if nothing usable is found.
        """
        stripped = data.lstrip()
        if stripped.startswith(b"-----BEGIN"):
            if b"PRIVATE KEY" in stripped:
                return PrivateKey.from_bytes(data).public
            try:
                return cls.from_crypto(serialization.load_pem_public_key(data))
            except ValueError as exc:
                raise KeyLoadError(f"unreadable PEM public key: {exc}") from None
        try:
            return cls.from_crypto(serialization.load_der_public_key(data))
        except (ValueError, TypeError):
            pass
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
        return cls.from_bytes(_read(path))


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

        :raises KeyLoadError: if the bytes hold no usable private key.
        """
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                key = serialization.load_pem_private_key(data, password=None)
            else:
                key = serialization.load_der_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyLoadError(f"unreadable private key: {exc}") from None
        return cls.from_crypto(key)

    @classmethod
    def load(cls, path: str | Path) -> PrivateKey:
        """Load a private key file.

        :raises KeyLoadError: if the file cannot be read or parsed.
        """
        return cls.from_bytes(_read(path))

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


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyLoadError(f"cannot read key file {path}: {exc.strerror}") from None
