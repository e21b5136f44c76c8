"""SUIT Reports encrypted to the TAM (teep-protocol 7.2), as Evidence is."""

from __future__ import annotations

from dataclasses import replace

from exchange.conftest import World
from teep import cbor
from teep.attestation.encryption import (
    KDFPurpose,
    decrypt,
    encryption_offer,
    is_encrypted,
)
from teep.keys import KeyKind, PrivateKey
from teep.protocol.messages import Success
from teep.protocol.registry import FINAL
from teep.protocol.signing import open_signed, peek, sign_message
from teep.protocol.tam import TAM, TAMConfig
from teep.suit.report import decode_report

TAM_KEY = PrivateKey.generate(KeyKind.P256)
URI = "http://tam.test/tam"


def offering_tam(world: World) -> TAM:
    """The world's TAM, offering its key-agreement key and able to decrypt."""
    world.service.decryption_key = TAM_KEY
    config = TAMConfig(
        keys=world.tam_keys, query_extensions=encryption_offer(TAM_KEY.public)
    )
    world.tams[FINAL.name] = TAM(config, world.service)
    return world.tams[FINAL.name]


def success_of(world: World, data: bytes) -> Success:
    """Decode a Success the world's device signed."""
    key = world.device.tee.agent_key.public
    message = open_signed(peek(data), [key], dialect=FINAL).message
    assert isinstance(message, Success)
    return message


def events(world: World, kind: str) -> list[str]:
    """Messages of the device's events of one kind."""
    kid = world.device.tee.agent_key.kid
    return [e.message for e in world.store.list_events(kid) if e.kind == kind]


def test_reports_encrypted_on_the_wire(world: World) -> None:
    """With the TAM's offer, every SUIT Report in the Success is a
    COSE_Encrypt under the "SUIT Report Encryption" context."""
    offering_tam(world)
    steps = world.session()
    success = success_of(world, steps[1].agent.reply or b"")
    assert success.suit_reports
    for sealed in success.suit_reports:
        assert is_encrypted(sealed)
        plain = decrypt(sealed, TAM_KEY, KDFPurpose.SUIT_REPORT)
        assert decode_report(plain).nonce == success.token


def test_tam_stores_reports_decrypted(world: World) -> None:
    """The TAM keeps the plaintext report and records that it came encrypted."""
    offering_tam(world)
    world.session()
    kid = world.device.tee.agent_key.kid
    (stored,) = world.store.list_suit_reports(kid)
    assert not is_encrypted(stored.report)
    assert decode_report(stored.report).nonce is not None
    assert events(world, "suit-report-encrypted") == ["1 SUIT Report(s) opened"]


def test_no_offer_plain_reports(world: World) -> None:
    """Without an offer in the last QueryRequest, reports go in the clear."""
    offering_tam(world)
    world.tams.clear()  # the next session's TAM offers nothing
    world.session()
    kid = world.device.tee.agent_key.kid
    (stored,) = world.store.list_suit_reports(kid)
    assert decode_report(stored.report).nonce is not None
    assert events(world, "suit-report-encrypted") == []


def test_tampered_ciphertext_refused_and_recorded(world: World) -> None:
    """A report whose ciphertext was changed is refused and recorded; the
    token stays unused, so the genuine Success is still accepted."""
    tam = offering_tam(world)
    query = tam.connect().reply or b""
    response = world.device.agent.process(query, URI).reply or b""
    update = tam.process(response).reply or b""
    genuine = world.device.agent.process(update, URI).reply or b""
    success = success_of(world, genuine)
    sealed = cbor.loads((success.suit_reports or (b"",))[0])
    sealed.value[2] = bytes([sealed.value[2][0] ^ 1]) + sealed.value[2][1:]
    forged = replace(success, suit_reports=(cbor.dumps(sealed),))
    key = world.device.tee.agent_key
    result = tam.process(sign_message(forged, [key], dialect=FINAL))
    assert result.dropped
    assert events(world, "suit-report-refused")
    assert world.store.list_suit_reports(key.kid) == []
    assert not tam.process(genuine).dropped
    assert len(world.store.list_suit_reports(key.kid)) == 1


def test_no_key_refuses_encrypted_report(world: World) -> None:
    """A TAM that lost its key-agreement key cannot take encrypted reports."""
    tam = offering_tam(world)
    query = tam.connect().reply or b""
    response = world.device.agent.process(query, URI).reply or b""
    update = tam.process(response).reply or b""
    world.service.decryption_key = None
    reply = world.device.agent.process(update, URI).reply or b""
    assert tam.process(reply).dropped
    (reason,) = events(world, "suit-report-refused")
    assert "no key to open it" in reason
