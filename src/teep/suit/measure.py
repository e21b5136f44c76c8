"""Streamed content: hashed, counted and bounded while it flows.

The processor never holds a whole payload to check it: a fetch or copy is
passed through :func:`bounded`, which enforces the size limit and feeds a
:class:`Hasher` on the way, so that image-match right after the write
compares digests that are already known.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from teep.suit.errors import SuitAbortError, SuitError
from teep.suit.registry import SuitDigestAlgorithm

__all__ = ["Hasher", "bounded", "finish", "hasher_for"]


class Hasher:
    """A hashlib object that also counts the bytes it saw."""

    def __init__(self, algorithm: SuitDigestAlgorithm) -> None:
        self.inner = _HASHLIB[algorithm]()
        self.size = 0

    def update(self, data: bytes) -> None:
        self.inner.update(data)
        self.size += len(data)


_HASHLIB: dict[int, Callable[[], Any]] = {
    SuitDigestAlgorithm.sha_256: hashlib.sha256,
    SuitDigestAlgorithm.sha_384: hashlib.sha384,
    SuitDigestAlgorithm.sha_512: hashlib.sha512,
    SuitDigestAlgorithm.shake128: hashlib.shake_128,
    SuitDigestAlgorithm.shake256: hashlib.shake_256,
}
_SHAKE_LENGTHS = {SuitDigestAlgorithm.shake128: 32, SuitDigestAlgorithm.shake256: 64}


def hasher_for(algorithm: int) -> Hasher | None:
    """A hasher for a SUIT digest algorithm (None if unknown)."""
    if algorithm not in _HASHLIB:
        return None
    return Hasher(SuitDigestAlgorithm(algorithm))


def finish(hasher: Hasher, algorithm: int) -> bytes:
    length = _SHAKE_LENGTHS.get(SuitDigestAlgorithm(algorithm))
    if length is not None:
        return bytes(hasher.inner.digest(length))
    return bytes(hasher.inner.digest())


def bounded(
    chunks: Iterable[bytes], limit: int, hasher: Hasher | None = None
) -> Iterator[bytes]:
    total = 0
    try:
        for chunk in chunks:
            total += len(chunk)
            if total > limit:
                raise SuitAbortError(f"content exceeds {limit} bytes")
            piece = chunk if isinstance(chunk, bytes) else bytes(chunk)
            if hasher is not None:
                hasher.update(piece)
            yield piece
    except SuitError:
        raise
    except Exception as exc:  # the injected fetcher's failures, whatever they are
        raise SuitAbortError(f"fetch failed: {exc}") from None
