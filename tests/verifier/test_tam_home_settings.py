"""The TAM that ``teep tam serve`` builds follows tam.json's attestation settings."""

from __future__ import annotations

from pathlib import Path

from teep.keys import KeyKind, PrivateKey
from teep.tam.home import TAMHome
from teep.verifier.tam_settings import update_tam_settings


def test_served_tam_applies_attestation_settings(tmp_path: Path) -> None:
    """Encryption, trusted Verifier keys and the contraindicated action in
    tam.json reach the TAM host that serves sessions."""
    home = TAMHome.init(tmp_path / "tam")
    verifier_key = PrivateKey.generate(KeyKind.P256)
    key_file = tmp_path / "verifier.pub.pem"
    key_file.write_bytes(verifier_key.public.to_pem())
    update_tam_settings(
        home.path,
        verifier="builtin",
        verifier_keys=[str(key_file)],
        encrypted_evidence=True,
        contraindicated="quarantine",
    )
    home = TAMHome.open(home.path)
    store = home.open_store()
    try:
        service = home.service(store)
        assert service.decryption_key is not None
        assert [k.thumbprint for k in service.verifier_keys] == [verifier_key.kid]
        assert service.policy.contraindicated.value == "quarantine"
    finally:
        store.close()


def test_served_tam_defaults_without_settings(tmp_path: Path) -> None:
    """Without attestation settings the TAM uses the built-in Verifier and
    offers no encryption."""
    home = TAMHome.init(tmp_path / "tam")
    store = home.open_store()
    try:
        service = home.service(store)
        assert service.decryption_key is None
        assert service.attestation_verifier is None
    finally:
        store.close()
