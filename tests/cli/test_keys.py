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


# Key files as other implementations write them.

CLI_VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "cli"


def test_ec_parameters_block_is_skipped(run: Run) -> None:
    """An ``openssl ecparam -genkey`` style file (EC PARAMETERS, then the
    key) loads as the private key, for show and for signing."""
    path = CLI_VECTORS / "libcsuit_trust_anchor_secp256r1.pem"
    public = PublicKey.load(CLI_VECTORS / "libcsuit_trust_anchor_secp256r1_pub.pem")
    assert PrivateKey.load(path).kid == public.thumbprint
    shown = run("keys", "show", str(path))
    assert shown.exit_code == 0, shown.stderr
    assert "holds:            private key" in shown.stdout
    assert public.thumbprint.hex() in shown.stdout


def test_certificate_gives_its_public_key(run: Run) -> None:
    """A certificate stands for its public key; as a private key it is
    refused with one short line."""
    cert = CLI_VECTORS / "teep_device_tam_teep_p256_cert.pem"
    public = PublicKey.load(CLI_VECTORS / "teep_device_tam_teep_p256_pub.pem")
    assert PublicKey.load(cert).thumbprint == public.thumbprint
    shown = run("keys", "show", str(cert))
    assert shown.exit_code == 0, shown.stderr
    assert "holds:            public key" in shown.stdout
    assert public.thumbprint.hex() in shown.stdout
    line = assert_one_line_error(
        run("manifest", "sign", "--key", str(cert), "-o", "-", str(cert))
    )
    assert line.endswith(
        "a certificate holds no private key: give the private key file"
    )


def test_certificate_in_der(tmp_path: Path) -> None:
    """A DER certificate gives its public key too."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = (CLI_VECTORS / "teep_device_tam_teep_p256_cert.pem").read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    public = PublicKey.load(CLI_VECTORS / "teep_device_tam_teep_p256_pub.pem")
    assert PublicKey.from_bytes(der).thumbprint == public.thumbprint
    from teep.errors import KeyLoadError

    with pytest.raises(KeyLoadError, match=r"^a certificate holds no private key"):
        PrivateKey.from_bytes(der)


def test_cose_key_in_hex(run: Run, tmp_path: Path) -> None:
    """A COSE_Key written as hex text, with comments, is read as teep
    decode reads hex."""
    path = CLI_VECTORS / "personalization_kek_p256.cose_key.hex"
    expected = PublicKey.from_bytes(bytes.fromhex(path.read_text())).thumbprint.hex()
    shown = run("keys", "show", str(path))
    assert shown.exit_code == 0, shown.stderr
    assert "holds:            private key" in shown.stdout
    assert expected in shown.stdout
    commented = tmp_path / "kek.hex"
    text = path.read_text().strip()
    commented.write_text(f"# the E.3 receiver key\n{text[:40]}\n{text[40:]}  # end\n")
    shown = run("keys", "show", "--json", str(commented))
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["thumbprint"] == expected


def test_odd_hex_key_is_one_line(run: Run, tmp_path: Path) -> None:
    """A hex key file with an odd digit count is one line naming the file."""
    path = tmp_path / "odd.hex"
    path.write_text("a50102f")
    line = assert_one_line_error(run("keys", "show", str(path)))
    assert "odd.hex" in line
    assert "odd number of digits" in line


@pytest.mark.parametrize("pkcs8", [True, False])
def test_encrypted_key_is_one_short_line(pkcs8: bool) -> None:
    """An encrypted key (PKCS#8 or OpenSSL's own) is refused in teep's
    words, not cryptography's."""
    from cryptography.hazmat.primitives import serialization

    from teep.errors import KeyLoadError

    form = serialization.PrivateFormat
    data = PrivateKey.generate().key.private_bytes(
        serialization.Encoding.PEM,
        form.PKCS8 if pkcs8 else form.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"x"),
    )
    with pytest.raises(KeyLoadError, match=r"^the private key is encrypted"):
        PrivateKey.from_bytes(data)


def test_unreadable_private_key_is_short(run: Run, tmp_path: Path) -> None:
    """A PEM private key block that is no key gives teep's own short line."""
    path = tmp_path / "bad.pem"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    line = assert_one_line_error(
        run("manifest", "sign", "--key", str(path), "-o", "-", str(path))
    )
    assert line == (
        "teep: error: unreadable private key (not an unencrypted PKCS#8 or SEC1 key)"
    )
