"""The simulated TEE's component store, and sealed files in general.

A :class:`SealedComponentStore` keeps Trusted Components and the manifests
that installed them in a folder::

    index.sealed           component id -> file; the manifests held
    blobs/<sha256>.blob    one sealed stream per component version or envelope
    store.lock             serialises transactions across processes

The index is the single point of truth: a transaction writes new blob files
beside the old ones and commits by replacing the index with ``os.replace``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from teep import cbor
from teep.device.sealing import Sealer, SealError, atomic_write, fsync_dir
from teep.errors import StoreError
from teep.suit.store import ComponentId, InstalledManifest, StoreTransaction

__all__ = ["SealedComponentStore", "SealedFile", "cid_of", "locked"]

log = logging.getLogger("teep.tee")

_FORMAT = 1
# Sealed state is authenticated, so these limits only guard against bugs;
# they are wide enough for a device holding many manifests.
_LIMITS = cbor.CBORLimits(max_depth=16, max_items=10_000_000)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (other processes wait)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot lock {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class SealedFile:
    """One CBOR value kept sealed in one file, replaced atomically."""

    def __init__(self, sealer: Sealer, path: Path, label: bytes) -> None:
        self._sealer = sealer
        self.path = path
        self._label = label

    def load(self, default: Any) -> Any:
        """The stored value, or ``default`` if the file does not exist.

        :raises SealError: if the file was tampered with.
        :raises StoreError: if it cannot be read or does not decode.
        """
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return default
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror}") from None
        plain = self._sealer.unseal(blob, label=self._label)
        try:
            return cbor.loads(plain, tags=(), limits=_LIMITS)
        except cbor.CBORDecodeError as exc:
            raise StoreError(f"{self.path.name} is corrupt: {exc}") from None

    def save(self, value: Any) -> None:
        """Seal and write ``value`` (atomically).

        :raises StoreError: if it cannot be written.
        """
        atomic_write(self.path, self._sealer.seal(cbor.dumps(value), label=self._label))


@dataclass(frozen=True)
class _ManifestEntry:
    sequence_number: int
    envelope_blob: str
    components: tuple[ComponentId, ...]


@dataclass(frozen=True)
class _Index:
    components: dict[ComponentId, str]
    manifests: dict[ComponentId, _ManifestEntry]

    def blobs(self) -> set[str]:
        names = set(self.components.values())
        names.update(entry.envelope_blob for entry in self.manifests.values())
        return names


_EMPTY_INDEX = _Index({}, {})
_BLOB_SUFFIX = ".blob"
_STAGING_SUFFIX = ".part"


def _component_label(component_id: ComponentId) -> bytes:
    return b"teep-tee component\x00" + cbor.det_dumps(list(component_id))


def _envelope_label(manifest_id: ComponentId) -> bytes:
    return b"teep-tee envelope\x00" + cbor.det_dumps(list(manifest_id))


class _HashingWriter:
    """Passes writes to a file and hashes them on the way."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self._handle.write(data)


