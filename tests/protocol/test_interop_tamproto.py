"""Pre-RFC interop with tamproto: its captured messages decode and verify, and
a teep Agent with the pre-RFC profile enabled answers its QueryRequest with a
QueryResponse that the pre-RFC CDDL accepts."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cddl_verifier import Validator
from cryptography.hazmat.primitives.asymmetric import ec

from teep import cbor, components, cose
from teep.attestation.evidence import peek_evidence
from teep.device.components import demo_component_wasm
from teep.device.runtime import Device
from teep.keys import COSEAlgorithm, KeyKind, PrivateKey, PublicKey
from teep.protocol import codec
from teep.protocol.messages import QueryRequest, QueryResponse, Update
from teep.protocol.registry import FINAL, PRE_RFC, DataItem
from teep.protocol.signing import open_signed, peek
from teep.suit.builder import build_envelope

from . import vectors

HERE = Path(__file__).resolve().parent.parent / "vectors" / "teep" / "interop-tamproto"
TAM_URI = "http://tamproto.test/api/tam_cose"


def read(name: str) -> bytes:
    return (HERE / name).read_bytes()


def tamproto_key() -> PublicKey:
    """The public half of tamproto's TAM key (a JWK)."""
    jwk = json.loads(read("tam_teep_ecP256.jwk"))

    def number(field: str) -> int:
        raw = base64.urlsafe_b64decode(jwk[field] + "=" * (-len(jwk[field]) % 4))
        return int.from_bytes(raw, "big")

    numbers = ec.EllipticCurvePublicNumbers(number("x"), number("y"), ec.SECP256R1())
    return PublicKey.from_crypto(numbers.public_key())


@pytest.fixture
def device(tmp_path: Path) -> Device:
    """A teep device trusting tamproto, with the pre-RFC profile on for it."""
    dev = Device.init(tmp_path / "device")
    dev.tee.add_tam_key(tamproto_key())
    dev.tee.set_setting("pre_rfc_tams", [TAM_URI])
    return dev


def test_captured_query_request_verifies_and_decodes() -> None:
    """tamproto's signed QueryRequest verifies under its key and decodes in the
    pre-RFC numbering, its TAM Evidence and odd SUIT profile included."""
    peeked = peek(read("tamproto_query_request_sign1.cbor"))
    assert codec.classify(peeked.payload) is PRE_RFC
    opened = open_signed(peeked, [tamproto_key()], dialect=PRE_RFC)
    request = opened.message
    assert isinstance(request, QueryRequest)
    assert opened.alg == COSEAlgorithm.ES256
    assert request.supported_teep_cipher_suites == (((18, -7),),)
    assert request.supported_suit_cose_profiles == ((-7, 1),)
    assert request.challenge is not None and len(request.challenge) == 8
    assert request.attestation_payload is not None
    assert request.data_item_requested == DataItem(3)


def test_captured_unsigned_messages_decode() -> None:
    """The unsigned QueryRequest and Update decode in the pre-RFC numbering only."""
    request = codec.decode(read("tamproto_query_request_unsigned.cbor"), PRE_RFC)
    assert isinstance(request, QueryRequest)
    update = codec.decode(read("tamproto_update_unsigned.cbor"), PRE_RFC)
    assert isinstance(update, Update) and update.manifest_list
    assert update.token is not None


def test_agent_answers_tamproto(device: Device) -> None:
    """A pre-RFC-enabled teep Agent answers tamproto's QueryRequest with an
    ES256-signed pre-RFC QueryResponse whose Evidence carries the challenge."""
    data = read("tamproto_query_request_sign1.cbor")
    result = device.agent.process(data, TAM_URI)
    assert result.reply is not None
    peeked = peek(result.reply)
    assert peeked.cose.signatures[0].alg == COSEAlgorithm.ES256
    agent_key = device.tee.agent_key.public
    response = open_signed(peeked, [agent_key], dialect=PRE_RFC).message
    assert isinstance(response, QueryResponse)
    request = codec.decode(cose.parse(data).payload or b"", PRE_RFC)
    assert isinstance(request, QueryRequest)
    assert response.attestation_payload is not None
    assert peek_evidence(response.attestation_payload).nonce == request.challenge
    assert response.tc_list == ()


def holding_a_component(device: Device) -> Device:
    """Install the demo component, so that the tc-list is not empty."""
    signer = PrivateKey.generate(KeyKind.P256)
    device.tee.add_signer_key(signer.public)
    envelope = build_envelope(
        manifest_component_id=components.manifest_id("hello"),
        component_id=components.component_id("hello"),
        payload=demo_component_wasm(),
        sequence_number=1,
        signer=signer,
    )
    device.install(envelope, None)
    return device


def test_agent_answer_matches_pre_rfc_cddl(device: Device) -> None:
    """The QueryResponse teep sends tamproto (a device holding a component)
    validates against teep-pre-rfc.cddl, in the pre-RFC labels."""
    device = holding_a_component(device)
    reply = device.agent.process(read("tamproto_query_request_sign1.cbor"), TAM_URI)
    assert reply.reply is not None
    payload = cose.parse(reply.reply).payload or b""
    schema = Validator(vectors.cddl("teep-pre-rfc.cddl", "teep-validation-stubs.cddl"))
    result = schema.validate(payload, "query-response")
    assert result.valid, result.format()
    value = cbor.loads(payload)
    assert 7 in value[1] and 8 in value[1]  # pre-RFC attestation-payload, tc-list
    assert len(value[1][8]) == 1


def test_agent_refuses_tamproto_without_profile(tmp_path: Path) -> None:
    """Without the pre-RFC profile the Agent answers tamproto with Error 4 in
    tamproto's own numbering (type 6, versions [0])."""
    dev = Device.init(tmp_path / "plain")
    dev.tee.add_tam_key(tamproto_key())
    result = dev.agent.process(read("tamproto_query_request_sign1.cbor"), TAM_URI)
    assert result.reply is not None
    value = cbor.loads(cose.parse(result.reply).payload or b"")
    assert value[0] == 6 and value[2] == 4 and value[1][3] == [0]
    assert codec.classify(value) is PRE_RFC
    assert FINAL.type_of(value[0]) is None
