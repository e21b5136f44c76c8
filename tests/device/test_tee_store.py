"""The sealed component store: transactions, atomic switch, crash recovery."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from teep.components import component_id, manifest_id
from teep.device import sealed_store
from teep.device.components import demo_component_wasm
from teep.device.sealed_store import SealedComponentStore
from teep.device.sealing import CHUNK_SIZE, SealError
from teep.device.tee import SimulatedTEE
from teep.device.wasm import run_component
from teep.errors import StoreError
from teep.suit.store import InstalledManifest

HELLO = component_id("hello")
HELLO_SUIT = manifest_id("hello")
OTHER = component_id("other")


class Crash(BaseException):
    """Stands for the process dying at this point."""


@pytest.fixture
def tee(tmp_path: Path) -> SimulatedTEE:
    return SimulatedTEE.create(
        tmp_path / "tee", oemid=b"oem", hwmodel=b"model", hwversion="1"
    )


def _install(
    store: SealedComponentStore, content: bytes, seq: int = 1
) -> InstalledManifest:
    manifest = InstalledManifest(HELLO_SUIT, seq, b"envelope %d" % seq, (HELLO,))
    with store.transaction() as txn:
        txn.write(HELLO, [content[:10], content[10:]])
        txn.record_manifest(manifest)
    return manifest


def _files(tee: SimulatedTEE) -> set[str]:
    return {p.name for p in (tee.path / "components" / "blobs").iterdir()}


def test_commit_and_reopen(tee: SimulatedTEE) -> None:
    """Committed components and manifests are visible now and after re-opening."""
    manifest = _install(tee.components, b"component bytes v1")
    for store in (tee.components, SimulatedTEE.open(tee.path).components):
        assert store.read(HELLO) == b"component bytes v1"
        assert store.manifest(HELLO_SUIT) == manifest
        assert store.manifests() == [manifest]
        assert store.component_ids() == [HELLO]
    assert len(_files(tee)) == 2  # one component version, one envelope


def test_large_component_streams(tee: SimulatedTEE) -> None:
    """Content spanning many sealed records round-trips."""
    data = os.urandom(3 * CHUNK_SIZE + 17)
    with tee.components.transaction() as txn:
        txn.write(HELLO, (data[i : i + 4096] for i in range(0, len(data), 4096)))
        assert txn.read(HELLO) == data
        assert tee.components.read(HELLO) is None  # not yet committed
    assert tee.components.read(HELLO) == data


def test_update_replaces_and_collects(tee: SimulatedTEE) -> None:
    """An update switches to the new version and deletes the old files."""
    _install(tee.components, b"version one")
    before = _files(tee)
    _install(tee.components, b"version two", seq=2)
    assert tee.components.read(HELLO) == b"version two"
    assert tee.components.manifests()[0].sequence_number == 2
    assert not before & _files(tee)
    assert len(_files(tee)) == 2


def test_abandon_on_exception(tee: SimulatedTEE) -> None:
    """An exception in the block leaves the old state and no staged files."""
    _install(tee.components, b"old")
    files = _files(tee)
    with pytest.raises(RuntimeError), tee.components.transaction() as txn:
        txn.write(HELLO, [b"new"])
        txn.write(OTHER, [b"other"])
        txn.remove_manifest(HELLO_SUIT)
        raise RuntimeError("manifest failed")
    assert tee.components.read(HELLO) == b"old"
    assert tee.components.read(OTHER) is None
    assert tee.components.manifest(HELLO_SUIT) is not None
    assert _files(tee) == files


def test_unlink_and_remove(tee: SimulatedTEE) -> None:
    """Unlinking a component and forgetting its manifest deletes its files."""
    _install(tee.components, b"content")
    with tee.components.transaction() as txn:
        txn.unlink(HELLO)
        txn.unlink(OTHER)  # absent: no error
        txn.remove_manifest(HELLO_SUIT)
        assert txn.read(HELLO) is None
    assert tee.components.read(HELLO) is None
    assert tee.components.manifests() == []
    assert _files(tee) == set()


def test_nested_transaction_refused(tee: SimulatedTEE) -> None:
    """A second transaction while one is open is a StoreError."""
    with tee.components.transaction(), pytest.raises(StoreError):
        with tee.components.transaction():
            pass


def test_failed_switch_keeps_old_state(
    tee: SimulatedTEE, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If replacing the index fails, the old state stays and staging is removed."""
    _install(tee.components, b"old")
    files = _files(tee)

    def no_space(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(StoreError):
        _install(tee.components, b"new", seq=2)
    monkeypatch.undo()
    assert tee.components.read(HELLO) == b"old"
    assert _files(tee) == files


def test_crash_before_switch(
    tee: SimulatedTEE, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between staging and the index switch leaves the old state;
    re-opening deletes what was staged."""
    _install(tee.components, b"old")
    files = _files(tee)

    def crash(src: object, dst: object) -> None:
        raise Crash

    monkeypatch.setattr(os, "replace", crash)
    # A dying process runs no clean-up code.
    monkeypatch.setattr(SealedComponentStore, "_discard", lambda self, names: None)
    with pytest.raises(Crash):
        _install(tee.components, b"new", seq=2)
    monkeypatch.undo()
    assert len(_files(tee)) == len(files) + 2  # staged, unreferenced
    assert list((tee.path / "components").glob(".index.sealed.*.tmp"))

    again = SimulatedTEE.open(tee.path)
    assert again.components.read(HELLO) == b"old"
    assert again.components.manifests()[0].sequence_number == 1
    assert _files(tee) == files
    assert not list((tee.path / "components").glob(".index.sealed.*.tmp"))


def test_crash_after_switch(tee: SimulatedTEE, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash after the switch but before clean-up leaves the new state;
    re-opening deletes the old files."""
    _install(tee.components, b"old")
    old_files = _files(tee)

    def crash(self: SealedComponentStore) -> None:
        raise Crash

    monkeypatch.setattr(SealedComponentStore, "_collect", crash)
    with pytest.raises(Crash):
        _install(tee.components, b"new", seq=2)
    monkeypatch.undo()

    again = SimulatedTEE.open(tee.path)
    assert again.components.read(HELLO) == b"new"
    assert not old_files & _files(tee)


def test_other_process_commit_is_seen(tee: SimulatedTEE) -> None:
    """A store notices an index replaced by another opener."""
    first = tee.components
    assert first.read(HELLO) is None
    _install(SimulatedTEE.open(tee.path).components, b"from elsewhere")
    assert first.read(HELLO) == b"from elsewhere"


def _blob(tee: SimulatedTEE, component: tuple[bytes, ...]) -> Path:
    stream = tee.components._current().components[component]
    return tee.path / "components" / "blobs" / sealed_store._blob_name(stream)


def test_blob_named_by_its_stream_id(tee: SimulatedTEE) -> None:
    """Each blob file is named by the random 128-bit stream id in its header."""
    _install(tee.components, b"content")
    for name in _files(tee):
        sealed = (tee.path / "components" / "blobs" / name).read_bytes()
        assert name == sealed[1:17].hex() + ".blob"


def test_swapped_blob_refused(tee: SimulatedTEE) -> None:
    """A component file overwritten with another component's file is refused."""
    with tee.components.transaction() as txn:
        txn.write(HELLO, [b"hello"])
        txn.write(OTHER, [b"other"])
    _blob(tee, HELLO).write_bytes(_blob(tee, OTHER).read_bytes())
    with pytest.raises(SealError):
        tee.components.read(HELLO)


def test_old_version_put_back_refused(tee: SimulatedTEE) -> None:
    """An older sealed version of the same component, put in place of the
    current one, is refused: the index names the current stream id."""
    _install(tee.components, b"version one")
    old = _blob(tee, HELLO).read_bytes()
    _install(tee.components, b"version two", seq=2)
    _blob(tee, HELLO).write_bytes(old)
    with pytest.raises(SealError):
        tee.components.read(HELLO)


def test_truncated_or_reordered_blob_refused(tee: SimulatedTEE) -> None:
    """A component file cut short or with records reordered is refused."""
    with tee.components.transaction() as txn:
        txn.write(HELLO, [os.urandom(2 * CHUNK_SIZE)])
    path = _blob(tee, HELLO)
    sealed = path.read_bytes()
    header, record = 17, 1 + 12 + 4 + CHUNK_SIZE + 16
    first, second = sealed[header : header + record], sealed[header + record :]
    for bad in (sealed[: header + record], sealed[:header] + second + first):
        path.write_bytes(bad)
        with pytest.raises(SealError):
            tee.components.read(HELLO)


def test_renamed_blob_label_mismatch(tee: SimulatedTEE) -> None:
    """Content sealed for one component id does not open as another."""
    with tee.components.transaction() as txn:
        txn.write(HELLO, [b"hello"])
        txn.write(OTHER, [b"other"])
    other_stream = tee.components._current().components[OTHER]
    with pytest.raises(SealError):
        tee.components._read_blob(other_stream, sealed_store._component_label(HELLO))


def test_unknown_index_version_refused(tee: SimulatedTEE) -> None:
    """A component index of another version makes opening the TEE fail
    with a StoreError that says so."""
    _install(tee.components, b"content")
    index = tee.components._index_file
    index.save({**index.load(None), "format": 1})
    with pytest.raises(StoreError, match="version 1"):
        SimulatedTEE.open(tee.path)


def test_failed_write_leaves_no_file(tee: SimulatedTEE) -> None:
    """Content that fails while being written leaves no blob behind."""

    def failing() -> Iterator[bytes]:
        yield b"start"
        raise RuntimeError("fetch failed")

    with pytest.raises(RuntimeError), tee.components.transaction() as txn:
        txn.write(HELLO, failing())
    assert _files(tee) == set()


def test_installed_demo_component_runs(tee: SimulatedTEE) -> None:
    """A component stored in the TEE can be read back and run."""
    with tee.components.transaction() as txn:
        txn.write(HELLO, [demo_component_wasm()])
    wasm = SimulatedTEE.open(tee.path).components.read(HELLO)
    assert wasm is not None
    result = run_component(wasm, stdin=b"from the test")
    assert result.stdout.endswith(b"stdin: from the test\n")


def test_disk_full_while_writing(
    tee: SimulatedTEE, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write failing on disk is a StoreError; the old state and files stay."""
    _install(tee.components, b"old")
    files = _files(tee)

    monkeypatch.setattr(os, "pwrite", _no_space)
    with pytest.raises(StoreError, match="No space left"):
        _install(tee.components, os.urandom(3 * CHUNK_SIZE), seq=2)
    monkeypatch.undo()
    assert tee.components.read(HELLO) == b"old"
    assert _files(tee) == files


def _no_space(fd: int, data: object, offset: int) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


BIG = 5 * (1 << 20) + 123
"""Content that fills several write buffers, so the writing threads run."""


def _megabytes(data: bytes) -> Iterator[bytes]:
    return (data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20))


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "teep-blob-writer"]


def test_large_component_written_by_threads(tee: SimulatedTEE) -> None:
    """Content larger than a write buffer round-trips, laid out as the
    sealed stream format says (header, then whole records)."""
    data = os.urandom(BIG)
    with tee.components.transaction() as txn:
        txn.write(HELLO, _megabytes(data))
    assert SimulatedTEE.open(tee.path).components.read(HELLO) == data
    records = -(-len(data) // CHUNK_SIZE)
    size = 17 + records * (1 + 12 + 4 + 16) + len(data)
    assert _blob(tee, HELLO).stat().st_size == size
    assert not _writer_threads()


@pytest.mark.parametrize("refusal", ["no O_DIRECT", "EINVAL"])
def test_written_without_direct_io(
    tee: SimulatedTEE, monkeypatch: pytest.MonkeyPatch, refusal: str
) -> None:
    """Where the system has no direct I/O, or the file system refuses a
    direct write, the content goes through the page cache instead."""
    if refusal == "no O_DIRECT":
        monkeypatch.setattr(sealed_store, "_O_DIRECT", 0)
    else:
        real = os.pwrite

        def refuse_direct(fd: int, data: memoryview, offset: int) -> int:
            if fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0):
                raise OSError(errno.EINVAL, "Invalid argument")
            return real(fd, data, offset)

        monkeypatch.setattr(os, "pwrite", refuse_direct)
    data = os.urandom(BIG)
    with tee.components.transaction() as txn:
        txn.write(HELLO, _megabytes(data))
    monkeypatch.undo()
    assert SimulatedTEE.open(tee.path).components.read(HELLO) == data


def test_disk_full_in_writing_thread(
    tee: SimulatedTEE, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writing thread's failure reaches the caller as a StoreError; the
    old state and files stay and no thread is left behind."""
    _install(tee.components, b"old")
    files = _files(tee)
    monkeypatch.setattr(os, "pwrite", _no_space)
    with pytest.raises(StoreError, match="No space left"):
        _install(tee.components, os.urandom(BIG), seq=2)
    monkeypatch.undo()
    assert tee.components.read(HELLO) == b"old"
    assert _files(tee) == files
    assert not _writer_threads()


def test_failed_fetch_stops_writing_threads(tee: SimulatedTEE) -> None:
    """Content that fails after the writing threads started leaves no blob
    and no thread behind."""

    def failing() -> Iterator[bytes]:
        yield os.urandom(3 << 20)
        raise RuntimeError("fetch failed")

    with pytest.raises(RuntimeError), tee.components.transaction() as txn:
        txn.write(HELLO, failing())
    assert _files(tee) == set()
    assert not _writer_threads()
