"""One-time values: single use, expiry, and atomic consumption across processes."""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import threading
from collections import Counter

import pytest
from sqlalchemy import create_engine, select

from teep.tam.models import Nonce
from teep.tam.store import AlreadyExistsError, TAMStore, normalise_url

TOKEN = b"\x42" * 16
KID = b"\x09" * 32


def test_consume_once(store: TAMStore) -> None:
    """A value is returned with its data once, then never again."""
    store.issue_nonce(
        TOKEN, kind="token", now=100.0, ttl=60.0, device_kid=KID, data=b"s"
    )
    record = store.consume_nonce(TOKEN, kind="token", now=101.0)
    assert record is not None
    assert (record.kind, record.device_kid, record.data) == ("token", KID, b"s")
    assert (record.issued_at, record.expires_at) == (100.0, 160.0)
    assert store.consume_nonce(TOKEN, kind="token", now=102.0) is None


def test_unknown_wrong_kind_and_expired(store: TAMStore) -> None:
    """Unknown, wrong-kind and expired values are refused without using them up."""
    assert store.consume_nonce(TOKEN, kind="token", now=0.0) is None
    store.issue_nonce(TOKEN, kind="challenge", now=0.0, ttl=10.0)
    assert store.consume_nonce(TOKEN, kind="token", now=1.0) is None
    assert store.consume_nonce(TOKEN, kind="challenge", now=10.0) is None
    assert store.consume_nonce(TOKEN, kind="challenge", now=9.5) is not None


def test_only_a_hash_is_stored(store: TAMStore, db_url: str) -> None:
    """The raw value never reaches the database."""
    store.issue_nonce(TOKEN, kind="token", now=0.0, ttl=10.0)
    engine = create_engine(normalise_url(db_url))
    with engine.connect() as connection:
        stored = connection.execute(select(Nonce.hash, Nonce.data)).all()
    engine.dispose()
    assert stored == [(hashlib.sha256(TOKEN).digest(), b"")]


def test_reissue_rules(store: TAMStore) -> None:
    """An outstanding value cannot be issued again; a used or expired one can."""
    store.issue_nonce(TOKEN, kind="token", now=0.0, ttl=10.0)
    with pytest.raises(AlreadyExistsError):
        store.issue_nonce(TOKEN, kind="token", now=1.0, ttl=10.0)
    assert store.consume_nonce(TOKEN, kind="token", now=2.0) is not None
    store.issue_nonce(TOKEN, kind="token", now=3.0, ttl=10.0)
    store.issue_nonce(TOKEN, kind="token", now=20.0, ttl=10.0)
    assert store.consume_nonce(TOKEN, kind="token", now=21.0) is not None


def test_purge_and_count(store: TAMStore) -> None:
    """Counting sees only live values per device; purge removes expired ones."""
    store.issue_nonce(b"a" * 16, kind="token", now=0.0, ttl=10.0, device_kid=KID)
    store.issue_nonce(b"b" * 16, kind="token", now=0.0, ttl=100.0, device_kid=KID)
    store.issue_nonce(b"c" * 16, kind="challenge", now=0.0, ttl=100.0)
    store.issue_nonce(b"d" * 16, kind="token", now=0.0, ttl=100.0, device_kid=KID)
    store.consume_nonce(b"d" * 16, kind="token", now=1.0)
    assert store.count_outstanding_nonces(KID, now=5.0) == 2
    assert store.count_outstanding_nonces(KID, now=50.0) == 1
    assert store.count_outstanding_nonces(None, now=50.0) == 1
    assert store.count_outstanding_nonces(b"other", now=5.0) == 0
    assert store.purge_nonces(now=50.0) == 1
    assert store.purge_nonces(now=50.0) == 0
    assert store.purge_nonces(now=1000.0) == 3


VALUES = [i.to_bytes(2, "big") * 8 for i in range(120)]
THREADS = 4


def _race(
    url: str, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    """Run THREADS threads that each try to consume every value."""
    store = TAMStore.open(url, migrate=False)
    won: list[bytes] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        order = VALUES[:]
        random.Random(seed).shuffle(order)
        for value in order:
            if store.consume_nonce(value, kind="token", now=1.0) is not None:
                with lock:
                    won.append(value)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    start.wait(30)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    out.put(won)


def test_concurrent_consumption_is_exactly_once(store: TAMStore, db_url: str) -> None:
    """Two processes of four threads racing for each value: each is won once."""
    for value in VALUES:
        store.issue_nonce(value, kind="token", now=0.0, ttl=60.0)
    context = multiprocessing.get_context("fork")
    start = context.Event()
    out = context.Queue()
    procs = [context.Process(target=_race, args=(db_url, start, out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    start.set()
    results = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(10)
        assert proc.exitcode == 0
    wins = Counter(value for won in results for value in won)
    assert sorted(wins) == sorted(VALUES)
    assert set(wins.values()) == {1}
    assert store.count_outstanding_nonces(None, now=1.0) == 0
