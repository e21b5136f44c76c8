"""Records operators read, trust configuration and settings."""

from __future__ import annotations

import pytest

from teep.errors import ConfigError
from teep.tam.store import AlreadyExistsError, TAMStore

KID = b"\x07" * 32
OTHER = b"\x08" * 32


def test_appraisals_newest_first_with_json_detail(store: TAMStore) -> None:
    """Appraisals come back newest first; bytes in detail are stored as hex."""
    store.record_appraisal(KID, status="affirming", reason="ok", detail={}, now=1.0)
    store.record_appraisal(
        None, status="contraindicated", reason="bad", detail={"n": b"\x01"}, now=2.0
    )
    store.record_appraisal(OTHER, status="affirming", reason="", detail={}, now=3.0)
    every = store.list_appraisals()
    assert [a.at for a in every] == [3.0, 2.0, 1.0]
    assert every[1].detail == {"n": "01"} and every[1].device_kid is None
    assert [a.status for a in store.list_appraisals(KID)] == ["affirming"]
    assert len(store.list_appraisals(limit=2)) == 2


def test_appraisal_detail_must_be_json(store: TAMStore) -> None:
    """A detail JSON cannot hold raises ConfigError."""
    with pytest.raises(ConfigError):
        store.record_appraisal(KID, status="x", reason="", detail={b"k": 1}, now=1.0)  # type: ignore[dict-item]


def test_events(store: TAMStore) -> None:
    """Events are listed newest first, per device or all, with a limit."""
    for i in range(5):
        store.record_event(KID if i % 2 else None, kind="k", message=str(i), now=i)
    assert [e.message for e in store.list_events()] == ["4", "3", "2", "1", "0"]
    assert [e.message for e in store.list_events(KID)] == ["3", "1"]
    assert [e.message for e in store.list_events(limit=1)] == ["4"]


def test_events_of_some_kinds(store: TAMStore) -> None:
    """``kinds`` keeps the events of those kinds, newest first, within the
    limit."""
    for i, kind in enumerate(["a", "b", "a", "c", "a"]):
        store.record_event(KID, kind=kind, message=str(i), now=i)
    assert [e.message for e in store.list_events(kinds=["a"])] == ["4", "2", "0"]
    assert [e.message for e in store.list_events(kinds=["b", "c"])] == ["3", "1"]
    assert [e.message for e in store.list_events(KID, 1, kinds=["a"])] == ["4"]
    assert store.list_events(kinds=[]) == []


def test_suit_reports(store: TAMStore) -> None:
    """SUIT Reports are kept per device, as received."""
    store.record_suit_report(KID, report=b"r1", ok=True, now=1.0)
    store.record_suit_report(KID, report=b"r2", ok=False, now=2.0)
    store.record_suit_report(OTHER, report=b"r3", ok=True, now=3.0)
    reports = store.list_suit_reports(KID)
    assert [(r.report, r.ok) for r in reports] == [(b"r2", False), (b"r1", True)]
    assert store.list_suit_reports(KID, limit=1)[0].report == b"r2"


def test_attestation_keys(store: TAMStore) -> None:
    """Attestation keys are unique by kid and can be removed."""
    store.add_attestation_key(
        cose_key=b"ck", kid=KID, hwmodel=b"hw", oemid=None, label="tee", now=1.0
    )
    with pytest.raises(AlreadyExistsError):
        store.add_attestation_key(
            cose_key=b"ck", kid=KID, hwmodel=None, oemid=None, label="", now=2.0
        )
    [key] = store.list_attestation_keys()
    assert (key.kid, key.cose_key, key.hwmodel, key.oemid, key.label) == (
        KID,
        b"ck",
        b"hw",
        None,
        "tee",
    )
    assert store.remove_attestation_key(KID) is True
    assert store.remove_attestation_key(KID) is False


def test_signer_keys(store: TAMStore) -> None:
    """Signer keys are unique by kid and can be removed."""
    store.add_signer_key(cose_key=b"sk", kid=KID, label="vendor", now=1.0)
    store.add_signer_key(cose_key=b"sk2", kid=OTHER, label="other", now=2.0)
    with pytest.raises(AlreadyExistsError):
        store.add_signer_key(cose_key=b"sk", kid=KID, label="again", now=3.0)
    assert [(k.kid, k.label) for k in store.list_signer_keys()] == [
        (KID, "vendor"),
        (OTHER, "other"),
    ]
    assert store.remove_signer_key(KID) is True
    assert [k.kid for k in store.list_signer_keys()] == [OTHER]


def test_settings(store: TAMStore) -> None:
    """Settings read None until set, and the last value wins."""
    assert store.get_setting("tam.name") is None
    store.set_setting("tam.name", "one")
    store.set_setting("tam.name", "two")
    assert store.get_setting("tam.name") == "two"
