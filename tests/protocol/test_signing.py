"""The COSE_Sign1 fast path agrees with cwt's full COSE implementation."""

from __future__ import annotations

import cwt
import pytest

from teep import cbor, cose
from teep.errors import VerifyError
from teep.keys import COSEAlgorithm, KeyKind, PrivateKey

CASES = [
    (KeyKind.P256, COSEAlgorithm.ESP256),
    (KeyKind.P256, COSEAlgorithm.ES256),
    (KeyKind.ED25519, COSEAlgorithm.Ed25519),
    (KeyKind.ED25519, COSEAlgorithm.EdDSA),
]


def cwt_key(key: PrivateKey, alg: COSEAlgorithm) -> cwt.COSEKey:
    """The public key as cwt sees it, with the message's kid."""
    params = dict(key.public.cose_key())
    params[3] = int(alg)
    params[2] = key.kid
    return cwt.COSEKey.new(params)


@pytest.mark.parametrize(("kind", "alg"), CASES)
def test_cwt_verifies_teep_sign1(kind: KeyKind, alg: COSEAlgorithm) -> None:
    """What teep signs, cwt's own decoder verifies (Sig_structure is right)."""
    key = PrivateKey.generate(kind)
    signed = cose.sign1(b"payload bytes", key, alg=alg)
    assert cwt.COSE.new().decode(signed, cwt_key(key, alg)) == b"payload bytes"


@pytest.mark.parametrize(("kind", "alg"), CASES)
def test_teep_verifies_cwt_sign1(kind: KeyKind, alg: COSEAlgorithm) -> None:
    """What cwt's own encoder signs, teep's fast path verifies."""
    key = PrivateKey.generate(kind)
    ctx = cwt.COSE.new(alg_auto_inclusion=False, kid_auto_inclusion=False)
    signed = ctx.encode(
        b"x",
        cose._cwt_private(key, alg),
        protected={1: int(alg)},
        unprotected={4: key.kid},
    )
    verified = cose.verify(bytes(signed), [key.public], algs=[alg])
    assert verified.payload == b"x" and verified.alg == alg


def test_detached_payload_round_trip() -> None:
    """A detached COSE_Sign1 verifies only with its payload supplied."""
    key = PrivateKey.generate(KeyKind.P256)
    signed = cose.sign1(b"digest", key, detached=True)
    assert cose.verify(signed, [key.public], detached_payload=b"digest").payload
    with pytest.raises(VerifyError):
        cose.verify(signed, [key.public], detached_payload=b"other")


def test_truncated_signature_refused() -> None:
    """A signature of the wrong length raises VerifyError, nothing else."""
    key = PrivateKey.generate(KeyKind.P256)
    value = cose.parse(cose.sign1(b"x", key)).value
    value.value[3] = value.value[3][:10]
    with pytest.raises(VerifyError):
        cose.verify(cbor.dumps(value), [key.public])


@pytest.mark.parametrize("size", [0, 23, 24, 255, 256, 65535, 65536])
def test_hand_written_encoding_is_preferred_cbor(size: int) -> None:
    """The directly written COSE_Sign1 equals cbor2's preferred encoding."""
    key = PrivateKey.generate(KeyKind.ED25519)
    payload = bytes(size)
    signed = cose.sign1(payload, key)
    value = cbor.loads(signed, tags=frozenset({18}))
    assert cbor.dumps(value) == signed
    assert value.value[2] == payload
