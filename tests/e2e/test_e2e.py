"""End to end: real ``teep`` processes talking TEEP over loopback HTTP."""

from __future__ import annotations

import asyncio
import email.message
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from support import ServedTAM
from teep.device.broker import Broker
from teep.device.runtime import Device
from teep.protocol.agent import ComponentsChanged, QueryAnswered

pytestmark = pytest.mark.e2e

TEEP = "application/teep+cbor"
MANDATED = {
    "Content-Type": TEEP,
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
    "Referrer-Policy": "no-referrer",
}
GREETING = "Hello from a Trusted Component"


def teep(*args: str) -> list[str]:
    """The command line running ``teep`` with this interpreter."""
    return [sys.executable, "-m", "teep", *args]


def environment() -> dict[str, str]:
    """The environment for child processes: unbuffered, wide output."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


def run_demo(workdir: Path) -> str:
    """Run ``teep demo`` to completion; its output."""
    done = subprocess.run(
        teep("demo", "--workdir", str(workdir)),
        capture_output=True,
        text=True,
        env=environment(),
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A demo folder, run twice; the outputs of both runs."""
    workdir = tmp_path_factory.mktemp("e2e") / "demo"
    first = run_demo(workdir)
    second = run_demo(workdir)
    return workdir, first, second


def test_demo_first_run_installs_and_invokes(demo: tuple[Path, str, str]) -> None:
    """The first demo run attests the device, installs the component and runs it."""
    workdir, first, _ = demo
    assert (workdir / ".demo-ready").is_file()
    for step in (
        "QueryRequest",
        "Evidence appraised",
        "Update sent",
        "Success received",
        GREETING,
    ):
        assert step in first, f"{step!r} missing from:\n{first}"


def test_demo_second_run_is_compliant(demo: tuple[Path, str, str]) -> None:
    """A second demo run finds the device compliant and sends no Update."""
    _, _, second = demo
    assert "compliant" in second
    assert "Update received" not in second
    sent = [line for line in second.splitlines() if "Update sent" in line]
    assert all("no Update sent" in line for line in sent), second
    assert GREETING in second


class Server(ServedTAM):
    """A ``teep tam serve --port 0`` child process."""

    def __init__(self, tam_dir: Path) -> None:
        super().__init__(tam_dir, env=environment())


def lowered(headers: email.message.Message) -> dict[str, str]:
    """Response headers keyed by lower-case name."""
    return {name.lower(): value for name, value in headers.items()}


def post(
    url: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, Mapping[str, str], bytes]:
    """Send one request; status, headers (lower-case names) and body."""
    request = urllib.request.Request(
        url, data=body if method == "POST" else None, method=method
    )
    for name, value in {"Accept": TEEP, **(headers or {})}.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, lowered(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, lowered(exc.headers), exc.read()


@pytest.fixture(scope="module")
def server(demo: tuple[Path, str, str]) -> Iterator[Server]:
    """The demo's TAM, served by a fresh process."""
    started = Server(demo[0] / "tam")
    try:
        yield started
    finally:
        started.stop()


def test_http_empty_post(server: Server) -> None:
    """An empty POST gets 200, a QueryRequest, the four mandated headers, no caching."""
    status, headers, body = post(server.url)
    assert status == 200 and body
    for name, value in MANDATED.items():
        assert headers.get(name.lower()) == value, name
    assert "cache-control" not in headers


@pytest.mark.parametrize(
    ("body", "headers", "method", "expected"),
    [
        (b"\xff\x00garbage", {"Content-Type": TEEP}, "POST", 400),
        (b"\xa0", {"Content-Type": "application/cbor"}, "POST", 415),
        (b"", {"Accept": "text/html"}, "POST", 406),
        (b"", {}, "GET", 405),
        (bytes(300 * 1024), {"Content-Type": TEEP}, "POST", 413),
    ],
    ids=["garbage", "content-type", "accept", "get", "oversized"],
)
def test_http_refusals(
    server: Server,
    body: bytes,
    headers: dict[str, str],
    method: str,
    expected: int,
) -> None:
    """Bad requests get the HTTP status teep-over-http prescribes."""
    status, _, _ = post(server.url, body, headers, method)
    assert status == expected


def session(device: Device, url: str) -> list[object]:
    """One Broker session of the device with the TAM at ``url``; Agent events."""
    outcome = asyncio.run(Broker(device.agent).policy_check(url))
    return list(outcome.events)


def test_state_survives_sigkill(demo: tuple[Path, str, str]) -> None:
    """A TAM killed with SIGKILL and restarted keeps its devices and challenges."""
    device = Device.open(demo[0] / "device")
    first = Server(demo[0] / "tam")
    try:
        _, _, request = post(first.url)
        first.stop(signal.SIGKILL)
        assert first.process.returncode == -signal.SIGKILL
    finally:
        first.stop()
    second = Server(demo[0] / "tam")
    try:
        # The challenge the killed process issued is honoured after the restart.
        reply = device.agent.process(request, second.url).reply
        assert reply is not None
        status, _, body = post(second.url, reply, {"Content-Type": TEEP})
        assert (status, body) == (204, b"")
        events = session(device, second.url)
        assert any(isinstance(e, QueryAnswered) for e in events)
        assert not any(isinstance(e, ComponentsChanged) for e in events)
    finally:
        second.stop()


def test_run_names_a_request_the_tam_did_not_meet(
    demo: tuple[Path, str, str], server: Server
) -> None:
    """``device run`` after ``device request`` of a component the TAM does not
    catalogue ends normally and names the request still pending."""
    device_dir = str(demo[0] / "device")
    asked = subprocess.run(
        teep("device", "request", "--dir", device_dir, "nosuch"),
        capture_output=True, text=True, env=environment(), timeout=60,
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    try:
        done = subprocess.run(
            teep("device", "run", "--dir", device_dir, "--tam-uri", server.url),
            capture_output=True, text=True, env=environment(), timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "requested and not sent by the TAM: nosuch" in done.stdout
    finally:
        Device.open(demo[0] / "device").unrequest("nosuch")
