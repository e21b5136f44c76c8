"""Attacks on a TAM over real HTTP on loopback, each with its expected outcome.

The TAM runs in process (aiohttp test server, SQLite store); the attacker and
the devices talk to it through sockets like any client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from teep.device.broker import Broker
from teep.device.runtime import Device
from teep.keys import KeyKind, PrivateKey
from teep.protocol.codec import decode_value
from teep.protocol.messages import Success, Update
from teep.protocol.signing import peek, sign_message
from teep.suit.store import ComponentId
from teep.tam.http import HTTPConfig, bind_socket, make_app, serve_socket
from teep.tam.service import TAMService
from teep.tam.store import StaleVersionError, TAMStore

from .conftest import NAME, TEEP, Fleet

# A generous per-client budget: these tests open many sessions from 127.0.0.1.
OPEN = {"connect_rate": 1000.0, "connect_burst": 1000}


class Client:
    """The attacker's (or a device's) view of a TAM on loopback."""

    def __init__(self, url: str, http: aiohttp.ClientSession, fleet: Fleet) -> None:
        self.url = url
        self.http = http
        self.fleet = fleet
        self.host, self.port = url.split("//")[1].split("/")[0].split(":")
        self.writers: list[asyncio.StreamWriter] = []

    async def post(self, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        """One POST; status, headers and body."""
        headers = {"Accept": TEEP, **({"Content-Type": TEEP} if body else {})}
        async with self.http.post(self.url, data=body, headers=headers) as resp:
            return resp.status, dict(resp.headers), await resp.read()

    async def session(self, device: Device) -> list[Any]:
        """A whole Broker session of ``device``; the Agent's events."""
        outcome = await Broker(device.agent).policy_check(self.url)
        return outcome.events

    async def raw(self, head: bytes, body: bytes = b"") -> asyncio.StreamReader:
        """Send bytes on a fresh connection and keep it open; its reader."""
        reader, writer = await asyncio.open_connection(self.host, int(self.port))
        writer.write(head + body)
        await writer.drain()
        self.writers.append(writer)
        return reader


@contextlib.asynccontextmanager
async def serving(
    fleet: Fleet, store: TAMStore | None = None, **limits: Any
) -> AsyncIterator[Client]:
    """Serve the fleet's TAM on loopback as ``teep tam serve`` does (on
    ``store``, closed afterwards, if given)."""
    store = store or fleet.store()
    service = TAMService(store)
    config = HTTPConfig(port=0, **{**OPEN, **limits})
    app = make_app(
        fleet.home.endpoints(service),
        config=config,
        outstanding=lambda: store.count_outstanding_nonces(None, now=time.time()),
    )
    sock = bind_socket(config)
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve_socket(app, sock, stop, idle_timeout=config.idle_timeout)
    )
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/tam"
    try:
        async with aiohttp.ClientSession() as http:
            client = Client(url, http, fleet)
            try:
                yield client
            finally:
                for writer in client.writers:
                    writer.close()
    finally:
        stop.set()
        await task
        sock.close()
        store.close()


def run(
    fleet: Fleet, scenario: Callable[[Client], Awaitable[None]], **limits: Any
) -> None:
    """Run one attack scenario against a freshly served TAM."""

    async def main() -> None:
        async with serving(fleet, **limits) as client:
            await scenario(client)

    asyncio.run(main())


async def query_response(client: Client, device: Device) -> bytes:
    """Open a session and let the device answer the QueryRequest."""
    status, _, request = await client.post()
    assert status == 200
    reply = device.agent.process(request, client.url).reply
    assert reply is not None
    return reply


def installed(device: Device) -> list[tuple[ComponentId, int]]:
    """(manifest id, sequence number) of what the device holds."""
    return [
        (m.manifest_component_id, m.sequence_number)
        for m in device.tee.components.manifests()
    ]


# replays and forgeries


def test_replayed_query_response_is_dropped(fleet: Fleet, tmp_path: Path) -> None:
    """A QueryResponse sent twice: the second copy gets 400 (challenge used)."""
    device = fleet.device(tmp_path / "d")

    async def scenario(client: Client) -> None:
        answer = await query_response(client, device)
        assert (await client.post(answer))[0] == 200
        assert (await client.post(answer))[0] == 400

    run(fleet, scenario)


