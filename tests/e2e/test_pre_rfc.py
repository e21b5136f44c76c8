"""End to end: the pre-RFC compatibility profile over real HTTP.  A served
TAM speaks the pre-RFC numbering (drafts -05 to -25) at /tam/pre-rfc; a
device run as its own process refuses it with ERR_UNSUPPORTED_MSG_VERSION
until ``teep device pre-rfc URI`` enables the profile for that URI, and then
installs the component it is sent."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from support import ServedTAM, teep

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
SOURCE = ROOT / "src" / "teep" / "device" / "components" / "hello.wat"


KINDS = ("p256", "ed25519")
"""The TAM's TEEP signing keys, as ``teep tam init`` names them."""


def environment() -> dict[str, str]:
    """The environment for child processes: unbuffered, wide output."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


def run(folder: Path, command: str, *more: str, code: int = 0) -> str:
    """Run ``teep COMMAND MORE...`` in ``folder``; its output, which must end
    with exit status ``code``."""
    done = subprocess.run(
        teep(*command.split(), *more),
        cwd=folder,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode == code, f"teep {command}:\n{output}"
    return output


def operator_setup(folder: Path) -> None:
    """A TAM, a device enrolled with it and ``hello`` required everywhere."""
    hello = folder / "hello.toml"
    shutil.copy(EXAMPLES / "hello.toml", hello)
    text = re.sub(r'payload = "[^"]*"', f'payload = "{SOURCE}"', hello.read_text())
    hello.write_text(text)
    run(folder, "keys generate --type p256 signer.pem")
    run(folder, "tam init --dir tam")
    run(folder, "device init --dir dev")
    # The TAM's TEEP signing keys, not its attestation key.
    tam_keys = [str(folder / "tam" / "keys" / f"tam-{k}.pub.pem") for k in KINDS]
    run(folder, "device trust-tam --dir dev", *tam_keys)
    run(folder, "device trust-signer --dir dev signer.pub.pem")
    run(folder, "tam attestation-key add --dir tam dev/attestation.pub.pem")
    run(folder, "tam signer add --dir tam signer.pub.pem")
    run(folder, "manifest create hello.toml --signer signer.pem -o hello.suit")
    run(folder, "tam component add --dir tam hello hello.suit")
    run(folder, "tam policy add --dir tam hello")


def test_pre_rfc_session_over_http(tmp_path: Path) -> None:
    """Without the profile the device answers the pre-RFC QueryRequest with
    ERR_UNSUPPORTED_MSG_VERSION and installs nothing; with it enabled for the
    TAM's pre-RFC URI the session installs hello, which then runs; the next
    session (either endpoint) finds the device compliant."""
    operator_setup(tmp_path)
    server = ServedTAM(tmp_path / "tam", env=environment())
    try:
        pre_rfc = server.url + "/pre-rfc"
        refused = run(tmp_path, f"device run --dir dev --tam-uri {pre_rfc}", code=1)
        assert "pre-RFC numbering" in refused or "pre-rfc" in refused, refused
        assert "Error sent: ERR_UNSUPPORTED_MSG_VERSION" in refused, refused
        assert "Update received" not in refused
        run(tmp_path, "device invoke --dir dev hello", code=1)

        run(tmp_path, "device pre-rfc --dir dev", pre_rfc)
        first = run(tmp_path, f"device run --dir dev --tam-uri {pre_rfc}")
        assert re.search(r"QueryRequest received \(\d signature\(s\), pre-rfc", first)
        assert "Update received: 1 signed SUIT manifest(s), 0 to remove" in first
        assert "Success sent" in first
        assert "Hello" in run(tmp_path, "device invoke --dir dev hello")

        again = run(tmp_path, f"device run --dir dev --tam-uri {pre_rfc}")
        assert "Update received" not in again
        final = run(tmp_path, f"device run --dir dev --tam-uri {server.url}")
        assert "QueryRequest received" in final and "final numbering" in final
        assert "Update received" not in final
    finally:
        server.stop()
    # The TAM saw the refusal (a pre-RFC Error it could read), then the Success.
    log = "".join(server.lines)
    assert "Error received: ERR_UNSUPPORTED_MSG_VERSION" in log, log
    assert "Success received" in log, log
