"""Devices: upsert, lookup, reported manifests, status and labels."""

from __future__ import annotations

import pytest

from teep.errors import ConfigError, StoreError
from teep.tam.store import (
    AlreadyExistsError,
    AmbiguousMatchError,
    NotFoundError,
    TAMStore,
)

KID = bytes.fromhex("a1b2c3d4e5f6") + bytes(26)
OTHER = bytes.fromhex("a1b2c3d4ffff") + bytes(26)
UEID = b"\x01" + bytes(range(16))


def _add(store: TAMStore, kid: bytes = KID, **kwargs: object) -> None:
    store.upsert_device(kid, cose_key=b"key", now=10.0, **kwargs)  # type: ignore[arg-type]


def test_upsert_creates_device(store: TAMStore) -> None:
    """A new device is stored with the given fields and status unknown."""
    record = store.upsert_device(
        KID, cose_key=b"key", ueid=UEID, hwmodel=b"hw", numbering="pre-rfc", now=5.0
    )
    assert (record.kid, record.cose_key, record.ueid, record.hwmodel) == (
        KID,
        b"key",
        UEID,
        b"hw",
    )
    assert record.numbering == "pre-rfc"
    assert (record.status, record.status_at, record.label) == ("unknown", None, None)
    assert record.first_seen == record.last_seen == 5.0
    assert store.get_device(KID) == record


def test_upsert_refreshes_and_keeps_known_claims(store: TAMStore) -> None:
    """Upserting again updates key and last_seen; None claims keep old values."""
    store.upsert_device(KID, cose_key=b"old", ueid=UEID, hwmodel=b"hw", now=1.0)
    store.set_device_status(KID, "affirming", "ok", now=2.0)
    record = store.upsert_device(KID, cose_key=b"new", now=3.0)
    assert (record.cose_key, record.ueid, record.hwmodel) == (b"new", UEID, b"hw")
    assert (record.first_seen, record.last_seen) == (1.0, 3.0)
    assert record.status == "affirming"
    assert len(store.list_devices()) == 1


def test_get_unknown_device_is_none(store: TAMStore) -> None:
    """An unknown kid gives None."""
    assert store.get_device(b"nope") is None


def test_list_devices_in_insertion_order(store: TAMStore) -> None:
    """list_devices returns every device, oldest first."""
    _add(store, OTHER)
    _add(store, KID)
    assert [d.kid for d in store.list_devices()] == [OTHER, KID]


def test_list_devices_by_status(store: TAMStore) -> None:
    """``statuses`` keeps the devices whose status is one of them."""
    _add(store, OTHER)
    _add(store, KID)
    store.set_device_status(KID, "contraindicated", "bad", now=2.0)
    assert [d.kid for d in store.list_devices(statuses=["contraindicated"])] == [KID]
    both = store.list_devices(statuses=["unknown", "contraindicated"])
    assert [d.kid for d in both] == [OTHER, KID]
    assert store.list_devices(statuses=["affirming"]) == []


def test_find_device_by_kid_ueid_label_and_prefix(store: TAMStore) -> None:
    """find_device accepts a full kid, a ueid, a label or a kid prefix."""
    _add(store, ueid=UEID)
    store.set_device_label(KID, "lab-board")
    assert store.find_device(KID.hex()).kid == KID  # type: ignore[union-attr]
    assert store.find_device(UEID.hex().upper()).kid == KID  # type: ignore[union-attr]
    assert store.find_device("lab-board").kid == KID  # type: ignore[union-attr]
    assert store.find_device(" a1b2c3d4e ").kid == KID  # type: ignore[union-attr]
    assert store.find_device("nothing") is None


def test_find_device_prefix_rules(store: TAMStore) -> None:
    """Prefixes need 8 hex digits; one matching two devices is ambiguous."""
    _add(store, KID)
    _add(store, OTHER)
    assert store.find_device("a1b2c3") is None
    with pytest.raises(AmbiguousMatchError):
        store.find_device("a1b2c3d4")
    assert store.find_device("a1b2c3d4f").kid == OTHER  # type: ignore[union-attr]
    assert store.find_device("a1b2c3d4e5f6").kid == KID  # type: ignore[union-attr]


