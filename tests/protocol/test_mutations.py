"""Hostile input: mutated vectors and crafted CBOR never escape as built-ins.

Every input goes to :func:`teep.protocol.codec.decode` in both numberings and
to :func:`teep.cose.parse`.  Each may succeed or raise a
:class:`teep.errors.TeepError`; any other exception fails the test.  Inputs
are bounded (a few KiB), so each call is quick; nothing here measures time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from teep import cbor, cose
from teep.errors import TeepError
from teep.protocol import codec
from teep.protocol.errors import MalformedMessage
from teep.protocol.registry import FINAL, PRE_RFC

from . import vectors

VECTORS = vectors.all_vectors()
# Unsigned TEEP messages (as opposed to COSE structures and payload files).
MESSAGES = {
    name: data
    for name, data in VECTORS.items()
    if name.split("/")[0] in ("final", "pre-rfc")
}
SIGNED = {name: data for name, data in VECTORS.items() if name.endswith("_cose")}
TARGETS: dict[str, Callable[[bytes], Any]] = {
    "decode-final": lambda data: codec.decode(data, FINAL),
    "decode-pre-rfc": lambda data: codec.decode(data, PRE_RFC),
    "cose-parse": cose.parse,
}
MAX_INPUT = 4096

all_vectors = pytest.mark.parametrize("name", sorted(VECTORS))
message_vectors = pytest.mark.parametrize("name", sorted(MESSAGES))


def survive(data: bytes) -> None:
    """Feed ``data`` to every decoder; only teep's own errors may come out."""
    for target in TARGETS.values():
        try:
            parsed = target(data)
        except TeepError:
            continue
        if isinstance(parsed, cose.COSEMessage) and parsed.payload is not None:
            # a COSE structure that parses carries a payload to decode next
            for dialect in (FINAL, PRE_RFC):
                try:
                    codec.decode(parsed.payload, dialect)
                except TeepError:
                    pass


def refused(data: bytes) -> None:
    """Every decoder refuses ``data`` with a teep error."""
    for name, target in TARGETS.items():
        with pytest.raises(TeepError):
            target(data)
            pytest.fail(f"{name} accepted it")


@all_vectors
def test_truncation_at_every_offset(name: str) -> None:
    """A vector cut short at any byte is refused with a teep error."""
    data = VECTORS[name]
    for end in range(len(data)):
        refused(data[:end])


