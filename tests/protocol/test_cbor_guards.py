"""The fast paths of teep.cbor are as strict as the slow ones.

``loads`` checks the exact types of a container's keys and children all at
once and recurses only into containers; ``dumps`` keeps one cbor2 encoder per
thread.  These tests pin what those shortcuts must not change.
"""

from __future__ import annotations

import threading
from typing import Any

import cbor2
import pytest

from teep import cbor, cose
from teep.keys import KeyKind, PrivateKey

VALUES: list[Any] = [
    0,
    -1,
    2**64 - 1,
    1.5,
    b"",
    bytes(300),
    "text",
    None,
    True,
    [],
    [[[]]],
    {1: [b"x", {2: "y"}], "k": None},
    cbor2.CBORTag(18, [b"", {}, b"p", b"s"]),
    [[1, 2], [3, [4, [5]]]],
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_dumps_matches_cbor2(value: Any) -> None:
    """cbor.dumps writes exactly what cbor2.dumps writes."""
    assert cbor.dumps(value) == cbor2.dumps(value)


def test_dumps_recovers_after_a_failure() -> None:
    """An encoding that fails midway leaves nothing behind for the next one."""
    with pytest.raises(cbor2.CBOREncodeError):
        cbor.dumps([1, [2, object()]])
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    with pytest.raises(cbor2.CBOREncodeError):
        cbor.dumps(cyclic)
    assert cbor.dumps([1, [2]]) == b"\x82\x01\x81\x02"


def test_dumps_from_many_threads() -> None:
    """Threads encoding at once each get their own value back."""
    results: dict[int, bool] = {}

    def work(n: int) -> None:
        value = [n, {n: bytes(n)}, [[n] * n]]
        results[n] = all(cbor.dumps(value) == cbor2.dumps(value) for _ in range(200))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == dict.fromkeys(range(8), True)


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("a1 82 01 02 01".replace(" ", "")),  # {[1, 2]: 1}
        bytes.fromhex("a1 f9 3c 00 01".replace(" ", "")),  # {1.0: 1}
        bytes.fromhex("81 81 a1 81 01 02".replace(" ", "")),  # [[{[1]: 2}]]
        bytes.fromhex("82 01 a1 a0 01".replace(" ", "")),  # [1, {{}: 1}]
    ],
    ids=["array-key", "float-key", "nested-array-key", "map-key"],
)
def test_map_keys_of_other_types_refused(data: bytes) -> None:
    """Map keys are int, bytes, text, bool or null, at any depth."""
    with pytest.raises(cbor.CBORDecodeError, match="map key"):
        cbor.loads(data)


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("83 01 02 c1 01".replace(" ", "")),  # [1, 2, 1(1)]
        bytes.fromhex("82 81 81 c1 01 02".replace(" ", "")),  # [[[1(1)]], 2]
        bytes.fromhex("a1 01 82 01 c0 60".replace(" ", "")),  # {1: [1, 0("")]}
        bytes.fromhex("82 01 f7".replace(" ", "")),  # [1, undefined]
        bytes.fromhex("82 01 e0".replace(" ", "")),  # [1, simple(0)]
    ],
    ids=["epoch-time", "deep-epoch-time", "date-string", "undefined", "simple"],
)
def test_items_beside_plain_ones_are_checked(data: bytes) -> None:
    """A foreign item next to plain ones, or deep inside, is still refused."""
    with pytest.raises(cbor.CBORDecodeError):
        cbor.loads(data, tags=frozenset())


def test_depth_limit_holds_on_the_fast_path() -> None:
    """A well-formed, preferred encoding nested too deeply is refused."""
    data = b"\x81" * 40 + b"\x01"
    with pytest.raises(cbor.CBORDecodeError, match="deep"):
        cbor.loads(data)
    assert cbor.loads(b"\x81" * 20 + b"\x01") == [
        [[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]
    ]


def test_bad_protected_header_refused_every_time() -> None:
    """A refused protected header is refused again (refusals are not cached)."""
    key = PrivateKey.generate(KeyKind.P256)
    value = cbor.loads(cose.sign1(b"x", key))
    value.value[0] = cbor.dumps({1: -9, 2: [99]})
    data = cbor.dumps(value)
    for _ in range(3):
        with pytest.raises(cose.COSEDecodeError, match="critical"):
            cose.parse(data)


def test_cached_protected_header_is_read_only() -> None:
    """The shared decoded header cannot be changed through a parsed message."""
    key = PrivateKey.generate(KeyKind.P256)
    signed = cose.sign1(b"x", key)
    cose.parse(signed)
    header = cose._protected_map(cose.parse(signed).signatures[0].protected, "body")
    with pytest.raises(TypeError):
        header[1] = -19  # type: ignore[index]


def test_decoder_stopped_inside_a_map_key_leaves_nothing_behind() -> None:
    """The decoder kept between calls starts afresh after a failure: an
    input cut off inside an array used as a map key (where arrays decode as
    tuples) does not turn the next input's arrays into tuples."""
    with pytest.raises(cbor.CBORDecodeError):
        cbor.loads(bytes.fromhex("a18201"))  # {[1, <missing>]: ...}
    assert cbor.loads(bytes.fromhex("820102")) == [1, 2]
    assert type(cbor.loads(bytes.fromhex("81820102"))[0]) is list


# A signed message's payload is decoded without the generic item walk; the
# codec checks every item it reads or keeps.  Each payload below is signed
# (so it reaches the codec) and must be refused as malformed, never decoded.
_ODD_PAYLOADS = {
    "tag in a typed option": [
        1,
        {2: cbor.CBORTag(0, "2026-01-01T00:00:00Z")},
        [[[18, -9]]],
        [[-16, -9]],
        3,
    ],
    "tag in an unknown option": [4, {19: bytes(16), 99: cbor.CBORTag(1, 5)}],
    "undefined in an unknown option": [4, {19: bytes(16), 99: cbor2.undefined}],
    "simple value in an unknown option": [
        4,
        {19: bytes(16), 99: cbor2.CBORSimpleValue(99)},
    ],
    "array as a key in a tc-list entry": [
        2,
        {19: bytes(16), 13: [{0: [b"x"], (1, 2): 3}]},
    ],
    "set in an unknown option": [4, {19: bytes(16), 99: {1, 2}}],
}


@pytest.mark.parametrize("name", list(_ODD_PAYLOADS))
def test_signed_payload_items_checked_by_the_codec(name: str) -> None:
    from teep.protocol.errors import MalformedMessage
    from teep.protocol.registry import FINAL
    from teep.protocol.signing import open_signed, peek

    key = PrivateKey.generate(KeyKind.P256)
    signed = cose.sign1(cbor2.dumps(_ODD_PAYLOADS[name]), key)
    with pytest.raises(MalformedMessage):
        open_signed(peek(signed), [key.public], dialect=FINAL)
