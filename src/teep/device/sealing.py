"""Sealed storage for the simulated TEE.

A real TEE derives a sealing key from a secret fused into the chip that
only trusted code can read.  The simulation keeps that secret in a file,
``fuse.key``, readable by the owner only; everything else the TEE keeps at
rest is encrypted and authenticated under it with AES-256-GCM.

Two formats exist.  A *sealed blob* (:meth:`Sealer.seal`) holds a small
value in one piece::

    version 0x01 | nonce (12) | ciphertext and tag

A *sealed stream* (:meth:`Sealer.seal_stream`) holds content of any size
in 256 KiB records, so neither side needs it all in memory (records that
size halve the per-record cost of 64 KiB ones, measured with bench_suit)::

    version 0x02 | stream id (16) | record...
    record = final flag (1) | nonce (12) | length (4, big endian) | ciphertext

Every record's associated data binds the stream header (and so the stream
id, which a caller may choose and later demand), the record's index and its
final flag, so records cannot be reordered, dropped, spliced from
another stream or cut off at the end.  The caller's ``label`` is always part
of the associated data: a blob sealed for one purpose does not open for
another.
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from teep.errors import StoreError

__all__ = [
    "CHUNK_SIZE",
    "FUSE_KEY_FILE",
    "RecordSink",
    "SealError",
    "Sealer",
    "SupportsRead",
    "SupportsWrite",
    "atomic_write",
    "fsync_dir",
]

FUSE_KEY_FILE = "fuse.key"
CHUNK_SIZE = 256 * 1024
"""Plaintext bytes per record of a sealed stream."""

_KEY_SIZE = 32
_NONCE_SIZE = 12
_NONCE_SPACE = 1 << (8 * _NONCE_SIZE)
_TAG_SIZE = 16
_BLOB_VERSION = 0x01
_STREAM_VERSION = 0x02
_STREAM_ID_SIZE = 16
_RECORD_HEAD = struct.Struct(">B12sI")
_MORE, _FINAL = 0, 1


class SupportsWrite(Protocol):
    """Where a sealed stream goes (a binary file, or a wrapper around one).

    Like a file, it must be done with the buffer it is given when ``write``
    returns: :meth:`Sealer.seal_stream` refills the same buffer.
    """

    def write(self, data: bytes | bytearray | memoryview, /) -> object: ...


@runtime_checkable
class RecordSink(Protocol):
    """Where a sealed stream goes when the sealer may write into it in place.

    :meth:`Sealer.seal_stream` asks for the space of each piece of the
    stream with ``reserve``, fills all of it, then calls ``commit``: the
    cipher writes each record straight into the sink's memory, with no
    copy between.
    """

    def reserve(self, size: int, /) -> memoryview:
        """Writable space for the next ``size`` bytes of the stream."""

    def commit(self, size: int, /) -> None:
        """The ``size`` bytes last reserved are written."""


class SupportsRead(Protocol):
    """Where a sealed stream comes from (a binary file or ``io.BytesIO``)."""

    def read(self, size: int = -1, /) -> bytes: ...


class SealError(StoreError):
    """Sealed data could not be opened: tampered, truncated or sealed for
    another purpose, or the sealing key itself is unusable."""


def fsync_dir(path: str | Path) -> None:
    """Make a directory's entries (new, renamed, removed files) durable.

    :raises StoreError: if the directory cannot be flushed.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"cannot flush directory {path}: {exc.strerror}") from None


