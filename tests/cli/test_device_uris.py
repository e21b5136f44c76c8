"""``teep device``: a TAM or Verifier URI is checked wherever one is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from teep.cli.common import http_uri_problem
from teep.keys import PrivateKey

from .conftest import Run, assert_one_line_error

BAD = [
    ("http://", "has no host"),
    ("http://127.0.0.1:99999/tam", "invalid port"),
    ("http://127.0.0.1:0/tam", "invalid port"),
    ("http://127.0.0.1:port/tam", "invalid port"),
    ("ftp://127.0.0.1/tam", "http:// or https://"),
    ("127.0.0.1:8443/tam", "http:// or https://"),
    ("http://[::1/tam", "not a valid URI"),
    ("http://tam example/tam", "spaces"),
]
GOOD = [
    "http://127.0.0.1:8443/tam",
    "https://tam.example/tam",
    "http://[::1]:65535/tam",
    "HTTP://127.0.0.1/tam",
]


@pytest.mark.parametrize("uri", GOOD)
def test_good_uris(uri: str) -> None:
    """Ordinary http(s) URIs pass."""
    assert http_uri_problem(uri) is None


@pytest.fixture
def folder(run: Run, tmp_path: Path) -> Path:
    """A device made with ``teep device init``."""
    path = tmp_path / "dev"
    assert run("device", "init", "--dir", str(path)).exit_code == 0
    return path


@pytest.mark.parametrize(("uri", "reason"), BAD)
def test_init_refuses_a_bad_tam_uri(
    run: Run, tmp_path: Path, uri: str, reason: str
) -> None:
    """device init --tam-uri: a usage error naming the option; no device made."""
    path = tmp_path / "dev"
    line = assert_one_line_error(
        run("device", "init", "--dir", str(path), "--tam-uri", uri), code=2
    )
    assert "--tam-uri" in line and reason in line
    assert not path.exists()


@pytest.mark.parametrize(("uri", "reason"), BAD)
def test_trust_and_pre_rfc_refuse_a_bad_uri(
    run: Run, folder: Path, tmp_path: Path, uri: str, reason: str
) -> None:
    """trust-tam --tam-uri, pre-rfc TAM_URI and verifier URL are checked too."""
    key = tmp_path / "tam.pub.pem"
    key.write_bytes(PrivateKey.generate().public.to_pem())
    for args, hint in (
        (("trust-tam", str(key), "--tam-uri", uri), "--tam-uri"),
        (("pre-rfc", uri), "TAM_URI"),
        (("verifier", uri), "URL"),
    ):
        line = assert_one_line_error(
            run("device", args[0], "--dir", str(folder), *args[1:]), code=2
        )
        assert hint in line and reason in line


def test_pre_rfc_disable_takes_any_text(run: Run, folder: Path) -> None:
    """Turning the profile off for a URI is not checked: it only removes."""
    done = run("device", "pre-rfc", "--dir", str(folder), "--disable", "http://")
    assert done.exit_code == 0, done.stderr


def test_good_tam_uri_accepted(run: Run, tmp_path: Path) -> None:
    """A valid TAM URI is kept as given."""
    path = tmp_path / "dev"
    uri = "http://127.0.0.1:8443/tam"
    done = run("device", "init", "--dir", str(path), "--tam-uri", uri)
    assert done.exit_code == 0, done.stderr
    assert uri in (path / "device.json").read_text()
