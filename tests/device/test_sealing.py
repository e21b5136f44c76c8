"""Sealed storage: AES-256-GCM blobs and chunked streams under the fuse key."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teep.device import sealing
from teep.device.sealing import (
    CHUNK_SIZE,
    RecordSink,
    Sealer,
    SealError,
    atomic_write,
)
from teep.errors import StoreError

LABEL = b"test label"


@pytest.fixture
def sealer(tmp_path: Path) -> Sealer:
    return Sealer.open(tmp_path)


def test_fuse_key_created_once_owner_only(tmp_path: Path) -> None:
    """The sealing key file is created once, mode 0600, and reused."""
    first = Sealer.open(tmp_path)
    key_file = tmp_path / sealing.FUSE_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_bytes()) == 32
    blob = first.seal(b"secret", label=LABEL)
    assert Sealer.open(tmp_path).unseal(blob, label=LABEL) == b"secret"


def test_short_fuse_key_refused(tmp_path: Path) -> None:
    """A fuse key of the wrong size is an error, not a silent new key."""
    (tmp_path / sealing.FUSE_KEY_FILE).write_bytes(b"short")
    with pytest.raises(SealError):
        Sealer.open(tmp_path)


@given(st.binary(max_size=300))
@settings(max_examples=30)
def test_blob_round_trip(data: bytes) -> None:
    """unseal(seal(x)) == x, and sealing is randomised."""
    sealer = Sealer(bytes(32))
    blob = sealer.seal(data, label=LABEL)
    assert sealer.unseal(blob, label=LABEL) == data
    assert sealer.seal(data, label=LABEL) != blob


def test_blob_tampering_detected(sealer: Sealer) -> None:
    """Flipping any byte of a sealed blob makes it fail to open."""
    blob = sealer.seal(b"the agent key", label=LABEL)
    for position in range(len(blob)):
        bad = bytearray(blob)
        bad[position] ^= 0x01
        with pytest.raises(SealError):
            sealer.unseal(bytes(bad), label=LABEL)


def test_blob_wrong_label_or_key(sealer: Sealer) -> None:
    """A blob sealed for one purpose or key does not open for another."""
    blob = sealer.seal(b"x", label=LABEL)
    with pytest.raises(SealError):
        sealer.unseal(blob, label=b"other")
    with pytest.raises(SealError):
        Sealer(bytes(32)).unseal(blob, label=LABEL)


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x02" + bytes(40)])
def test_blob_malformed(sealer: Sealer, blob: bytes) -> None:
    """Short or unknown-version blobs raise SealError (a StoreError)."""
    with pytest.raises(StoreError):
        sealer.unseal(blob, label=LABEL)


def _stream(sealer: Sealer, chunks: list[bytes]) -> bytes:
    out = io.BytesIO()
    sealer.seal_stream(chunks, out, label=LABEL)
    return out.getvalue()


def _open(sealer: Sealer, sealed: bytes) -> bytes:
    return b"".join(sealer.unseal_stream(io.BytesIO(sealed), label=LABEL))


class _Sink:
    """A RecordSink that keeps what is committed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._space = bytearray()

    def reserve(self, size: int) -> memoryview:
        self._space = bytearray(size)
        return memoryview(self._space)

    def commit(self, size: int) -> None:
        self.data += self._space[:size]


def test_stream_sealed_in_place(sealer: Sealer) -> None:
    """A RecordSink receives the same stream a file does."""
    data = os.urandom(2 * CHUNK_SIZE + 5)
    sink = _Sink()
    assert sealer.seal_stream([data], sink, label=LABEL) == len(data)
    assert isinstance(sink, RecordSink)
    assert _open(sealer, bytes(sink.data)) == data
    assert len(sink.data) == len(_stream(sealer, [data]))


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE]
)
def test_stream_round_trip(sealer: Sealer, size: int) -> None:
    """Streams of every size around the record boundary round-trip."""
    data = os.urandom(size)
    pieces = [data[i : i + 1000] for i in range(0, size, 1000)]
    assert _open(sealer, _stream(sealer, pieces)) == data


def test_stream_truncation_detected(sealer: Sealer) -> None:
    """Dropping the final record (or any tail) is detected."""
    sealed = _stream(sealer, [os.urandom(2 * CHUNK_SIZE + 5)])
    record = 1 + 12 + 4 + CHUNK_SIZE + 16
    header = 17
    for cut in (header, header + record, header + 2 * record, len(sealed) - 1):
        with pytest.raises(SealError):
            _open(sealer, sealed[:cut])


def test_stream_reorder_and_splice_detected(sealer: Sealer) -> None:
    """Records swapped or taken from another stream do not open."""
    data = os.urandom(2 * CHUNK_SIZE)
    sealed = _stream(sealer, [data])
    header, record = 17, 1 + 12 + 4 + CHUNK_SIZE + 16
    first = sealed[header : header + record]
    second = sealed[header + record :]
    with pytest.raises(SealError):
        _open(sealer, sealed[:header] + second + first)
    other = _stream(sealer, [data])
    with pytest.raises(SealError):
        _open(sealer, other[:header] + sealed[header:])


def test_stream_trailing_data_and_wrong_label(sealer: Sealer) -> None:
    """Bytes after the final record, or the wrong label, are refused."""
    sealed = _stream(sealer, [b"abc"])
    with pytest.raises(SealError):
        _open(sealer, sealed + b"\x00")
    with pytest.raises(SealError):
        b"".join(sealer.unseal_stream(io.BytesIO(sealed), label=b"other"))


def test_stream_irregular_chunks(sealer: Sealer) -> None:
    """Chunks of any sizes, bytes or bytearray, are cut into the same records."""
    data = os.urandom(3 * CHUNK_SIZE + 77)
    cuts = [0, 5, CHUNK_SIZE - 3, CHUNK_SIZE + 9, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE + 1]
    ends = [*cuts[1:], len(data)]
    pieces = [data[a:b] for a, b in zip(cuts, ends, strict=True)]
    pieces[1] = cast(bytes, bytearray(pieces[1]))  # a caller's mutable buffer
    sealed = _stream(sealer, pieces)
    assert _open(sealer, sealed) == data
    assert len(sealed) == len(_stream(sealer, [data]))


def test_stream_id_chosen_and_demanded(sealer: Sealer) -> None:
    """A stream sealed under a given id opens only when that id is expected."""
    wanted, other = os.urandom(16), os.urandom(16)
    out = io.BytesIO()
    sealer.seal_stream([b"abc"], out, label=LABEL, stream_id=wanted)
    sealed = out.getvalue()
    assert sealed[1:17] == wanted
    opened = sealer.unseal_stream(io.BytesIO(sealed), label=LABEL, stream_id=wanted)
    assert b"".join(opened) == b"abc"
    with pytest.raises(SealError):
        b"".join(sealer.unseal_stream(io.BytesIO(sealed), label=LABEL, stream_id=other))
    with pytest.raises(SealError):
        sealer.seal_stream([b"abc"], io.BytesIO(), label=LABEL, stream_id=b"short")


def test_atomic_write(tmp_path: Path) -> None:
    """atomic_write replaces the file and leaves no temporary behind."""
    target = tmp_path / "state"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["state"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_atomic_write_failure_keeps_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the rename fails the old content stays and StoreError is raised."""
    target = tmp_path / "state"
    atomic_write(target, b"old")

    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(StoreError):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state"]
