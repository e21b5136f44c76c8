"""EAR Attestation Results: making, verifying, and the cnf binding."""

from __future__ import annotations

from typing import Any

import pytest

from teep import cbor, cose
from teep.attestation.ar4si import TrustClaim, TrustTier
from teep.attestation.ear import (
    EAR_PROFILE,
    EAR_PROFILES,
    AttestationResult,
    EARClaim,
    VerifierID,
    make_ear,
    verify_ear,
)
from teep.attestation.errors import (
    CnfMismatchError,
    EvidenceDecodeError,
    EvidenceError,
    ExpiredError,
    InvalidClaimError,
    MissingClaimError,
    NonceMismatchError,
    NotYetValidError,
    ProfileError,
    SignatureError,
    UnknownAttesterError,
)
from teep.attestation.evidence import make_evidence
from teep.attestation.verifier import Appraisal

from .conftest import (
    AGENT_KEY,
    ATTESTATION_KEY,
    CHALLENGE,
    NOW,
    OTHER_AGENT_KEY,
    ROGUE_KEY,
    UEID,
    VERIFIER_KEY,
    good_claims,
    verifier,
)


def appraisal(**changes: Any) -> Appraisal:
    evidence = make_evidence(good_claims(**changes), ATTESTATION_KEY)
    return verifier().appraise(
        evidence, nonce=CHALLENGE, cnf_key=AGENT_KEY.public, now=NOW
    )


def check(data: bytes, **kw: Any) -> AttestationResult:
    args: dict[str, Any] = {
        "now": NOW + 10,
        "nonce": CHALLENGE,
        "cnf_key": AGENT_KEY.public,
        "max_age": 60.0,
    }
    args.update(kw)
    return verify_ear(data, [VERIFIER_KEY.public], **args)


def resign(data: bytes, edit: Any, key: Any = VERIFIER_KEY) -> bytes:
    """Decode an EAR's claims, let ``edit`` change them, sign again."""
    claims = cbor.loads(cose.parse(data).payload or b"")
    edit(claims)
    return cose.sign1(cbor.det_dumps(claims), key)


def test_round_trip() -> None:
    """An affirming appraisal survives make_ear / verify_ear."""
    result = check(make_ear(appraisal(), VERIFIER_KEY, now=NOW))
    assert result.affirming and result.profile == EAR_PROFILE
    assert result.iat == int(NOW) and result.exp == int(NOW) + 300
    assert result.nonce == CHALLENGE and result.cnf_kid == AGENT_KEY.kid
    assert result.verifier_id.developer == "teep"
    sub = result.submods["teep"]
    assert sub.status is TrustTier.affirming
    assert sub.trust_vector[TrustClaim.hardware] == 2
    assert sub.teep_claims[256] == UEID
    assert sub.nonce == CHALLENGE
    assert result.signer.equals(VERIFIER_KEY.public)


def test_optional_fields() -> None:
    """Policy ids, raw evidence, verifier id and no exp are carried."""
    data = make_ear(
        appraisal(),
        VERIFIER_KEY,
        now=NOW,
        validity=None,
        policy_ids=["teep/default"],
        raw_evidence=b"evidence",
        verifier_id=VerifierID("acme", "2.0"),
    )
    result = check(data)
    assert result.exp is None
    assert result.submods["teep"].policy_ids == ("teep/default",)
    assert result.verifier_id == VerifierID("acme", "2.0")
    payload = cbor.loads(cose.parse(data).payload or b"")
    assert payload[EARClaim.ear_raw_evidence] == b"evidence"


def test_contraindicated_result_is_returned_not_raised() -> None:
    """verify_ear checks the result; acting on its status is policy."""
    refused = appraisal(nonce=bytes(32))
    result = check(make_ear(refused, VERIFIER_KEY, now=NOW, nonce=CHALLENGE))
    assert result.status is TrustTier.contraindicated and not result.affirming


def test_bound_to_another_key() -> None:
    """A result whose cnf names another Agent's key is refused (replay)."""
    data = make_ear(appraisal(), VERIFIER_KEY, now=NOW)
    with pytest.raises(CnfMismatchError):
        check(data, cnf_key=OTHER_AGENT_KEY.public)


def test_missing_cnf() -> None:
    """With a presenting key, a result without cnf is refused."""
    data = resign(make_ear(appraisal(), VERIFIER_KEY, now=NOW), lambda c: c.pop(8))
    with pytest.raises(CnfMismatchError, match="no cnf"):
        check(data)
    assert check(data, cnf_key=None).cnf_kid is None


def test_bad_signature() -> None:
    """A result whose signature does not verify is refused."""
    value = cbor.loads(make_ear(appraisal(), VERIFIER_KEY, now=NOW))
    value.value[3] = bytes(64)
    with pytest.raises(SignatureError):
        check(cbor.dumps(value))


def test_untrusted_verifier() -> None:
    """A result signed by a Verifier the checker does not trust is refused."""
    with pytest.raises(UnknownAttesterError):
        check(make_ear(appraisal(), ROGUE_KEY, now=NOW))


def test_stale() -> None:
    """A result older than max_age is refused."""
    data = make_ear(appraisal(), VERIFIER_KEY, now=NOW, validity=None)
    with pytest.raises(ExpiredError):
        check(data, now=NOW + 3600)