def atomic_write(path: str | Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves old or new, never a mix.

    The data goes to a temporary file in the same directory, is flushed to
    disk, and is then renamed over the target; the directory is flushed too
    so that the rename itself survives a power cut.

    :raises StoreError: if the file cannot be written.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from None


class Sealer:
    """Seals and unseals data under the TEE's 256-bit sealing key."""

    def __init__(self, key: bytes) -> None:
        """Use ``key`` (32 bytes) as the sealing key.

        :raises SealError: if the key has the wrong length.
        """
        if len(key) != _KEY_SIZE:
            raise SealError("the sealing key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def open(cls, folder: str | Path) -> Sealer:
        """The sealer of the TEE in ``folder``, creating its key on first use.

        :raises SealError: if the key file exists but is unusable.
        :raises StoreError: if it cannot be read or created.
        """
        path = Path(folder) / FUSE_KEY_FILE
        try:
            return cls(path.read_bytes())
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None
        return cls(_create_key(path))

    def seal(self, plaintext: bytes, *, label: bytes) -> bytes:
        """Encrypt and authenticate ``plaintext`` for the purpose ``label``."""
        nonce = secrets.token_bytes(_NONCE_SIZE)
        head = bytes([_BLOB_VERSION])
        return head + nonce + self._aead.encrypt(nonce, plaintext, head + label)

    def unseal(self, blob: bytes, *, label: bytes) -> bytes:
        """Open a blob made by :meth:`seal` with the same ``label``.

        :raises SealError: if the blob is malformed, tampered or was sealed
            with another label or key.
        """
        if len(blob) < 1 + _NONCE_SIZE + _TAG_SIZE or blob[0] != _BLOB_VERSION:
            raise SealError("not a sealed blob of a known version")
        nonce = blob[1 : 1 + _NONCE_SIZE]
        try:
            return self._aead.decrypt(nonce, blob[1 + _NONCE_SIZE :], blob[:1] + label)
        except InvalidTag:
            raise SealError("sealed blob failed authentication") from None

    def seal_stream(
        self,
        chunks: Iterable[bytes],
        out: SupportsWrite | RecordSink,
        *,
        label: bytes,
        stream_id: bytes | None = None,
    ) -> int:
        """Seal the concatenation of ``chunks`` to ``out``, one record at a time.

        :param out: a file-like object, or a :class:`RecordSink` that the
            records are sealed into in place.
        :param stream_id: the stream's 16-byte id (random if not given); a
            caller that records it can later insist on this very stream.
        :returns: the number of plaintext bytes sealed.
        :raises SealError: if ``stream_id`` is not 16 bytes.
        """
        sink = out if isinstance(out, RecordSink) else _FileSink(out)
        header = _stream_header(secrets.token_bytes(_STREAM_ID_SIZE), stream_id)
        sink.reserve(len(header))[:] = header
        sink.commit(len(header))
        # Record nonces count up from a random 96-bit start: as unlikely to
        # meet another stream's as fresh random nonces, without a call to
        # the system's random source (and a GIL hand-off) per record.
        first = int.from_bytes(secrets.token_bytes(_NONCE_SIZE))
        total = 0
        for index, (piece, final) in enumerate(_with_final(_rechunk(chunks))):
            nonce = ((first + index) % _NONCE_SPACE).to_bytes(_NONCE_SIZE)
            size = _RECORD_HEAD.size + len(piece) + _TAG_SIZE
            record = sink.reserve(size)
            self._seal_record(record, header, index, nonce, piece, final, label)
            sink.commit(size)
            total += len(piece)
        return total

    def _seal_record(
        self,
        record: memoryview,
        header: bytes,
        index: int,
        nonce: bytes,
        piece: memoryview,
        final: bool,
        label: bytes,
    ) -> None:
        # Encrypting into a buffer that already holds the record head spares
        # a copy of every record (the content is copied once, by the cipher).
        flag = _FINAL if final else _MORE
        _RECORD_HEAD.pack_into(record, 0, flag, nonce, len(piece) + _TAG_SIZE)
        aad = _record_aad(header, index, flag, label)
        self._aead.encrypt_into(nonce, piece, aad, record[_RECORD_HEAD.size :])

    def unseal_stream(
        self,
        source: SupportsRead,
        *,
        label: bytes,
        stream_id: bytes | None = None,
    ) -> Iterator[bytes]:
        """Yield the plaintext of a stream made by :meth:`seal_stream`.

        Each piece is authenticated before it is yielded; a consumer that
        needs all-or-nothing must wait for the generator to finish.

        :param stream_id: if given, the stream must be the one sealed with
            this id: another stream sealed under the same label (an older
            version, say) is refused.
        :raises SealError: if the stream is malformed, tampered, truncated,
            not the expected one, or was sealed with another label or key.
        """
        header = source.read(1 + _STREAM_ID_SIZE)
        if len(header) != 1 + _STREAM_ID_SIZE or header[0] != _STREAM_VERSION:
            raise SealError("not a sealed stream of a known version")
        if stream_id is not None and header != _stream_header(b"", stream_id):
            raise SealError("sealed stream is not the one expected")
        index = 0
        while True:
            flag, nonce, sealed = _read_record(source)
            aad = _record_aad(header, index, flag, label)
            try:
                yield self._aead.decrypt(nonce, sealed, aad)
            except InvalidTag:
                raise SealError("sealed stream failed authentication") from None
            if flag == _FINAL:
                break
            index += 1
        if source.read(1):
            raise SealError("sealed stream has data after its final record")


class _FileSink:
    """A :class:`RecordSink` over a file-like object.

    One buffer serves every record: a fresh one per record costs zeroing
    and page faults that were a third of the sealing time.
    """

    def __init__(self, out: SupportsWrite) -> None:
        self._out = out
        self._buffer = bytearray()

    def reserve(self, size: int) -> memoryview:
        if len(self._buffer) < size:
            self._buffer = bytearray(size)
        return memoryview(self._buffer)[:size]

    def commit(self, size: int) -> None:
        self._out.write(memoryview(self._buffer)[:size])


def _stream_header(fallback: bytes, stream_id: bytes | None) -> bytes:
    chosen = fallback if stream_id is None else stream_id
    if len(chosen) != _STREAM_ID_SIZE:
        raise SealError(f"a stream id must be {_STREAM_ID_SIZE} bytes")
    return bytes([_STREAM_VERSION]) + chosen


def _create_key(path: Path) -> bytes:
    key = secrets.token_bytes(_KEY_SIZE)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes racing to create the key must not end up
        # with different keys, so the loser reads the winner's.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(path.parent)
    return key


def _record_aad(header: bytes, index: int, flag: int, label: bytes) -> bytes:
    return header + index.to_bytes(8, "big") + bytes([flag]) + label


def _read_record(source: SupportsRead) -> tuple[int, bytes, bytes]:
    head = source.read(_RECORD_HEAD.size)
    if len(head) != _RECORD_HEAD.size:
        raise SealError("sealed stream is truncated")
    flag, nonce, length = _RECORD_HEAD.unpack(head)
    if flag not in (_MORE, _FINAL) or not _TAG_SIZE <= length <= CHUNK_SIZE + _TAG_SIZE:
        raise SealError("sealed stream record is malformed")
    sealed = source.read(length)
    if len(sealed) != length:
        raise SealError("sealed stream is truncated")
    return flag, nonce, sealed


def _rechunk(chunks: Iterable[bytes]) -> Iterator[memoryview]:
    """Regroup arbitrary chunks into CHUNK_SIZE pieces (the last may be short).

    Pieces are views into the caller's chunks where a record lies within
    one chunk, so large chunks are cut without copying; only a record that
    straddles two chunks is assembled in a buffer.  Mutable chunks are
    copied first: _with_final holds a piece while it looks at the next.
    """
    carry = bytearray()
    for chunk in chunks:
        view = memoryview(chunk if isinstance(chunk, bytes) else bytes(chunk))
        if carry:
            taken = CHUNK_SIZE - len(carry)
            carry += view[:taken]
            view = view[taken:]
            if len(carry) < CHUNK_SIZE:
                continue
            yield memoryview(carry)
            carry = bytearray()
        whole = len(view) - len(view) % CHUNK_SIZE
        for start in range(0, whole, CHUNK_SIZE):
            yield view[start : start + CHUNK_SIZE]
        carry += view[whole:]
    yield memoryview(carry)


def _with_final(pieces: Iterator[memoryview]) -> Iterator[tuple[memoryview, bool]]:
    """Pair each piece with whether it is the last, reading one ahead.

    _rechunk always yields at least one piece, possibly empty; an empty
    piece after a full one is dropped so content that is an exact multiple
    of CHUNK_SIZE ends on a full final record.
    """
    previous = next(pieces)
    for piece in pieces:
        if not piece:
            break
        yield previous, False
        previous = piece
    yield previous, True
