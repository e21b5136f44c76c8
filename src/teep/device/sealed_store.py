"""The simulated TEE's component store, and sealed files in general.

A :class:`SealedComponentStore` keeps Trusted Components and the manifests
that installed them in a folder::

    index.sealed           component id -> stream id; the manifests held
    blobs/<stream id>.blob one sealed stream per component version or envelope
    store.lock             serialises transactions across processes

The index is the single point of truth: a transaction writes new blob files
beside the old ones and commits by replacing the index with ``os.replace``.
A blob is named by the random 128-bit id of the sealed stream it holds.
That id is part of the associated data of every record, next to the id of
the component (or manifest) the blob belongs to, and the index records it:
a blob moved to another component, cut short, reordered or replaced by an
older version of itself fails to open.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import mmap
import os
import queue
import secrets
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teep import cbor
from teep.device.sealing import Sealer, atomic_write, fsync_dir
from teep.errors import StoreError, reason
from teep.suit.store import ComponentId, InstalledManifest, StoreTransaction

__all__ = ["SealedComponentStore", "SealedFile", "cid_of", "locked"]

log = logging.getLogger("teep.tee")

_FORMAT = 2
"""Version of the sealed index (2: blobs named by stream id)."""
_STREAM_ID_SIZE = 16
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
    envelope_stream: bytes
    components: tuple[ComponentId, ...]


@dataclass(frozen=True)
class _Index:
    components: dict[ComponentId, bytes]
    manifests: dict[ComponentId, _ManifestEntry]

    def blobs(self) -> set[str]:
        """The file names of every blob this index refers to."""
        streams = set(self.components.values())
        streams.update(entry.envelope_stream for entry in self.manifests.values())
        return {_blob_name(stream) for stream in streams}


_EMPTY_INDEX = _Index({}, {})
_BLOB_SUFFIX = ".blob"


def _blob_name(stream_id: bytes) -> str:
    return stream_id.hex() + _BLOB_SUFFIX


def _component_label(component_id: ComponentId) -> bytes:
    return b"teep-tee component\x00" + cbor.det_dumps(list(component_id))


def _envelope_label(manifest_id: ComponentId) -> bytes:
    return b"teep-tee envelope\x00" + cbor.det_dumps(list(manifest_id))


class _BlobWriter:
    """Writes a sealed stream to a new file, from threads of its own.

    The sealer seals each record straight into a page-aligned buffer (this
    is a :class:`~teep.device.sealing.RecordSink`); a full buffer goes to
    a writing thread, which writes it while the caller seals what comes
    next (a write lets go of the GIL, so they overlap).  The threads write
    with ``O_DIRECT`` where the file system allows it: the disk then takes
    the content straight from the buffer, which spares a copy into the
    page cache and that cache's memory, and the final fsync waits only for
    the device.  Content smaller than one buffer is written by
    :meth:`finish` in the caller's thread, with no thread at all.
    """

    _BUFFER_SIZE = 1 << 20
    """Bytes per buffer, so per write; several sealed records fit.  Small
    buffers start the disk sooner and leave less to wait for at the end,
    but cost more hand-overs and smaller writes (bench_suit measured
    512 KiB to 8 MiB; 1 MiB was fastest)."""
    _BUFFERS = 4
    """At most this many buffers: one filling, the others waiting or
    being written."""
    _WRITERS = 2
    """Writing threads: two keep the disk busy while one waits for the
    GIL or a core."""
    _ALIGN = 4096
    """What O_DIRECT wants file offsets and sizes to be multiples of."""

    def __init__(self, path: Path) -> None:
        """Create ``path``, which must not exist.

        :raises OSError: if it cannot be created.
        """
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._buffer = mmap.mmap(-1, self._BUFFER_SIZE)
        self._used = 0
        self._offset = 0
        self._allocated = 1
        self._spare: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._full: queue.SimpleQueue[tuple[mmap.mmap, int, int] | None]
        self._full = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._direct = False
        self._failure: BaseException | None = None
        self._abandoned = False

    def __enter__(self) -> _BlobWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._abandoned = exc_info[0] is not None
        self._stop()
        os.close(self._fd)

    def reserve(self, size: int) -> memoryview:
        """Space for the next ``size`` bytes, in the current buffer.

        :raises OSError: if writing a previous buffer failed.
        """
        if self._used + size > self._BUFFER_SIZE:
            self._hand_over()
        return memoryview(self._buffer)[self._used : self._used + size]

    def commit(self, size: int) -> None:
        """The ``size`` bytes last reserved are filled."""
        self._used += size

    def finish(self) -> None:
        """Write what remains and make the file durable.

        :raises OSError: if a write or the flush failed.
        """
        self._stop()
        if self._failure is not None:
            raise self._failure
        if self._direct:
            # The tail is not a whole number of blocks, as O_DIRECT needs.
            _set_direct(self._fd, on=False)
            self._direct = False
        self._write_all(memoryview(self._buffer)[: self._used], self._offset)
        os.fsync(self._fd)

    def _hand_over(self) -> None:
        # The thread gets whole blocks; the few bytes past the last block
        # boundary start the next buffer, so every write stays aligned.
        if self._failure is not None:
            raise self._failure
        if not self._threads:
            self._start()
        full, used = self._buffer, self._used
        aligned = used - used % self._ALIGN
        self._buffer = self._next_buffer()
        self._buffer[: used - aligned] = full[aligned:used]
        self._used = used - aligned
        self._full.put((full, aligned, self._offset))
        self._offset += aligned

    def _start(self) -> None:
        self._direct = _set_direct(self._fd, on=True)
        for _ in range(self._WRITERS):
            thread = threading.Thread(
                target=self._run, name="teep-blob-writer", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _next_buffer(self) -> mmap.mmap:
        if self._allocated < self._BUFFERS and self._spare.empty():
            self._allocated += 1
            return mmap.mmap(-1, self._BUFFER_SIZE)
        return self._spare.get()

    def _run(self) -> None:
        while (item := self._full.get()) is not None:
            buffer, size, offset = item
            if self._failure is None and not self._abandoned:
                try:
                    self._write_all(memoryview(buffer)[:size], offset)
                except BaseException as exc:  # handed over by reserve or finish
                    self._failure = exc
            self._spare.put(buffer)

    def _stop(self) -> None:
        for _ in self._threads:
            self._full.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def _write_all(self, view: memoryview, offset: int) -> None:
        while view:
            direct = self._direct
            try:
                written = os.pwrite(self._fd, view, offset)
            except OSError as exc:
                # A file system may want other alignment for O_DIRECT, and
                # a short write leaves the next one unaligned: the page
                # cache takes the rest.  (Direct I/O is only ever turned
                # off while threads write, so a write that began with it
                # on is retried once at most.)
                if exc.errno != errno.EINVAL or not direct:
                    raise
                _set_direct(self._fd, on=False)
                self._direct = False
                continue
            view = view[written:]
            offset += written


_O_DIRECT: int = getattr(os, "O_DIRECT", 0)


def _set_direct(fd: int, *, on: bool) -> bool:
    """Turn direct I/O on or off for ``fd``; whether it is now on.

    Turning it on fails quietly where the system or file system has no
    direct I/O.

    :raises OSError: if it cannot be turned off.
    """
    if not _O_DIRECT:
        return False
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT if on else flags & ~_O_DIRECT)
    except OSError:
        if not on:
            raise
        return False
    return on


class SealedComponentStore:
    """A :class:`~teep.suit.store.ComponentStore` sealed on disk.

    Each version of each component (and each manifest's envelope) is one
    sealed stream in ``blobs/``, named by its random stream id.  A sealed
    index maps component ids to those ids and lists the manifests.  A transaction writes new files next to the old ones and
    commits by replacing the index with ``os.replace``, the single atomic
    step: before it the old index rules, after it the new one.  Files the
    index no longer names are deleted afterwards, and any left by a crash
    are deleted the next time the store is opened.
    """

    def __init__(self, folder: str | Path, sealer: Sealer) -> None:
        """Open (creating if needed) the store in ``folder``.

        :raises StoreError: if the folder cannot be prepared, or its index
            cannot be read or is of a version this code does not know.
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
        self._envelopes: dict[bytes, bytes] = {}
        self._open_transaction = False
        self._current()  # an index of an unknown version fails here
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
        stream = self._current().components.get(component_id)
        if stream is None:
            return None
        return self._read_blob(stream, _component_label(component_id))

    def read_chunks(self, component_id: ComponentId) -> Iterator[bytes] | None:
        """A component's committed content, one sealed record at a time.

        Every piece is authenticated before it is yielded, but a file cut
        short shows only at its end, so the iterator may raise
        :class:`~teep.device.sealing.SealError` after its last piece: use
        what it yields only once it is exhausted.
        """
        stream = self._current().components.get(component_id)
        if stream is None:
            return None
        return self._blob_chunks(stream, _component_label(component_id))

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

    def _write_stream(self, chunks: Iterable[bytes], label: bytes) -> bytes:
        # Written under its final name: until an index names it, the file
        # is unreferenced and a failed or interrupted write is cleaned up
        # like any other leftover.
        stream = secrets.token_bytes(_STREAM_ID_SIZE)
        path = self._blobs / _blob_name(stream)
        try:
            writer = _BlobWriter(path)
        except OSError as exc:
            raise StoreError(f"cannot write a component: {exc.strerror}") from None
        try:
            with writer:
                self._sealer.seal_stream(chunks, writer, label=label, stream_id=stream)
                writer.finish()
        except BaseException as exc:
            path.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StoreError(
                    f"cannot write a component: {exc.strerror or exc}"
                ) from None
            raise
        return stream

    def _read_blob(self, stream: bytes, label: bytes) -> bytes:
        return b"".join(self._blob_chunks(stream, label))

    def _blob_chunks(self, stream: bytes, label: bytes) -> Iterator[bytes]:
        name = _blob_name(stream)
        try:
            handle = open(self._blobs / name, "rb")
        except OSError as exc:
            raise StoreError(
                f"component file {name} unreadable: {exc.strerror}"
            ) from None
        with handle:
            try:
                # The stream id the index recorded is demanded: an older
                # sealed version of the same component, put in its place,
                # is refused.
                yield from self._sealer.unseal_stream(
                    handle, label=label, stream_id=stream
                )
            except OSError as exc:
                raise StoreError(
                    f"component file {name} unreadable: {reason(exc)}"
                ) from None

    def _installed(
        self, manifest_id: ComponentId, entry: _ManifestEntry
    ) -> InstalledManifest:
        envelope = self._envelopes.get(entry.envelope_stream)
        if envelope is None:
            envelope = self._read_blob(
                entry.envelope_stream, _envelope_label(manifest_id)
            )
            self._envelopes[entry.envelope_stream] = envelope
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
        stream = self.components.get(component_id)
        if stream is None:
            return None
        return self._store._read_blob(stream, _component_label(component_id))

    def read_chunks(self, component_id: ComponentId) -> Iterator[bytes] | None:
        stream = self.components.get(component_id)
        if stream is None:
            return None
        return self._store._blob_chunks(stream, _component_label(component_id))

    def write(self, component_id: ComponentId, chunks: Iterable[bytes]) -> None:
        stream = self._store._write_stream(chunks, _component_label(component_id))
        self.staged.append(_blob_name(stream))
        self.components[component_id] = stream

    def unlink(self, component_id: ComponentId) -> None:
        self.components.pop(component_id, None)

    def record_manifest(self, manifest: InstalledManifest) -> None:
        mid = manifest.manifest_component_id
        stream = self._store._write_stream([manifest.envelope], _envelope_label(mid))
        self.staged.append(_blob_name(stream))
        self.manifests[mid] = _ManifestEntry(
            manifest.sequence_number, stream, tuple(manifest.components)
        )

    def remove_manifest(self, manifest_component_id: ComponentId) -> None:
        self.manifests.pop(manifest_component_id, None)


def _encode_index(index: _Index) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "components": [[list(cid), sid] for cid, sid in index.components.items()],
        "manifests": [
            [
                list(mid),
                e.sequence_number,
                e.envelope_stream,
                [list(c) for c in e.components],
            ]
            for mid, e in index.manifests.items()
        ],
    }


def _decode_index(value: Any) -> _Index:
    if value is None:
        return _EMPTY_INDEX
    version = value.get("format") if isinstance(value, dict) else None
    if version != _FORMAT:
        raise StoreError(
            f"the component index has version {version!r}; this teep reads "
            f"version {_FORMAT} only (recreate the device folder)"
        )
    try:
        components = {cid_of(c): _stream_of(sid) for c, sid in value["components"]}
        manifests = {
            cid_of(mid): _ManifestEntry(
                int(seq), _stream_of(sid), tuple(cid_of(c) for c in comps)
            )
            for mid, seq, sid, comps in value["manifests"]
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"the component index is corrupt: {exc}") from None
    return _Index(components, manifests)


def _stream_of(value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != _STREAM_ID_SIZE:
        raise ValueError("stream id is not 16 bytes")
    return value


def cid_of(value: Any) -> ComponentId:
    if not isinstance(value, list) or not all(isinstance(p, bytes) for p in value):
        raise TypeError("component id is not a list of byte strings")
    return tuple(value)