@all_vectors
def test_single_bit_flips(name: str) -> None:
    """Flipping any one bit of a vector raises at most a teep error."""
    data = VECTORS[name]
    for bit in range(len(data) * 8):
        mutated = bytearray(data)
        mutated[bit // 8] ^= 1 << (bit % 8)
        survive(bytes(mutated))


WRONG_VALUES: list[Any] = [
    None,
    True,
    1.5,
    float("nan"),
    -1,
    (1 << 64) - 1,
    -(1 << 64),
    "text",
    b"bytes",
    [],
    {},
    [[[[]]]],
    {0: {1: [2]}},
    {"k": None},
    cbor.CBORTag(18, []),
]


def replacements(value: list[Any]) -> list[list[Any]]:
    """``value`` with each element, and each option value, swapped for junk."""
    out = []
    for index in range(len(value)):
        for junk in WRONG_VALUES:
            out.append([*value[:index], junk, *value[index + 1 :]])
    if len(value) > 1 and isinstance(value[1], dict):
        for key in value[1]:
            for junk in WRONG_VALUES:
                out.append([value[0], {**value[1], key: junk}, *value[2:]])
    return out


@message_vectors
def test_wrong_types_everywhere(name: str) -> None:
    """Any element or option of the wrong type is refused as MalformedMessage."""
    value = cbor.loads(MESSAGES[name])
    for mutated in replacements(value):
        data = cbor.dumps(mutated)
        survive(data)
        for dialect in (FINAL, PRE_RFC):
            try:
                codec.decode(data, dialect)
            except MalformedMessage:
                pass
            except TeepError as exc:  # LegacyDialect is a sibling, also fine
                assert "speaks" in str(exc)


DEPTH = 10_000
DEEP = {
    "arrays": b"\x81" * DEPTH + b"\x00",
    "maps": b"\xa1\x00" * DEPTH + b"\x00",
    "tag-18": b"\xd2" * DEPTH + b"\x80",
    "tag-0": b"\xc0" * DEPTH + b"\x00",
    "indefinite-arrays": b"\x9f" * DEPTH + b"\xff" * DEPTH,
    "mixed": b"\x82\x00\xa1\x01" * DEPTH + b"\x00",
    "in-message": b"\x82\x04\xa1\x13" + b"\x81" * DEPTH + b"\x00",
    "in-cose-header": b"\xd2\x84\x59\x4e\x21" + b"\x81" * 20000 + b"\x00",
}


@pytest.mark.parametrize("name", sorted(DEEP))
def test_deep_nesting(name: str) -> None:
    """Nesting 10k levels deep is refused without a RecursionError."""
    refused(DEEP[name])


def test_deep_nesting_inside_cose_payload() -> None:
    """A COSE payload nested 10k deep parses as COSE and is refused as TEEP."""
    signed = cbor.dumps(cbor.CBORTag(18, [b"\xa1\x01\x26", {}, DEEP["arrays"], b"s"]))
    message = cose.parse(signed)
    assert message.payload == DEEP["arrays"]
    for dialect in (FINAL, PRE_RFC):
        with pytest.raises(MalformedMessage):
            codec.decode(DEEP["arrays"], dialect)


HUGE = {
    "bstr-2^64": b"\x5b" + b"\xff" * 8,
    "tstr-2^64": b"\x7b" + b"\xff" * 8,
    "array-2^64": b"\x9b" + b"\xff" * 8,
    "map-2^64": b"\xbb" + b"\xff" * 8,
    "bstr-2^32": b"\x5a" + b"\xff" * 4,
    "array-2^32": b"\x9a" + b"\xff" * 4,
    "map-2^32": b"\xba\x7f\xff\xff\xff",
    "token-2^64": b"\x82\x04\xa1\x13\x5b" + b"\xff" * 8,
    "options-2^64": b"\x82\x04\xbb" + b"\xff" * 8,
    "message-2^64": b"\x9b" + b"\xff" * 8 + b"\x04\xa0",
    "cose-payload-2^64": b"\xd2\x84\x43\xa1\x01\x26\xa0\x5b" + b"\xff" * 8,
    "cose-body-2^63": b"\xd2\x9b\x7f" + b"\xff" * 7,
    "tag-2^64": b"\xdb" + b"\xff" * 8 + b"\x00",
}


@pytest.mark.parametrize("name", sorted(HUGE))
def test_huge_declared_lengths(name: str) -> None:
    """A length running far past the end is refused before anything is read."""
    refused(HUGE[name])


DUPLICATES = {
    "options": b"\x82\x04\xa2\x13\x48" + bytes(8) + b"\x13\x48" + bytes(8),
    "error-options": b"\x83\x05\xa2\x0b\x61x\x0b\x61y\x01",
    "requested-tc-info": b"\x82\x02\xa1\x0d\x81\xa2\x0f\x80\x0f\x80",
    "tc-list-claims": b"\x82\x02\xa1\x07\x81\xa2\x00\x80\x00\x80",
    "cose-unprotected": b"\xd2\x84\x43\xa1\x01\x26\xa2\x04\x41a\x04\x41b\x41x\x41s",
    "top-map": b"\xa2\x01\x00\x01\x00",
}


@pytest.mark.parametrize("name", sorted(DUPLICATES))
def test_duplicate_map_keys(name: str) -> None:
    """A map with a repeated key is refused, wherever it sits."""
    refused(DUPLICATES[name])


def indefinite(value: Any, *, deep: bool) -> bytes:
    """Encode ``value`` with indefinite-length containers and strings."""

    def inner(item: Any) -> bytes:
        return indefinite(item, deep=True) if deep else cbor.dumps(item)

    if isinstance(value, list):
        return b"\x9f" + b"".join(inner(v) for v in value) + b"\xff"
    if isinstance(value, dict):
        pairs = b"".join(inner(k) + inner(v) for k, v in value.items())
        return b"\xbf" + pairs + b"\xff"
    if isinstance(value, bytes):
        return b"\x5f" + cbor.dumps(value) + b"\xff"
    if isinstance(value, str):
        return b"\x7f" + cbor.dumps(value) + b"\xff"
    if isinstance(value, cbor.CBORTag):
        head = cbor.dumps(cbor.CBORTag(value.tag, None))[:-1]
        return head + indefinite(value.value, deep=deep)
    return cbor.dumps(value)


@all_vectors
@pytest.mark.parametrize("deep", [False, True], ids=["outer", "everywhere"])
def test_indefinite_lengths(name: str, deep: bool) -> None:
    """The same items with indefinite lengths are refused (definite only)."""
    value = cbor.loads(VECTORS[name])
    refused(indefinite(value, deep=deep))


@all_vectors
@pytest.mark.parametrize("extra", [b"\x00", b"\xff", b"\x80", b"\xf6", None])
def test_trailing_bytes(name: str, extra: bytes | None) -> None:
    """Bytes after the one CBOR item are refused."""
    data = VECTORS[name]
    refused(data + (data if extra is None else extra))


FOREIGN_TAGS: list[tuple[int, Any]] = [
    (0, "2026-02-18T00:00:00Z"),
    (0, "not a date"),
    (1, 1771372800),
    (1, 1e308),
    (2, b"\xff" * 64),
    (3, b"\xff" * 64),
    (4, [-2, 27315]),
    (4, ["x"]),
    (5, [1, 3]),
    (24, b"\x80"),
    (28, [1, 2]),
    (29, 0),
    (29, 7),
    (35, "("),
    (35, "a+"),
    (37, bytes(16)),
    (37, b"short"),
    (55799, [4, {}]),
]
tag_cases = pytest.mark.parametrize(
    ("tag", "content"),
    FOREIGN_TAGS,
    ids=[f"{t}-{i}" for i, (t, _) in enumerate(FOREIGN_TAGS)],
)


@tag_cases
def test_foreign_tag_alone(tag: int, content: Any) -> None:
    """A tag cbor2 would turn into a Python object is refused on its own."""
    refused(cbor.dumps(cbor.CBORTag(tag, content)))


@message_vectors
@tag_cases
def test_foreign_tags_around_items(name: str, tag: int, content: Any) -> None:
    """Tags 0-5, 24, 28/29, 35, 37 around a message or its parts are refused."""
    value = cbor.loads(MESSAGES[name])
    wrapped = [cbor.CBORTag(tag, value)]
    wrapped.append([value[0], cbor.CBORTag(tag, content), *value[2:]])
    for key in value[1]:
        wrapped.append([value[0], {**value[1], key: cbor.CBORTag(tag, content)}])
    wrapped.append([cbor.CBORTag(tag, content), *value[1:]])
    for item in wrapped:
        refused(cbor.dumps(item))


@pytest.mark.parametrize("name", sorted(SIGNED))
@tag_cases
def test_foreign_tags_in_cose(name: str, tag: int, content: Any) -> None:
    """cose.parse refuses foreign tags around the structure or its fields."""
    value = cbor.loads(SIGNED[name])
    body = value.value
    refused(cbor.dumps(cbor.CBORTag(tag, value)))
    for index in range(4):
        fields = [*body[:index], cbor.CBORTag(tag, content), *body[index + 1 :]]
        with pytest.raises(TeepError):
            cose.parse(cbor.dumps(cbor.CBORTag(18, fields)))


def test_unhashable_crit_entry() -> None:
    """A crit list holding an array is refused with a COSE error."""
    protected = cbor.dumps({1: -7, 2: [[1]]})
    data = cbor.dumps(cbor.CBORTag(18, [protected, {}, b"x", b"s"]))
    with pytest.raises(TeepError):
        cose.parse(data)


# -- hypothesis --------------------------------------------------------------


@st.composite
def mutated_vectors(draw: st.DrawFn) -> bytes:
    """A vector edited by a few random inserts, deletes and overwrites."""
    data = bytearray(draw(st.sampled_from(sorted(VECTORS.values()))))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "overwrite", "copy"]))
        chunk = draw(st.binary(min_size=1, max_size=9))
        if action == "insert":
            data[at:at] = chunk
        elif action == "delete":
            del data[at : at + len(chunk)]
        elif action == "overwrite":
            data[at : at + len(chunk)] = chunk
        else:
            start = draw(st.integers(0, len(data)))
            data[at:at] = data[start : start + 64]
    return bytes(data[:MAX_INPUT])


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_vectors())
def test_random_edits_of_vectors(data: bytes) -> None:
    """Random edits of any vector raise at most a teep error."""
    survive(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    """Arbitrary bytes raise at most a teep error."""
    survive(data)


LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(1 << 64), (1 << 64) - 1)
    | st.floats()
    | st.binary(max_size=16)
    | st.text(max_size=8)
)
CBOR_VALUES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.integers(-2, 30) | st.text(max_size=2), inner, max_size=5)
        | st.builds(cbor.CBORTag, st.sampled_from([18, 98, 107, 16, 17, 24, 61]), inner)
    ),
    max_leaves=15,
)
TEEP_SHAPED = st.builds(
    lambda t, opts, rest: [t, opts, *rest],
    st.integers(0, 7),
    st.dictionaries(st.integers(0, 25), CBOR_VALUES, max_size=6),
    st.lists(CBOR_VALUES, max_size=4),
)


@settings(max_examples=100, deadline=None)
@given(st.one_of(CBOR_VALUES, TEEP_SHAPED))
def test_random_cbor_values(value: Any) -> None:
    """Well-formed CBOR of any shape, TEEP-like or not, raises at most a teep error."""
    survive(cbor.dumps(value))


SIGNED_FIELDS = {"protected": 0, "payload": 2, "signature": 3}


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(sorted(SIGNED)), st.sampled_from(sorted(SIGNED_FIELDS)), st.data()
)
def test_tampered_signed_messages_do_not_verify(
    name: str, field: str, data: st.DataObject
) -> None:
    """Changing a byte the signature covers never verifies, and fails cleanly."""
    value = cbor.loads(SIGNED[name])
    body = list(value.value)
    tampered = bytearray(body[SIGNED_FIELDS[field]])
    at = data.draw(st.integers(0, len(tampered) - 1))
    tampered[at] ^= data.draw(st.integers(1, 255))
    body[SIGNED_FIELDS[field]] = bytes(tampered)
    with pytest.raises(TeepError):
        cose.verify(cbor.dumps(cbor.CBORTag(18, body)), vectors.libteep_keys())
