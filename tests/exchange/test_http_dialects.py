"""Older dialects are refused at the HTTP layer with one line naming them
(legacy/VERSIONS.md 3.2): 406 for a legacy Accept, 415 for a JSON body, 400
for a CBOR body of an older draft or of the other numbering."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from teep.protocol.messages import QueryResponse
from teep.protocol.registry import PRE_RFC
from teep.protocol.signing import sign_message
from teep.tam.http import HTTPConfig, make_app

from .conftest import World

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "teep"
TEEP = "application/teep+cbor"


def post(world: World, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST ``body`` to the world's final-numbering TAM over in-process HTTP."""

    async def run() -> tuple[int, str]:
        app = make_app({"/tam": world.tam()}, config=HTTPConfig(connect_rate=0))
        async with TestClient(TestServer(app)) as client:
            response = await client.post("/tam", data=body, headers=headers)
            return response.status, await response.text()

    return asyncio.run(run())


def test_otrp_json_body_refused_by_name(world: World) -> None:
    """An OTrP v1 JSON request gets 415 and a line naming OTrP v1."""
    body = (
        VECTORS / "legacy-json" / "otrp-v1-GetDeviceStateTBSRequest.json"
    ).read_bytes()
    status, text = post(world, body, {"Content-Type": "application/json"})
    assert status == 415
    assert "OTrP v1" in text and "\n" not in text.strip()


def test_teep_json_body_refused_by_name(world: World) -> None:
    """A TEEP-over-JSON message gets 415 naming that dialect."""
    body = (VECTORS / "legacy-json" / "teep-json-2020-query-response.json").read_bytes()
    status, text = post(world, body, {"Content-Type": "application/teep+json"})
    assert status == 415 and "TEEP over JSON" in text


def test_legacy_accept_refused_by_name(world: World) -> None:
    """An opening POST accepting only application/otrp+json gets 406 naming OTrP."""
    status, text = post(world, b"", {"Accept": "application/otrp+json"})
    assert status == 406 and "OTrP" in text


def test_draft_04_cbor_refused_by_name(world: World) -> None:
    """A draft -04 message (uint token) sent as teep+cbor gets 400 naming the draft."""
    body = bytes.fromhex(
        (VECTORS / "legacy-draft-04" / "install.hex").read_text().strip()
    )
    status, text = post(world, body, {"Content-Type": TEEP, "Accept": TEEP})
    assert status == 400 and "-02 to -04" in text


def test_pre_rfc_numbering_refused_by_name(world: World) -> None:
    """A pre-RFC QueryResponse to the final endpoint gets 400 naming the numbering."""
    key = world.device.tee.agent_key
    message = QueryResponse(token=b"t" * 16, attestation_payload=b"x")
    body = sign_message(message, [key], dialect=PRE_RFC)
    status, text = post(world, body, {"Content-Type": TEEP, "Accept": TEEP})
    assert status == 400 and "pre-rfc" in text


def test_plain_garbage_has_empty_400(world: World) -> None:
    """A body that is no dialect at all still gets a bare 400."""
    status, text = post(world, b"\x01\x02", {"Content-Type": TEEP, "Accept": TEEP})
    assert status == 400 and text == ""


LEGACY_EXAMPLES = VECTORS / "legacy-examples"
# Words the refusal line carries for each verdict of verdicts.tsv.
LEGACY_WORDS = {
    "A": "OTrP v1",
    "C": "TEEP over JSON",
    "D": "draft-ietf-teep-protocol-00/-01",
    "E": "draft -02 to -04",
}
JSON_MEDIA = {
    "otrp-v1": "application/otrp+json",
    "teep-json-2020": "application/teep+json",
}


def _legacy_cases() -> list[Any]:
    cases = []
    for line in (LEGACY_EXAMPLES / "verdicts.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            name, verdict = line.split("\t")
            cases.append(pytest.param(name, verdict, id=name))
    return cases


def _example_body(name: str) -> bytes:
    path = LEGACY_EXAMPLES / name
    if not name.endswith(".hex.txt"):
        return path.read_bytes()
    text = re.sub(r"#[^\n]*", "", path.read_text())
    return bytes.fromhex("".join(text.split()))


@pytest.mark.parametrize(("name", "verdict"), _legacy_cases())
def test_legacy_example_refused_over_http(
    world: World, name: str, verdict: str
) -> None:
    """Every example of legacy/VERSIONS.md 4, POSTed with its own media type,
    is refused with one line naming its dialect: 415 for the JSON dialects,
    400 for CBOR sent as application/teep+cbor; a malformed one gets a bare
    400."""
    body = _example_body(name)
    media = JSON_MEDIA.get(name.split("/")[0], TEEP)
    status, text = post(world, body, {"Content-Type": media, "Accept": TEEP})
    if verdict == "unknown":
        assert (status, text) == (400, "")
        return
    assert status == (400 if media == TEEP else 415)
    assert LEGACY_WORDS[verdict] in text and "\n" not in text.strip()


@pytest.mark.parametrize(
    "name",
    [
        "otrp-v1/07-CreateSDRequest.json",
        "teep-json-2020/ietf106-slide-forms.json",
        "teep-json-2020/query-request.json",
    ],
)
def test_json_sent_as_teep_cbor_named(world: World, name: str) -> None:
    """A JSON body mislabelled application/teep+cbor still gets its dialect
    named (400), not an empty refusal."""
    status, text = post(
        world, _example_body(name), {"Content-Type": TEEP, "Accept": TEEP}
    )
    verdict = "A" if name.startswith("otrp") else "C"
    assert status == 400 and LEGACY_WORDS[verdict] in text
