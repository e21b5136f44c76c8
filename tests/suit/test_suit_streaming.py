"""Large payloads stream: hashed while written, read back in pieces."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from teep.device.sealed_store import SealedComponentStore
from teep.device.sealing import CHUNK_SIZE, Sealer, SealError
from teep.keys import PrivateKey
from teep.suit.builder import build_envelope
from teep.suit.errors import SuitConditionFailedError
from teep.suit.measure import Hasher, finish, hasher_for, hashing_aside
from teep.suit.processor import SuitProcessor
from teep.suit.registry import SuitDigestAlgorithm
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


def _big_envelope(payload: bytes, sequence_number: int) -> bytes:
    return build_envelope(
        manifest_component_id=(b"big.suit",),
        component_id=(b"big",),
        payload=payload,
        sequence_number=sequence_number,
        signer=SIGNER,
        integrated=False,
        uri="https://example/big",
    )


@pytest.mark.parametrize("sealed", [True, False])
def test_large_digest_mismatch_leaves_store_untouched(
    tmp_path: Path, sealed: bool
) -> None:
    """A large streamed payload whose digest does not match (one byte
    changed near its end, so the hash runs aside) fails image-match and
    leaves components, manifests and blob files as they were."""
    store: SealedComponentStore | MemoryComponentStore
    if sealed:
        store = SealedComponentStore(tmp_path, Sealer(os.urandom(32)))
    else:
        store = MemoryComponentStore()
    SuitProcessor(store, [SIGNER.public], lambda _u: iter(_pieces(1 << 20))).install(
        _envelope()
    )
    files = sorted(p.name for p in tmp_path.rglob("*"))
    wanted = os.urandom(5 << 20)
    served = bytearray(wanted)
    served[-10] ^= 1
    fetched = [bytes(served[i : i + (1 << 20)]) for i in range(0, len(served), 1 << 20)]
    proc = SuitProcessor(
        store, [SIGNER.public], lambda _u: iter(fetched), max_component_size=8 << 20
    )
    with pytest.raises(SuitConditionFailedError):
        proc.install(_big_envelope(wanted, 2))
    assert store.read((b"big",)) == PAYLOAD
    (held,) = store.manifests()
    assert held.sequence_number == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == files


def _sha256(pieces: list[bytes]) -> Hasher:
    hasher = hasher_for(SuitDigestAlgorithm.sha_256)
    assert hasher is not None
    with hashing_aside(hasher) as feed:
        for piece in pieces:
            feed.update(piece)
    return hasher


def test_hashing_aside_keeps_order_and_count() -> None:
    """Small pieces hashed in place and large ones hashed aside add up, in
    order, to the digest of the whole, and the size is counted."""
    pieces = [b"a" * 10, os.urandom(200_000), b"b", os.urandom(9 << 20), b"c" * 99]
    hasher = _sha256(pieces)
    whole = b"".join(pieces)
    assert finish(hasher, SuitDigestAlgorithm.sha_256) == hashlib.sha256(whole).digest()
    assert hasher.size == len(whole)


def test_hashing_aside_stops_on_error() -> None:
    """A failure in the block ends the hashing thread and propagates."""
    hasher = hasher_for(SuitDigestAlgorithm.sha_256)
    assert hasher is not None
    before = threading.active_count()
    with pytest.raises(RuntimeError), hashing_aside(hasher) as feed:
        feed.update(os.urandom(1 << 20))
        raise RuntimeError("store failed")
    assert threading.active_count() == before