def test_expired() -> None:
    """A result past its exp is refused even within max_age."""
    data = make_ear(appraisal(), VERIFIER_KEY, now=NOW, validity=1)
    with pytest.raises(ExpiredError, match="expired"):
        check(data, now=NOW + 100, max_age=1000)


def test_future() -> None:
    """A result issued in the future is refused."""
    data = make_ear(appraisal(), VERIFIER_KEY, now=NOW + 3600)
    with pytest.raises(NotYetValidError):
        check(data)


def test_nonce_mismatch() -> None:
    """The result's eat_nonce must be the expected one."""
    data = make_ear(appraisal(), VERIFIER_KEY, now=NOW)
    with pytest.raises(NonceMismatchError):
        check(data, nonce=bytes(32))
    without = make_ear(appraisal(), VERIFIER_KEY, now=NOW, nonce=None)
    with pytest.raises(NonceMismatchError):
        check(without)


@pytest.mark.parametrize("profile", sorted(EAR_PROFILES))
def test_every_ear_profile_accepted(profile: str) -> None:
    """The three EAR profile spellings share CBOR keys; all are accepted."""
    data = make_ear(appraisal(), VERIFIER_KEY, now=NOW)
    assert check(resign(data, lambda c: c.__setitem__(265, profile))).affirming


def _set_status(claims: dict[Any, Any], status: int) -> None:
    claims[266]["teep"][1000] = status


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda c: c.__setitem__(265, "urn:ietf:rfc:rfcXXXX"), ProfileError),
        (lambda c: c.pop(6), MissingClaimError),
        (lambda c: c.pop(1004), MissingClaimError),
        (lambda c: c.__setitem__(1004, {0: "x"}), InvalidClaimError),
        (lambda c: c.pop(266), MissingClaimError),
        (lambda c: c.__setitem__(266, {"teep": 5}), InvalidClaimError),
        (lambda c: _set_status(c, 7), InvalidClaimError),
        (lambda c: _set_status(c, True), InvalidClaimError),
        (lambda c: c[266]["teep"].pop(1000), MissingClaimError),
        (lambda c: c[266]["teep"].__setitem__(1001, {9: 2}), InvalidClaimError),
        (lambda c: c[266]["teep"].__setitem__(1001, {0: 1.5}), InvalidClaimError),
        (lambda c: c[266]["teep"].__setitem__(1001, {0: 99}), InvalidClaimError),
        (lambda c: c[266]["teep"].__setitem__(1003, [1]), InvalidClaimError),
        (lambda c: c[266]["teep"].__setitem__(65000, [1]), InvalidClaimError),
        (lambda c: c.__setitem__(1000, 0), InvalidClaimError),
        (lambda c: c.__setitem__(6, 1.5), InvalidClaimError),
    ],
)
def test_malformed_ear(edit: Any, error: type[EvidenceError]) -> None:
    """A signed but malformed EAR is refused with a claims error."""
    data = resign(make_ear(appraisal(), VERIFIER_KEY, now=NOW), edit)
    with pytest.raises(error):
        check(data)


def test_single_policy_id_of_older_drafts() -> None:
    """Drafts up to -02 carried one policy id as text; it is accepted."""
    data = resign(
        make_ear(appraisal(), VERIFIER_KEY, now=NOW),
        lambda c: c[266]["teep"].__setitem__(1003, "p1"),
    )
    assert check(data).submods["teep"].policy_ids == ("p1",)


def test_not_a_token() -> None:
    """Bytes that are not a COSE_Sign1 are refused as undecodable."""
    with pytest.raises(EvidenceDecodeError):
        check(b"\xa0")


def test_inspect_tells_ear_from_eat() -> None:
    """inspect_token names an EAR and Evidence apart and verifies with a key."""
    from teep.attestation.inspect import claim_name, inspect_token

    ear = make_ear(appraisal(), VERIFIER_KEY, now=NOW)
    view = inspect_token(ear, [VERIFIER_KEY.public])
    assert view.kind == "EAR" and view.signer is not None
    assert claim_name(1000) == "ear_status" and claim_name(256) == "ueid"
    evidence = make_evidence(good_claims(), ATTESTATION_KEY)
    assert inspect_token(evidence).kind == "EAT"
    with pytest.raises(SignatureError):
        inspect_token(evidence, [VERIFIER_KEY.public])


def test_appraisal_of_result_keeps_reason_and_claims() -> None:
    """An EAR read back gives the Verifier's reason, status and TEEP claims."""
    from teep.attestation.ear import appraisal_of

    original = appraisal()
    back = appraisal_of(check(make_ear(original, VERIFIER_KEY, now=NOW)))
    assert back.status is TrustTier.affirming
    assert back.reason == original.reason
    assert back.claims is not None and back.claims.ueid == UEID
    assert back.cnf_kid == AGENT_KEY.kid


def test_cnf_override_carries_cose_key() -> None:
    """make_ear can carry the Evidence's whole COSE_Key in cnf; the binding
    is still checked on its thumbprint."""
    cnf = {1: AGENT_KEY.public.cose_key()}
    result = check(make_ear(appraisal(), VERIFIER_KEY, now=NOW, cnf=cnf))
    assert result.cnf_kid == AGENT_KEY.kid
