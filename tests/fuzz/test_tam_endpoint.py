"""Fuzzing the TAM: its protocol engine, and its HTTP endpoint on loopback."""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from teep.tam.http import HTTPConfig, bind_socket, make_app, serve_socket

from .harness import FUZZ, inputs, seeds

S = seeds()
TEEP = "application/teep+cbor"
# Everything the endpoint may answer to a client it does not trust.
ALLOWED = {200, 204, 400, 405, 406, 408, 413, 415, 429, 503}


@FUZZ
@given(inputs(S.teep))
def test_tam_engine(data: bytes) -> None:
    """TAM.process never raises: it answers or drops."""
    result = S.tam.process(data)
    assert result.dropped or result.reply is None or result.reply


@pytest.fixture(scope="module", params=[True, False], ids=["threads", "inline"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """The seeds' TAM served on loopback by a thread running its own loop,
    the engine in worker threads or in the loop itself."""
    config = HTTPConfig(port=0, max_body=4096, connect_rate=0)
    sock = bind_socket(config)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    app = make_app({"/tam": S.tam}, config=config, offload=request.param)
    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve_socket(app, sock, stop),)
    )
    thread.start()
    try:
        yield "127.0.0.1", sock.getsockname()[1]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
        sock.close()


requests = st.tuples(
    st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
    st.sampled_from(
        [TEEP, TEEP, "application/cbor", "", "application/teep+cbor; x=1", "\x7f"]
    ),
    st.sampled_from([TEEP, "*/*", "", "text/html", "application/*, q=0"]),
    inputs([*S.teep, b"", bytes(5000)]),
)


@FUZZ
@given(requests)
def test_http_endpoint(
    endpoint: tuple[str, int], request: tuple[str, str, str, bytes]
) -> None:
    """Any request gets a status from the HTTP binding's table, never 500; a
    200 has TEEP content; other answers are bare, but for a refusal that names
    an older dialect (406, 415) and the HTTP parser's own 400."""
    method, content_type, accept, body = request
    connection = http.client.HTTPConnection(*endpoint, timeout=10)
    try:
        headers = {"Content-Type": content_type, "Accept": accept}
        connection.request(method, "/tam", body=body, headers=headers)
        response = connection.getresponse()
        content = response.read()
    finally:
        connection.close()
    assert response.status in ALLOWED
    if response.status == 200:
        assert content and response.getheader("Content-Type") == TEEP
    elif response.status not in (400, 406, 415):
        assert not content
