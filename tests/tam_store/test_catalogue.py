"""The catalogue (Trusted Components and their Personalization Data) and the
policy that assigns components."""

from __future__ import annotations

import pytest

from teep.errors import ConfigError, StoreError
from teep.tam.models import CONFIG, TA
from teep.tam.store import (
    AlreadyExistsError,
    DeviceRecord,
    NotFoundError,
    StaleVersionError,
    TAMStore,
)

KID = bytes.fromhex("0badc0de") * 8
UEID = bytes.fromhex("01deadbeef")


def _add(store: TAMStore, name: str, seq: int, mid: bytes | None = None) -> None:
    store.add_component(
        name,
        manifest_component_id=mid or name.encode(),
        component_id=b"cid-" + name.encode(),
        sequence_number=seq,
        envelope=f"{name}-{seq}".encode(),
        signer_kid=b"signer",
        now=float(seq),
    )


def _device(store: TAMStore, hwmodel: bytes | None = b"\x11\x22") -> DeviceRecord:
    return store.upsert_device(KID, cose_key=b"k", ueid=UEID, hwmodel=hwmodel, now=1.0)


def test_add_and_get_newest_version(store: TAMStore) -> None:
    """get_component returns the version with the highest sequence number."""
    _add(store, "hello", 2)
    _add(store, "hello", 10)
    _add(store, "hello", 5)
    record = store.get_component("hello")
    assert record is not None
    assert (record.sequence_number, record.envelope) == (10, b"hello-10")
    assert (record.component_id, record.signer_kid) == (b"cid-hello", b"signer")
    assert store.get_component("absent") is None


def test_same_name_and_sequence_is_rejected(store: TAMStore) -> None:
    """Adding a name and sequence number twice raises AlreadyExistsError."""
    _add(store, "hello", 1)
    with pytest.raises(AlreadyExistsError, match="sequence number 1"):
        _add(store, "hello", 1)


def test_manifest_id_belongs_to_one_name(store: TAMStore) -> None:
    """A manifest component id cannot be registered under a second name."""
    _add(store, "hello", 1, mid=b"m")
    with pytest.raises(AlreadyExistsError, match="hello"):
        _add(store, "other", 1, mid=b"m")


def test_sequence_number_range(store: TAMStore) -> None:
    """Sequence numbers outside 0..2^63-1 raise StoreError."""
    _add(store, "big", 2**63 - 1)
    with pytest.raises(StoreError):
        _add(store, "huge", 2**63)


def test_component_by_manifest_id(store: TAMStore) -> None:
    """Looking up by manifest id gives the newest version."""
    _add(store, "hello", 1)
    _add(store, "hello", 4)
    record = store.component_by_manifest_id(b"hello")
    assert record is not None and record.sequence_number == 4
    assert store.component_by_manifest_id(b"nope") is None


def test_list_components(store: TAMStore) -> None:
    """list_components gives newest per name, or every version on request."""
    _add(store, "b", 1)
    _add(store, "a", 1)
    _add(store, "a", 2)
    newest = [(c.name, c.sequence_number) for c in store.list_components()]
    assert newest == [("a", 2), ("b", 1)]
    every = store.list_components(all_versions=True)
    assert [(c.name, c.sequence_number) for c in every] == [
        ("a", 1),
        ("a", 2),
        ("b", 1),
    ]


def test_remove_component_drops_versions_and_policies(store: TAMStore) -> None:
    """remove_component deletes every version and the policies naming it."""
    _add(store, "hello", 1)
    _add(store, "hello", 2)
    store.add_policy("hello")
    assert store.remove_component("hello") is True
    assert store.get_component("hello") is None
    assert store.list_policies() == []
    assert store.remove_component("hello") is False


def test_policy_add_list_remove(store: TAMStore) -> None:
    """Policies are listed in order, canonicalised, and removable once."""
    _add(store, "hello", 1)
    store.add_policy("hello")
    store.add_policy("hello", selector=" HWMODEL:AB ")
    listed = [(p.component, p.selector) for p in store.list_policies()]
    assert listed == [("hello", "*"), ("hello", "hwmodel:ab")]
    assert store.remove_policy("hello", selector="hwmodel:AB") is True
    assert store.remove_policy("hello", selector="hwmodel:ab") is False


def test_policy_errors(store: TAMStore) -> None:
    """Unknown component, duplicate rule and bad selector are refused."""
    with pytest.raises(NotFoundError):
        store.add_policy("absent")
    _add(store, "hello", 1)
    store.add_policy("hello")
    with pytest.raises(AlreadyExistsError):
        store.add_policy("hello", selector="*")
    for bad in ["", "xyz", "hwmodel:", "abc", "kid:00"]:
        with pytest.raises(ConfigError):
            store.add_policy("hello", selector=bad)


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("*", True),
        (KID.hex(), True),
        (UEID.hex(), True),
        ("hwmodel:1122", True),
        ("hwmodel:3344", False),
        ("00" * 32, False),
    ],
)
def test_required_components_by_selector(
    store: TAMStore, selector: str, matches: bool
) -> None:
    """A policy applies to a device when its selector names the device."""
    device = _device(store)
    _add(store, "hello", 1)
    _add(store, "hello", 3)
    store.add_policy("hello", selector=selector)
    required = store.required_components(device)
    assert [(c.name, c.sequence_number) for c in required] == (
        [("hello", 3)] if matches else []
    )


