"""Several ``teep tam serve`` workers sharing one socket and one database."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .conftest import Fleet, Server, post

pytestmark = pytest.mark.e2e

REPLAYS = 24


def race(url: str, body: bytes, copies: int = REPLAYS) -> list[tuple[int, bytes]]:
    """POST the same body ``copies`` times at once; statuses and bodies."""
    barrier = threading.Barrier(copies)

    def one(_: int) -> tuple[int, bytes]:
        barrier.wait()
        status, _, data = post(url, body)
        return status, data

    with ThreadPoolExecutor(copies) as pool:
        return list(pool.map(one, range(copies)))


def children(pid: int) -> set[int]:
    """The ids of a process's children (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(child) for child in text)
    return found


def wait_children(pid: int, count: int, other_than: set[int] = frozenset()) -> set[int]:
    """Wait until a process has ``count`` children, none in ``other_than``."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = children(pid)
        if len(found) == count and not found & other_than:
            return found
        time.sleep(0.05)
    raise AssertionError(f"process {pid} has children {children(pid)}")


def test_replays_across_workers_win_once(pg_fleet: Fleet, tmp_path: Path) -> None:
    """Concurrent copies of one QueryResponse, then of one Success, sent to two
    workers on PostgreSQL: the challenge and the token are each used once."""
    device = pg_fleet.device(tmp_path / "device")
    server = Server(pg_fleet.folder, "--workers", "2")
    try:
        _, _, request = post(server.url)
        response = device.agent.process(request, server.url).reply
        assert response is not None

        # teep-protocol 5.1: the challenge is answered once, whoever races.
        answers = race(server.url, response)
        assert sorted(s for s, _ in answers) == [200] + [400] * (REPLAYS - 1)
        update = next(body for status, body in answers if status == 200)

        success = device.agent.process(update, server.url).reply
        assert success is not None
        answers = race(server.url, success)
        assert sorted(s for s, _ in answers) == [204] + [400] * (REPLAYS - 1)
    finally:
        server.stop()
    with pg_fleet.store() as store:
        kinds = [e.kind for e in store.list_events(device.tee.agent_key.kid)]
    assert kinds.count("update-applied") == 1


def test_dead_worker_is_replaced(fleet: Fleet) -> None:
    """A worker killed with SIGKILL is replaced; SIGTERM stops them all."""
    server = Server(fleet.folder, "--workers", "2")
    try:
        workers = wait_children(server.process.pid, 2)
        os.kill(min(workers), signal.SIGKILL)
        now = wait_children(server.process.pid, 2, {min(workers)})
        assert post(server.url)[0] == 200
    finally:
        server.stop(signal.SIGTERM)
    assert server.process.returncode == 0
    for pid in now:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)


def test_workers_leave_with_their_supervisor(fleet: Fleet) -> None:
    """Workers exit by themselves when their supervisor is killed."""
    server = Server(fleet.folder, "--workers", "2")
    workers = wait_children(server.process.pid, 2)
    server.stop(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and not _zombie(pid)


def test_serve_applies_limits_from_tam_json(fleet: Fleet) -> None:
    """Limits set in tam.json bind ``teep tam serve``: past the burst, 429."""
    fleet.settings(connect_rate=0.01, connect_burst=2)
    server = Server(fleet.folder)
    try:
        statuses = [post(server.url)[0] for _ in range(3)]
    finally:
        server.stop()
    assert statuses == [200, 200, 429]
