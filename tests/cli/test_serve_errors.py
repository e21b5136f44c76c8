"""``teep tam serve`` and ``teep verifier serve``: why they cannot start is one
line naming the address, and nothing claims to listen before the keys load."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Run, assert_one_line_error


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something else listens on."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock.getsockname()[1]


@pytest.fixture
def tam(run: Run, tmp_path: Path) -> Path:
    path = tmp_path / "tam"
    assert run("tam", "init", "--dir", str(path)).exit_code == 0
    return path


@pytest.fixture
def verifier(run: Run, tmp_path: Path) -> Path:
    path = tmp_path / "verifier"
    assert run("verifier", "init", "--dir", str(path)).exit_code == 0
    return path


def _serve(run: Run, folder: Path, *args: str) -> str:
    kind = "tam" if folder.name == "tam" else "verifier"
    result = run(kind, "serve", "--dir", str(folder), *args)
    assert "listening" not in result.stdout
    return assert_one_line_error(result)


@pytest.mark.parametrize("kind", ["tam", "verifier"])
def test_port_in_use_names_the_address(
    run: Run, busy_port: int, kind: str, request: pytest.FixtureRequest
) -> None:
    """A port in use: the address and the plain reason."""
    folder = request.getfixturevalue(kind)
    line = _serve(run, folder, "--host", "127.0.0.1", "--port", str(busy_port))
    assert line == (
        f"teep: error: cannot listen on 127.0.0.1:{busy_port}: Address already in use"
    )


@pytest.mark.parametrize("kind", ["tam", "verifier"])
def test_unknown_host_names_the_host(
    run: Run, kind: str, request: pytest.FixtureRequest
) -> None:
    """A --host that does not resolve: the host is in the message."""
    folder = request.getfixturevalue(kind)
    line = _serve(run, folder, "--host", "nosuch.invalid", "--port", "0")
    assert line.startswith("teep: error: cannot listen on nosuch.invalid:0: ")


def test_tam_missing_key_fails_before_listening(run: Run, tam: Path) -> None:
    """A missing signing key stops 'tam serve' before it announces an address."""
    (tam / "keys" / "tam-p256.pem").unlink()
    line = _serve(run, tam, "--port", "0")
    assert "cannot read key file" in line and "tam-p256.pem" in line


def test_verifier_missing_key_fails_before_listening(run: Run, verifier: Path) -> None:
    """The same for the Verifier's EAR signing key."""
    (verifier / "keys" / "verifier.pem").unlink()
    line = _serve(run, verifier, "--port", "0")
    assert "cannot read key file" in line and "verifier.pem" in line
