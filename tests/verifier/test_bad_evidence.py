"""Bad Evidence reaching the TAM: refused, and recorded with a clear reason."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from exchange.conftest import World
from teep import cbor, cose
from teep.device.runtime import Device
from teep.keys import KeyKind, PrivateKey
from teep.protocol.tam import Appraised

VECTORS = Path(__file__).parent.parent / "vectors" / "attestation" / "eat-test-vectors"
CHALLENGE = bytes(range(1, 33))


def claims_of(device: Device, nonce: bytes = CHALLENGE) -> dict[int, Any]:
    """The claims map of the device's Evidence (the whole COSE_Key in cnf)."""
    token = cose.parse(device.evidence(nonce))
    value = cbor.loads(token.payload or b"", tags=frozenset())
    assert isinstance(value, dict)
    return value


def signed(claims: dict[Any, Any], key: PrivateKey) -> bytes:
    """Claims signed as Evidence with ``key``."""
    return cose.sign1(cbor.det_dumps(claims), key)


def appraise(world: World, payload: bytes) -> Appraised:
    """The TAM appraises ``payload`` as the device's Evidence for CHALLENGE."""
    agent_key = world.device.tee.agent_key.public
    return world.service.appraise(payload, None, CHALLENGE, agent_key)


def recorded(world: World) -> tuple[str, str]:
    """The newest appraisal recorded for any device: (status, reason)."""
    (latest, *_) = world.store.list_appraisals(None)
    return latest.status, latest.reason


def refused(world: World, payload: bytes, reason: str) -> None:
    """The payload is refused, and the record says ``reason``."""
    verdict = appraise(world, payload)
    assert not verdict.ok
    status, text = recorded(world)
    assert status in ("contraindicated", "none")
    assert reason in text, text


def test_wrong_nonce(world: World) -> None:
    """Evidence for another challenge: eat_nonce does not match."""
    evidence = world.device.evidence(bytes(32))
    refused(world, evidence, "eat_nonce does not match the challenge")


def test_expired(world: World) -> None:
    """Evidence past its exp."""
    claims = {**claims_of(world.device), 4: int(time.time()) - 3600}
    refused(world, signed(claims, world.device.tee.attestation_key), "expired")


def test_from_the_future(world: World) -> None:
    """Evidence issued an hour from now."""
    claims = {**claims_of(world.device), 6: int(time.time()) + 3600}
    refused(world, signed(claims, world.device.tee.attestation_key), "future")


def test_unknown_attestation_key(world: World) -> None:
    """Evidence signed by a key the operator never endorsed."""
    rogue = PrivateKey.generate(KeyKind.P256)
    refused(
        world, signed(claims_of(world.device), rogue), "no endorsed attestation key"
    )


def test_bad_signature(world: World) -> None:
    """Evidence whose signature was altered."""
    evidence = bytearray(world.device.evidence(CHALLENGE))
    evidence[-1] ^= 0x01
    refused(world, bytes(evidence), "signature")


def test_missing_claims(world: World) -> None:
    """Evidence without the TEEP profile's hwmodel and manifests."""
    claims = claims_of(world.device)
    del claims[259], claims[272]
    key = world.device.tee.attestation_key
    refused(world, signed(claims, key), "required claim(s) missing")


def test_bound_to_another_key(world: World) -> None:
    """Evidence whose cnf names another Agent key."""
    other = PrivateKey.generate(KeyKind.P256).public
    claims = {**claims_of(world.device), 8: {1: other.cose_key()}}
    key = world.device.tee.attestation_key
    refused(world, signed(claims, key), "cnf names key")


@pytest.mark.parametrize(
    "payload",
    [b"\xff\x00", b"", cbor.dumps([1, 2, 3]), cbor.dumps(cbor.CBORTag(18, 1))],
)
def test_malformed(world: World, payload: bytes) -> None:
    """Bytes that are no COSE_Sign1 at all."""
    refused(world, payload, "")
    assert recorded(world)[0] == "none"


@pytest.mark.parametrize("path", sorted(VECTORS.glob("*.cbor")), ids=lambda p: p.stem)
def test_invalid_eat_vector(world: World, path: Path) -> None:
    """Each invalid claim set of EAT-test-vectors, signed by an endorsed key."""
    evidence = cose.sign1(path.read_bytes(), world.device.tee.attestation_key)
    verdict = appraise(world, evidence)
    assert not verdict.ok
    assert recorded(world)[1]


def test_reused_challenge_is_dropped(world: World) -> None:
    """A QueryResponse replayed after its challenge was used is dropped."""
    tam = world.tam()
    request = tam.connect().reply
    assert request is not None
    reply = world.device.agent.process(request, "http://tam.test/tam").reply
    assert reply is not None
    assert not tam.process(reply).dropped
    again = tam.process(reply)
    assert again.dropped
    assert "challenge" in again.events[0].detail
