"""A unit groups the store calls one message makes into one transaction."""

from __future__ import annotations

import threading

import pytest

from teep.tam.store import AlreadyExistsError, TAMStore

KID_A = bytes(range(32))
KID_B = bytes(range(1, 33))


class Boom(Exception):
    pass


def test_calls_in_a_unit_land_together(store: TAMStore) -> None:
    with store.unit("test"):
        store.upsert_device(KID_A, cose_key=b"\xa0", now=1.0)
        store.record_event(KID_A, kind="seen", message="hello", now=1.0)
        store.issue_nonce(b"t" * 16, kind="token", now=1.0, ttl=10.0)
        # Later calls see what earlier ones wrote.
        assert store.get_device(KID_A) is not None
    assert store.get_device(KID_A) is not None
    assert [e.kind for e in store.list_events(KID_A)] == ["seen"]
    assert store.consume_nonce(b"t" * 16, kind="token", now=2.0) is not None


def test_a_unit_that_raises_changes_nothing(store: TAMStore) -> None:
    with pytest.raises(Boom), store.unit("test"):
        store.upsert_device(KID_A, cose_key=b"\xa0", now=1.0)
        store.issue_nonce(b"t" * 16, kind="token", now=1.0, ttl=10.0)
        raise Boom
    assert store.get_device(KID_A) is None
    assert store.consume_nonce(b"t" * 16, kind="token", now=2.0) is None


def test_a_refused_row_does_not_spoil_the_unit(store: TAMStore) -> None:
    store.upsert_device(KID_A, cose_key=b"\xa0", now=1.0)
    store.upsert_device(KID_B, cose_key=b"\xa0", now=1.0)
    store.set_device_label(KID_A, "one")
    with store.unit("test"):
        with pytest.raises(AlreadyExistsError):
            store.set_device_label(KID_B, "one")
        store.record_event(KID_B, kind="after", message="still here", now=2.0)
    assert [e.kind for e in store.list_events(KID_B)] == ["after"]
    device = store.get_device(KID_B)
    assert device is not None and device.label is None


def test_units_nest_and_are_per_thread(store: TAMStore) -> None:
    seen: list[object] = []

    def other_thread() -> None:
        # Not inside the unit: its own transaction, visible at once.
        store.record_event(None, kind="other", message="", now=1.0)
        seen.append(len(store.list_events()))

    with store.unit("outer"):
        with store.unit("inner"):
            store.upsert_device(KID_A, cose_key=b"\xa0", now=1.0)
        # The inner unit's end committed nothing yet; the outer one will.
        assert store.get_device(KID_A) is not None
    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen == [1]
    assert store.get_device(KID_A) is not None


def test_a_unit_with_no_calls_opens_no_transaction(store: TAMStore) -> None:
    with store.unit("test"):
        pass
    store.upsert_device(KID_A, cose_key=b"\xa0", now=1.0)
    assert store.get_device(KID_A) is not None


def test_a_consumed_value_stays_consumed_after_the_unit(store: TAMStore) -> None:
    store.issue_nonce(b"c" * 16, kind="challenge", now=0.0, ttl=10.0)
    with store.unit("test"):
        assert store.consume_nonce(b"c" * 16, kind="challenge", now=1.0) is not None
        assert store.consume_nonce(b"c" * 16, kind="challenge", now=1.0) is None
    assert store.consume_nonce(b"c" * 16, kind="challenge", now=2.0) is None
