"""The classifier of older dialects (legacy/VERSIONS.md 2.2-2.4) over every
example file of VERSIONS.md 4, and the shapes around its edges."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from teep import cbor
from teep.protocol import codec, legacy
from teep.protocol.errors import LegacyDialect

from . import vectors

EXAMPLES = vectors.ROOT / "legacy-examples"


def example_cases() -> list[Any]:
    """One pytest param (path, expected verdict id) per line of verdicts.tsv."""
    cases = []
    for line in (EXAMPLES / "verdicts.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            name, verdict = line.split("\t")
            cases.append(pytest.param(EXAMPLES / name, verdict, id=name))
    return cases


def example_bytes(path: Path) -> bytes:
    """The body a peer would send: hex dumps (annotated or not) are decoded."""
    if not path.name.endswith(".hex.txt"):
        return path.read_bytes()
    text = re.sub(r"#[^\n]*", "", path.read_text())
    return bytes.fromhex("".join(text.split()))


def test_every_example_is_listed() -> None:
    """verdicts.tsv covers every example file (no file left untested)."""
    listed = {case.values[0] for case in example_cases()}
    files = {
        p for p in EXAMPLES.rglob("*") if p.is_file() and p.suffix in (".json", ".txt")
    }
    assert files == listed
    assert len(listed) == 57


@pytest.mark.parametrize(("path", "verdict"), example_cases())
def test_example_verdict(path: Path, verdict: str) -> None:
    """Each example is classified as VERSIONS.md 4 says."""
    found = legacy.sniff(example_bytes(path))
    assert (found.id if found else "unknown") == verdict


@pytest.mark.parametrize(
    "path",
    sorted(vectors.FINAL_DIR.glob("*.hex"))
    + sorted(vectors.PRE_RFC_DIR.glob("*.hex"))
    + sorted(vectors.LIBTEEP_DIR.glob("*.hex")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_current_teep_is_not_legacy(path: Path) -> None:
    """Final and pre-RFC messages, bare or COSE-signed, are no legacy verdict
    (libteep's draft-08 negative examples aside)."""
    found = legacy.sniff(vectors.read_hex(path))
    if path.name.startswith("query_request_err"):
        assert found is None or found.id == "F-early"
    else:
        assert found is None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


TEEP_JSON = json.dumps({"TYPE": 1, "TOKEN": "a1"}).encode()


@pytest.mark.parametrize(
    ("body", "verdict"),
    [
        pytest.param(b"\xef\xbb\xbf \r\n" + TEEP_JSON, "C", id="bom-whitespace"),
        pytest.param(b'{"GetDeviceStateRequest": {"payload": "\n ab', "A", id="cut"),
        pytest.param(b'{"TAQuery": {"spid": 1}}', "A", id="otrp-taquery"),
        pytest.param(b'{"type": 1, "token": "a"}', "C", id="lower-case"),
        pytest.param(b'{"1": 1, "2": "a2"}', "C", id="numeric-keys"),
        pytest.param(b'{"TYPE": "QueryRequest"}', "C", id="type-name"),
        pytest.param(b'{"hello": "world"}', "JSON", id="other-json"),
        pytest.param(b"{ not json at all", "JSON", id="broken-json"),
        pytest.param(
            json.dumps({"payload": _b64(TEEP_JSON), "signature": "c2ln"}).encode(),
            "C",
            id="flattened-jws-of-teep-json",
        ),
        pytest.param(
            json.dumps({"payload": _b64(b"\x00"), "signatures": []}).encode(),
            "A/C",
            id="jws-opaque-payload",
        ),
        pytest.param(
            json.dumps({"ciphertext": "x", "iv": "y", "tag": "z"}).encode(),
            "A/C",
            id="jwe",
        ),
        pytest.param(
            json.dumps(f"eyJhbGciOiJSUzI1NiJ9.{_b64(TEEP_JSON)}.c2ln").encode(),
            "C",
            id="compact-jws",
        ),
        pytest.param(json.dumps("eyJ.a.b.c.d").encode(), "A/C", id="compact-jwe"),
        pytest.param(
            cbor.dumps({"TYPE": 1, "TOKEN": b"\x01"}), "D", id="draft01-no-wrapper"
        ),
        pytest.param(
            cbor.dumps(cbor.CBORTag(18, [b"", {}, cbor.dumps([1, 7, {}, 2]), b""])),
            "E",
            id="cose-sign1-of-draft04",
        ),
    ],
)
def test_edge_shapes(body: bytes, verdict: str) -> None:
    found = legacy.sniff(body)
    assert found is not None and found.id == verdict


@pytest.mark.parametrize(
    "value",
    [
        {1: 2, 2: b"kid"},  # a COSE_Key (integer kty under 1)
        {2: b"auth", 3: b"manifest"},  # a SUIT envelope
        [2, {}],
        cbor.CBORTag(99, b"x"),
    ],
    ids=repr,
)
def test_not_legacy_cbor(value: Any) -> None:
    assert legacy.sniff(cbor.dumps(value)) is None


def test_map_era_refused_by_codec() -> None:
    """The codec names drafts -00/-01 when handed their Outer_Wrapper."""
    data = example_bytes(
        EXAMPLES / "teep-cbor-draft01-style/tamproto-ta_install.hex.txt"
    )
    with pytest.raises(LegacyDialect, match="-00/-01"):
        codec.decode(data)


def test_refusal_for_body_prefers_the_body() -> None:
    """A JSON body names its dialect whatever media type it came with; an
    unrecognised JSON body falls back to the media type."""
    text = legacy.refusal_for_body("application/json", TEEP_JSON)
    assert text is not None and "TEEP over JSON" in text
    text = legacy.refusal_for_body("application/otrp+json", b'{"x": 1}')
    assert text is not None and "OTrP v1" in text
    assert legacy.refusal_for_body("text/plain", b"\x01\x02") is None