def test_reused_token_is_dropped(fleet: Fleet, tmp_path: Path) -> None:
    """A Success sent twice: the second copy gets 400 (token used)."""
    device = fleet.device(tmp_path / "d")

    async def scenario(client: Client) -> None:
        status, _, update = await client.post(await query_response(client, device))
        assert status == 200
        success = device.agent.process(update, client.url).reply
        assert success is not None
        assert (await client.post(success))[0] == 204
        assert (await client.post(success))[0] == 400

    run(fleet, scenario)


def test_forged_signature_is_dropped(fleet: Fleet, tmp_path: Path) -> None:
    """A QueryResponse with a damaged signature gets 400 and does not burn the
    challenge: the genuine one is still accepted afterwards."""
    device = fleet.device(tmp_path / "d")

    async def scenario(client: Client) -> None:
        genuine = await query_response(client, device)
        forged = genuine[:-1] + bytes([genuine[-1] ^ 0x01])
        assert (await client.post(forged))[0] == 400
        assert (await client.post(genuine))[0] == 200

    run(fleet, scenario)


def test_unknown_kid_is_dropped(fleet: Fleet) -> None:
    """A Success signed by a key the TAM never met gets 400."""
    stranger = PrivateKey.generate(KeyKind.P256)
    forged = sign_message(Success(token=bytes(16)), [stranger])

    async def scenario(client: Client) -> None:
        assert (await client.post(forged))[0] == 400

    run(fleet, scenario)


def test_evidence_of_another_device_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    """Device B replaying device A's Evidence (cnf names A's key): dropped while
    B is unknown; once B is enrolled, the appraisal is not affirming and the
    TAM's answer installs nothing."""
    victim = fleet.device(tmp_path / "a")
    thief = fleet.device(tmp_path / "b")
    genuine = thief.attestation

    async def scenario(client: Client) -> None:
        thief.attestation = victim.attestation  # type: ignore[method-assign]
        assert (await client.post(await query_response(client, thief)))[0] == 400
        thief.attestation = genuine  # type: ignore[method-assign]
        await client.session(thief)
        thief.attestation = victim.attestation  # type: ignore[method-assign]
        status, _, body = await client.post(await query_response(client, thief))
        assert status in (200, 204)
        if body:
            update = decode_value(peek(body).payload)
            assert isinstance(update, Update) and not update.manifest_list
        with fleet.store() as store:
            latest = store.list_appraisals(thief.tee.agent_key.kid, 1)[0]
        assert latest.status != "affirming" and "cnf" in latest.reason

    run(fleet, scenario)


def test_result_with_another_devices_token_is_dropped(
    fleet: Fleet, tmp_path: Path
) -> None:
    """An enrolled device B sending a Success with the token issued to A gets 400."""
    victim = fleet.device(tmp_path / "a")
    thief = fleet.device(tmp_path / "b")

    async def scenario(client: Client) -> None:
        await client.session(thief)
        _, _, body = await client.post(await query_response(client, victim))
        update = decode_value(peek(body).payload)
        assert isinstance(update, Update) and update.token is not None
        stolen = sign_message(Success(token=update.token), [thief.tee.agent_key])
        assert (await client.post(stolen))[0] == 400

    run(fleet, scenario)


# rollback


def test_catalogue_refuses_a_lower_sequence_number(fleet: Fleet) -> None:
    """The TAM catalogue refuses a version not newer than the newest one."""
    fleet.publish(3)
    for stale in (3, 2):
        with pytest.raises(StaleVersionError, match="rollback"):
            fleet.publish(stale)


def test_device_refuses_a_rollback(fleet: Fleet, tmp_path: Path) -> None:
    """A TAM that sends an older version than installed gets an Error and the
    device keeps the newer one."""
    device = fleet.device(tmp_path / "d")
    fleet.publish(2)

    async def scenario(client: Client) -> None:
        await client.session(device)
        assert [seq for _, seq in installed(device)] == [2]
        # The operator removes the component and catalogues version 1 again.
        with fleet.store() as store:
            store.remove_component(NAME)
        fleet.publish(1)
        with fleet.store() as store:
            store.add_policy(NAME)
        await client.session(device)
        assert [seq for _, seq in installed(device)] == [2]
        with fleet.store() as store:
            kinds = [e.kind for e in store.list_events(device.tee.agent_key.kid)]
        assert "update-failed" in kinds

    run(fleet, scenario)


