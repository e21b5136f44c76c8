"""Shared keys and a known-good claims set for the attestation tests."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from teep.attestation.claims import (
    SUIT_REFERENCE_CONTENT_FORMAT,
    EATClaims,
    HWVersion,
    ManifestEntry,
    SUITReference,
)
from teep.attestation.evidence import make_evidence
from teep.attestation.verifier import Endorsement, ReferenceValues, Verifier
from teep.keys import KeyKind, PrivateKey

NOW = 1_800_000_000.0
CHALLENGE = bytes.fromhex("948f8860d13a463e8e") + bytes(23)
OEMID = bytes.fromhex("894823")
HWMODEL = bytes.fromhex("549dcecc8b987c737b44e40f7c635ce8")
UEID = bytes.fromhex("0198f50a4ff6c05861c8860d13a638ea")
AGENT_MANIFEST_DIGEST = bytes.fromhex(
    "a7fd6593eac32eb4be578278e6540c5c09cfd7d4d234973054833b2b93030609"
)

# Keys are made once per session: generating them is the slow part.
ATTESTATION_KEY = PrivateKey.generate(KeyKind.P256)
AGENT_KEY = PrivateKey.generate(KeyKind.ED25519)
OTHER_AGENT_KEY = PrivateKey.generate(KeyKind.P256)
VERIFIER_KEY = PrivateKey.generate(KeyKind.P256)
ROGUE_KEY = PrivateKey.generate(KeyKind.P256)


def good_claims(**changes: Any) -> EATClaims:
    """The TEEP-profile claims set of teep-protocol D.2 (manifests at 272)."""
    claims = EATClaims(
        ueid=UEID,
        oemid=OEMID,
        hwmodel=HWMODEL,
        hwversion=HWVersion("1.3.4", 1),
        manifests=(
            ManifestEntry(
                SUIT_REFERENCE_CONTENT_FORMAT,
                SUITReference(
                    "https://example.com/manifest.cbor", -16, AGENT_MANIFEST_DIGEST
                ),
            ),
        ),
        cnf_kid=AGENT_KEY.kid,
        nonce=CHALLENGE,
        iat=int(NOW),
    )
    return dataclasses.replace(claims, **changes)


def good_map(**changes: Any) -> dict[int, Any]:
    """The good claims set as a map, with keys replaced or (value None) removed."""
    claims = good_claims().to_map()
    for key, value in changes.items():
        label = int(key.lstrip("_"))
        if value is None:
            claims.pop(label, None)
        else:
            claims[label] = value
    return claims


def endorsement(**changes: Any) -> Endorsement:
    """The endorsement of ATTESTATION_KEY for the good device class."""
    base = Endorsement(ATTESTATION_KEY.public, OEMID, HWMODEL, name="sim-tee")
    return dataclasses.replace(base, **changes)


def verifier(*values: ReferenceValues, **config: Any) -> Verifier:
    """A Verifier trusting ATTESTATION_KEY, with ``values`` or accept-any."""
    from teep.attestation.verifier import VerifierConfig

    return Verifier(
        [endorsement()], values or [ReferenceValues()], VerifierConfig(**config)
    )


@pytest.fixture
def evidence() -> bytes:
    """Good Evidence, signed with the endorsed attestation key."""
    return make_evidence(good_claims(), ATTESTATION_KEY)
