"""Large payloads stream: hashed while written, read back in pieces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from teep.device.sealed_store import SealedComponentStore
from teep.device.sealing import CHUNK_SIZE, Sealer, SealError
from teep.keys import PrivateKey
from teep.suit.builder import build_envelope
from teep.suit.processor import SuitProcessor
from teep.suit.store import MemoryComponentStore

SIGNER = PrivateKey.generate()
PAYLOAD = os.urandom(3 * CHUNK_SIZE + 123)


def _envelope() -> bytes:
    return build_envelope(
        manifest_component_id=(b"big.suit",),
        component_id=(b"big",),
        payload=PAYLOAD,
        sequence_number=1,
        signer=SIGNER,
        integrated=False,
        uri="https://example/big",
    )


def _pieces(size: int) -> list[bytes]:
    return [PAYLOAD[i : i + size] for i in range(0, len(PAYLOAD), size)]


@pytest.mark.parametrize("size", [1000, CHUNK_SIZE, 1 << 20])
def test_sealed_store_streams(tmp_path: Path, size: int) -> None:
    """A payload fetched in pieces of any size lands intact in the sealed
    store, and reads back piece by piece; validate re-hashes it streaming."""
    store = SealedComponentStore(tmp_path, Sealer(os.urandom(32)))
    proc = SuitProcessor(store, [SIGNER.public], lambda _u: iter(_pieces(size)))
    proc.install(_envelope())
    chunks = store.read_chunks((b"big",))
    assert chunks is not None
    pieces = list(chunks)
    assert len(pieces) > 1 and b"".join(pieces) == PAYLOAD
    proc.invoke((b"big.suit",))  # validate: image-match over read_chunks


def test_memory_store_keeps_pieces() -> None:
    """The memory store keeps the written pieces and joins only on read."""
    store = MemoryComponentStore()
    SuitProcessor(store, [SIGNER.public], lambda _u: iter(_pieces(1000))).install(
        _envelope()
    )
    chunks = store.read_chunks((b"big",))
    assert chunks is not None and len(list(chunks)) == len(_pieces(1000))
    assert store.read((b"big",)) == PAYLOAD


def test_swapped_blob_refused_after_last_piece(tmp_path: Path) -> None:
    """An older sealed version put in a blob's place is refused by the
    streaming read too, at the latest when the last piece is read."""
    store = SealedComponentStore(tmp_path, Sealer(os.urandom(32)))
    for content in (b"old" * 10, b"new" * 10):
        with store.transaction() as txn:
            txn.write((b"c",), [content])
        if content.startswith(b"old"):
            old = {p.name: p.read_bytes() for p in (tmp_path / "blobs").iterdir()}
    (current,) = [p for p in (tmp_path / "blobs").iterdir()]
    current.write_bytes(next(iter(old.values())))
    chunks = store.read_chunks((b"c",))
    assert chunks is not None
    with pytest.raises(SealError):
        list(chunks)