# resource exhaustion


async def status_of(reader: asyncio.StreamReader, timeout: float = 5.0) -> int:
    """The status code of the HTTP response on ``reader``."""
    line = await asyncio.wait_for(reader.readline(), timeout)
    return int(line.split()[1])


async def closed(reader: asyncio.StreamReader, timeout: float = 5.0) -> bool:
    """Whether the server closes the connection after its response."""
    with contextlib.suppress(ConnectionError):
        while await asyncio.wait_for(reader.read(4096), timeout):
            pass
    return True


def head(length: int | None, chunked: bool = False) -> bytes:
    """A request head for a TEEP POST."""
    lines = [b"POST /tam HTTP/1.1", b"Host: tam", b"Accept: " + TEEP.encode()]
    lines.append(b"Content-Type: " + TEEP.encode())
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
    elif length is not None:
        lines.append(b"Content-Length: %d" % length)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def test_oversized_body_refused_before_reading(fleet: Fleet) -> None:
    """A declared 64 MiB body gets 413 at once, without the body being sent,
    and the connection is closed."""

    async def scenario(client: Client) -> None:
        reader = await client.raw(head(64 * 1024 * 1024))
        assert await status_of(reader, timeout=2.0) == 413
        assert await closed(reader)

    run(fleet, scenario)


def test_oversized_chunked_body_refused(fleet: Fleet) -> None:
    """A chunked body growing past the limit gets 413 once it crosses it."""

    async def scenario(client: Client) -> None:
        chunk = b"%x\r\n" % 4096 + bytes(4096) + b"\r\n"
        reader = await client.raw(head(None, chunked=True), chunk * 4)
        assert await status_of(reader) == 413

    run(fleet, scenario, max_body=8192)


def test_slow_body_times_out(fleet: Fleet) -> None:
    """A body that trickles in is cut off after read_timeout: 408, closed."""

    async def scenario(client: Client) -> None:
        started = time.monotonic()
        reader = await client.raw(head(100), bytes(10))
        assert await status_of(reader) == 408
        assert time.monotonic() - started < 3.0
        assert await closed(reader)

    run(fleet, scenario, read_timeout=0.5)


def test_idle_and_trickling_heads_are_closed(fleet: Fleet) -> None:
    """A connection that sends nothing, or a request head a line at a time,
    is closed after idle_timeout: it cannot hold a socket for long."""

    async def scenario(client: Client) -> None:
        started = time.monotonic()
        silent = await client.raw(b"", b"")
        trickling = await client.raw(b"POST /tam HTTP/1.1\r\n", b"")
        writer = client.writers[-1]
        with contextlib.suppress(ConnectionError):
            while not trickling.at_eof() and time.monotonic() - started < 5.0:
                writer.write(b"X-Padding: 1\r\n")
                await writer.drain()
                await asyncio.sleep(0.1)
        assert await closed(silent) and await closed(trickling)
        assert time.monotonic() - started < 3.0

    run(fleet, scenario, idle_timeout=0.5)


