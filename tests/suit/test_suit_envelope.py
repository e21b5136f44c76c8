"""SuitEnvelope decoding and verification against the drafts' vectors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teep import cbor, cose
from teep.cose import MACKey
from teep.errors import TeepError, VerifyError
from teep.suit.envelope import SuitDigest, SuitEnvelope, open_envelope, verify_envelope
from teep.suit.errors import (
    SuitAuthError,
    SuitError,
    SuitSeveredMemberError,
    SuitUnsupportedError,
)
from teep.suit.registry import SuitManifestKey, SuitReportReason

from .vectors import dependent_key, example_key, hexfile, names

ENVELOPES = [n for n in names() if not n.startswith("report")]
SIGNED = [n for n in ENVELOPES if "unsigned" not in n and "aes-kw" not in n]
KEYS = [example_key(), dependent_key()]


@pytest.mark.parametrize("name", ENVELOPES)
def test_decode_keeps_bytes(name: str) -> None:
    """Every vector decodes, and its parts re-encode to the same bytes."""
    data = hexfile(name)
    env = SuitEnvelope.decode(data)
    assert env.raw == data
    assert env.encode() == data
    assert cbor.dumps(cbor.loads(data)) == data
    assert env.manifest.version == 1
    assert cbor.dumps(env.manifest.raw) == env.manifest_bytes


@pytest.mark.parametrize("name", SIGNED)
def test_signature_verifies(name: str) -> None:
    """Every signed vector verifies with the drafts' key."""
    env = SuitEnvelope.decode(hexfile(name))
    signer = verify_envelope(env, KEYS)
    assert signer in KEYS
    assert env.digest.matches(env.manifest_bytes)


@pytest.mark.parametrize("name", [n for n in ENVELOPES if "unsigned" in n])
def test_unsigned_refused(name: str) -> None:
    """An envelope without an authentication block is refused."""
    with pytest.raises(SuitAuthError):
        open_envelope(hexfile(name), KEYS)


MACED = [n for n in ENVELOPES if "aes-kw" in n]
MAC_KEY = MACKey(b"a" * 32)
"""The firmware-encryption examples' HMAC 256/256 key (vectors/keys)."""


@pytest.mark.parametrize("name", MACED)
def test_mac_without_keys_unsupported(name: str) -> None:
    """Without shared keys, COSE_Mac0 authentication is reported as an
    unsupported COSE structure."""
    with pytest.raises(SuitUnsupportedError) as info:
        open_envelope(hexfile(name), KEYS)
    assert info.value.reason is SuitReportReason.cose_unsupported


@pytest.mark.parametrize("name", MACED)
def test_mac_verifies_with_the_shared_key(name: str) -> None:
    """The AES-KW examples' COSE_Mac0 (HMAC 256/256 over the detached
    SUIT_Digest) verifies with the drafts' shared key, by kid or without."""
    env, key = open_envelope(hexfile(name), KEYS, mac_keys=[MAC_KEY])
    assert key == MAC_KEY and env.digest.matches(env.manifest_bytes)
    wrong = MACKey(b"b" * 32)
    assert verify_envelope(env, [], mac_keys=[wrong, MAC_KEY]) == MAC_KEY
    with pytest.raises(SuitAuthError):
        open_envelope(hexfile(name), KEYS, mac_keys=[wrong])
    # A key with a kid the message does not carry is still tried.
    named = MACKey(b"a" * 32, b"kid")
    assert open_envelope(hexfile(name), [], mac_keys=[named])[1] == named


def _mac0(protected: bytes, unprotected: dict[int, object], tag: bytes) -> bytes:
    return cbor.dumps(cbor.CBORTag(17, [protected, unprotected, None, tag]))


def test_mac0_rules() -> None:
    """verify_mac0 builds MAC_structure ["MAC0", protected, h'', payload]
    (RFC 9052 6.3), picks keys by kid, and refuses a wrong length tag or an
    unknown algorithm."""
    import hashlib
    import hmac

    payload = b"\x82\x2f\x58\x20" + bytes(32)
    protected = cbor.dumps({1: 5})
    structure = cbor.dumps(["MAC0", protected, b"", payload])
    tag = hmac.new(b"k" * 32, structure, hashlib.sha256).digest()
    good = MACKey(b"k" * 32, b"one")
    other = MACKey(b"x" * 32, b"two")
    message = _mac0(protected, {4: b"one"}, tag)
    assert cose.verify_mac0(message, [other, good], detached_payload=payload) == good
    with pytest.raises(VerifyError):  # the kid names a key whose secret differs
        cose.verify_mac0(
            message, [MACKey(b"x" * 32, b"one"), other], detached_payload=payload
        )
    with pytest.raises(VerifyError):
        cose.verify_mac0(
            _mac0(protected, {}, tag[:16]), [good], detached_payload=payload
        )
    with pytest.raises(VerifyError):
        cose.verify_mac0(message, [good], detached_payload=payload + b"x")
    unknown = cbor.dumps({1: 4})  # HMAC 256/64: not supported
    with pytest.raises(VerifyError):
        cose.verify_mac0(_mac0(unknown, {}, tag[:8]), [good], detached_payload=payload)
    with pytest.raises(cose.COSEDecodeError):
        cose.verify_mac0(cbor.dumps([protected, {}, None]), [good])


