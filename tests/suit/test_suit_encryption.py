"""Encrypted payloads: the firmware-encryption vectors, round trips, failures."""

from __future__ import annotations

import pytest

from teep import cbor
from teep.keys import COSEAlgorithm, KeyKind, PrivateKey
from teep.suit.builder import build_envelope
from teep.suit.encryption import (
    KDF_OTHER,
    SuitEncryptionInfo,
    SymmetricKEK,
    _kdf_context,
    encrypt_payload,
)
from teep.suit.errors import (
    SuitDecodeError,
    SuitDecryptionError,
    SuitError,
    SuitUnsupportedError,
)
from teep.suit.processor import SuitProcessor
from teep.suit.registry import SuitManifestKey, SuitReportReason
from teep.suit.report import decode_report
from teep.suit.store import MemoryComponentStore

from .vectors import (
    KEK,
    dependent_key,
    device_kek,
    encryption_hex,
    example_key,
    hexfile,
)

PLAINTEXT = b"This is a real firmware image."
CONFIG = b'{"name":"FOO Bar","secret":"0123456789abfcdef0123456789abcd"}'
FE_VECTORS = ["aes-kw-aes-gcm", "aes-kw-aes-ctr", "es-ecdh-aes-gcm", "es-ecdh-aes-ctr"]
KEYS = [SymmetricKEK(KEK, b"kid-1"), device_kek()]
CONTENT_ALGS = [
    COSEAlgorithm.A128GCM,
    COSEAlgorithm.A256GCM,
    COSEAlgorithm.A128CTR,
    COSEAlgorithm.CHACHA20_POLY1305,
]


@pytest.mark.parametrize("name", FE_VECTORS)
def test_draft_vector_decrypts(name: str) -> None:
    """Each firmware-encryption example decrypts to the draft's plaintext."""
    info = SuitEncryptionInfo.decode(
        encryption_hex(f"fwenc-suit-encryption-info-{name}")
    )
    ciphertext = encryption_hex(f"fwenc-encrypted-payload-{name}")
    assert info.decrypt(ciphertext, KEYS) == PLAINTEXT


def test_kdf_context_matches_draft() -> None:
    """The COSE_KDF_Context is byte for byte the one the draft prints."""
    protected = cbor.dumps({1: -29})
    context = _kdf_context(COSEAlgorithm.ECDH_ES_A128KW, protected)
    assert context[3][2] == KDF_OTHER
    assert cbor.dumps(context) == encryption_hex("fwenc-a128kw_kdf_context")


@pytest.mark.parametrize("alg", CONTENT_ALGS, ids=lambda a: a.name)
@pytest.mark.parametrize("recipient", ["ecdh", "kek128", "kek256"])
def test_round_trip(alg: COSEAlgorithm, recipient: str) -> None:
    """What encrypt_payload makes, the matching key and only it decrypts."""
    device = PrivateKey.generate(KeyKind.P256)
    key = {
        "ecdh": device,
        "kek128": SymmetricKEK(b"k" * 16, b"k1"),
        "kek256": SymmetricKEK(b"K" * 32),
    }[recipient]
    public = key.public if isinstance(key, PrivateKey) else key
    info, ciphertext = encrypt_payload(
        b"payload" * 100, [public], content_algorithm=alg
    )
    decoded = SuitEncryptionInfo.decode(info)
    assert decoded.content_algorithm is alg
    assert decoded.decrypt(ciphertext, [key]) == b"payload" * 100
    with pytest.raises(SuitDecryptionError):
        decoded.decrypt(ciphertext, [PrivateKey.generate(), SymmetricKEK(b"x" * 16)])


def test_several_recipients() -> None:
    """One CEK wrapped for a device key and a KEK opens with either."""
    device = PrivateKey.generate()
    kek = SymmetricKEK(b"s" * 16, b"shared")
    info, ciphertext = encrypt_payload(b"data", [device.public, kek])
    decoded = SuitEncryptionInfo.decode(info)
    assert len(decoded.recipients) == 2
    assert decoded.decrypt(ciphertext, [kek]) == b"data"
    assert decoded.decrypt(ciphertext, [device]) == b"data"


def test_kid_mismatch_skips_kek() -> None:
    """A KEK with its own kid is not tried on a recipient naming another."""
    info = SuitEncryptionInfo.decode(
        encryption_hex("fwenc-suit-encryption-info-aes-kw-aes-gcm")
    )
    ciphertext = encryption_hex("fwenc-encrypted-payload-aes-kw-aes-gcm")
    with pytest.raises(SuitDecryptionError, match="no decryption key"):
        info.decrypt(ciphertext, [SymmetricKEK(KEK, b"kid-9")])


def test_tampered_ciphertext_refused() -> None:
    """AES-GCM refuses a ciphertext with a flipped bit."""
    info = SuitEncryptionInfo.decode(
        encryption_hex("fwenc-suit-encryption-info-es-ecdh-aes-gcm")
    )
    ciphertext = bytearray(encryption_hex("fwenc-encrypted-payload-es-ecdh-aes-gcm"))
    ciphertext[3] ^= 1
    with pytest.raises(SuitDecryptionError):
        info.decrypt(bytes(ciphertext), KEYS)


def _info(
    protected: bytes, unprotected: dict[int, object], recipients: object
) -> bytes:
    return cbor.dumps(cbor.CBORTag(96, [protected, unprotected, None, recipients]))


