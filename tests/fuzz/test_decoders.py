"""Fuzzing every decoder: bad input raises a TeepError, nothing else."""

from __future__ import annotations

from hypothesis import given

from teep import cbor, cose
from teep.attestation.claims import EATClaims
from teep.attestation.ear import verify_ear
from teep.attestation.evidence import peek_evidence
from teep.protocol import codec
from teep.protocol.registry import FINAL, PRE_RFC
from teep.protocol.signing import open_signed, peek
from teep.suit.envelope import SuitEnvelope, open_envelope
from teep.suit.report import decode_report

from .harness import FUZZ, cbor_values, expect_teep_error, inputs, seeds

S = seeds()
ALL = [*S.teep, S.envelope, S.evidence, S.ear]


@FUZZ
@given(inputs(ALL))
def test_cbor_loads(data: bytes) -> None:
    """teep.cbor.loads raises only CBORDecodeError."""
    expect_teep_error(cbor.loads, data)
    expect_teep_error(lambda d: cbor.loads(d, tags=frozenset({16, 18, 98})), data)


@FUZZ
@given(inputs([peek(m).cose.payload or b"" for m in S.teep]))
def test_protocol_codec(data: bytes) -> None:
    """The TEEP codec raises only teep errors, in either numbering."""
    expect_teep_error(lambda d: codec.decode(d, FINAL), data)
    expect_teep_error(lambda d: codec.decode(d, PRE_RFC), data)


@FUZZ
@given(cbor_values)
def test_protocol_codec_values(value: object) -> None:
    """Decoding an arbitrary CBOR value as a message raises only teep errors."""
    expect_teep_error(lambda v: codec.decode_value(v, FINAL), value)  # type: ignore[arg-type]
    expect_teep_error(codec.classify, value)  # type: ignore[arg-type]


@FUZZ
@given(inputs(S.teep))
def test_signed_teep_message(data: bytes) -> None:
    """peek and open_signed (signature check) raise only teep errors."""
    keys = [k.public for k in S.tam_keys] + [S.device.tee.agent_key.public]
    expect_teep_error(lambda d: open_signed(peek(d), keys, dialect=FINAL), data)


@FUZZ
@given(inputs([*S.teep, S.evidence, S.ear]))
def test_cose(data: bytes) -> None:
    """cose.parse and cose.verify raise only teep errors."""
    keys = [k.public for k in S.tam_keys]
    expect_teep_error(cose.parse, data)
    expect_teep_error(lambda d: cose.verify(d, keys), data)


@FUZZ
@given(inputs([S.envelope]))
def test_suit_envelope(data: bytes) -> None:
    """SuitEnvelope.decode and open_envelope raise only teep errors."""
    expect_teep_error(SuitEnvelope.decode, data)
    expect_teep_error(lambda d: open_envelope(d, [S.signer.public]), data)


@FUZZ
@given(inputs([S.envelope, *S.teep]))
def test_suit_report(data: bytes) -> None:
    """decode_report raises only teep errors."""
    expect_teep_error(decode_report, data)


@FUZZ
@given(inputs([S.evidence]))
def test_eat_evidence(data: bytes) -> None:
    """peek_evidence raises only teep errors; the Verifier never raises."""
    expect_teep_error(peek_evidence, data)
    appraisal = S.verifier.appraise(
        data,
        nonce=S.challenge,
        cnf_key=S.device.tee.agent_key.public,
        now=S.now,
    )
    assert appraisal.status is not None


@FUZZ
@given(cbor_values)
def test_eat_claims(value: object) -> None:
    """EATClaims.from_map raises only teep errors on any CBOR value."""
    expect_teep_error(EATClaims.from_map, value)  # type: ignore[arg-type]


@FUZZ
@given(inputs([S.ear]))
def test_ear(data: bytes) -> None:
    """verify_ear raises only teep errors."""
    expect_teep_error(
        lambda d: verify_ear(
            d,
            [S.verifier_key.public],
            now=S.now,
            nonce=S.challenge,
            cnf_key=None,
            max_age=600.0,
        ),
        data,
    )
