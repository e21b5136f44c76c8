"""teep's COSE signatures agree with cwt's COSE implementation, and odd
signatures are refused cleanly."""

from __future__ import annotations

from typing import Any

import cwt
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from teep import cbor, cose
from teep.errors import VerifyError
from teep.keys import COSEAlgorithm, KeyKind, PrivateKey

SIGNER = PrivateKey.generate(KeyKind.ED25519)
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
        cwt.COSEKey.from_pem(key.to_pem(), alg=alg.name, kid=key.kid),
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


# the order of the P-256 group (SEC 2, section 2.4.2)
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def with_signature(signed: bytes, signature: bytes) -> bytes:
    """A COSE_Sign1 with its signature replaced."""
    value = cose.parse(signed).value
    value.value[3] = signature
    return cbor.dumps(value)


def r_and_s(signed: bytes) -> tuple[int, int]:
    """The ECDSA r and s of a COSE_Sign1."""
    signature = cose.parse(signed).signatures[0].signature
    return int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")


def rs(r: int, s: int) -> bytes:
    """An ECDSA signature in COSE form: r || s, 32 bytes each."""
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@pytest.mark.parametrize("size", [0, 32, 63, 65, 128])
def test_esp256_signature_of_wrong_size_refused(size: int) -> None:
    """An ESP256 signature is exactly 64 bytes; any other size is a VerifyError."""
    key = PrivateKey.generate(KeyKind.P256)
    signed = cose.sign1(b"x", key)
    signature = cose.parse(signed).signatures[0].signature
    forged = with_signature(signed, (signature * 3)[:size])
    with pytest.raises(VerifyError):
        cose.verify(forged, [key.public])


@pytest.mark.parametrize("size", [0, 63, 65])
def test_ed25519_signature_of_wrong_size_refused(size: int) -> None:
    """An Ed25519 signature of a size other than 64 is a VerifyError."""
    key = PrivateKey.generate(KeyKind.ED25519)
    signed = cose.sign1(b"x", key)
    with pytest.raises(VerifyError):
        cose.verify(with_signature(signed, bytes(size)), [key.public])


def test_der_signature_refused() -> None:
    """An ECDSA signature in DER (as cryptography makes it) is not COSE's form."""
    key = PrivateKey.generate(KeyKind.P256)
    signed = cose.sign1(b"x", key)
    der = encode_dss_signature(*r_and_s(signed))
    with pytest.raises(VerifyError):
        cose.verify(with_signature(signed, der), [key.public])


@pytest.mark.parametrize(
    "change",
    [
        lambda r, s: (0, s),
        lambda r, s: (r, 0),
        lambda r, s: (0, 0),
        lambda r, s: (P256_ORDER, s),
        lambda r, s: (r, P256_ORDER + 1),
        lambda r, s: ((1 << 256) - 1, (1 << 256) - 1),
    ],
    ids=["r-zero", "s-zero", "both-zero", "r-is-n", "s-above-n", "all-ones"],
)
def test_esp256_r_or_s_out_of_range_refused(change: Any) -> None:
    """r and s must lie in [1, n-1]: zero or n and above is a VerifyError."""
    key = PrivateKey.generate(KeyKind.P256)
    signed = cose.sign1(b"x", key)
    r, s = change(*r_and_s(signed))
    with pytest.raises(VerifyError):
        cose.verify(with_signature(signed, rs(r, s)), [key.public])


def test_esp256_high_s_twin_verifies() -> None:
    """(r, n - s) is the same ECDSA signature: RFC 9053 asks for no low-S
    form, and OpenSSL signers emit either, so both verify (as with cwt)."""
    key = PrivateKey.generate(KeyKind.P256)
    signed = cose.sign1(b"x", key)
    r, s = r_and_s(signed)
    twin = with_signature(signed, rs(r, P256_ORDER - s))
    assert cose.verify(twin, [key.public]).payload == b"x"
    assert cwt.COSE.new().decode(twin, cwt_key(key, COSEAlgorithm.ESP256)) == b"x"


