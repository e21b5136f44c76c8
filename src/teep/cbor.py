"""Hardened CBOR decoding and deterministic encoding.

Every byte string that arrives from a peer goes through :func:`loads`. It is
cbor2 behind two guards:

* a structural pre-scan, written here because cbor2 cannot be told to refuse
  what TEEP forbids: indefinite lengths, duplicate map keys, declared lengths
  that run past the end of the input, nesting deeper than a limit, more items
  than a limit, and bytes left over after the item;
* a post-walk over what cbor2 built, which lets through only the plain types
  (int, bytes, str, list, dict, bool, None, float) and :class:`cbor2.CBORTag`
  with a tag the caller allows.  cbor2 turns tags 0-5, 28/29, 35, 37 and more
  into Python objects on its own (datetimes, shared references, compiled
  regular expressions); those never reach protocol code.

Any failure, from either guard or from cbor2 itself, becomes one
:class:`CBORDecodeError`; no other exception leaves this module.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cbor2

from teep.errors import DecodeError

__all__ = [
    "CBORDecodeError",
    "CBORLimits",
    "CBORTag",
    "check_types",
    "det_dumps",
    "dumps",
    "loads",
]

CBORTag = cbor2.CBORTag

#: Tags a TEEP peer may legitimately send: COSE structures and the SUIT
#: envelope tag.  Callers can widen or narrow the set per use.
DEFAULT_TAGS = frozenset({16, 17, 18, 96, 97, 98, 107, 61, 1668547081})


class CBORDecodeError(DecodeError):
    """The bytes are not well-formed CBOR within teep's limits."""


@dataclass(frozen=True)
class CBORLimits:
    """Bounds applied to untrusted CBOR."""

    max_depth: int = 32
    """Deepest nesting of arrays, maps and tags."""
    max_items: int = 100_000
    """Most data items (of any kind) in one input."""
    allow_indefinite: bool = False
    """Whether indefinite-length strings, arrays and maps are accepted."""


DEFAULT_LIMITS = CBORLimits()


def loads(
    data: bytes,
    *,
    tags: Iterable[int] = DEFAULT_TAGS,
    limits: CBORLimits = DEFAULT_LIMITS,
    item_types: bool = True,
) -> Any:
    """Decode one CBOR data item from untrusted bytes.

    :param data: the complete encoding; trailing bytes are an error.
    :param tags: the tag numbers that may appear; any other tag is refused.
    :param limits: depth, size and indefinite-length bounds.
    :param item_types: check the type of every item, the tags and the
        limits (see :func:`check_types`).  Only a caller that checks, item
        by item, the type of everything it reads passes False (a schema
        decoder); the encoding is still checked to be well formed,
        preferred and free of duplicate keys, and nested no deeper than
        cbor2's own bound.
    :raises CBORDecodeError: for anything malformed, oversized or disallowed.
    """
    if not isinstance(data, _BYTES_LIKE):
        raise CBORDecodeError("expected bytes")
    data = bytes(data)
    if not data:
        raise CBORDecodeError("empty input")
    allowed = tags if isinstance(tags, frozenset) else frozenset(tags)
    try:
        value = _CODEC.decode(data)
    except Exception:  # cbor2 leaks several exception types
        value = _MISSING
    else:
        if item_types:
            _check_types(value, allowed, limits)
        if _CODEC.reencodes_to(value, data):
            # Preferred, definite and free of duplicate keys: re-encoding
            # gives back the very same bytes, so the structural scan (the slow
            # part) has nothing left to find.
            return value
    _Scanner(data, limits, allowed).scan_all()
    if value is _MISSING:
        raise CBORDecodeError("malformed CBOR")
    return value


_MISSING = object()
# a tuple, not a union: isinstance checks a tuple faster
_BYTES_LIKE = (bytes, bytearray, memoryview)