def test_required_components_without_claims(store: TAMStore) -> None:
    """A device without ueid or hwmodel matches only '*' and its kid."""
    device = store.upsert_device(b"\x05" * 32, cose_key=b"k", now=1.0)
    _add(store, "a", 1)
    _add(store, "b", 1)
    _add(store, "c", 1)
    store.add_policy("a")
    store.add_policy("b", selector=device.kid.hex())
    store.add_policy("b")
    store.add_policy("c", selector="hwmodel:00")
    assert [c.name for c in store.required_components(device)] == ["a", "b"]


def _add_data(store: TAMStore, name: str, seq: int, device: str = "*") -> None:
    store.add_component(
        name,
        kind=CONFIG,
        device=device,
        manifest_component_id=name.encode() + b"-config",
        component_id=b"cid-config-" + name.encode(),
        sequence_number=seq,
        envelope=f"{name}-config-{device}-{seq}".encode(),
        signer_kid=b"signer",
        now=float(seq),
        newer_only=True,
    )


def test_personalization_beside_its_component(store: TAMStore) -> None:
    """Data for every device and per device share the component's name and
    sequence numbers; the component's lookups see only the component."""
    device = _device(store)
    _add(store, "hello", 1)
    _add_data(store, "hello", 1)
    _add_data(store, "hello", 1, device=KID.hex().upper())
    _add_data(store, "hello", 2, device=UEID.hex())
    store.add_policy("hello")
    listed = [(c.kind, c.device, c.sequence_number) for c in store.list_components()]
    assert listed == [
        (TA, "*", 1),
        (CONFIG, "*", 1),
        (CONFIG, UEID.hex(), 2),
        (CONFIG, KID.hex(), 1),
    ]
    record = store.get_component("hello")
    assert record is not None and (record.kind, record.device) == (TA, "*")
    assert [c.kind for c in store.required_components(device)] == [TA]
    found = store.component_by_manifest_id(b"hello-config")
    assert found is not None and found.sequence_number == 2


def test_personalization_newer_only_per_device(store: TAMStore) -> None:
    """Sequence numbers grow per name, kind and device, not across them."""
    _add(store, "hello", 5)
    _add_data(store, "hello", 2)
    _add_data(store, "hello", 1, device=KID.hex())
    with pytest.raises(StaleVersionError, match=f"for device {KID.hex()[:16]}"):
        _add_data(store, "hello", 1, device=KID.hex())
    with pytest.raises(StaleVersionError, match="Personalization Data of 'hello'"):
        _add_data(store, "hello", 2)
    newest = store.list_components(all_versions=True)
    assert [(c.kind, c.sequence_number) for c in newest] == [
        (TA, 5),
        (CONFIG, 2),
        (CONFIG, 1),
    ]


@pytest.mark.parametrize(
    ("kind", "device", "message"),
    [
        (TA, KID.hex(), "every device"),
        (CONFIG, "hwmodel:1122", "bad device"),
        (CONFIG, "kid:00", "bad selector"),
        ("firmware", "*", "unknown catalogue kind"),
    ],
)
def test_bad_catalogue_entries(
    store: TAMStore, kind: str, device: str, message: str
) -> None:
    """A component for one device, a model selector and unknown kinds are
    refused."""
    with pytest.raises(ConfigError, match=message):
        store.add_component(
            "hello",
            kind=kind,
            device=device,
            manifest_component_id=b"m",
            component_id=b"c",
            sequence_number=1,
            envelope=b"e",
            signer_kid=b"s",
            now=1.0,
        )


def test_remove_personalization(store: TAMStore) -> None:
    """Data is removed per device, for every device, or all at once; the
    component and its policy stay, and removing the component takes all."""
    _add(store, "hello", 1)
    store.add_policy("hello")
    for device in ("*", KID.hex(), UEID.hex()):
        _add_data(store, "hello", 1, device=device)
    assert store.remove_personalization("hello", KID.hex().upper()) is True
    assert store.remove_personalization("hello", KID.hex()) is False
    assert store.remove_personalization("hello", "*") is True
    assert [c.device for c in store.list_components()] == ["*", UEID.hex()]
    _add_data(store, "hello", 2)
    assert store.remove_personalization("hello") is True
    assert [c.kind for c in store.list_components()] == [TA]
    assert store.remove_personalization("hello") is False
    assert store.list_policies() != []
    _add_data(store, "hello", 3)
    assert store.remove_component("hello") is True
    assert store.list_components() == []
