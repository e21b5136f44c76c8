"""``teep verifier endorse`` and ``teep tam attestation-key add``: a device
class is required, and endorsing the same key again changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from teep.keys import PrivateKey

from .conftest import Run, assert_one_line_error


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """An attestation public key beside the folders."""
    path = tmp_path / "attestation.pub.pem"
    path.write_bytes(PrivateKey.generate().public.to_pem())
    return path


@pytest.fixture
def verifier(run: Run, tmp_path: Path) -> Path:
    """A Verifier folder."""
    folder = tmp_path / "ver"
    assert run("verifier", "init", "--dir", str(folder)).exit_code == 0
    return folder


@pytest.fixture
def tam(run: Run, tmp_path: Path) -> Path:
    """A TAM folder."""
    folder = tmp_path / "tam"
    assert run("tam", "init", "--dir", str(folder)).exit_code == 0
    return folder


@pytest.mark.parametrize("hwmodel", ["", "  "])
def test_verifier_endorse_refuses_blank_hwmodel(
    run: Run, verifier: Path, key_file: Path, hwmodel: str
) -> None:
    """An empty or blank --hwmodel is one line, and nothing is endorsed."""
    before = (verifier / "verifier.toml").read_text()
    result = run(
        "verifier",
        "endorse",
        "--dir",
        str(verifier),
        str(key_file),
        "--hwmodel",
        hwmodel,
    )
    assert "--hwmodel is empty" in assert_one_line_error(result)
    assert (verifier / "verifier.toml").read_text() == before


def test_verifier_endorse_twice_adds_one_entry(
    run: Run, verifier: Path, key_file: Path
) -> None:
    """The same key, hwmodel and oemid endorsed again is said to be endorsed
    already; another hwmodel is a second endorsement."""
    args = ("verifier", "endorse", "--dir", str(verifier), str(key_file))
    first = run(*args, "--hwmodel", "m1")
    assert first.exit_code == 0, first.stderr
    once = (verifier / "verifier.toml").read_text()
    again = run(*args, "--hwmodel", "m1")
    assert again.exit_code == 0, again.stderr
    assert "already endorsed for m1" in again.stdout
    assert (verifier / "verifier.toml").read_text() == once
    other = run(*args, "--hwmodel", "m2")
    assert other.exit_code == 0, other.stderr
    text = (verifier / "verifier.toml").read_text()
    assert text.count('hwmodel = "m1"') == 1 and text.count('hwmodel = "m2"') == 1


@pytest.mark.parametrize("hwmodel", ["", "  "])
def test_attestation_key_add_refuses_blank_hwmodel(
    run: Run, tam: Path, key_file: Path, hwmodel: str
) -> None:
    """An empty or blank --hwmodel is one line, and no key is accepted."""
    listing = ("tam", "attestation-key", "list", "--dir", str(tam))
    before = run(*listing).stdout
    result = run(
        "tam", "attestation-key", "add", "--dir", str(tam), str(key_file),
        "--hwmodel", hwmodel,
    )  # fmt: skip
    assert "--hwmodel is empty" in assert_one_line_error(result)
    assert run(*listing).stdout == before


def test_attestation_key_add_twice_is_already_endorsed(
    run: Run, tam: Path, key_file: Path
) -> None:
    """The same key for the same class again succeeds and says so; for
    another class it is refused, as the TAM keeps one class per key."""
    args = ("tam", "attestation-key", "add", "--dir", str(tam), str(key_file))
    first = run(*args)
    assert first.exit_code == 0, first.stderr
    again = run(*args)
    assert again.exit_code == 0, again.stderr
    assert "already endorsed for teep-sim" in again.stdout
    other = run(*args, "--hwmodel", "other")
    assert "already accepted" in assert_one_line_error(other)
