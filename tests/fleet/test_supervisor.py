"""``run_workers``: how the supervisor replaces workers that die."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from teep.tam.http import WorkersFailing, run_workers


@pytest.fixture
def terminate_after() -> Iterator[None]:
    """SIGTERM this process 1.5 s from now (what an operator's ^C does)."""
    previous = signal.signal(
        signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGTERM)
    )
    signal.setitimer(signal.ITIMER_REAL, 1.5)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_workers_dying_at_once_make_it_give_up() -> None:
    """Workers that cannot stay up: past the limit within the window the
    supervisor stops and says so in a TeepError (one line on the console)."""
    started = time.monotonic()
    with pytest.raises(WorkersFailing, match="4 TAM workers exited within 60 s"):
        run_workers(2, lambda: os._exit(3), restart_limit=3, grace=1.0)
    assert time.monotonic() - started < 10


def test_a_worker_lost_now_and_then_is_always_replaced(
    tmp_path: Path, terminate_after: None
) -> None:
    """Deaths spread out wider than the window never add up: more workers
    die over the run than the limit allows at once, and every one is
    replaced until the supervisor is told to stop."""
    starts = tmp_path / "starts"

    def short_lived() -> None:
        with starts.open("a") as log:
            log.write(f"{os.getpid()}\n")
        time.sleep(0.25)
        os._exit(3)

    run_workers(1, short_lived, restart_limit=1, restart_window=0.1, grace=1.0)
    assert len(starts.read_text().split()) >= 4
