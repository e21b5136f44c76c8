"""teep decode on EAT Evidence and EAR Attestation Results, with --key."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from teep import cbor, cose
from teep.attestation.ear import EAR_PROFILE
from teep.keys import KeyKind, PrivateKey

from .conftest import Run, assert_one_line_error

SIGNER = PrivateKey.generate(KeyKind.P256)
NONCE = b"n" * 16
EVIDENCE = {10: NONCE, 256: b"\x01" + bytes(16), 258: b"abc", 265: "urn:x"}
RESULT = {
    265: EAR_PROFILE,
    6: 1_700_000_000,
    10: NONCE,
    1000: 2,
    1004: {0: "teep", 1: "test"},
    266: {"tee": {1000: 2}},
}


def token(tmp_path: Path, claims: Mapping[int, object]) -> str:
    """Write ``claims`` signed by SIGNER as a COSE_Sign1 file."""
    path = tmp_path / "token.cbor"
    path.write_bytes(cose.sign1(cbor.dumps(claims), SIGNER))
    return str(path)


def key_file(tmp_path: Path, key: PrivateKey = SIGNER) -> str:
    """Write ``key``'s public half as PEM."""
    path = tmp_path / f"{key.kid.hex()[:8]}.pem"
    path.write_bytes(key.public.to_pem())
    return str(path)


def test_evidence_named_eat(run: Run, tmp_path: Path) -> None:
    """Signed Evidence is shown as an EAT with the signer's kid."""
    result = run("decode", token(tmp_path, EVIDENCE))
    assert result.exit_code == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("EAT (Evidence); COSE_Sign1 signed by kid")
    assert SIGNER.kid.hex() in first
    assert "not verified (no --key)" in first


def test_result_named_ear_with_ear_claims(run: Run, tmp_path: Path) -> None:
    """A token in the EAR profile is an Attestation Result; EAR claims are named."""
    result = run("decode", token(tmp_path, RESULT))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("EAR (Attestation Result); COSE_Sign1 signed")
    assert "/ ear-status / 1000: 2" in result.stdout
    assert "/ ear-verifier-id / 1004:" in result.stdout
    assert "/ eat-nonce / 10:" in result.stdout


@pytest.mark.parametrize("claims", [EVIDENCE, RESULT])
def test_key_verifies(run: Run, tmp_path: Path, claims: Mapping[int, object]) -> None:
    """--key with the signer's key: exit 0, the header says verified with its kid."""
    path = token(tmp_path, claims)
    result = run("decode", "--key", key_file(tmp_path), path)
    assert result.exit_code == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.endswith(f"verified with {SIGNER.kid.hex()}")


@pytest.mark.parametrize("claims", [EVIDENCE, RESULT])
def test_wrong_key_one_line(
    run: Run, tmp_path: Path, claims: Mapping[int, object]
) -> None:
    """--key with another key: exit 1 with one line naming that key."""
    other = PrivateKey.generate(KeyKind.P256)
    path = token(tmp_path, claims)
    line = assert_one_line_error(
        run("decode", "--key", key_file(tmp_path, other), path)
    )
    assert f"does not verify with {other.kid.hex()}" in line


def test_tampered_token_refused(run: Run, tmp_path: Path) -> None:
    """A token whose claims were changed after signing does not verify."""
    signed = cbor.loads(cose.sign1(cbor.dumps(RESULT), SIGNER))
    signed.value[2] = cbor.dumps({**RESULT, 1000: 0})
    path = tmp_path / "tampered.cbor"
    path.write_bytes(cbor.dumps(signed))
    assert_one_line_error(run("decode", "--key", key_file(tmp_path), str(path)))


def test_json_names_token_kind(run: Run, tmp_path: Path) -> None:
    """--json says which kind of token it is."""
    result = run("decode", "--json", token(tmp_path, RESULT))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["attestation_token"] == "EAR"
