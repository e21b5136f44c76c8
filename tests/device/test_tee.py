"""The simulated TEE: identity, trust anchors, settings, sealed at rest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from teep.device.sealing import SealError
from teep.device.tee import SimulatedTEE
from teep.errors import ConfigError, StoreError
from teep.keys import KeyKind, PrivateKey


def _create(path: Path, kind: KeyKind = KeyKind.P256) -> SimulatedTEE:
    return SimulatedTEE.create(
        path,
        key_kind=kind,
        oemid=b"\x00\x11\x22",
        hwmodel=b"sim-model",
        hwversion="1.0",
    )


@pytest.fixture
def tee(tmp_path: Path) -> SimulatedTEE:
    return _create(tmp_path / "tee")


def test_create_identity(tee: SimulatedTEE) -> None:
    """A new TEE has two distinct keys and a RAND-type 33-byte UEID."""
    assert tee.agent_key.kid != tee.attestation_key.kid
    assert tee.agent_key.kind is KeyKind.P256
    assert len(tee.ueid) == 33 and tee.ueid[0] == 0x01
    assert (tee.oemid, tee.hwmodel, tee.hwversion) == (
        b"\x00\x11\x22",
        b"sim-model",
        "1.0",
    )


def test_create_ed25519(tmp_path: Path) -> None:
    """key_kind selects the kind of both keys."""
    tee = _create(tmp_path, KeyKind.ED25519)
    assert tee.agent_key.kind is tee.attestation_key.kind is KeyKind.ED25519


def test_create_refuses_existing(tee: SimulatedTEE) -> None:
    """create() never overwrites an existing TEE."""
    with pytest.raises(ConfigError):
        _create(tee.path)


def test_open_missing(tmp_path: Path) -> None:
    """open() on a folder without a TEE is a ConfigError."""
    with pytest.raises(ConfigError):
        SimulatedTEE.open(tmp_path)


def test_reopen_keeps_everything(tee: SimulatedTEE) -> None:
    """Identity, trust anchors, settings and request lists survive re-opening."""
    tam, signer = PrivateKey.generate().public, PrivateKey.generate().public
    tee.add_tam_key(tam, "https://tam.example/tam")
    tee.add_signer_key(signer)
    tee.set_setting("default_tam_uri", "https://tam.example/tam")
    tee.requested = [(b"TEEP-Device", b"SecureFS", b"hello", b"ta")]
    tee.unneeded = [(b"x",)]

    again = SimulatedTEE.open(tee.path)
    assert again.agent_key.kid == tee.agent_key.kid
    assert again.attestation_key.kid == tee.attestation_key.kid
    assert again.ueid == tee.ueid
    assert [k.kid for k in again.trusted_tam_keys()] == [tam.kid]
    assert [k.kid for k in again.trusted_signer_keys()] == [signer.kid]
    assert again.settings == {"default_tam_uri": "https://tam.example/tam"}
    assert again.requested == [(b"TEEP-Device", b"SecureFS", b"hello", b"ta")]
    assert again.unneeded == [(b"x",)]


def test_reopen_in_new_process(tee: SimulatedTEE) -> None:
    """Another process opening the folder sees the same identity."""
    code = (
        "import sys; from teep.device.tee import SimulatedTEE;"
        "print(SimulatedTEE.open(sys.argv[1]).ueid.hex())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tee.path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == tee.ueid.hex()


def test_nothing_secret_in_clear(tee: SimulatedTEE) -> None:
    """No file but fuse.key holds the private keys or the UEID in clear."""
    tee.set_setting("note", "visible?")
    secrets = [tee.agent_key.to_pem(), tee.ueid, b"visible?", b"PRIVATE KEY"]
    for item in tee.path.rglob("*"):
        if item.is_file() and item.name != "fuse.key":
            content = item.read_bytes()
            assert not any(s in content for s in secrets), item.name


def test_tampered_identity_refused(tee: SimulatedTEE) -> None:
    """A modified sealed file makes open() fail with SealError."""
    path = tee.path / "identity.sealed"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(SealError):
        SimulatedTEE.open(tee.path)


def test_missing_fuse_key(tee: SimulatedTEE) -> None:
    """Without its sealing key the TEE cannot be opened (and no new key is made)."""
    (tee.path / "fuse.key").unlink()
    with pytest.raises(StoreError):
        SimulatedTEE.open(tee.path)
    assert not (tee.path / "fuse.key").exists()


def test_tam_keys_per_uri(tee: SimulatedTEE) -> None:
    """A key bound to one TAM URI is not trusted for another; unbound keys are."""
    any_tam, tam_a = PrivateKey.generate().public, PrivateKey.generate().public
    tee.add_tam_key(any_tam)
    tee.add_tam_key(tam_a, "https://a.example")
    tee.add_tam_key(tam_a, "https://a.example")  # idempotent

    def kids(uri: str | None) -> set[bytes]:
        return {k.kid for k in tee.trusted_tam_keys(uri)}

    assert kids("https://a.example") == {any_tam.kid, tam_a.kid}
    assert kids("https://b.example") == {any_tam.kid}
    assert kids(None) == {any_tam.kid, tam_a.kid}

    tee.remove_tam_key(tam_a.kid, "https://b.example")  # not bound there: no-op
    assert kids("https://a.example") == {any_tam.kid, tam_a.kid}
    tee.remove_tam_key(tam_a)
    assert kids(None) == {any_tam.kid}


def test_signer_keys(tee: SimulatedTEE) -> None:
    """Signer keys can be added (once) and removed by key or thumbprint."""
    one, two = PrivateKey.generate().public, PrivateKey.generate(KeyKind.ED25519).public
    tee.add_signer_key(one)
    tee.add_signer_key(one)
    tee.add_signer_key(two)
    assert [k.kid for k in tee.trusted_signer_keys()] == [one.kid, two.kid]
    tee.remove_signer_key(one.kid)
    tee.remove_signer_key(two)
    assert tee.trusted_signer_keys() == []


def test_settings(tee: SimulatedTEE) -> None:
    """Settings are a persisted dict; None removes a setting."""
    assert tee.settings == {}
    tee.settings = {"profile": {"https://old.example": "pre-rfc"}}
    tee.set_setting("default_tam_uri", "https://tam.example")
    assert tee.get_setting("profile") == {"https://old.example": "pre-rfc"}
    tee.set_setting("profile", None)
    assert tee.settings == {"default_tam_uri": "https://tam.example"}
    assert tee.get_setting("missing", 5) == 5
    with pytest.raises(ConfigError):
        tee.settings = {1: "x"}  # type: ignore[dict-item]
