"""Older dialects are refused at the HTTP layer with one line naming them
(legacy/VERSIONS.md 3.2): 406 for a legacy Accept, 415 for a JSON body, 400
for a CBOR body of an older draft or of the other numbering."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
