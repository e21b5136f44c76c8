"""The built-in Verifier: one test per appraisal rule."""

from __future__ import annotations

from typing import Any

import pytest

from teep import cbor, cose
from teep.attestation.ar4si import TrustClaim, TrustTier, TrustValue
from teep.attestation.claims import EAT_PROFILE_TEEP, DebugStatus, ManifestEntry
from teep.attestation.errors import (
    AlgorithmError,
    CnfMismatchError,
    EndorsementMismatchError,
    EvidenceDecodeError,
    EvidenceError,
    ExpiredError,
    FreshnessError,
    InvalidClaimError,
    MissingClaimError,
    NonceMismatchError,
    NotYetValidError,
    ProfileError,
    ReferenceValueError,
    SignatureError,
    UnknownAttesterError,
)
from teep.attestation.evidence import make_evidence, peek_evidence
from teep.attestation.verifier import ReferenceValues, Verifier
from teep.keys import COSEAlgorithm, KeyKind, PrivateKey

from .conftest import (
    AGENT_KEY,
    AGENT_MANIFEST_DIGEST,
    ATTESTATION_KEY,
    CHALLENGE,
    HWMODEL,
    NOW,
    OEMID,
    OTHER_AGENT_KEY,
    ROGUE_KEY,
    UEID,
    endorsement,
    good_claims,
    good_map,
    verifier,
)


def appraise(evidence: bytes, v: Verifier | None = None, **kw: Any) -> Any:
    args: dict[str, Any] = {"nonce": CHALLENGE, "cnf_key": AGENT_KEY.public, "now": NOW}
    args.update(kw)
    return (v or verifier()).appraise(evidence, **args)


def refused(
    evidence: bytes, error: type[EvidenceError], v: Verifier | None = None, **kw: Any
) -> Any:
    """Check both APIs: verify_evidence raises ``error``, appraise reports it."""
    args: dict[str, Any] = {"nonce": CHALLENGE, "cnf_key": AGENT_KEY.public, "now": NOW}
    args.update(kw)
    v = v or verifier()
    with pytest.raises(error) as info:
        v.verify_evidence(evidence, **args)
    appraisal = v.appraise(evidence, **args)
    assert appraisal.error is type(info.value)
    assert appraisal.reason == str(info.value)
    assert not appraisal.affirming
    return appraisal


def signed(claims_map: dict[Any, Any], key: PrivateKey = ATTESTATION_KEY) -> bytes:
    return cose.sign1(cbor.det_dumps(claims_map), key)


# -- the good path ------------------------------------------------------------


def test_good_evidence_is_affirming(evidence: bytes) -> None:
    """Endorsed, fresh, bound and well-formed Evidence is affirming."""
    appraisal = appraise(evidence)
    assert appraisal.status is TrustTier.affirming
    assert appraisal.affirming and appraisal.error is None
    assert appraisal.trust_vector[TrustClaim.instance_identity] == 2
    assert appraisal.trust_vector[TrustClaim.hardware] == 2
    assert appraisal.claims == good_claims()
    assert appraisal.attester_kid == ATTESTATION_KEY.kid
    assert appraisal.cnf_kid == AGENT_KEY.kid
    assert appraisal.nonce == CHALLENGE


@pytest.mark.parametrize(
    "alg",
    [
        COSEAlgorithm.ESP256,
        COSEAlgorithm.ES256,
        COSEAlgorithm.Ed25519,
        COSEAlgorithm.EdDSA,
    ],
)
def test_every_accepted_algorithm(alg: COSEAlgorithm) -> None:
    """ESP256, Ed25519 and the legacy ES256 and EdDSA are all accepted."""
    kind = KeyKind.P256 if alg in (-7, -9) else KeyKind.ED25519
    key = PrivateKey.generate(kind)
    v = Verifier([endorsement(key=key.public)], [ReferenceValues()])
    appraisal = appraise(make_evidence(good_claims(), key, alg=alg), v)
    assert appraisal.affirming, appraisal.reason


def test_untagged_evidence_is_accepted(evidence: bytes) -> None:
    """The TEEP profile forbids tags, so untagged COSE_Sign1 is accepted too."""
    untagged = cbor.dumps(cbor.loads(evidence).value)
    assert appraise(untagged).affirming


def test_timestamp_freshness_without_nonce() -> None:
    """With no challenge issued, a recent iat gives freshness."""
    evidence = make_evidence(good_claims(nonce=None), ATTESTATION_KEY)
    assert appraise(evidence, nonce=None, now=NOW + 100).affirming


def test_cnf_check_can_be_skipped(evidence: bytes) -> None:
    """Without a presenting key the binding is not checked."""
    assert appraise(evidence, cnf_key=None).affirming


def test_peek_evidence_reads_without_verifying() -> None:
    """peek_evidence decodes claims signed by anyone."""
    assert peek_evidence(make_evidence(good_claims(), ROGUE_KEY)) == good_claims()


# -- structure and signature ---------------------------------------------------


