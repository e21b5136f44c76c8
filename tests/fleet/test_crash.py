"""Crash safety: the TAM and devices killed with SIGKILL mid-session.

Sessions run between a ``teep tam serve`` process and device processes
while new component versions are published; at random points the device,
the TAM or both are killed.  Afterwards both stores must open and be whole,
and one clean session must bring every device to its policy.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import random
import signal
import sqlite3
import time
from multiprocessing.process import BaseProcess
from pathlib import Path

import pytest

from teep import cbor
from teep.device.broker import Broker
from teep.device.runtime import Device
from teep.keys import PublicKey
from teep.tam.service import image_digest

from .conftest import Fleet, Server

pytestmark = pytest.mark.e2e

SESSIONS = 20
DEVICES = 3
SEED = int(os.environ.get("TEEP_CRASH_SEED", "20261204"))


def _session(folder: Path, url: str) -> None:
    device = Device.open(folder)
    asyncio.run(Broker(device.agent).policy_check(url))


def device_run(folder: Path, url: str) -> BaseProcess:
    """A device process running one session with the TAM at ``url``.

    It is forked from the test, which has imported teep already: the same
    code as ``teep device run`` without a second of start-up per session.
    """
    process = multiprocessing.get_context("fork").Process(
        target=_session, args=(folder, url)
    )
    process.start()
    return process


def kill_after(process: BaseProcess | None, delay: float) -> None:
    """SIGKILL ``process`` after ``delay`` seconds unless it ended first."""
    if process is None:
        return
    process.join(delay)
    if process.is_alive():
        process.kill()
        process.join()


def assert_tam_store_whole(fleet: Fleet) -> None:
    """The SQLite file passes its checks and every device row is complete."""
    path = fleet.url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
    with fleet.store() as store:
        for record in store.list_devices():
            key = PublicKey.from_cose_key(cbor.loads(record.cose_key))
            assert key.thumbprint == record.kid
            store.device_manifests(record.kid)


def assert_device_store_whole(folder: Path) -> None:
    """Every manifest the device holds has all its components, as signed."""
    device = Device.open(folder)
    for manifest in device.tee.components.manifests():
        for component in manifest.components:
            image = device.tee.components.read(component)
            assert image is not None, f"{folder.name}: {component} missing"
            expected = image_digest(manifest.envelope, component)
            assert expected == hashlib.sha256(image).digest(), folder.name


def test_sigkill_tam_and_devices_mid_session(fleet: Fleet, tmp_path: Path) -> None:
    """After SIGKILLs at random points in many sessions, the TAM and device
    stores are whole and one clean session brings every device to policy."""
    rng = random.Random(SEED)
    folders = [tmp_path / f"device{i}" for i in range(DEVICES)]
    for folder in folders:
        fleet.device(folder)
    fleet.settings(connect_rate=0)
    server = Server(fleet.folder)
    newest = 1
    started = time.monotonic()
    try:
        for session in range(SESSIONS):
            if session % 4 == 3:
                newest += 1
                fleet.publish(newest)
            victim = rng.choice(["none", "device", "tam", "both"])
            delay = rng.uniform(0.2, 1.5)
            device = device_run(rng.choice(folders), server.url)
            if victim in ("tam", "both"):
                time.sleep(delay)
                server.stop(signal.SIGKILL)
            kill_after(device if victim in ("device", "both") else None, delay)
            kill_after(device, 30)
            if server.process.poll() is not None:
                server = Server(fleet.folder)
    finally:
        server.stop(signal.SIGKILL)
    assert time.monotonic() - started < 60

    assert_tam_store_whole(fleet)
    for folder in folders:
        assert_device_store_whole(folder)

    server = Server(fleet.folder)
    try:
        for folder in folders:
            device = Device.open(folder)
            asyncio.run(Broker(device.agent).policy_check(server.url))
            held = [m.sequence_number for m in device.tee.components.manifests()]
            assert held == [newest], f"{folder.name} holds {held}"
    finally:
        server.stop()