def test_esp256_signature_is_r_then_s_fixed_size() -> None:
    """The signature is r || s with 32-byte halves, even when r or s is small."""
    key = PrivateKey.generate(KeyKind.P256)
    for _ in range(64):
        signed = cose.sign1(b"x", key)
        assert len(cose.parse(signed).signatures[0].signature) == 64
        r, s = r_and_s(signed)
        assert 0 < r < P256_ORDER and 0 < s < P256_ORDER


def test_sign1_heads_follow_the_algorithm() -> None:
    """One key signing with ESP256 and then ES256 puts each in its header."""
    key = PrivateKey.generate(KeyKind.P256)
    first = cose.sign1(b"x", key, alg=COSEAlgorithm.ESP256)
    second = cose.sign1(b"x", key, alg=COSEAlgorithm.ES256)
    assert cose.parse(first).signatures[0].alg == COSEAlgorithm.ESP256
    assert cose.parse(second).signatures[0].alg == COSEAlgorithm.ES256
    assert cose.verify(second, [key.public]).alg == COSEAlgorithm.ES256


def test_cwt_verifies_teep_cose_sign() -> None:
    """What teep signs as a COSE_Sign, cwt's decoder verifies, per signer."""
    keys = [PrivateKey.generate(KeyKind.P256), PrivateKey.generate(KeyKind.ED25519)]
    signed = cose.sign(b"payload", keys)
    for key in keys:
        alg = key.kind.default_alg
        assert cwt.COSE.new().decode(signed, cwt_key(key, alg)) == b"payload"


def test_teep_verifies_cwt_cose_sign() -> None:
    """What cwt's encoder signs as a COSE_Sign, teep verifies with either key."""
    keys = [PrivateKey.generate(KeyKind.P256), PrivateKey.generate(KeyKind.ED25519)]
    signers = [
        cwt.Signer.new(
            cose_key=cwt.COSEKey.from_pem(
                key.to_pem(), alg=key.kind.default_alg.name, kid=key.kid
            ),
            protected={1: int(key.kind.default_alg)},
            unprotected={4: key.kid},
        )
        for key in keys
    ]
    ctx = cwt.COSE.new(alg_auto_inclusion=False, kid_auto_inclusion=False)
    signed = bytes(ctx.encode(b"payload", signers=signers))
    for key in keys:
        verified = cose.verify(signed, [key.public])
        assert verified.payload == b"payload" and verified.key is key.public


def test_cose_sign_bad_first_signature_good_second() -> None:
    """A COSE_Sign verifies by its first good signature a trusted key checks."""
    p256, ed25519 = (
        PrivateKey.generate(KeyKind.P256),
        PrivateKey.generate(KeyKind.ED25519),
    )
    value = cbor.loads(cose.sign(b"p", [p256, ed25519]))
    value.value[3][0][2] = bytes(64)
    signed = cbor.dumps(value)
    trusted = [p256.public, ed25519.public]
    assert cose.verify(signed, trusted).alg == COSEAlgorithm.Ed25519
    with pytest.raises(VerifyError):
        cose.verify(signed, [p256.public])


def test_cose_sign_detached_payload() -> None:
    """A COSE_Sign with nil payload verifies against the detached payload only."""
    key = PrivateKey.generate(KeyKind.P256)
    value = cbor.loads(cose.sign(b"digest", [key]))
    value.value[2] = None
    signed = cbor.dumps(value)
    assert cose.verify(signed, [key.public], detached_payload=b"digest").payload
    with pytest.raises(VerifyError):
        cose.verify(signed, [key.public], detached_payload=b"other")


def test_signature_under_wrong_key_kind_refused() -> None:
    """An Ed25519 key is never tried on an ESP256 signature."""
    signed = cose.sign1(b"x", PrivateKey.generate(KeyKind.P256))
    with pytest.raises(VerifyError, match="no trusted key"):
        cose.verify(signed, [PrivateKey.generate(KeyKind.ED25519).public])
