"""A Verifier service on loopback, beside the in-memory TAM and device."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from exchange.conftest import HWMODEL, OEMID, World, world  # noqa: F401
from teep.attestation.verifier import Endorsement, ReferenceValues, Verifier
from teep.device.runtime import Device
from teep.keys import KeyKind, PrivateKey
from teep.verifier.http import make_app
from teep.verifier.service import VerifierService

VERIFIER_KEY = PrivateKey.generate(KeyKind.P256)


def endorsement(device: Device) -> Endorsement:
    """The Verifier's endorsement of a device's attestation key."""
    key = device.tee.attestation_key.public
    return Endorsement(key, OEMID, HWMODEL, name=device.folder.name)


@dataclass
class Served:
    """A Verifier service running on loopback."""

    url: str
    service: VerifierService


class _Loopback:
    """An aiohttp application served from a thread with its own loop."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        self.port = 0
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> str:
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.thread.start()
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        future = asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop)
        future.result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def served(world: World) -> Iterator[Served]:  # noqa: F811
    """``teep verifier serve``'s application, endorsing the world's device."""
    verifier = Verifier([endorsement(world.device)], [ReferenceValues()])
    service = VerifierService(verifier, VERIFIER_KEY)
    loop = _Loopback(make_app(service))
    url = loop.start()
    try:
        yield Served(url, service)
    finally:
        loop.stop()
