"""Property tests: bad input never escapes as anything but a teep error."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from teep import cbor, cose
from teep.attestation.ear import make_ear, verify_ear
from teep.attestation.errors import EvidenceError
from teep.attestation.evidence import make_evidence, peek_evidence
from teep.errors import TeepError

from .conftest import (
    AGENT_KEY,
    ATTESTATION_KEY,
    CHALLENGE,
    NOW,
    VERIFIER_KEY,
    good_claims,
    good_map,
    verifier,
)

GOOD = make_evidence(good_claims(), ATTESTATION_KEY)
VERIFIER = verifier()
ARGS: dict[str, Any] = {"nonce": CHALLENGE, "cnf_key": AGENT_KEY.public, "now": NOW}
EAR = make_ear(VERIFIER.appraise(GOOD, **ARGS), VERIFIER_KEY, now=NOW)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=40)
    | st.text(max_size=10)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.integers(-3, 300) | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)
labels = st.sampled_from(
    [
        4,
        5,
        6,
        8,
        10,
        256,
        258,
        259,
        260,
        262,
        263,
        264,
        265,
        266,
        270,
        271,
        272,
        273,
        274,
        1000,
        -75006,
    ]
)


def _mutate(data: bytes, position: int, change: int, mode: int) -> bytes:
    position %= len(data)
    if mode == 0:
        return (
            data[:position]
            + bytes([data[position] ^ (change or 1)])
            + data[position + 1 :]
        )
    if mode == 1:
        return data[:position] + data[position + 1 :]
    return data[:position] + bytes([change]) + data[position:]


def _never_raises_but_teep(evidence: bytes) -> None:
    appraisal = VERIFIER.appraise(evidence, **ARGS)  # must not raise at all
    assert appraisal.reason
    try:
        VERIFIER.verify_evidence(evidence, **ARGS)
    except EvidenceError:
        pass
    try:
        peek_evidence(evidence)
    except TeepError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    """Random bytes: appraise never raises, verify_evidence raises only
    EvidenceError."""
    _never_raises_but_teep(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255), st.integers(0, 2))
def test_mutated_evidence(position: int, change: int, mode: int) -> None:
    """Evidence with one byte flipped, dropped or inserted is handled."""
    _never_raises_but_teep(_mutate(GOOD, position, change, mode))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(labels, values, min_size=1, max_size=3))
def test_signed_odd_claims(changes: dict[int, Any]) -> None:
    """Validly signed claims with arbitrary values at known labels are
    appraised without a crash."""
    claims = good_map()
    claims.update(changes)
    try:
        payload = cbor.dumps(claims)
    except Exception:
        return
    _never_raises_but_teep(cose.sign1(payload, ATTESTATION_KEY))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255), st.integers(0, 2))
def test_mutated_ear(position: int, change: int, mode: int) -> None:
    """A mutated EAR raises only EvidenceError from verify_ear."""
    try:
        verify_ear(
            _mutate(EAR, position, change, mode),
            [VERIFIER_KEY.public],
            now=NOW,
            nonce=CHALLENGE,
            cnf_key=AGENT_KEY.public,
            max_age=60,
        )
    except EvidenceError:
        pass


ear_labels = st.sampled_from([4, 6, 8, 10, 265, 266, 1000, 1004])
submod_labels = st.sampled_from([10, 265, 1000, 1001, 1003, 65000])


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(ear_labels, values, max_size=2),
    st.dictionaries(submod_labels, values, max_size=2),
)
def test_signed_odd_ear(top: dict[int, Any], submod: dict[int, Any]) -> None:
    """A validly signed EAR with arbitrary values raises only EvidenceError."""
    claims = cbor.loads(cose.parse(EAR).payload or b"")
    claims[266]["teep"].update(submod)
    claims.update(top)
    try:
        payload = cbor.dumps(claims)
    except Exception:
        return
    try:
        verify_ear(
            cose.sign1(payload, VERIFIER_KEY),
            [VERIFIER_KEY.public],
            now=NOW,
            nonce=None,
            cnf_key=AGENT_KEY.public,
            max_age=60,
        )
    except EvidenceError:
        pass
