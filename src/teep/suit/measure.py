"""Streamed content: hashed, counted and bounded while it flows.

The processor never holds a whole payload to check it: a fetch or copy is
passed through :func:`bounded`, which enforces the size limit and feeds a
:class:`Hasher` on the way, so that image-match right after the write
compares digests that are already known.

Large content is hashed by :func:`hashing_aside` in a thread of its own:
hashlib lets go of the GIL while it digests a large buffer, so the hash of
one chunk runs on a second core while the calling thread stores the chunk
(the sealed store encrypts it, which holds the GIL).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from teep.suit.errors import SuitAbortError, SuitError
from teep.suit.registry import SuitDigestAlgorithm

__all__ = ["Hasher", "Updatable", "bounded", "finish", "hasher_for", "hashing_aside"]


class Updatable(Protocol):
    """Something content is fed to, a piece at a time."""

    def update(self, data: bytes, /) -> None: ...


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
    """The digest of what ``hasher`` saw, at the length SUIT uses."""
    length = _SHAKE_LENGTHS.get(SuitDigestAlgorithm(algorithm))
    if length is not None:
        return bytes(hasher.inner.digest(length))
    return bytes(hasher.inner.digest())


def bounded(
    chunks: Iterable[bytes], limit: int, hasher: Updatable | None = None
) -> Iterator[bytes]:
    """Pass ``chunks`` through, feeding ``hasher`` and refusing more than
    ``limit`` bytes in all.

    Chunks that are not ``bytes`` are copied once: a hasher that works
    aside may still read a chunk after the next one has been fetched.

    :raises SuitAbortError: if the content grows past ``limit`` or the
        chunks' source fails.
    """
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


_ASIDE_FROM = 64 << 10
"""Smaller pieces, before any larger one, are hashed in the caller's thread
(a thread costs more than hashing them)."""
_ASIDE_BUDGET = 8 << 20
"""Bytes handed to the hashing thread and not yet hashed, at most (a single
larger piece is still taken when nothing else waits)."""


@contextlib.contextmanager
def hashing_aside(hasher: Hasher) -> Iterator[Updatable]:
    """Feed ``hasher`` from a thread of its own while the block runs.

    The pieces given to the yielded feeder are hashed in order, by
    reference: they must not change afterwards (``bytes`` do not).  When the
    block ends normally every piece has been hashed and ``hasher`` is
    complete; when it raises, what was not yet hashed is dropped.  Either
    way the thread has ended when the block is left.
    """
    feeder = _Aside(hasher)
    try:
        yield feeder
    except BaseException:
        feeder.stop(drain=False)
        raise
    feeder.stop(drain=True)


class _Aside:
    """Hands pieces to a hashing thread, started at the first large piece."""

    def __init__(self, hasher: Hasher) -> None:
        self._hasher = hasher
        self._pending: deque[bytes] = deque()
        self._pending_size = 0
        self._closed = False
        self._dropping = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def update(self, data: bytes, /) -> None:
        if self._thread is None:
            if len(data) < _ASIDE_FROM:
                self._hasher.update(data)
                return
            self._thread = threading.Thread(
                target=self._run, name="teep-suit-hasher", daemon=True
            )
            self._thread.start()
        with self._changed:
            # Memory stays bounded: wait while the thread lags too far.
            while self._pending and self._pending_size + len(data) > _ASIDE_BUDGET:
                self._changed.wait()
            if self._failure is not None:
                raise self._failure
            self._pending.append(data)
            self._pending_size += len(data)
            self._changed.notify_all()

    def stop(self, *, drain: bool) -> None:
        """End the thread, after hashing what waits if ``drain``.

        :raises BaseException: what the hash raised in the thread, if
            ``drain`` (the digest is then incomplete).
        """
        with self._changed:
            self._closed = True
            self._dropping = not drain
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join()
        if drain and self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        try:
            while (data := self._next()) is not None:
                self._hasher.update(data)  # hashlib lets go of the GIL here
                with self._changed:
                    self._pending.popleft()
                    self._pending_size -= len(data)
                    self._changed.notify_all()
        except BaseException as exc:  # handed to the caller by stop()
            with self._changed:
                self._failure = exc
                self._pending.clear()
                self._pending_size = 0
                self._changed.notify_all()

    def _next(self) -> bytes | None:
        # The piece stays queued while it is hashed, so that the budget
        # counts it.
        with self._changed:
            while not self._pending and not self._closed and self._failure is None:
                self._changed.wait()
            if self._dropping or not self._pending or self._failure is not None:
                return None
            return self._pending[0]