KW = [b"", {1: -3, 4: b"k"}, b"\0" * 24]
BAD_INFOS = {
    "not-cbor": b"\xff",
    "untagged": cbor.dumps([b"", {}, None, [KW]]),
    "attached": cbor.dumps(cbor.CBORTag(96, [b"", {1: 1, 5: b"\0" * 12}, b"x", [KW]])),
    "no-recipients": _info(cbor.dumps({1: 1}), {5: b"\0" * 12}, []),
    "short-iv": _info(cbor.dumps({1: 1}), {5: b"\0" * 8}, [KW]),
    "ctr-protected": _info(cbor.dumps({1: -65534}), {5: b"\0" * 16}, [KW]),
    "alg-twice": _info(cbor.dumps({1: 1}), {1: 1, 5: b"\0" * 12}, [KW]),
    "bad-recipient": _info(cbor.dumps({1: 1}), {5: b"\0" * 12}, [[b"", {}]]),
    "kw-protected": _info(
        cbor.dumps({1: 1}), {5: b"\0" * 12}, [[cbor.dumps({1: -3}), {}, b"\0" * 24]]
    ),
    "ecdh-no-ephemeral": _info(
        cbor.dumps({1: 1}), {5: b"\0" * 12}, [[cbor.dumps({1: -29}), {}, b"\0" * 24]]
    ),
}


@pytest.mark.parametrize("name", BAD_INFOS)
def test_malformed_info_refused(name: str) -> None:
    """A malformed SUIT_Encryption_Info is a SuitDecodeError."""
    with pytest.raises(SuitDecodeError):
        SuitEncryptionInfo.decode(BAD_INFOS[name])


@pytest.mark.parametrize("alg", [2, -65532, 99])
def test_unknown_content_alg_unsupported(alg: int) -> None:
    """An algorithm teep does not implement is unsupported (alg reason)."""
    with pytest.raises(SuitUnsupportedError) as info:
        SuitEncryptionInfo.decode(_info(cbor.dumps({1: alg}), {5: b"\0" * 12}, [KW]))
    assert info.value.reason is SuitReportReason.alg_unsupported


def _fetch_personalization(uri: str) -> list[bytes]:
    if uri.endswith(".suit"):
        return [hexfile("teep-suit_uri")]
    return [b"Hello, Secure World!"]


def test_teep_personalization_installs() -> None:
    """The TEEP personalization example decrypts config.json with the
    device's ECDH key and validates its plaintext digest."""
    store = MemoryComponentStore()
    proc = SuitProcessor(
        store, [example_key()], _fetch_personalization, decryption_keys=[device_kek()]
    )
    result = proc.install(hexfile("teep-suit_personalization"))
    config = (b"TEEP-Device", b"SecureFS", b"config.json")
    assert store.read(config) == CONFIG
    assert decode_report(result.report).succeeded


def test_personalization_without_key_changes_nothing() -> None:
    """Without a fitting key the write aborts; nothing is stored and the
    report names the write in the install section."""
    store = MemoryComponentStore()
    proc = SuitProcessor(store, [example_key()], _fetch_personalization)
    with pytest.raises(SuitDecryptionError) as info:
        proc.install(hexfile("teep-suit_personalization"))
    assert info.value.report is not None
    report = decode_report(info.value.report)
    assert report.result is not None
    assert report.result.reason == SuitReportReason.operation_failed
    assert report.result.record.manifest_section == SuitManifestKey.install
    assert store.manifests() == []


def test_fwenc_dependency_example() -> None:
    """In the firmware-encryption dependency example, the dependent's content
    and encryption-info reach the dependency's write (shared by component id)."""
    store = MemoryComponentStore()
    proc = SuitProcessor(
        store, [example_key(), dependent_key()], decryption_keys=[device_kek()]
    )
    proc.install(hexfile("fwenc-suit-manifest-es-ecdh-dependency"))
    assert store.read((b"decrypted-firmware",)) == PLAINTEXT


def test_fwenc_content_example() -> None:
    """The ES-DH write example installs the decrypted payload."""
    store = MemoryComponentStore()
    proc = SuitProcessor(
        store,
        [example_key()],
        decryption_keys=[device_kek()],
        default_manifest_component_id=(b"fw",),
    )
    proc.install(hexfile("fwenc-suit-manifest-es-ecdh-content"))
    assert store.read((b"decrypted-firmware",)) == PLAINTEXT


@pytest.mark.parametrize("alg", [COSEAlgorithm.A128GCM, COSEAlgorithm.A128CTR])
def test_builder_encrypts_for_device(alg: COSEAlgorithm) -> None:
    """A built envelope with an encrypted payload installs the plaintext on a
    device holding the key, and fails on another."""
    signer, device = PrivateKey.generate(), PrivateKey.generate()
    envelope = build_envelope(
        manifest_component_id=(b"m",),
        component_id=(b"c",),
        payload=b"secret module",
        sequence_number=1,
        signer=signer,
        encrypt_for=[device.public],
        content_algorithm=alg,
    )
    store = MemoryComponentStore()
    SuitProcessor(store, [signer.public], decryption_keys=[device]).install(envelope)
    assert store.read((b"c",)) == b"secret module"
    other = SuitProcessor(
        MemoryComponentStore(), [signer.public], decryption_keys=[PrivateKey.generate()]
    )
    with pytest.raises(SuitError):
        other.install(envelope)
