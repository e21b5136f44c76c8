"""End to end: a served TAM delivers a component and its Personalization
Data, encrypted for the device, to a device run as its own process."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from support import ServedTAM, teep
from teep.keys import PublicKey

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
SOURCE = ROOT / "src" / "teep" / "device" / "components" / "hello.wat"


KINDS = ("p256", "ed25519")
"""The TAM's TEEP signing keys, as ``teep tam init`` names them."""


def environment() -> dict[str, str]:
    """The environment for child processes: unbuffered, wide output."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


def run(folder: Path, command: str, *more: str) -> str:
    """Run ``teep COMMAND MORE...`` in ``folder`` to completion; its output."""
    args = [*command.split(), *more]
    done = subprocess.run(
        teep(*args),
        cwd=folder,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=60,
    )
    assert done.returncode == 0, f"teep {command}:\n{done.stdout}{done.stderr}"
    return done.stdout


def operator_setup(folder: Path) -> None:
    """A TAM, a device enrolled with it, ``hello`` required everywhere and
    its Personalization Data encrypted for that device alone."""
    for name in ("hello.toml", "config.toml", "config.json"):
        shutil.copy(EXAMPLES / name, folder / name)
    hello = folder / "hello.toml"
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
    run(folder, "device kek --dir dev -o device-kek.pub.pem")
    run(folder, "manifest create hello.toml --signer signer.pem -o hello.suit")
    run(folder, "tam component add --dir tam hello hello.suit")
    publish_config(folder, b"greeting=hi\n", 1)
    run(folder, "tam policy add --dir tam hello")


def publish_config(folder: Path, data: bytes, sequence: int) -> None:
    """Build and catalogue a version of hello's data for the device alone."""
    (folder / "config.json").write_bytes(data)
    config = folder / "config.toml"
    number = f"sequence-number = {sequence}"
    config.write_text(re.sub(r"sequence-number = \d+", number, config.read_text()))
    run(folder, "manifest create config.toml --signer signer.pem -o config.suit")
    run(folder, "tam component add --dir tam hello config.suit --device", kid(folder))


def kid(folder: Path) -> str:
    """The device's kid in hex (its TEEP Agent key's thumbprint)."""
    return PublicKey.load(folder / "dev" / "agent.pub.pem").kid.hex()


def test_component_and_personalization_data(tmp_path: Path) -> None:
    """hello and its data arrive in one Update and the module reads the data
    as /config; the next session sends nothing; a new data version comes
    alone; the TAM's record of the device lists both manifests."""
    operator_setup(tmp_path)
    server = ServedTAM(tmp_path / "tam", env=environment())
    try:
        session = f"device run --dir dev --tam-uri {server.url}"
        first = run(tmp_path, session)
        assert "Update received: 2 signed SUIT manifest(s), 0 to remove" in first
        invoked = run(tmp_path, "device invoke --dir dev hello")
        assert "config: greeting=hi" in invoked

        second = run(tmp_path, session)
        assert "Update received" not in second

        publish_config(tmp_path, b"greeting=hello again\n", 2)
        third = run(tmp_path, session)
        assert "Update received: 1 signed SUIT manifest(s), 0 to remove" in third
        invoked = run(tmp_path, "device invoke --dir dev hello")
        assert "config: greeting=hello again" in invoked
    finally:
        server.stop()
    shown = run(tmp_path, "tam device show --dir tam", kid(tmp_path)[:16])
    assert re.search(r"TEEP-Device/SecureFS/hello/suit\s+1", shown), shown
    assert re.search(r"TEEP-Device/SecureFS/hello/config.suit\s+2", shown), shown
