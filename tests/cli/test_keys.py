"""teep keys generate / show / export-cose."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from teep import cbor
from teep.keys import PrivateKey, PublicKey

from .conftest import Run, assert_one_line_error


@pytest.mark.parametrize("kind", ["p256", "ed25519"])
def test_generate_show_round_trip(run: Run, tmp_path: Path, kind: str) -> None:
    """generate writes a 0600 key and its public half; show prints the same kid."""
    out = tmp_path / "tam.pem"
    result = run("keys", "generate", "--type", kind, str(out))
    assert result.exit_code == 0, result.stderr
    kid = result.stdout.strip()
    key = PrivateKey.load(out)
    assert key.kid.hex() == kid
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    public = PublicKey.load(tmp_path / "tam.pub.pem")
    assert public.thumbprint == key.kid

    shown = run("keys", "show", str(out))
    assert shown.exit_code == 0, shown.stderr
    assert kid in shown.stdout
    assert "/ kty / 1:" in shown.stdout
    assert "BEGIN PUBLIC KEY" in shown.stdout


def test_show_json(run: Run, tmp_path: Path) -> None:
    """show --json gives the thumbprint and the COSE_Key of a public key file."""
    key = PrivateKey.generate()
    (tmp_path / "k.pub.pem").write_bytes(key.public.to_pem())
    result = run("keys", "show", "--json", str(tmp_path / "k.pub.pem"))
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["thumbprint"] == key.kid.hex()
    assert info["private"] is False
    assert info["type"] == "p256"
    assert bytes.fromhex(info["cose_key_cbor"]) == cbor.det_dumps(key.public.cose_key())


@pytest.mark.parametrize("with_d", [True, False])
def test_show_cose_key_private_or_public(
    run: Run, tmp_path: Path, with_d: bool
) -> None:
    """A COSE_Key file holding ``d`` is reported as a private key."""
    key = PrivateKey.generate()
    cose_key = key.public.cose_key()
    if with_d:
        number = key.key.private_numbers().private_value  # type: ignore[union-attr]
        cose_key[-4] = number.to_bytes(32, "big")
    path = tmp_path / "priv.cbor"
    path.write_bytes(cbor.det_dumps(cose_key))
    shown = run("keys", "show", str(path))
    assert shown.exit_code == 0, shown.stderr
    holds = "private key" if with_d else "public key"
    assert f"holds:            {holds}" in shown.stdout
    info = json.loads(run("keys", "show", "--json", str(path)).stdout)
    assert info["private"] is with_d
    assert info["thumbprint"] == key.kid.hex()


def test_generate_refuses_to_overwrite(run: Run, tmp_path: Path) -> None:
    """An existing key file is not overwritten without --force."""
    out = tmp_path / "k.pem"
    assert run("keys", "generate", str(out)).exit_code == 0
    before = out.read_bytes()
    line = assert_one_line_error(run("keys", "generate", str(out)))
    assert "--force" in line
    assert out.read_bytes() == before
    assert run("keys", "generate", "--force", str(out)).exit_code == 0
    assert out.read_bytes() != before


@pytest.mark.parametrize(
    ("parent", "reason"),
    [("missing/deeper", "No such file or directory"), ("file", "Not a directory")],
)
def test_generate_makes_no_folder(
    run: Run, tmp_path: Path, parent: str, reason: str
) -> None:
    """A missing parent folder is refused, as every other file teep writes,
    not made; nothing is written."""
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / parent / "k.pem"
    line = assert_one_line_error(run("keys", "generate", str(out)))
    assert line == f"teep: error: cannot write {out}: {reason}"
    assert not (tmp_path / "missing").exists()


def test_export_cose(run: Run, tmp_path: Path) -> None:
    """export-cose writes a COSE_Key that loads back as the same key."""
    key = PrivateKey.generate()
    key.save(tmp_path / "k.pem")
    out = tmp_path / "k.cose"
    result = run("keys", "export-cose", str(tmp_path / "k.pem"), str(out))
    assert result.exit_code == 0, result.stderr
    assert PublicKey.load(out).thumbprint == key.kid


def test_show_garbage_key(run: Run, tmp_path: Path) -> None:
    """A file that holds no key is one error line."""
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"not a key")
    assert_one_line_error(run("keys", "show", str(bad)))


def test_show_missing_key(run: Run, tmp_path: Path) -> None:
    """A missing key file is one error line naming it."""
    line = assert_one_line_error(run("keys", "show", str(tmp_path / "none.pem")))
    assert "none.pem" in line


def test_bad_type_is_usage_error(run: Run, tmp_path: Path) -> None:
    """An unknown key type is a usage error."""
    assert_one_line_error(
        run("keys", "generate", "--type", "rsa", str(tmp_path / "k.pem")), code=2
    )