class _Codec(threading.local):
    """One cbor2 encoder and one decoder per thread, kept between calls.

    Building them (which ``cbor2.dumps`` and ``cbor2.loads`` do on every
    call) costs as much as coding a small message.  A decode starts on its
    own buffer with no shared values, and a decoder that failed is replaced,
    so nothing carries over from one call to the next.
    """

    def __init__(self) -> None:
        self.encode = cbor2.CBOREncoder(io.BytesIO()).encode_to_bytes
        """Encode a value as :func:`cbor2.dumps` would."""
        self._decode = cbor2.CBORDecoder(io.BytesIO()).decode_from_bytes

    def decode(self, data: bytes) -> Any:
        """Decode the first item of ``data`` as :func:`cbor2.loads` would."""
        try:
            return self._decode(data)
        except BaseException:
            # A decoder stopped halfway keeps its state (such as "inside a
            # map key", which turns arrays into tuples): start afresh.
            self._decode = cbor2.CBORDecoder(io.BytesIO()).decode_from_bytes
            raise

    def reencodes_to(self, value: Any, data: bytes) -> bool:
        """Whether ``value`` encodes to exactly ``data``."""
        try:
            return self.encode(value) == data
        except Exception:  # a decoded value cbor2 cannot encode back
            return False


_CODEC = _Codec()


def dumps(value: Any) -> bytes:
    """Encode with preferred serialization, keeping map insertion order."""
    return _CODEC.encode(value)


def det_dumps(value: Any) -> bytes:
    """Encode with RFC 8949 section 4.2.1 core deterministic encoding.

    cbor2's ``canonical`` flag sorts map keys length-first (the older RFC 7049
    rule); here keys are sorted bytewise by their own encoding.
    """
    return bytes(cbor2.dumps(_sorted(value)))


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        items = [(cbor2.dumps(k), k, _sorted(v)) for k, v in value.items()]
        items.sort(key=lambda item: item[0])
        return {k: v for _, k, v in items}
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    if isinstance(value, cbor2.CBORTag):
        return cbor2.CBORTag(value.tag, _sorted(value.value))
    return value


class _Scanner:
    """Walks the encoding once without building objects."""

    def __init__(
        self, data: bytes, limits: CBORLimits, tags: frozenset[int] = frozenset()
    ) -> None:
        self.data = data
        self.limits = limits
        self.tags = tags
        self.pos = 0
        self.items = 0

    def scan_all(self) -> None:
        self.item(0)
        if self.pos != len(self.data):
            raise CBORDecodeError(
                f"{len(self.data) - self.pos} trailing bytes after the CBOR item"
            )

    def head(self) -> tuple[int, int, int | None]:
        """Read an initial byte and argument: (major, info, argument)."""
        if self.pos >= len(self.data):
            raise CBORDecodeError(f"truncated at byte {self.pos}")
        initial = self.data[self.pos]
        self.pos += 1
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info, info
        if info in (24, 25, 26, 27):
            size = 1 << (info - 24)
            end = self.pos + size
            if end > len(self.data):
                raise CBORDecodeError(f"truncated argument at byte {self.pos}")
            arg = int.from_bytes(self.data[self.pos : end], "big")
            self.pos = end
            return major, info, arg
        if info == 31 and major in (2, 3, 4, 5, 7):
            return major, info, None
        raise CBORDecodeError(f"reserved additional information at byte {self.pos - 1}")

    def count(self) -> None:
        self.items += 1
        if self.items > self.limits.max_items:
            raise CBORDecodeError("too many data items")

    def item(self, depth: int) -> None:
        if depth > self.limits.max_depth:
            raise CBORDecodeError("nesting too deep")
        self.count()
        start = self.pos
        major, _info, arg = self.head()
        if arg is None:
            if major == 7:
                raise CBORDecodeError(f"unexpected break at byte {start}")
            if not self.limits.allow_indefinite:
                raise CBORDecodeError(f"indefinite length at byte {start}")
            self.indefinite(major, depth)
            return
        if major in (2, 3):
            if arg > len(self.data) - self.pos:
                raise CBORDecodeError(
                    f"string length runs past the end at byte {start}"
                )
            self.pos += arg
        elif major == 4:
            self.bounded(arg, start)
            for _ in range(arg):
                self.item(depth + 1)
        elif major == 5:
            self.bounded(2 * arg, start)
            seen: set[bytes] = set()
            for _ in range(arg):
                key_start = self.pos
                self.item(depth + 1)
                key = self.data[key_start : self.pos]
                if key in seen:
                    raise CBORDecodeError(f"duplicate map key at byte {key_start}")
                seen.add(key)
                self.item(depth + 1)
        elif major == 6:
            if arg not in self.tags:
                raise CBORDecodeError(f"CBOR tag {arg} is not allowed here")
            self.item(depth + 1)

    def bounded(self, count: int, start: int) -> None:
        # Every item takes at least one byte, so a count larger than what is
        # left cannot be honest; refusing it early avoids long loops.
        if count > len(self.data) - self.pos:
            raise CBORDecodeError(f"declared length runs past the end at byte {start}")

    def indefinite(self, major: int, depth: int) -> None:
        while True:
            if self.pos >= len(self.data):
                raise CBORDecodeError("unterminated indefinite-length item")
            if self.data[self.pos] == 0xFF:
                self.pos += 1
                return
            if major in (2, 3):
                chunk_major = self.data[self.pos] >> 5
                if chunk_major != major or self.data[self.pos] & 0x1F == 31:
                    raise CBORDecodeError("bad chunk in indefinite-length string")
            self.item(depth + 1)
            if major == 5:
                self.item(depth + 1)


