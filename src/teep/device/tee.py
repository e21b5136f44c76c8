"""The simulated TEE: the device's TEE backend, kept in a folder.

Layout of the folder (everything but ``fuse.key`` is sealed, see
:mod:`teep.device.sealing`)::

    fuse.key               the sealing key, readable by the owner only
    identity.sealed        Agent key, attestation key, UEID, OEM and model ids
    trust.sealed           trusted TAM keys (per TAM URI) and TC signer keys
    settings.sealed        the Agent's settings
    requests.sealed        the Agent's requested and unneeded lists
    tee.lock               serialises read-modify-write of the files above
    components/            the component store
                           (:class:`~teep.device.sealed_store.SealedComponentStore`)

The Agent keeps its protocol state here and nowhere else, so a real TEE can
replace this class behind the same methods.  A note on what the simulation
cannot give: a copy of the folder taken earlier can be put back (rollback);
a real TEE would bind its state to a monotonic counter.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teep.device.sealed_store import SealedComponentStore, SealedFile, cid_of, locked
from teep.device.sealing import FUSE_KEY_FILE, Sealer
from teep.errors import ConfigError, KeyLoadError, StoreError
from teep.keys import KeyKind, PrivateKey, PublicKey
from teep.suit.store import ComponentId

__all__ = ["SealedComponentStore", "SimulatedTEE"]

log = logging.getLogger("teep.tee")

_IDENTITY = "identity.sealed"
_TRUST = "trust.sealed"
_SETTINGS = "settings.sealed"
_REQUESTS = "requests.sealed"
_KEK = "kek.sealed"
_LOCK = "tee.lock"
_COMPONENTS = "components"
_FORMAT = 1
_UEID_RAND = 0x01
"""EAT UEID type byte for a random identifier (RFC 9711 section 4.2.1)."""


@dataclass(frozen=True)
class _Identity:
    agent_key: PrivateKey
    attestation_key: PrivateKey
    ueid: bytes
    oemid: bytes
    hwmodel: bytes
    hwversion: str

    def encode(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "agent_key": self.agent_key.to_pem(),
            "attestation_key": self.attestation_key.to_pem(),
            "ueid": self.ueid,
            "oemid": self.oemid,
            "hwmodel": self.hwmodel,
            "hwversion": self.hwversion,
        }

    @classmethod
    def decode(cls, value: Any) -> _Identity:
        try:
            return cls(
                PrivateKey.from_bytes(value["agent_key"]),
                PrivateKey.from_bytes(value["attestation_key"]),
                bytes(value["ueid"]),
                bytes(value["oemid"]),
                bytes(value["hwmodel"]),
                str(value["hwversion"]),
            )
        except (KeyError, TypeError, ValueError, KeyLoadError) as exc:
            raise StoreError(f"the TEE identity is corrupt: {exc}") from None


class SimulatedTEE:
    """The device's TEE, simulated in a folder.

    It holds the Agent's TEEP signing key and a separate attestation key,
    the device identity claims (UEID, OEM id, hardware model and version),
    the trust anchors, the Agent's settings and request lists, and the
    installed Trusted Components; all of it sealed at rest.  Open the same
    folder again, in this process or another, and everything is there.
    """

    def __init__(self, path: Path, sealer: Sealer, identity: _Identity) -> None:
        """Use :meth:`create` or :meth:`open`."""
        self._path = path
        self._sealer = sealer
        self._identity = identity
        self._trust = SealedFile(sealer, path / _TRUST, b"teep-tee trust anchors")
        self._settings = SealedFile(sealer, path / _SETTINGS, b"teep-tee settings")
        self._requests = SealedFile(sealer, path / _REQUESTS, b"teep-tee requests")
        self._components = SealedComponentStore(path / _COMPONENTS, sealer)

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        key_kind: KeyKind = KeyKind.P256,
        oemid: bytes,
        hwmodel: bytes,
        hwversion: str,
    ) -> SimulatedTEE:
        """Make a new TEE in ``path`` with fresh keys and a fresh UEID.

        :param key_kind: kind of both the Agent key and the attestation key.
        :param oemid: the EAT ``oemid`` claim value.
        :param hwmodel: the EAT ``hwmodel`` claim value.
        :param hwversion: the EAT ``hwversion`` claim value.
        :raises ConfigError: if ``path`` exists and is not an empty folder.
        :raises StoreError: if the folder cannot be written.
        """
        folder = Path(path)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise ConfigError(f"{folder} already exists and is not empty")
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {folder}: {exc.strerror}") from None
        identity = _Identity(
            agent_key=PrivateKey.generate(key_kind),
            attestation_key=PrivateKey.generate(key_kind),
            ueid=bytes([_UEID_RAND]) + secrets.token_bytes(32),
            oemid=bytes(oemid),
            hwmodel=bytes(hwmodel),
            hwversion=hwversion,
        )
        sealer = Sealer.open(folder)
        _identity_file(sealer, folder).save(identity.encode())
        log.info(
            "created a simulated TEE in %s (ueid %s)", folder, identity.ueid.hex()[:16]
        )
        return cls(folder, sealer, identity)

    @classmethod
    def open(cls, path: str | Path) -> SimulatedTEE:
        """Open the TEE kept in ``path``.

        :raises ConfigError: if there is no TEE there.
        :raises StoreError: if its state cannot be read or was tampered with.
        """
        folder = Path(path)
        if not (folder / _IDENTITY).is_file():
            raise ConfigError(f"no TEE in {folder} (create one first)")
        if not (folder / FUSE_KEY_FILE).is_file():
            raise StoreError(
                f"the sealing key {FUSE_KEY_FILE} is missing from {folder}"
            )
        sealer = Sealer.open(folder)
        identity = _Identity.decode(_identity_file(sealer, folder).load(None))
        return cls(folder, sealer, identity)

    # -- identity

    @property
    def path(self) -> Path:
        """The folder the TEE lives in."""
        return self._path

    @property
    def agent_key(self) -> PrivateKey:
        """The TEEP Agent's signing key."""
        return self._identity.agent_key

    @property
    def attestation_key(self) -> PrivateKey:
        """The key the TEE signs Evidence with (not the Agent key)."""
        return self._identity.attestation_key

    @property
    def kek(self) -> PrivateKey:
        """The P-256 key that encrypted payloads are wrapped for (SUIT
        ECDH-ES + A128KW); made on first use and kept sealed.

        :raises StoreError: if the sealed key cannot be read or written.
        """
        sealed = SealedFile(self._sealer, self._path / _KEK, b"teep-tee payload kek")
        with self._locked():
            pem = sealed.load(None)
            if pem is None:
                key = PrivateKey.generate(KeyKind.P256)
                sealed.save(key.to_pem())
                return key
        try:
            return PrivateKey.from_bytes(bytes(pem))
        except (TypeError, KeyLoadError) as exc:
            raise StoreError(f"the sealed payload key is corrupt: {exc}") from None

    @property
    def ueid(self) -> bytes:
        """The device's UEID: 0x01 (RAND) followed by 32 random bytes."""
        return self._identity.ueid

    @property
    def oemid(self) -> bytes:
        """The EAT oemid claim."""
        return self._identity.oemid

    @property
    def hwmodel(self) -> bytes:
        """The EAT hwmodel claim."""
        return self._identity.hwmodel

    @property
    def hwversion(self) -> str:
        """The EAT hwversion claim."""
        return self._identity.hwversion

    @property
    def components(self) -> SealedComponentStore:
        """The installed Trusted Components and their manifests."""
        return self._components

    # -- trust anchors

    def trusted_tam_keys(self, tam_uri: str | None = None) -> list[PublicKey]:
        """The TAM keys the Agent trusts.

        :param tam_uri: when given, the keys trusted for that TAM: those
            added for this URI and those added for any TAM (``None``).
            When ``None``, every trusted TAM key.
        :raises StoreError: if the sealed state cannot be read.
        """
        found: dict[bytes, PublicKey] = {}
        for uri, key in self._tam_entries():
            if tam_uri is None or uri is None or uri == tam_uri:
                found.setdefault(key.thumbprint, key)
        return list(found.values())

    def add_tam_key(self, public: PublicKey, tam_uri: str | None = None) -> None:
        """Trust ``public`` as the key of the TAM at ``tam_uri`` (any TAM if None).

        :raises StoreError: if the sealed state cannot be written.
        """
        with self._locked():
            doc = self._trust_doc()
            entry = [tam_uri, public.cose_key()]
            if not any(_same_tam_entry(item, tam_uri, public) for item in doc["tam"]):
                doc["tam"].append(entry)
            self._trust.save(doc)

    def remove_tam_key(
        self, key: PublicKey | bytes, tam_uri: str | None = None
    ) -> None:
        """Stop trusting a TAM key (given as a key or its thumbprint).

        :param tam_uri: remove only the entry for this URI; ``None`` removes
            the key wherever it appears.
        :raises StoreError: if the sealed state cannot be written.
        """
        thumbprint = key.thumbprint if isinstance(key, PublicKey) else key
        with self._locked():
            doc = self._trust_doc()
            doc["tam"] = [
                item
                for item in doc["tam"]
                if not (
                    _thumbprint(item[1]) == thumbprint
                    and (tam_uri is None or item[0] == tam_uri)
                )
            ]
            self._trust.save(doc)

    def trusted_signer_keys(self) -> list[PublicKey]:
        """The keys trusted to sign Trusted Components (SUIT manifests).

        :raises StoreError: if the sealed state cannot be read.
        """
        return [_public(item) for item in self._trust_doc()["signers"]]

    def add_signer_key(self, public: PublicKey) -> None:
        """Trust ``public`` to sign Trusted Components.

        :raises StoreError: if the sealed state cannot be written.
        """
        with self._locked():
            doc = self._trust_doc()
            if all(_thumbprint(item) != public.thumbprint for item in doc["signers"]):
                doc["signers"].append(public.cose_key())
            self._trust.save(doc)

    def remove_signer_key(self, key: PublicKey | bytes) -> None:
        """Stop trusting a TC signer key (given as a key or its thumbprint).

        :raises StoreError: if the sealed state cannot be written.
        """
        thumbprint = key.thumbprint if isinstance(key, PublicKey) else key
        with self._locked():
            doc = self._trust_doc()
            doc["signers"] = [s for s in doc["signers"] if _thumbprint(s) != thumbprint]
            self._trust.save(doc)

    def _trust_doc(self) -> dict[str, list[Any]]:
        doc = self._trust.load({"tam": [], "signers": []})
        if not isinstance(doc, dict) or not all(
            isinstance(doc.get(k), list) for k in ("tam", "signers")
        ):
            raise StoreError("the sealed trust anchors are corrupt")
        return doc

    def _tam_entries(self) -> list[tuple[str | None, PublicKey]]:
        entries = []
        for item in self._trust_doc()["tam"]:
            if not isinstance(item, list) or len(item) != 2:
                raise StoreError("the sealed trust anchors are corrupt")
            entries.append((item[0], _public(item[1])))
        return entries

    # -- Agent settings and request lists

    @property
    def settings(self) -> dict[str, Any]:
        """The Agent's settings (a copy; assign to change them).

        Values must be CBOR-encodable (str, bytes, int, bool, None, lists
        and maps of those).

        :raises StoreError: if the sealed state cannot be read.
        """
        value = self._settings.load({})
        if not isinstance(value, dict):
            raise StoreError("the sealed settings are corrupt")
        return value

    @settings.setter
    def settings(self, value: dict[str, Any]) -> None:
        if not all(isinstance(key, str) for key in value):
            raise ConfigError("setting names must be strings")
        with self._locked():
            self._settings.save(dict(value))

    def get_setting(self, name: str, default: Any = None) -> Any:
        """One setting, or ``default``."""
        return self.settings.get(name, default)

    def set_setting(self, name: str, value: Any) -> None:
        """Change one setting (``None`` removes it).

        :raises StoreError: if the sealed state cannot be written.
        """
        with self._locked():
            current = self.settings
            if value is None:
                current.pop(name, None)
            else:
                current[name] = value
            self._settings.save(current)

    @property
    def requested(self) -> list[ComponentId]:
        """Components the Agent was asked to obtain (RequestTA)."""
        return self._request_list("requested")

    @requested.setter
    def requested(self, value: Iterable[ComponentId]) -> None:
        self._set_request_list("requested", value)

    @property
    def unneeded(self) -> list[ComponentId]:
        """Manifests the Agent was asked to have removed (UnrequestTA)."""
        return self._request_list("unneeded")

    @unneeded.setter
    def unneeded(self, value: Iterable[ComponentId]) -> None:
        self._set_request_list("unneeded", value)

    def _request_list(self, name: str) -> list[ComponentId]:
        doc = self._requests.load({})
        try:
            return [cid_of(item) for item in doc.get(name, [])]
        except (AttributeError, TypeError):
            raise StoreError("the sealed request lists are corrupt") from None

    def _set_request_list(self, name: str, value: Iterable[ComponentId]) -> None:
        items = [list(cid) for cid in value]
        with self._locked():
            doc = self._requests.load({})
            if not isinstance(doc, dict):
                raise StoreError("the sealed request lists are corrupt")
            doc[name] = items
            self._requests.save(doc)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return locked(self._path / _LOCK)


def _identity_file(sealer: Sealer, folder: Path) -> SealedFile:
    return SealedFile(sealer, folder / _IDENTITY, b"teep-tee identity")


def _public(cose_key: Any) -> PublicKey:
    try:
        return PublicKey.from_cose_key(cose_key)
    except KeyLoadError as exc:
        raise StoreError(f"a sealed trust anchor is corrupt: {exc}") from None


def _thumbprint(cose_key: Any) -> bytes:
    return _public(cose_key).thumbprint


def _same_tam_entry(item: Any, tam_uri: str | None, public: PublicKey) -> bool:
    return bool(item[0] == tam_uri and _thumbprint(item[1]) == public.thumbprint)