def test_find_device_prefix_at_top_of_range(store: TAMStore) -> None:
    """A prefix of all-ones bytes has no upper bound and still matches."""
    top = b"\xff" * 32
    _add(store, top)
    assert store.find_device("ffffffff").kid == top  # type: ignore[union-attr]


def test_find_device_shared_ueid_is_ambiguous(store: TAMStore) -> None:
    """Two keys claiming one ueid cannot be told apart by the ueid."""
    _add(store, KID, ueid=UEID)
    _add(store, OTHER, ueid=UEID)
    with pytest.raises(AmbiguousMatchError):
        store.find_device(UEID.hex())


def test_labels_are_unique(store: TAMStore) -> None:
    """Two devices cannot share a label; a label can be removed."""
    _add(store, KID)
    _add(store, OTHER)
    store.set_device_label(KID, "one")
    with pytest.raises(AlreadyExistsError):
        store.set_device_label(OTHER, "one")
    store.set_device_label(KID, None)
    store.set_device_label(OTHER, "one")
    assert store.find_device("one").kid == OTHER  # type: ignore[union-attr]


def test_device_manifests_replace_the_set(store: TAMStore) -> None:
    """set_device_manifests replaces the whole reported set, in order."""
    _add(store)
    assert store.device_manifests(KID) == []
    store.set_device_manifests(KID, [(b"m1", 1), (b"m2", None)], now=1.0)
    assert store.device_manifests(KID) == [(b"m1", 1), (b"m2", None)]
    store.set_device_manifests(KID, [(b"m3", 2**63 - 1)], now=2.0)
    assert store.device_manifests(KID) == [(b"m3", 2**63 - 1)]


def test_device_manifests_reject_out_of_range_sequence(store: TAMStore) -> None:
    """A sequence number beyond signed 64 bits raises StoreError, not OverflowError."""
    _add(store)
    with pytest.raises(StoreError):
        store.set_device_manifests(KID, [(b"m", 2**64 - 1)], now=1.0)
    with pytest.raises(StoreError):
        store.set_device_manifests(KID, [(b"m", -1)], now=1.0)


def test_status_is_stored(store: TAMStore) -> None:
    """set_device_status records status, reason and time."""
    _add(store)
    store.set_device_status(KID, "quarantined", "bad evidence", now=7.0)
    record = store.get_device(KID)
    assert record is not None
    assert (record.status, record.status_reason, record.status_at) == (
        "quarantined",
        "bad evidence",
        7.0,
    )


def test_status_from_the_device_counts_as_contact(store: TAMStore) -> None:
    """A status from the device's own message moves its last-seen time; one
    an operator sets does not."""
    _add(store)
    before = store.get_device(KID)
    assert before is not None
    store.set_device_status(KID, "released", "operator", now=before.last_seen + 5)
    operator = store.get_device(KID)
    assert operator is not None and operator.last_seen == before.last_seen
    later = before.last_seen + 10
    store.set_device_status(KID, "contraindicated", "bad", now=later, seen=True)
    seen = store.get_device(KID)
    assert seen is not None and seen.last_seen == later


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.set_device_status(KID, "affirming", "", now=1.0),
        lambda s: s.set_device_manifests(KID, [], now=1.0),
        lambda s: s.device_manifests(KID),
        lambda s: s.set_device_label(KID, "x"),
    ],
    ids=["status", "set_manifests", "manifests", "label"],
)
def test_unknown_device_raises_not_found(store: TAMStore, call: object) -> None:
    """Changing or reading an unknown device raises NotFoundError."""
    with pytest.raises(NotFoundError):
        call(store)  # type: ignore[operator]


def test_remove_device_drops_its_manifests(store: TAMStore) -> None:
    """remove_device deletes the device and (by cascade) its manifests."""
    _add(store)
    store.set_device_manifests(KID, [(b"m1", 1)], now=1.0)
    assert store.remove_device(KID) is True
    assert store.remove_device(KID) is False
    _add(store)
    assert store.device_manifests(KID) == []


def test_overlong_text_is_a_config_error(store: TAMStore) -> None:
    """Text longer than its column raises ConfigError on every backend."""
    _add(store)
    with pytest.raises(ConfigError):
        store.set_device_status(KID, "x" * 33, "", now=1.0)
    with pytest.raises(ConfigError):
        store.set_device_label(KID, "x" * 201)