def test_bad_cbor_is_none() -> None:
    """Bytes that are not CBOR leave nothing to appraise: status none."""
    appraisal = refused(b"\xff\x00garbage", EvidenceDecodeError)
    assert appraisal.status is TrustTier.none
    assert appraisal.trust_vector == {}


def test_cose_sign_is_refused() -> None:
    """Evidence must be a COSE_Sign1, not a multi-signer COSE_Sign."""
    data = cose.sign(cbor.det_dumps(good_map()), [ATTESTATION_KEY])
    refused(data, EvidenceDecodeError)


def test_payload_not_a_map() -> None:
    """A signed payload that is not a claims map is refused."""
    refused(cose.sign1(cbor.dumps([1, 2]), ATTESTATION_KEY), EvidenceDecodeError)


def test_tag_in_claims_is_refused() -> None:
    """The TEEP profile forbids CBOR tags inside the claims set."""
    claims = good_map(_270=cbor.CBORTag(32, "https://x"))
    refused(signed(claims), EvidenceDecodeError)


def test_bad_signature() -> None:
    """A signature that does not verify under the endorsed key is contraindicated
    with every vector entry at 99."""
    value = cbor.loads(make_evidence(good_claims(), ATTESTATION_KEY))
    value.value[3] = bytes(64)
    appraisal = refused(cbor.dumps(value), SignatureError)
    assert appraisal.status is TrustTier.contraindicated
    assert set(appraisal.trust_vector.values()) == {99}
    assert appraisal.claims is None


def test_unknown_key() -> None:
    """Evidence from a key no endorsement names: instance-identity 97."""
    appraisal = refused(make_evidence(good_claims(), ROGUE_KEY), UnknownAttesterError)
    assert appraisal.trust_vector == {TrustClaim.instance_identity: 97}
    assert appraisal.status is TrustTier.contraindicated


def test_disallowed_algorithm() -> None:
    """An algorithm outside the policy's list is refused before verifying."""
    v = verifier(algs=frozenset({COSEAlgorithm.Ed25519}))
    refused(make_evidence(good_claims(), ATTESTATION_KEY), AlgorithmError, v)


# -- freshness -----------------------------------------------------------------


def test_wrong_nonce(evidence: bytes) -> None:
    """eat_nonce must equal the challenge issued for this session."""
    appraisal = refused(evidence, NonceMismatchError, nonce=bytes(32))
    assert appraisal.status is TrustTier.contraindicated
    assert "does not match" in appraisal.reason


def test_missing_nonce() -> None:
    """A challenge was issued, so eat_nonce must be present."""
    evidence = make_evidence(good_claims(nonce=None), ATTESTATION_KEY)
    refused(evidence, NonceMismatchError)


def test_expired() -> None:
    """Evidence past its exp (beyond the leeway) is refused."""
    evidence = make_evidence(good_claims(exp=int(NOW) - 600), ATTESTATION_KEY)
    appraisal = refused(evidence, ExpiredError)
    assert "expired" in appraisal.reason


def test_issued_in_the_future() -> None:
    """iat beyond the leeway in the future is refused."""
    evidence = make_evidence(good_claims(iat=int(NOW) + 3600), ATTESTATION_KEY)
    refused(evidence, NotYetValidError)


def test_not_before_in_the_future() -> None:
    """nbf beyond the leeway in the future is refused."""
    refused(signed(good_map(_5=int(NOW) + 3600)), NotYetValidError)


def test_timestamp_too_old() -> None:
    """Without a challenge, an iat older than max_age is refused."""
    evidence = make_evidence(good_claims(nonce=None), ATTESTATION_KEY)
    refused(evidence, ExpiredError, nonce=None, now=NOW + 3600)


def test_no_freshness_at_all() -> None:
    """Without a challenge and without iat there is no freshness."""
    evidence = make_evidence(good_claims(nonce=None, iat=None), ATTESTATION_KEY)
    refused(evidence, FreshnessError, nonce=None)


def test_float_iat_is_an_error() -> None:
    """RFC 9711: a floating-point iat must be treated as an error."""
    refused(signed(good_map(_6=NOW)), InvalidClaimError)


# -- claims and profile --------------------------------------------------------


@pytest.mark.parametrize("label", [256, 258, 259, 260, 272, 8])
def test_missing_required_claim(label: int) -> None:
    """Each claim the TEEP profile requires must be present."""
    claims = good_map()
    del claims[label]
    appraisal = refused(signed(claims), MissingClaimError)
    assert appraisal.status is TrustTier.contraindicated


def test_wrong_profile() -> None:
    """An eat_profile other than the TEEP one is refused."""
    claims = good_map(_265="tag:psacertified.org,2023:psa#tfm")
    refused(signed(claims), ProfileError)


def test_teep_profile_claim_accepted() -> None:
    """eat_profile naming the TEEP profile is accepted."""
    claims = good_map(_265=EAT_PROFILE_TEEP)
    assert appraise(signed(claims)).affirming


