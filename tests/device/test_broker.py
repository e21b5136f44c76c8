"""The Broker: the read timeout bounds each silence, not the whole exchange;
connection failures are named plainly."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from teep.device.broker import Broker, BrokerConfig, TransportError
from teep.device.runtime import Device
from teep.protocol.agent import Dropped

TEEP = b"application/teep+cbor"


async def _trickle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gap: float
) -> None:
    await reader.readuntil(b"\r\n\r\n")
    body = bytes(range(8)) * 4
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: " + TEEP + b"\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    for start in range(0, len(body), 4):
        writer.write(body[start : start + 4])
        await writer.drain()
        await asyncio.sleep(gap)
    writer.close()


async def _policy_check(
    device: Device, gap: float, read_timeout: float
) -> tuple[list[object], list[int]]:
    """The Agent's events, and the size of each message the Broker received."""
    sizes: list[int] = []
    server = await asyncio.start_server(
        lambda r, w: _trickle(r, w, gap), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    config = BrokerConfig(read_timeout=read_timeout)
    try:
        broker = Broker(device.agent, config, lambda _, data: sizes.append(len(data)))
        outcome = await broker.policy_check(f"http://127.0.0.1:{port}/tam")
    finally:
        server.close()
    return list(outcome.events), sizes


def test_slow_response_within_each_read_timeout_arrives(tmp_path: Path) -> None:
    """A response trickling in (1.6 s in all, 0.2 s between pieces) is read
    whole with a 0.5 s read timeout: the limit is per read, and the Broker
    reads until the body ends, not only what the first read returns."""
    device = Device.init(tmp_path / "dev")
    events, sizes = asyncio.run(_policy_check(device, gap=0.2, read_timeout=0.5))
    assert sizes == [32]
    # The bytes are no TEEP message: the Agent drops them.
    assert len(events) == 1 and isinstance(events[0], Dropped)


def test_silence_longer_than_the_read_timeout_fails(tmp_path: Path) -> None:
    """A pause in the response longer than the read timeout ends the session."""
    device = Device.init(tmp_path / "dev")
    with pytest.raises(TransportError, match=r"did not answer within 0\.3 s"):
        asyncio.run(_policy_check(device, gap=1.0, read_timeout=0.3))


def test_refused_connection_names_the_reason(tmp_path: Path) -> None:
    """A TAM that is not listening: the operating system's reason, without
    aiohttp's internals ("ssl:default", the socket call)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: refused
        device = Device.init(tmp_path / "dev")
        broker = Broker(device.agent, BrokerConfig())
        uri = f"http://127.0.0.1:{port}/tam"
        with pytest.raises(TransportError) as info:
            asyncio.run(broker.policy_check(uri))
    assert str(info.value) == f"cannot reach the TAM at {uri}: Connection refused"


def test_answer_trickling_past_the_exchange_deadline_fails(tmp_path: Path) -> None:
    """A TAM that keeps each silence short but never finishes is given up on
    when the whole exchange outlasts its deadline."""
    device = Device.init(tmp_path / "dev")

    async def scenario() -> None:
        server = await asyncio.start_server(
            lambda r, w: _trickle(r, w, 0.2), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        config = BrokerConfig(read_timeout=1.0, exchange_timeout=0.5)
        try:
            await Broker(device.agent, config).policy_check(
                f"http://127.0.0.1:{port}/tam"
            )
        finally:
            server.close()

    with pytest.raises(
        TransportError, match=r"did not finish its answer within 0\.5 s"
    ):
        asyncio.run(scenario())


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n", "did not answer in HTTP/1.1 (bad status line)"),
        (b"", "closed the connection without answering"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: " + TEEP + b"\r\n"
            b"Content-Length: 100\r\n\r\nabc",
            "closed the connection before its answer was whole",
        ),
    ],
    ids=["not-http", "closed", "short-body"],
)
def test_peer_that_is_reached_but_misbehaves_is_named(
    tmp_path: Path, answer: bytes, message: str
) -> None:
    """A peer that accepts the connection but does not answer in HTTP, or
    closes early, is named as such on one line, not as unreachable."""
    device = Device.init(tmp_path / "dev")

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    async def scenario() -> str:
        server = await asyncio.start_server(reply, "127.0.0.1", 0)
        uri = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/tam"
        try:
            with pytest.raises(TransportError) as info:
                await Broker(device.agent, BrokerConfig()).policy_check(uri)
        finally:
            server.close()
        return str(info.value)

    text = asyncio.run(scenario())
    assert message in text and "\n" not in text and "cannot reach" not in text


def _self_signed(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.mark.parametrize(
    ("tls", "reason"),
    [
        (True, "certificate verify failed (self-signed certificate)"),
        (False, "wrong version number (is it serving plain HTTP?)"),
    ],
    ids=["self-signed", "plain-http"],
)
def test_tls_failure_is_named_as_tls(tmp_path: Path, tls: bool, reason: str) -> None:
    """An https URI whose TLS handshake fails (an untrusted certificate, or a
    TAM serving plain HTTP) says so, not the OS's "Operation not permitted"
    read from OpenSSL's error code."""
    device = Device.init(tmp_path / "dev")
    context = _self_signed(tmp_path) if tls else None

    async def plain_http(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario() -> tuple[str, str]:
        server = await asyncio.start_server(plain_http, "127.0.0.1", 0, ssl=context)
        uri = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/tam"
        try:
            with pytest.raises(TransportError) as info:
                await Broker(device.agent, BrokerConfig()).policy_check(uri)
        finally:
            server.close()
        return uri, str(info.value)

    uri, text = asyncio.run(scenario())
    assert text == f"TLS with the TAM at {uri} failed: {reason}"
