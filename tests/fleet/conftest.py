"""Fixtures for a TAM under load and attack: TAM folders, devices, servers.

A fleet test starts ``teep tam serve`` as a child process, on SQLite or (with
``TEEP_TEST_POSTGRES_URL`` set) on a PostgreSQL schema of its own, dropped
afterwards.  The TAM is provisioned through its store, as the CLI would.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support import ServedTAM, postgres_schema
from teep import cbor, components
from teep.device.components import demo_component_wasm
from teep.device.runtime import Device
from teep.keys import KeyKind, PrivateKey
from teep.suit.builder import build_envelope
from teep.tam.catalogue import add_component
from teep.tam.home import SETTINGS, TAMHome
from teep.tam.store import TAMStore

POSTGRES_ENV = "TEEP_TEST_POSTGRES_URL"
TEEP = "application/teep+cbor"
NAME = "hello"
HWMODEL = b"teep-sim"
OEMID = b"\x00\x00\x00"


def postgres_base() -> str:
    """The PostgreSQL URL to test against, or skip."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"set {POSTGRES_ENV} to run the fleet tests on PostgreSQL")
    return base


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose search path is a fresh PostgreSQL schema (dropped after)."""
    yield from postgres_schema(postgres_base(), "teep_fleet")


def module(sequence: int) -> bytes:
    """The demo component with its version in a custom section."""
    name = b"teep-version"
    body = bytes([len(name)]) + name + str(sequence).encode()
    return demo_component_wasm() + bytes([0, len(body)]) + body


def envelope(signer: PrivateKey, sequence: int = 1, name: str = NAME) -> bytes:
    """A signed SUIT envelope installing the demo component as ``name``."""
    return build_envelope(
        manifest_component_id=components.manifest_id(name),
        component_id=components.component_id(name),
        payload=module(sequence),
        sequence_number=sequence,
        signer=signer,
    )


@dataclass
class Fleet:
    """A provisioned TAM folder and a component signer."""

    home: TAMHome
    signer: PrivateKey
    url: str

    @property
    def folder(self) -> Path:
        """The TAM's folder."""
        return self.home.path

    def store(self) -> TAMStore:
        """A new store on the TAM's database (close it)."""
        return TAMStore.open(self.url, migrate=False)

    def settings(self, **values: Any) -> None:
        """Change tam.json, as an operator would."""
        path = self.folder / SETTINGS
        data = json.loads(path.read_text())
        data.update(values)
        path.write_text(json.dumps(data))

    def device(self, folder: Path) -> Device:
        """A device that trusts this TAM and signer, endorsed by the TAM."""
        device = Device.init(folder)
        for key in self.home.keys():
            device.tee.add_tam_key(key.public)
        device.tee.add_signer_key(self.signer.public)
        public = device.tee.attestation_key.public
        with self.store() as store:
            store.add_attestation_key(
                cose_key=cbor.det_dumps(public.cose_key()),
                kid=public.thumbprint,
                hwmodel=HWMODEL,
                oemid=OEMID,
                label=f"TEE {folder.name}",
                now=time.time(),
            )
        return device

    def publish(self, sequence: int = 1, name: str = NAME) -> bytes:
        """Catalogue a version of a component; the envelope."""
        env = envelope(self.signer, sequence, name)
        with self.store() as store:
            add_component(store, name, env, now=time.time())
        return env


def make_fleet(tmp: Path, url: str = "") -> Fleet:
    """A TAM folder with the demo component required on every device."""
    home = TAMHome.init(tmp / "tam", database=url)
    signer = PrivateKey.generate(KeyKind.P256)
    fleet = Fleet(home, signer, home.database_url)
    with fleet.store() as store:
        store.add_signer_key(
            cose_key=cbor.det_dumps(signer.public.cose_key()),
            kid=signer.public.thumbprint,
            label="signer",
            now=time.time(),
        )
    fleet.publish(1)
    with fleet.store() as store:
        store.add_policy(NAME)
    return fleet


class Server(ServedTAM):
    """A ``teep tam serve`` child process on a free port."""

    def __init__(self, folder: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
        super().__init__(folder, *args, env=env)


def post(
    url: str, body: bytes = b"", headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One POST; status, headers (lower-case names) and body."""
    request = urllib.request.Request(url, data=body, method="POST")
    merged = {"Accept": TEEP, **({"Content-Type": TEEP} if body else {})}
    for name, value in {**merged, **(headers or {})}.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            found = {k.lower(): v for k, v in resp.headers.items()}
            return resp.status, found, resp.read()
    except urllib.error.HTTPError as exc:
        found = {k.lower(): v for k, v in exc.headers.items()}
        return exc.code, found, exc.read()


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    """A TAM on SQLite with ``hello`` required everywhere."""
    return make_fleet(tmp_path)


@pytest.fixture
def pg_fleet(tmp_path: Path, postgres_url: str) -> Fleet:
    """A TAM on its own PostgreSQL schema with ``hello`` required everywhere."""
    return make_fleet(tmp_path, postgres_url)