def check_types(
    value: Any,
    *,
    tags: Iterable[int] = DEFAULT_TAGS,
    limits: CBORLimits = DEFAULT_LIMITS,
) -> None:
    """Check a decoded value as :func:`loads` does: only plain items (ints,
    floats, strings, booleans, null, arrays, maps with plain keys), only the
    ``tags`` given, within ``limits``' depth and item count.

    :raises CBORDecodeError: naming the first item that fails.
    """
    _check_types(
        value, tags if isinstance(tags, frozenset) else frozenset(tags), limits
    )


def _check_types(value: Any, tags: frozenset[int], limits: CBORLimits) -> None:
    if type(value) not in _PLAIN_TYPES:
        _walk(value, tags, limits.max_depth, limits.max_items)


_PLAIN_TYPES = frozenset({int, bytes, str, bool, float, type(None)})
_KEY_TYPES = frozenset({int, bytes, str, bool, type(None)})


def _walk(item: Any, tags: frozenset[int], depth: int, remaining: int) -> int:
    """Check one container and what it holds; return the item budget left.

    The hot path of every decode: the exact types of a container's keys and
    children are first checked all at once (in C, through ``map``), and only
    children that are containers recurse (never deeper than ``max_depth``).
    """
    if depth <= 0:
        raise CBORDecodeError("nesting too deep")
    kind = type(item)
    if kind is list:
        children = item
    elif kind is dict:
        if not _KEY_TYPES.issuperset(map(type, item)):
            raise CBORDecodeError("map key of a disallowed type")
        children = item.values()
        remaining -= len(item)
    elif kind is cbor2.CBORTag:
        if item.tag not in tags:
            raise CBORDecodeError(f"CBOR tag {item.tag} is not allowed here")
        children = (item.value,)
    else:
        raise CBORDecodeError(f"disallowed CBOR item ({kind.__name__})")
    remaining -= len(children)
    if remaining < 0:
        raise CBORDecodeError("too many data items")
    if _PLAIN_TYPES.issuperset(map(type, children)):
        return remaining
    for child in children:
        if type(child) not in _PLAIN_TYPES:
            remaining = _walk(child, tags, depth - 1, remaining)
    return remaining


def peek_tag(data: bytes) -> int | None:
    """Return the outermost tag number of an encoding, without decoding it."""
    if not data or data[0] >> 5 != 6:
        return None
    try:
        _major, _info, arg = _Scanner(data, DEFAULT_LIMITS).head()
    except CBORDecodeError:
        return None
    return arg