def test_wrong_key_refused() -> None:
    """A signature by an untrusted key is refused."""
    with pytest.raises(SuitAuthError):
        open_envelope(hexfile("teep-suit_uri"), [dependent_key()])


def test_teep_vector_contents() -> None:
    """The TEEP integrated example exposes its ids, payload and sequences."""
    env = SuitEnvelope.decode(hexfile("teep-suit_integrated"))
    m = env.manifest
    assert m.sequence_number == 3
    assert m.manifest_component_id is not None
    assert m.manifest_component_id[-1] == b"suit"
    assert m.common.components[0][-1] == b"ta"
    assert env.integrated == {"#tc": b"Hello, Secure World!"}
    assert not env.tagged
    install = env.sequence(SuitManifestKey.install)
    assert install is not None
    assert [c.label for c in install.commands] == [20, 21, 3]


def test_severed_members() -> None:
    """Severed members are resolved from the envelope and checked."""
    full = SuitEnvelope.decode(hexfile("manifest-ex2"))
    assert full.sequence(SuitManifestKey.install) is not None
    severed = SuitEnvelope.decode(hexfile("manifest-ex2-severed"))
    assert SuitManifestKey.install in severed.manifest.severed
    # teep supports severing: a missing member fails the operation, it is
    # not reason 9 "severing unsupported" (the SUIT digest 9.1 step 6).
    with pytest.raises(SuitSeveredMemberError) as info:
        severed.sequence(SuitManifestKey.install)
    assert info.value.reason is SuitReportReason.operation_failed


def test_severed_member_tampered() -> None:
    """A severed member that does not match its digest is refused."""
    data = bytearray(hexfile("manifest-ex2"))
    at = data.rfind(b"en-US")
    data[at] ^= 0x20
    with pytest.raises(SuitAuthError):
        SuitEnvelope.decode(bytes(data))


def test_tampered_manifest_refused() -> None:
    """Changing a manifest byte breaks the digest check."""
    data = bytearray(hexfile("teep-suit_uri"))
    at = data.find(b"https://example.org")
    data[at + 8] ^= 1
    with pytest.raises(SuitAuthError, match="digest"):
        open_envelope(bytes(data), KEYS)


def test_tampered_signature_refused() -> None:
    """Changing a signature byte fails verification."""
    original = hexfile("teep-suit_uri")
    env = SuitEnvelope.decode(original)
    at = original.find(env.authentication_wrapper) + len(env.authentication_wrapper) - 3
    data = bytearray(original)
    data[at] ^= 1
    with pytest.raises(SuitAuthError):
        open_envelope(bytes(data), KEYS)


def test_digest_of() -> None:
    """SuitDigest.of hashes with SHA-256 by default."""
    digest = SuitDigest.of(b"Hello, Secure World!")
    assert digest.algorithm == -16
    assert digest.value.hex().startswith("8cf71ac8")
    assert SuitDigest.decode(digest.encode()) == digest


@pytest.mark.parametrize(
    "name", ["teep-suit_uri", "manifest-ex1", "trust-domains-example2_integrated"]
)
def test_truncations_raise_suit_errors(name: str) -> None:
    """Every truncation of a vector raises a SuitError, never a built-in."""
    data = hexfile(name)
    for end in range(len(data)):
        with pytest.raises(SuitError):
            open_envelope(data[:end], KEYS)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_fuzzed_envelopes_raise_teep_errors(data: st.DataObject) -> None:
    """Random byte flips in an envelope give a teep error or a valid result."""
    raw = bytearray(hexfile("trust-domains-example2_integrated"))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    try:
        env = SuitEnvelope.decode(bytes(raw))
        for key in SuitManifestKey:
            env.sequence(key)
        verify_envelope(env, KEYS)
    except TeepError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_raise_suit_errors(raw: bytes) -> None:
    """Arbitrary bytes never escape as a built-in exception."""
    with pytest.raises(SuitError):
        SuitEnvelope.decode(raw)
