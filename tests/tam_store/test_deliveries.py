"""Failed deliveries per device and version, and the limit on them."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from teep.errors import ConfigError, StoreError
from teep.tam import migrations
from teep.tam.models import CONFIG, TA
from teep.tam.store import Delivery, NotFoundError, TAMStore, normalise_url

KID = b"\x07" * 32
OTHER = b"\x08" * 32
V1 = Delivery("hello", TA, b"\x01" * 32, 1)
V2 = Delivery("hello", TA, b"\x02" * 32, 2)
DATA = Delivery("hello", CONFIG, b"\x03" * 32, 1)
WORLD = Delivery("world", TA, b"\x04" * 32, 7)


def enrolled(store: TAMStore, *kids: bytes) -> None:
    for kid in kids:
        store.upsert_device(kid, cose_key=b"\xa0", now=1.0)


def fail(store: TAMStore, kid: bytes, *versions: Delivery, at: float = 1.0) -> None:
    store.count_failed_deliveries(
        kid, versions, err_code=11, err_msg=f"failed at {at}", now=at
    )


def counts(store: TAMStore, kid: bytes = KID, least: int = 1) -> dict[Delivery, int]:
    return {
        Delivery(f.name, f.kind, f.envelope_digest, f.sequence_number): f.failures
        for f in store.failed_deliveries(kid, at_least=least)
    }


def test_failures_count_per_device_and_version(store: TAMStore) -> None:
    """Each Error adds one to every version named, on that device only;
    the last Error and its time are kept."""
    enrolled(store, KID, OTHER)
    fail(store, KID, V1, DATA, at=1.0)
    fail(store, KID, V1, at=2.0)
    fail(store, OTHER, V2, at=3.0)
    assert counts(store) == {V1: 2, DATA: 1}
    assert counts(store, least=2) == {V1: 2}
    assert counts(store, OTHER) == {V2: 1}
    first, data = store.failed_deliveries(KID)
    assert data.kind == CONFIG
    assert (first.kind, first.err_code, first.err_msg) == (TA, 11, "failed at 2.0")
    assert first.last_at == 2.0 and first.held_at is None
    assert store.failed_deliveries(b"\x09" * 32) == []


def test_counting_for_an_unknown_device(store: TAMStore) -> None:
    """A device the TAM does not know cannot have failures."""
    with pytest.raises(NotFoundError):
        fail(store, KID, V1)
    fail(store, KID)  # nothing to count: nothing asked of the database


def test_sequence_numbers_are_checked(store: TAMStore) -> None:
    """A sequence number the column cannot hold is a StoreError."""
    enrolled(store, KID)
    with pytest.raises(StoreError):
        fail(store, KID, Delivery("hello", TA, b"\x01" * 32, 2**63))


def test_hold_once_until_counted_again(store: TAMStore) -> None:
    """A held version keeps the time it was first held; counting it again
    takes the hold's time away (it is announced again when held again)."""
    enrolled(store, KID)
    fail(store, KID, V1, V2)
    store.hold_deliveries(KID, [V1], now=5.0)
    store.hold_deliveries(KID, [V1, V2], now=6.0)
    held = {f.envelope_digest: f.held_at for f in store.failed_deliveries(KID)}
    assert held == {V1.envelope_digest: 5.0, V2.envelope_digest: 6.0}
    fail(store, KID, V1, at=7.0)
    held = {f.envelope_digest: f.held_at for f in store.failed_deliveries(KID)}
    assert held == {V1.envelope_digest: None, V2.envelope_digest: 6.0}
    store.hold_deliveries(KID, [], now=8.0)


def test_clear_by_device_component_and_entry(store: TAMStore) -> None:
    """Clearing forgets one entry's versions, a component's, or a device's."""
    enrolled(store, KID, OTHER)
    fail(store, KID, V1, V2, DATA, WORLD)
    fail(store, OTHER, V1)
    assert store.clear_failed_deliveries(KID, "hello", CONFIG) == 1
    assert set(counts(store)) == {V1, V2, WORLD}
    assert store.clear_failed_deliveries(KID, "hello") == 2
    assert set(counts(store)) == {WORLD}
    assert store.clear_failed_deliveries(KID, "absent") == 0
    assert store.clear_failed_deliveries(KID) == 1
    assert counts(store) == {}
    assert counts(store, OTHER) == {V1: 1}


def test_rows_go_with_their_device(store: TAMStore) -> None:
    """Removing a device removes its failed deliveries."""
    enrolled(store, KID)
    fail(store, KID, V1)
    assert store.remove_device(KID)
    enrolled(store, KID)
    assert counts(store) == {}


def test_limit_setting(store: TAMStore) -> None:
    """The limit defaults to 3, can be 0, and refuses a negative value;
    setting it moves the configuration generation (workers reload)."""
    assert store.max_failed_deliveries() == 3
    before = store.config_generation()
    store.set_max_failed_deliveries(0)
    assert store.max_failed_deliveries() == 0
    assert store.config_generation() > before
    store.set_max_failed_deliveries(5)
    assert store.max_failed_deliveries() == 5
    with pytest.raises(ConfigError):
        store.set_max_failed_deliveries(-1)
    store.set_setting("max_failed_deliveries", "many")
    assert store.max_failed_deliveries() == 3


def test_within_a_unit(store: TAMStore) -> None:
    """The calls a session makes join the message's one transaction."""
    enrolled(store, KID)
    with store.unit("a message"):
        fail(store, KID, V1)
        store.hold_deliveries(KID, [V1], now=2.0)
        assert store.failed_deliveries(KID)[0].held_at == 2.0
    assert counts(store) == {V1: 1}


def test_migration_adds_and_drops_the_table(empty_url: str) -> None:
    """0003 adds the table on the second schema and drops it going back,
    leaving the rest; upgrading again restores it."""
    engine = create_engine(normalise_url(empty_url))
    with engine.begin() as connection:
        migrations.upgrade(connection, "0002")
        assert "delivery_failures" not in inspect(connection).get_table_names()
    with engine.begin() as connection:
        migrations.upgrade(connection)
        assert "delivery_failures" in inspect(connection).get_table_names()
    with engine.begin() as connection:
        command.downgrade(migrations.alembic_config(connection), "0002")
        tables = inspect(connection).get_table_names()
        assert "delivery_failures" not in tables and "devices" in tables
    engine.dispose()
    with TAMStore.open(empty_url) as store:
        enrolled(store, KID)
        fail(store, KID, V1)
        assert counts(store) == {V1: 1}


def test_held_counts_cover_the_registry(store: TAMStore) -> None:
    """One query gives, per device, how many versions reached the limit."""
    enrolled(store, KID, OTHER)
    for at in (1.0, 2.0, 3.0):
        fail(store, KID, V1, WORLD, at=at)
    fail(store, KID, DATA)
    fail(store, OTHER, V2)
    assert store.held_counts(at_least=3) == {KID: 2}
    assert store.held_counts(at_least=1) == {KID: 3, OTHER: 1}
    store.remove_device(KID)
    assert store.held_counts(at_least=1) == {OTHER: 1}