class SealedComponentStore:
    """A :class:`~teep.suit.store.ComponentStore` sealed on disk.

    Each version of each component (and each manifest's envelope) is one
    sealed file in ``blobs/``, named by the SHA-256 of its sealed bytes.
    A sealed index maps component ids to those names and lists the
    manifests.  A transaction writes new files next to the old ones and
    commits by replacing the index with ``os.replace``, the single atomic
    step: before it the old index rules, after it the new one.  Files the
    index no longer names are deleted afterwards, and any left by a crash
    are deleted the next time the store is opened.
    """

    def __init__(self, folder: str | Path, sealer: Sealer) -> None:
        """Open (creating if needed) the store in ``folder``.

        :raises StoreError: if the folder cannot be prepared.
        """
        self._folder = Path(folder)
        self._blobs = self._folder / "blobs"
        self._sealer = sealer
        try:
            self._blobs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {self._blobs}: {exc.strerror}") from None
        self._index_file = SealedFile(
            sealer, self._folder / "index.sealed", b"teep-tee component index"
        )
        self._lock_path = self._folder / "store.lock"
        self._index = _EMPTY_INDEX
        self._index_stamp: tuple[int, int, int] | None = None
        self._envelopes: dict[str, bytes] = {}
        self._open_transaction = False
        self._collect_if_idle()

    # -- reading

    def manifests(self) -> list[InstalledManifest]:
        """Every manifest the device holds.

        :raises StoreError: if the sealed state cannot be read.
        """
        index = self._current()
        return [self._installed(mid, entry) for mid, entry in index.manifests.items()]

    def manifest(self, manifest_component_id: ComponentId) -> InstalledManifest | None:
        """The manifest with this id, if held.

        :raises StoreError: if the sealed state cannot be read.
        """
        entry = self._current().manifests.get(manifest_component_id)
        return None if entry is None else self._installed(manifest_component_id, entry)

    def read(self, component_id: ComponentId) -> bytes | None:
        """A component's committed content, if present.

        :raises StoreError: if the sealed state cannot be read or was
            tampered with (:class:`~teep.device.sealing.SealError`).
        """
        name = self._current().components.get(component_id)
        if name is None:
            return None
        return self._read_blob(name, _component_label(component_id))

    def component_ids(self) -> list[ComponentId]:
        """The ids of every component present."""
        return list(self._current().components)

    # -- changing

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """Open a transaction; it commits when the block ends without an
        exception and is abandoned otherwise.

        Transactions are serialised across processes by a file lock.

        :raises StoreError: on a nested transaction, or if the commit fails
            (the store then keeps its previous state).
        """
        if self._open_transaction:
            raise StoreError("a transaction is already open on this store")
        self._open_transaction = True
        try:
            with locked(self._lock_path):
                txn = _DiskTransaction(self, self._current())
                try:
                    yield txn
                    self._commit(txn)
                except BaseException:
                    self._discard(txn.staged)
                    raise
                self._collect()
        finally:
            self._open_transaction = False

    def _commit(self, txn: _DiskTransaction) -> None:
        # The staged files must be on disk before an index that names them.
        fsync_dir(self._blobs)
        new = _Index(dict(txn.components), dict(txn.manifests))
        self._index_file.save(_encode_index(new))
        self._index, self._index_stamp = new, self._stamp()
        log.debug(
            "component store committed: %d components, %d manifests",
            len(new.components),
            len(new.manifests),
        )

    def _discard(self, names: Iterable[str]) -> None:
        # If the failure came after the index switch (say, while flushing
        # the directory), the staged files are live: keep what it names.
        # If the index cannot even be read, delete nothing; the next open
        # cleans up.
        try:
            keep = self._current().blobs()
        except StoreError:
            return
        for name in set(names) - keep:
            (self._blobs / name).unlink(missing_ok=True)

    def _collect(self) -> None:
        """Delete every blob the index does not name, and leftovers of
        interrupted writes.  Caller holds the lock."""
        keep = self._current().blobs()
        try:
            for item in self._blobs.iterdir():
                if item.name not in keep:
                    item.unlink(missing_ok=True)
            for item in self._folder.glob(".index.sealed.*.tmp"):
                item.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not clean the component store: %s", exc.strerror)

    def _collect_if_idle(self) -> None:
        # Another process may be in the middle of a transaction: its staged
        # files look unreferenced, so clean only if nobody holds the lock.
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot lock {self._lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return
        try:
            self._collect()
        finally:
            os.close(fd)

    # -- blobs

    def write_blob(self, chunks: Iterable[bytes], label: bytes) -> str:
        """Seal ``chunks`` into a new blob file; return its name."""
        part = self._blobs / (secrets.token_hex(16) + _STAGING_SUFFIX)
        try:
            with open(part, "xb") as handle:
                writer = _HashingWriter(handle)
                self._sealer.seal_stream(chunks, writer, label=label)
                handle.flush()
                os.fsync(handle.fileno())
            name = writer.digest.hexdigest() + _BLOB_SUFFIX
            os.rename(part, self._blobs / name)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise StoreError(
                f"cannot write a component: {exc.strerror or exc}"
            ) from None
        return name

    def _read_blob(self, name: str, label: bytes) -> bytes:
        path = self._blobs / name
        try:
            sealed = path.read_bytes()
        except OSError as exc:
            raise StoreError(
                f"component file {name} unreadable: {exc.strerror}"
            ) from None
        # The name is the hash of the sealed bytes: an older sealed version
        # of the same component, put in its place, is refused.
        if hashlib.sha256(sealed).hexdigest() + _BLOB_SUFFIX != name:
            raise SealError(f"component file {name} does not match its name")
        return b"".join(self._sealer.unseal_stream(io.BytesIO(sealed), label=label))

    def _installed(
        self, manifest_id: ComponentId, entry: _ManifestEntry
    ) -> InstalledManifest:
        envelope = self._envelopes.get(entry.envelope_blob)
        if envelope is None:
            envelope = self._read_blob(
                entry.envelope_blob, _envelope_label(manifest_id)
            )
            self._envelopes[entry.envelope_blob] = envelope
        return InstalledManifest(
            manifest_id, entry.sequence_number, envelope, entry.components
        )

    # -- index

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            info = self._index_file.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(
                f"cannot read the component index: {exc.strerror}"
            ) from None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def _current(self) -> _Index:
        """The committed index, re-read if another process replaced it."""
        stamp = self._stamp()
        if stamp != self._index_stamp:
            self._index = _decode_index(self._index_file.load(None))
            self._index_stamp = stamp
        return self._index


class _DiskTransaction:
    """A :class:`~teep.suit.store.StoreTransaction` over the sealed store."""

    def __init__(self, store: SealedComponentStore, index: _Index) -> None:
        self._store = store
        self.components = dict(index.components)
        self.manifests = dict(index.manifests)
        self.staged: list[str] = []

    def read(self, component_id: ComponentId) -> bytes | None:
        name = self.components.get(component_id)
        if name is None:
            return None
        return self._store._read_blob(name, _component_label(component_id))

    def write(self, component_id: ComponentId, chunks: Iterable[bytes]) -> None:
        name = self._store.write_blob(chunks, _component_label(component_id))
        self.staged.append(name)
        self.components[component_id] = name

    def unlink(self, component_id: ComponentId) -> None:
        self.components.pop(component_id, None)

    def record_manifest(self, manifest: InstalledManifest) -> None:
        mid = manifest.manifest_component_id
        name = self._store.write_blob([manifest.envelope], _envelope_label(mid))
        self.staged.append(name)
        self.manifests[mid] = _ManifestEntry(
            manifest.sequence_number, name, tuple(manifest.components)
        )

    def remove_manifest(self, manifest_component_id: ComponentId) -> None:
        self.manifests.pop(manifest_component_id, None)


def _encode_index(index: _Index) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "components": [[list(cid), name] for cid, name in index.components.items()],
        "manifests": [
            [
                list(mid),
                e.sequence_number,
                e.envelope_blob,
                [list(c) for c in e.components],
            ]
            for mid, e in index.manifests.items()
        ],
    }


def _decode_index(value: Any) -> _Index:
    if value is None:
        return _EMPTY_INDEX
    try:
        components = {cid_of(cid): str(name) for cid, name in value["components"]}
        manifests = {
            cid_of(mid): _ManifestEntry(
                int(seq), str(name), tuple(cid_of(c) for c in comps)
            )
            for mid, seq, name, comps in value["manifests"]
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"the component index is corrupt: {exc}") from None
    return _Index(components, manifests)


def cid_of(value: Any) -> ComponentId:
    if not isinstance(value, list) or not all(isinstance(p, bytes) for p in value):
        raise TypeError("component id is not a list of byte strings")
    return tuple(value)
