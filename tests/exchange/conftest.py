"""An in-memory TAM and device: the TAM's store on a SQLite file, no HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from teep import cbor, components
from teep.device.components import demo_component_wasm
from teep.device.runtime import Device
from teep.keys import KeyKind, PrivateKey, PublicKey
from teep.protocol.agent import AgentResult
from teep.protocol.registry import FINAL, Dialect
from teep.protocol.tam import TAM, TAMConfig, TAMResult
from teep.suit.builder import build_envelope
from teep.tam.catalogue import add_component
from teep.tam.service import TAMService
from teep.tam.store import TAMStore

URI = "http://tam.test/tam"
NAME = "hello"
HWMODEL = b"teep-sim"
OEMID = b"\x00\x00\x00"


def module(sequence: int) -> bytes:
    """The demo component, its image made distinct per version.

    A WebAssembly custom section (id 0) carries the version, so the image
    digest changes while the code stays the same.
    """
    name = b"teep-version"
    body = bytes([len(name)]) + name + str(sequence).encode()
    return demo_component_wasm() + bytes([0, len(body)]) + body


def envelope(name: str, signer: PrivateKey, sequence: int = 1) -> bytes:
    """A signed SUIT envelope installing the demo component as ``name``."""
    return build_envelope(
        manifest_component_id=components.manifest_id(name),
        component_id=components.component_id(name),
        payload=module(sequence),
        sequence_number=sequence,
        signer=signer,
    )


@dataclass
class Step:
    """One round trip: what the TAM sent and what the Agent answered."""

    tam: bytes
    agent: AgentResult
    after: TAMResult | None = None


@dataclass
class World:
    """A TAM (engine, service, store) and one enrolled device."""

    tmp: Path
    store: TAMStore
    service: TAMService
    tam_keys: tuple[PrivateKey, ...]
    signer: PrivateKey
    device: Device
    tams: dict[str, TAM] = field(default_factory=dict)

    def tam(self, dialect: Dialect = FINAL) -> TAM:
        """The TAM engine speaking ``dialect`` over the shared store."""
        if dialect.name not in self.tams:
            config = TAMConfig(keys=self.tam_keys, dialect=dialect)
            self.tams[dialect.name] = TAM(config, self.service)
        return self.tams[dialect.name]

    def session(
        self, device: Device | None = None, dialect: Dialect = FINAL, uri: str = URI
    ) -> list[Step]:
        """Run one whole session; every round trip, in order."""
        device = device or self.device
        tam = self.tam(dialect)
        steps: list[Step] = []
        reply = tam.connect().reply
        while reply and len(steps) < 8:
            step = Step(reply, device.agent.process(reply, uri))
            steps.append(step)
            if step.agent.reply is None:
                break
            step.after = tam.process(step.agent.reply)
            reply = step.after.reply
        return steps

    def catalogue(self, name: str = NAME, sequence: int = 1) -> bytes:
        """Add a version of a component to the TAM's catalogue."""
        env = envelope(name, self.signer, sequence)
        add_component(self.store, name, env, now=time.time())
        return env

    def new_device(self, name: str, **kwargs: object) -> Device:
        """A device that trusts this TAM and signer (not endorsed by the TAM)."""
        device = Device.init(self.tmp / name, **kwargs)  # type: ignore[arg-type]
        for key in self.tam_keys:
            device.tee.add_tam_key(key.public)
        device.tee.add_signer_key(self.signer.public)
        return device

    def endorse(self, device: Device) -> None:
        """The operator endorses the device's attestation key."""
        public = device.tee.attestation_key.public
        self.store.add_attestation_key(
            cose_key=cbor.det_dumps(public.cose_key()),
            kid=public.thumbprint,
            hwmodel=HWMODEL,
            oemid=OEMID,
            label=f"test TEE {device.folder.name}",
            now=time.time(),
        )


def trust_signer(store: TAMStore, key: PublicKey, label: str) -> None:
    """Register a Trusted Component signer with the TAM."""
    store.add_signer_key(
        cose_key=cbor.det_dumps(key.cose_key()),
        kid=key.thumbprint,
        label=label,
        now=time.time(),
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A TAM with ``hello`` catalogued and required everywhere, one device."""
    store = TAMStore.open(f"sqlite:///{tmp_path / 'tam.db'}")
    try:
        tam_keys = (
            PrivateKey.generate(KeyKind.P256),
            PrivateKey.generate(KeyKind.ED25519),
        )
        signer = PrivateKey.generate(KeyKind.P256)
        trust_signer(store, signer.public, "test signer")
        w = World(tmp_path, store, TAMService(store), tam_keys, signer, None)  # type: ignore[arg-type]
        w.device = w.new_device("device")
        w.endorse(w.device)
        w.catalogue()
        store.add_policy(NAME, selector="*")
        yield w
    finally:
        store.close()