def test_profile_claim_required_by_config(evidence: bytes) -> None:
    """A Verifier can insist that eat_profile is present."""
    refused(evidence, MissingClaimError, verifier(require_profile_claim=True))


# -- binding -------------------------------------------------------------------


def test_cnf_bound_to_another_key(evidence: bytes) -> None:
    """cnf must name the Agent key that signed the QueryResponse."""
    appraisal = refused(evidence, CnfMismatchError, cnf_key=OTHER_AGENT_KEY.public)
    assert appraisal.trust_vector == {TrustClaim.instance_identity: 96}
    assert appraisal.cnf_kid == AGENT_KEY.kid


# -- endorsement ---------------------------------------------------------------


def test_hwmodel_not_endorsed() -> None:
    """A device class other than the key's endorsement is refused."""
    evidence = make_evidence(good_claims(hwmodel=b"other model"), ATTESTATION_KEY)
    appraisal = refused(evidence, EndorsementMismatchError)
    assert appraisal.trust_vector == {TrustClaim.hardware: 97}


def test_oemid_not_endorsed() -> None:
    """A manufacturer other than the key's endorsement is refused."""
    evidence = make_evidence(good_claims(oemid=12345), ATTESTATION_KEY)
    refused(evidence, EndorsementMismatchError)


def test_ueid_of_another_device(evidence: bytes) -> None:
    """A key endorsed for one device cannot speak for another."""
    v = Verifier([endorsement(ueid=b"\x01" + bytes(16))], [ReferenceValues()])
    refused(evidence, EndorsementMismatchError, v)


# -- reference values ----------------------------------------------------------


def test_no_reference_values_for_class(evidence: bytes) -> None:
    """A device class no reference values apply to is refused."""
    v = verifier(ReferenceValues(hwmodel=b"another class"))
    refused(evidence, ReferenceValueError, v)


def test_hwversion_not_accepted(evidence: bytes) -> None:
    """A hardware version outside the accepted set contraindicates hardware."""
    v = verifier(ReferenceValues(hwversions=frozenset({"2.0"})))
    appraisal = refused(evidence, ReferenceValueError, v)
    assert appraisal.trust_vector == {TrustClaim.hardware: 96}


def test_unknown_manifest_digest(evidence: bytes) -> None:
    """Every manifests digest must be a known-good one."""
    v = verifier(ReferenceValues(manifest_digests=frozenset({bytes(32)})))
    appraisal = refused(evidence, ReferenceValueError, v)
    assert appraisal.trust_vector == {TrustClaim.executables: 96}


def test_known_manifest_digest_affirms_executables(evidence: bytes) -> None:
    """Checked manifests add an affirming executables entry."""
    values = ReferenceValues(
        oemid=OEMID,
        hwmodel=HWMODEL,
        hwversions=frozenset({"1.3.4"}),
        manifest_digests=frozenset({AGENT_MANIFEST_DIGEST}),
    )
    appraisal = appraise(evidence, verifier(values))
    assert appraisal.trust_vector[TrustClaim.executables] == TrustValue.affirming


def test_measurements_required_and_checked() -> None:
    """A measurement policy needs measurements, each known-good."""
    v = verifier(ReferenceValues(measurement_digests=frozenset({bytes(32)})))
    refused(make_evidence(good_claims(), ATTESTATION_KEY), ReferenceValueError, v)
    measured = good_claims(measurements=(ManifestEntry(60, b"image"),))
    refused(make_evidence(measured, ATTESTATION_KEY), ReferenceValueError, v)


def test_blocked_device(evidence: bytes) -> None:
    """A blocked UEID is refused whatever else it claims."""
    v = verifier(ReferenceValues(blocked_ueids=frozenset({UEID})))
    appraisal = refused(evidence, ReferenceValueError, v)
    assert appraisal.trust_vector == {TrustClaim.instance_identity: 96}


def test_debug_enabled_refused() -> None:
    """A policy demanding debug disabled refuses enabled or absent dbgstat."""
    v = verifier(ReferenceValues(min_dbgstat=DebugStatus.disabled_since_boot))
    on = good_claims(dbgstat=DebugStatus.enabled)
    refused(make_evidence(on, ATTESTATION_KEY), ReferenceValueError, v)
    refused(make_evidence(good_claims(), ATTESTATION_KEY), ReferenceValueError, v)
    off = good_claims(dbgstat=DebugStatus.disabled_permanently)
    appraisal = appraise(make_evidence(off, ATTESTATION_KEY), v)
    assert appraisal.trust_vector[TrustClaim.configuration] == 2


def test_oemboot_required() -> None:
    """A policy demanding OEM boot refuses Evidence without oemboot true."""
    v = verifier(ReferenceValues(require_oemboot=True))
    refused(
        make_evidence(good_claims(oemboot=False), ATTESTATION_KEY),
        ReferenceValueError,
        v,
    )
    assert appraise(
        make_evidence(good_claims(oemboot=True), ATTESTATION_KEY), v
    ).affirming
