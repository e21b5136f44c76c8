"""teep.diag: diagnostic notation with names, and its JSON twin."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from teep import cbor, cose, diag
from teep.keys import KeyKind, PrivateKey
from teep.protocol import codec
from teep.protocol.messages import Error, QueryRequest
from teep.protocol.registry import PRE_RFC, ErrCode

from .conftest import VECTORS


def _vector(name: str) -> object:
    return cbor.loads(bytes.fromhex((VECTORS / f"{name}.hex").read_text().strip()))


def test_plain_items() -> None:
    """Plain items follow RFC 8949 section 8."""
    value = [1, -2, b"\x00\xff", 't"x', True, False, None, 1.5, {}, []]
    assert diag.annotate(value, diag.Kind.PLAIN) == (
        '[1, -2, h\'00ff\', "t\\"x", true, false, null, 1.5, {}, []]'
    )


def test_special_floats() -> None:
    """NaN and infinities use their diagnostic spellings."""
    text = diag.annotate([float("nan"), float("inf"), float("-inf")], diag.Kind.PLAIN)
    assert text == "[NaN, Infinity, -Infinity]"


def test_tag_is_shown_with_number() -> None:
    """An unknown tag is rendered as N(item)."""
    assert (
        diag.annotate(cbor.CBORTag(61, {1: 2}), diag.Kind.PLAIN) == "/ CWT / 61({1: 2})"
    )


def test_query_request_names() -> None:
    """A QueryRequest names its positions, algorithms and data items."""
    text = diag.annotate(_vector("query_request"))
    assert "/ type / 1 / query-request /" in text
    assert "/ cose-alg / -9 / ESP256 /" in text
    assert "/ data-item-requested / 3 / attestation | trusted-components /" in text


def test_pre_rfc_naming() -> None:
    """The dialect decides how labels and codes are named."""
    wire = codec.encode_value(
        Error(token=bytes(8), err_code=ErrCode.ERR_MANIFEST_PROCESSING_FAILED), PRE_RFC
    )
    text = diag.annotate(wire, dialect=PRE_RFC)
    assert "/ token / 20:" in text
    assert "/ err-code / 17 / ERR_MANIFEST_PROCESSING_FAILED /" in text


def test_signed_payload_and_header_unwrapped() -> None:
    """A COSE_Sign1's protected header and payload are shown as << >>."""
    key = PrivateKey.generate(KeyKind.ED25519)
    signed = cbor.loads(cose.sign1(codec.encode(QueryRequest(token=bytes(8))), key))
    text = diag.annotate(signed)
    assert text.startswith("/ COSE_Sign1 / 18([")
    assert "/ protected / << {/ alg / 1: -19 / Ed25519 /} >>" in text
    assert "/ payload / << [" in text
    assert f"/ kid / 4: h'{key.kid.hex()}'" in text


def test_unknown_bytes_stay_bytes() -> None:
    """A manifest-list entry that is not CBOR is shown as a byte string."""
    text = diag.annotate([3, {19: bytes(8), 9: [b"\xff\xfe"]}])
    assert "h'fffe'" in text


def test_cose_key() -> None:
    """A COSE_Key names kty and crv."""
    key = PrivateKey.generate().public.cose_key()
    text = diag.annotate(key)
    assert "/ kty / 1: 2 / EC2 /" in text
    assert "/ crv / -1: 1 / P-256 /" in text


def test_to_json_update() -> None:
    """to_json names keys, hexes bytes and unwraps nested CBOR."""
    data = diag.to_json(_vector("update"))
    options = data[1]
    assert options["token (19)"] == "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
    envelope = options["manifest-list (9)"][0]["cbor"]
    manifest = envelope["suit-manifest (3)"]["cbor"]
    assert manifest["suit-manifest-sequence-number (2)"] == 3
    json.dumps(data)  # serialisable as is


_items = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64) + 1, 2**64 - 1)
    | st.binary(max_size=16)
    | st.text(max_size=8)
    | st.floats(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.integers(-30, 300), inner, max_size=4)
        | st.builds(cbor.CBORTag, st.sampled_from([18, 98, 107, 61]), inner)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(_items)
def test_never_raises(value: object) -> None:
    """Any decoded item is rendered, whatever kind it is taken for."""
    for kind in diag.Kind:
        assert isinstance(diag.annotate(value, kind), str)
        json.dumps(diag.to_json(value, kind))
