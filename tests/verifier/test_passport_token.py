"""Passport freshness (teep-protocol 18 P1): a token, no challenge."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.conftest import World
from teep import cbor, cose
from teep.attestation.ear import EAR_MEDIA_TYPE
from teep.errors import ConfigError
from teep.protocol.messages import QueryRequest
from teep.protocol.registry import FINAL, DataItem
from teep.protocol.signing import open_signed, peek
from teep.protocol.tam import TAM, AttestationModel, TAMConfig
from teep.verifier.tam_settings import TAMAttestationSettings

from .conftest import VERIFIER_KEY, Served
from .test_passport import held, passport, response_of, trust_verifier


def passport_tam(world: World) -> TAM:
    """The world's TAM, asking for the passport model."""
    config = TAMConfig(keys=world.tam_keys, attestation_model=AttestationModel.PASSPORT)
    world.tams[FINAL.name] = TAM(config, world.service)
    return world.tams[FINAL.name]


def request_of(world: World, data: bytes) -> QueryRequest:
    """Decode a QueryRequest the TAM signed."""
    keys = [k.public for k in world.tam_keys]
    message = open_signed(peek(data), keys, dialect=FINAL).message
    assert isinstance(message, QueryRequest)
    return message


def test_passport_query_carries_token(world: World, served: Served) -> None:
    """The QueryRequest asks for attestation with a token and no challenge;
    the EAR's eat_nonce is that token, and the device is served."""
    passport_tam(world)
    passport(world.device, served.url)
    trust_verifier(world, VERIFIER_KEY.public)
    steps = world.session()
    request = request_of(world, steps[0].tam)
    assert request.challenge is None and request.token is not None
    assert request.data_item_requested & DataItem.ATTESTATION
    response = response_of(world.device, steps[0].agent.reply or b"")
    assert response.token == request.token
    assert response.attestation_payload_format == EAR_MEDIA_TYPE
    ear = cose.parse(response.attestation_payload or b"")
    assert cbor.loads(ear.payload or b"")[10] == request.token
    assert held(world.device)


def test_passport_token_used_once(world: World, served: Served) -> None:
    """A replayed passport QueryResponse meets no outstanding token: dropped."""
    tam = passport_tam(world)
    passport(world.device, served.url)
    trust_verifier(world, VERIFIER_KEY.public)
    steps = world.session()
    assert tam.process(steps[0].agent.reply or b"").dropped


def test_model_setting(tmp_path: Path) -> None:
    """tam.json's attestation.model picks the model; an unknown one is refused."""
    chosen = TAMAttestationSettings.load(tmp_path, {"model": "passport"})
    assert chosen.model() is AttestationModel.PASSPORT
    default = TAMAttestationSettings.load(tmp_path, {})
    assert default.model() is AttestationModel.BACKGROUND_CHECK
    with pytest.raises(ConfigError):
        TAMAttestationSettings.load(tmp_path, {"model": "visa"}).model()
