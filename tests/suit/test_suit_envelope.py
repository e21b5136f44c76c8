"""SuitEnvelope decoding and verification against the drafts' vectors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teep import cbor
from teep.errors import TeepError
from teep.suit.envelope import SuitDigest, SuitEnvelope, open_envelope, verify_envelope
from teep.suit.errors import (
    SuitAuthError,
    SuitDecodeError,
    SuitError,
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


@pytest.mark.parametrize("name", [n for n in ENVELOPES if "aes-kw" in n])
def test_mac_unsupported(name: str) -> None:
    """COSE_Mac0 authentication is reported as an unsupported COSE structure."""
    with pytest.raises(SuitUnsupportedError) as info:
        open_envelope(hexfile(name), KEYS)
    assert info.value.reason is SuitReportReason.cose_unsupported


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
    with pytest.raises(SuitDecodeError) as info:
        severed.sequence(SuitManifestKey.install)
    assert info.value.reason is SuitReportReason.severing_unsupported


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
