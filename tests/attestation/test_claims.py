"""EAT claim keys, the TEEP profile constants and the strict claims decoder."""

from __future__ import annotations

from typing import Any

import pytest

from teep.attestation.ar4si import TrustClaim, TrustTier, status_of, tier_of
from teep.attestation.claims import (
    EAT_PROFILE_TEEP,
    TEEP_ATTESTATION_PAYLOAD_FORMAT,
    EATClaim,
    EATClaims,
    SUITReference,
    is_teep_profile_format,
)
from teep.attestation.errors import (
    ClaimsError,
    InvalidClaimError,
    MissingClaimError,
)

from .conftest import AGENT_KEY, good_claims, good_map


def test_claim_keys_are_rfc_9711() -> None:
    """Keys follow RFC 9711 as published: manifests 272, measurements 273."""
    assert EATClaim["nonce"] is EATClaim["eat_nonce"]
    assert int(EATClaim.eat_nonce) == 10
    assert (EATClaim.ueid, EATClaim.oemid, EATClaim.hwmodel) == (256, 258, 259)
    assert (EATClaim.oemboot, EATClaim.eat_profile, EATClaim.submods) == (262, 265, 266)
    assert (EATClaim.manifests, EATClaim.measurements) == (272, 273)
    assert (EATClaim.swname, EATClaim.swversion, EATClaim.intuse) == (270, 271, 275)


def test_round_trip() -> None:
    """from_map(to_map(c)) == c for the TEEP example claims set."""
    claims = good_claims(swname="https://example.com/tc.suit", exp=5, oemboot=False)
    assert EATClaims.from_map(claims.to_map()) == claims


def test_unknown_claims_are_kept() -> None:
    """Unknown claims are ignored but kept in extra, and re-encoded."""
    claims = EATClaims.from_map(good_map(_99999="x", _261=42))
    assert claims.extra == {99999: "x", 261: 42}
    assert claims.to_map()[99999] == "x"


def test_draft_manifests_key_is_measurements() -> None:
    """The stale D.2 example's 273 is read as measurements, so manifests
    (272) is missing."""
    claims = good_map()
    claims[273] = claims.pop(272)
    with pytest.raises(MissingClaimError, match="manifests"):
        EATClaims.from_map(claims)


def test_cose_key_cnf_becomes_thumbprint() -> None:
    """A cnf carrying a COSE_Key is reduced to its RFC 9679 thumbprint."""
    claims = EATClaims.from_map(good_map(_8={1: AGENT_KEY.public.cose_key()}))
    assert claims.cnf_kid == AGENT_KEY.kid


@pytest.mark.parametrize(
    ("label", "value", "words"),
    [
        (10, b"short", "8..64"),
        (10, bytes(65), "8..64"),
        (10, [bytes(8), bytes(8)], "single byte string"),
        (256, bytes(6), "7..33"),
        (256, bytes(34), "7..33"),
        (256, "text", "byte string"),
        (258, b"\x01\x02", "3 or 16"),
        (258, -1, "unsigned"),
        (259, b"", "1..32"),
        (260, "1.0", "version"),
        (260, ["1.0", 5], "not registered"),
        (260, ["1.0", -257], "not registered"),
        (260, [1, 1], "non-empty text"),
        (272, [], "non-empty"),
        (272, [[60]], "content-format"),
        (272, [[-1, b"x"]], "16-bit"),
        (272, [[60, "text"]], "byte string or SUIT_Reference"),
        (272, [[60, {1: "u"}]], "exactly"),
        (272, [[60, {0: [-16, b""], 1: "u"}]], "digest"),
        (8, {3: b""}, "1..64"),
        (8, {2: b"x"}, "not supported"),
        (8, {1: {1: 2}}, "COSE_Key"),
        (8, b"kid", "map"),
        (6, 1.5, "integer"),
        (6, True, "integer"),
        (4, "soon", "integer"),
        (262, 1, "true or false"),
        (263, 5, "0..4"),
        (265, 7, "URI"),
        (266, {"a": []}, "detached digest"),
        (266, {b"a": {}}, "text strings"),
        (266, {"a": {10: b"x"}}, "in submodule 'a'"),
        (264, {1: 1.0}, "longitude"),
    ],
)
def test_invalid_claim(label: int, value: Any, words: str) -> None:
    """Each known claim is checked for type, size and value."""
    with pytest.raises(InvalidClaimError, match=words):
        EATClaims.from_map(good_map(**{f"_{label}": value}))


def test_dependencies_in_submodules() -> None:
    """RFC 9711: hwmodel needs oemid, swversion needs swname (also in submods)."""
    with pytest.raises(InvalidClaimError, match="without oemid"):
        EATClaims.from_map(good_map(_266={"fw": {259: b"m"}}))
    with pytest.raises(InvalidClaimError, match="without swname"):
        EATClaims.from_map(good_map(_271=["1.0"]))


def test_not_a_map() -> None:
    """A claims set must be a map."""
    with pytest.raises(ClaimsError):
        EATClaims.from_map([1, 2])


def test_suit_reference_digest_used_for_reference_values() -> None:
    """A SUIT_Reference's digest is the entry digest."""
    (entry,) = good_claims().manifests
    assert isinstance(entry.body, SUITReference)
    assert entry.digest == entry.body.digest


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (None, True),
        (TEEP_ATTESTATION_PAYLOAD_FORMAT, True),
        (f'Application/EAT+CWT; eat_profile="{EAT_PROFILE_TEEP}"', True),
        ("application/eat+cwt", False),
        ('application/eat+cwt; eat_profile="tag:github.com,2023:veraison/ear"', False),
        ("application/psa-attestation-token", False),
        ("application/eat+cwt; eat_profile", False),
    ],
)
def test_teep_profile_format(fmt: str | None, expected: bool) -> None:
    """An absent format or the TEEP EAT media type means the TEEP profile."""
    assert is_teep_profile_format(fmt) is expected


def test_profile_format_string() -> None:
    """The default attestation-payload-format is spelled as teep-protocol does."""
    assert TEEP_ATTESTATION_PAYLOAD_FORMAT == (
        "application/eat+cwt; eat_profile=urn:ietf:rfc:rfcXXXX"
    )


@pytest.mark.parametrize(
    ("value", "tier"),
    [
        (0, TrustTier.none),
        (1, TrustTier.none),
        (-1, TrustTier.none),
        (2, TrustTier.affirming),
        (-32, TrustTier.affirming),
        (32, TrustTier.warning),
        (-96, TrustTier.warning),
        (96, TrustTier.contraindicated),
        (-128, TrustTier.contraindicated),
        (127, TrustTier.contraindicated),
    ],
)
def test_ar4si_tiers(value: int, tier: TrustTier) -> None:
    """AR4SI value ranges map to their tiers, private ranges included."""
    assert tier_of(value) is tier


def test_status_is_worst_of_vector() -> None:
    """The status is the worst tier in the vector."""
    vector = {TrustClaim.hardware: 2, TrustClaim.executables: 33}
    assert status_of(vector) is TrustTier.warning
    assert status_of({}) is TrustTier.none
    with pytest.raises(ValueError):
        tier_of(200)