def test_body_cut_short_is_one_log_line(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that declares 100 bytes, sends 2 and closes its connection
    costs one INFO line naming it, never an ERROR with a traceback."""

    async def scenario(client: Client) -> None:
        reader, writer = await asyncio.open_connection(client.host, int(client.port))
        writer.write(head(100) + b"\xd2\x84")
        await writer.drain()
        await asyncio.sleep(0.1)  # let the handler start reading the body
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.2)
        assert reader.at_eof() or not await reader.read()

    # The teep logger's own level may have been raised by an in-process
    # CLI run earlier in the session: lower it too.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, "teep"):
        run(fleet, scenario)
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert all(r.exc_info is None for r in caplog.records)
    lines = [r.getMessage() for r in caplog.records if r.name == "teep.tam.http"]
    assert lines == ["client 127.0.0.1 closed the connection mid-request"]


MALFORMED = [
    b"POST /tam HTTP/1.1\r\nHost: tam\r\nContent-Length: -5\r\n\r\n",
    b"POST /tam HTTP/1.1\r\nHost: tam\r\nContent-Length: 99999999999999999999999"
    b"\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    head(None, chunked=True) + b"zz\r\nhello\r\n",
    head(4).replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n"),
    b"P\x1bOST /tam HTTP/1.1\r\nHost: tam\r\n\r\n",
    b"POST /tam HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
]


def test_malformed_requests_log_one_line_each(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    """Requests aiohttp cannot parse get 400 and one line each with the
    peer's address (WARNING; DEBUG for a bad method on a connection's first
    request), never an ERROR with a traceback."""

    async def scenario(client: Client) -> None:
        for request in MALFORMED:
            reader = await client.raw(request)
            assert await status_of(reader) == 400, request[:40]
            assert await closed(reader)

    with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
        run(fleet, scenario)
    assert "Traceback" not in caplog.text
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(records) == len(MALFORMED)
    assert all(r.levelno <= logging.WARNING for r in records)
    assert any(r.levelno == logging.WARNING for r in records)
    assert all(r.exc_info is None for r in records)
    lines = [r.getMessage() for r in records]
    assert all("\n" not in line and "\x1b" not in line for line in lines)
    assert all(line.startswith("bad HTTP request from 127.0.0.1: ") for line in lines)


def test_flood_of_empty_posts_is_rate_limited(fleet: Fleet) -> None:
    """Past its burst, a client's empty POSTs get 429 with Retry-After."""

    async def scenario(client: Client) -> None:
        statuses = []
        for _ in range(4):
            status, headers, _ = await client.post()
            statuses.append(status)
        assert statuses == [200, 200, 200, 429]
        assert int(headers["Retry-After"]) >= 1

    run(fleet, scenario, connect_rate=0.1, connect_burst=3)


def test_outstanding_challenges_are_capped(fleet: Fleet) -> None:
    """Once the TAM holds its cap of unanswered challenges, new sessions get
    503 with Retry-After, whoever asks."""

    async def scenario(client: Client) -> None:
        statuses = [(await client.post())[0] for _ in range(5)]
        assert statuses == [200] * 4 + [503]

    run(fleet, scenario, max_outstanding_challenges=4)


def test_rate_limited_client_is_served_after_retry_after(
    fleet: Fleet, tmp_path: Path
) -> None:
    """A client that was refused with 429 is served again once it waits
    out Retry-After: the limit meters, it does not ban."""
    device = fleet.device(tmp_path / "d")

    async def scenario(client: Client) -> None:
        for _ in range(3):
            await client.post()
        status, headers, _ = await client.post()
        assert status == 429
        # Same address here, so the device waits out Retry-After as a
        # well-behaved Broker would, then completes its session.
        await asyncio.sleep(int(headers["Retry-After"]))
        await client.session(device)
        assert [seq for _, seq in installed(device)] == [1]

    run(fleet, scenario, connect_rate=1.0, connect_burst=3)


@pytest.mark.parametrize("cap", [100_000, 0], ids=["gauge", "connect"])
def test_unreachable_database_is_503_and_one_line_each(
    fleet: Fleet, caplog: pytest.LogCaptureFixture, cap: int
) -> None:
    """While the database cannot be opened, an empty POST (the challenge
    gauge, or the QueryRequest when the cap is off) and a message get 503
    with Retry-After and one ERROR line naming the cause, no traceback; the
    TAM serves again once the database is back."""
    path = Path(fleet.url.removeprefix("sqlite:///"))
    away = path.with_name("away.db")
    stranger = PrivateKey.generate(KeyKind.P256)
    message = sign_message(Success(token=bytes(16)), [stranger])

    async def main() -> None:
        store = fleet.store()
        async with serving(fleet, store, max_outstanding_challenges=cap) as client:
            # Every pooled connection closed, the file gone: a directory in
            # its place cannot be opened.
            store.close()
            path.rename(away)
            path.mkdir()
            for body in (b"", message):
                status, headers, content = await client.post(body)
                assert (status, content) == (503, b"")
                assert int(headers["Retry-After"]) >= 1
            path.rmdir()
            away.rename(path)
            assert (await client.post())[0] == 200

    with caplog.at_level(logging.INFO, "teep"):
        asyncio.run(main())
    assert "Traceback" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2
    assert all(
        e.startswith("database unavailable: 127.0.0.1 answered 503: cannot ")
        for e in errors
    )
    assert all("unable to open database file" in e for e in errors)
