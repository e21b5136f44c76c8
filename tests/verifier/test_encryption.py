"""Evidence encrypted to the TAM (teep-protocol 7.2), and the TAM's offer."""

from __future__ import annotations

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap

from exchange.conftest import NAME, World
from teep import components
from teep.attestation.encryption import (
    ENCRYPTION_KEY_OPTION,
    EncryptionError,
    KDFPurpose,
    decrypt,
    encrypt,
    encryption_offer,
    is_encrypted,
    offered_key,
)
from teep.keys import KeyKind, PrivateKey, PublicKey
from teep.protocol.messages import QueryResponse
from teep.protocol.registry import FINAL
from teep.protocol.signing import open_signed, peek
from teep.protocol.tam import TAM, TAMConfig

TAM_KEY = PrivateKey.generate(KeyKind.P256)
PLAINTEXT = b"an EAT, or a SUIT Report"


def by_hand(data: bytes, key: PrivateKey, other: bytes) -> bytes:
    """Open a COSE_Encrypt with ECDH-ES+A128KW and A128GCM, without cwt."""
    protected, _, ciphertext, [recipient] = cbor2.loads(data).value
    r_protected, r_unprotected, wrapped = recipient
    ephemeral = PublicKey.from_cose_key(r_unprotected[-1]).key
    assert isinstance(key.key, ec.EllipticCurvePrivateKey)
    assert isinstance(ephemeral, ec.EllipticCurvePublicKey)
    secret = key.key.exchange(ec.ECDH(), ephemeral)
    context = [-3, [None] * 3, [None] * 3, [128, r_protected, other]]
    kek = HKDF(hashes.SHA256(), 16, None, cbor2.dumps(context)).derive(secret)
    cek = aes_key_unwrap(kek, wrapped)
    aad = cbor2.dumps(["Encrypt", protected, b""])
    iv = cbor2.loads(data).value[1][5]
    return AESGCM(cek).decrypt(iv, ciphertext, aad)


def test_round_trip() -> None:
    """A payload encrypted to a key opens with it, for the same purpose."""
    sealed = encrypt(PLAINTEXT, TAM_KEY.public, KDFPurpose.EAT)
    assert is_encrypted(sealed)
    assert decrypt(sealed, TAM_KEY, KDFPurpose.EAT) == PLAINTEXT


@pytest.mark.parametrize("purpose", list(KDFPurpose))
def test_kdf_context_other_names_purpose(purpose: KDFPurpose) -> None:
    """An independent decryption with SuppPubInfo.other = the purpose opens it."""
    sealed = encrypt(PLAINTEXT, TAM_KEY.public, purpose)
    assert by_hand(sealed, TAM_KEY, purpose.value) == PLAINTEXT
    protected = cbor2.loads(sealed).value[0]
    assert cbor2.loads(protected) == {1: 1}  # A128GCM, protected


def test_other_purpose_does_not_open() -> None:
    """A key derived for SUIT Reports cannot open an EAT."""
    sealed = encrypt(PLAINTEXT, TAM_KEY.public, KDFPurpose.EAT)
    with pytest.raises(EncryptionError):
        decrypt(sealed, TAM_KEY, KDFPurpose.SUIT_REPORT)


def test_other_key_does_not_open() -> None:
    """Only the recipient's key opens it."""
    sealed = encrypt(PLAINTEXT, TAM_KEY.public, KDFPurpose.EAT)
    with pytest.raises(EncryptionError):
        decrypt(sealed, PrivateKey.generate(KeyKind.P256), KDFPurpose.EAT)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        cbor2.dumps(cbor2.CBORTag(96, [b"", {}, None, []])),
        cbor2.dumps(cbor2.CBORTag(96, [b"", {}, b"x", [[b"", {}, b""]]])),
        cbor2.dumps(cbor2.CBORTag(16, [b"", {}, b"x"])),
    ],
)
def test_malformed_refused(data: bytes) -> None:
    """Anything but one ECDH-ES recipient with an attached ciphertext is refused."""
    with pytest.raises(EncryptionError):
        decrypt(data, TAM_KEY, KDFPurpose.EAT)


def test_ed25519_key_refused() -> None:
    """The ESP256 profile needs a P-256 key-agreement key."""
    ed = PrivateKey.generate(KeyKind.ED25519).public
    with pytest.raises(EncryptionError):
        encrypt(PLAINTEXT, ed, KDFPurpose.EAT)
    with pytest.raises(EncryptionError):
        encryption_offer(ed)


def test_offer_round_trip() -> None:
    """The QueryRequest option carries the key; junk in it is ignored."""
    assert offered_key(encryption_offer(TAM_KEY.public)).kid == TAM_KEY.kid  # type: ignore[union-attr]
    assert offered_key({}) is None
    assert offered_key({ENCRYPTION_KEY_OPTION: {1: 2}}) is None
    assert offered_key({ENCRYPTION_KEY_OPTION: b"x"}) is None


def offering_tam(world: World) -> TAM:
    """The world's TAM, offering its key and able to decrypt."""
    world.service.decryption_key = TAM_KEY
    config = TAMConfig(
        keys=world.tam_keys, query_extensions=encryption_offer(TAM_KEY.public)
    )
    world.tams[FINAL.name] = TAM(config, world.service)
    return world.tams[FINAL.name]


def test_encrypted_evidence_exchange(world: World) -> None:
    """The TAM offers a key; the Agent encrypts its Evidence; the TAM serves it."""
    offering_tam(world)
    steps = world.session()
    key = world.device.tee.agent_key.public
    response = open_signed(peek(steps[0].agent.reply or b""), [key], dialect=FINAL)
    assert isinstance(response.message, QueryResponse)
    payload = response.message.attestation_payload or b""
    assert is_encrypted(payload)
    held = world.device.tee.components.manifest(components.manifest_id(NAME))
    assert held is not None


def test_encrypted_evidence_without_key_refused(world: World) -> None:
    """A TAM that cannot open the payload drops the message, and its
    appraisal (when asked) says why."""
    offering_tam(world)
    world.service.decryption_key = None
    steps = world.session()
    assert steps[0].after is not None and steps[0].after.dropped
    agent_key = world.device.tee.agent_key.public
    sealed = encrypt(world.device.evidence(bytes(32)), TAM_KEY.public, KDFPurpose.EAT)
    verdict = world.service.appraise(sealed, None, bytes(32), agent_key)
    assert not verdict.ok
    (record, *_) = world.store.list_appraisals(None)
    assert "no key to open it" in record.reason
