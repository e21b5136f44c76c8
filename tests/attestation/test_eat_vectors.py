"""Invalid EAT claim sets from laurencelundblade/EAT-test-vectors (see
tests/vectors/attestation/README.md) are refused without a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cbor2
import pytest

from teep import cose
from teep.attestation.ar4si import TrustTier
from teep.attestation.errors import (
    EvidenceDecodeError,
    EvidenceError,
    InvalidClaimError,
    MissingClaimError,
)

from .conftest import AGENT_KEY, ATTESTATION_KEY, CHALLENGE, NOW, good_map, verifier

VECTORS = Path(__file__).parent.parent / "vectors" / "attestation" / "eat-test-vectors"
NAMES = sorted(p.stem for p in VECTORS.glob("*.cbor"))

# Draft claim keys and the RFC 9711 claims that replaced them.
RENAMED = {15: 262, 18: 265, 20: 266}
HW_VERSION_LABELS = {-76032, -76033, -76034}


def _load(name: str) -> bytes:
    return (VECTORS / f"{name}.cbor").read_bytes()


def _check(
    evidence: bytes, error: type[EvidenceError] | tuple[type[EvidenceError], ...]
) -> EvidenceError:
    v = verifier()
    args: dict[str, Any] = {"nonce": CHALLENGE, "cnf_key": AGENT_KEY.public, "now": NOW}
    with pytest.raises(error) as info:
        v.verify_evidence(evidence, **args)
    appraisal = v.appraise(evidence, **args)
    assert appraisal.status in (TrustTier.none, TrustTier.contraindicated)
    assert appraisal.reason
    return info.value


def test_vectors_present() -> None:
    """The copied vectors are all there."""
    assert len(NAMES) == 33


@pytest.mark.parametrize("name", NAMES)
def test_claim_set_as_signed_evidence(name: str) -> None:
    """Signed as it is, each claim set is refused: not well-formed, duplicate
    keys, or lacking the TEEP profile's required claims."""
    evidence = cose.sign1(_load(name), ATTESTATION_KEY)
    _check(evidence, (EvidenceDecodeError, MissingClaimError))


@pytest.mark.parametrize("name", NAMES)
def test_claim_set_as_raw_bytes(name: str) -> None:
    """Given unsigned as Evidence, each claim set is not a COSE_Sign1."""
    _check(_load(name), EvidenceDecodeError)


def _remapped(name: str) -> tuple[int, Any] | None:
    try:
        claims = cbor2.loads(_load(name))
    except Exception:
        return None
    for label, value in claims.items():
        if label in RENAMED:
            return RENAMED[label], value
        if label in HW_VERSION_LABELS and isinstance(value, list):
            # the drafts wrote [scheme, version]; RFC 9711 has [version, scheme]
            return 260, list(reversed(value))
    return None


REMAPPABLE = [n for n in NAMES if _remapped(n) is not None and "dup" not in n]


def test_remappable_vectors() -> None:
    """Every vector whose claim has an RFC 9711 successor is used below."""
    assert len(REMAPPABLE) == 14


@pytest.mark.parametrize("name", REMAPPABLE)
def test_invalid_claim_under_rfc_9711_key(name: str) -> None:
    """The invalid value, moved to its RFC 9711 key in an otherwise good
    TEEP claims set, is refused naming that claim."""
    label, value = _remapped(name)  # type: ignore[misc]
    claims = good_map()
    claims[label] = value
    evidence = cose.sign1(cbor2.dumps(claims), ATTESTATION_KEY)
    error = _check(evidence, InvalidClaimError)
    assert f"({label})" in str(error)
