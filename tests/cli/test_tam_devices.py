"""``teep tam device`` and ``teep tam events``: what an operator reads and
changes about the devices of a fleet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from teep import cbor, components
from teep.tam.home import TAMHome
from teep.tam.models import TA
from teep.tam.store import Delivery, TAMStore

from .conftest import Run, assert_one_line_error
from .test_tam_cli import config, home, ta

__all__ = ["home"]

A = "a1" * 32
B = "b2" * 32
C = "c3" * 32
UEID_B = "01" + "5e" * 32


def _store(folder: Path) -> TAMStore:
    return TAMStore.open(TAMHome.open(folder).database_url)


@pytest.fixture
def fleet(home: Path) -> Path:
    """Three devices: A affirming and silent longest, B contraindicated
    with one version held back, C never appraised."""
    with _store(home) as store:
        store.upsert_device(bytes.fromhex(A), cose_key=b"\xa0", now=30.0)
        store.upsert_device(
            bytes.fromhex(B), cose_key=b"\xa0", ueid=bytes.fromhex(UEID_B), now=40.0
        )
        store.upsert_device(bytes.fromhex(C), cose_key=b"\xa0", now=50.0)
        store.upsert_device(bytes.fromhex(A), cose_key=b"\xa0", now=10.0)
        store.set_device_status(bytes.fromhex(A), "affirming", "fine", now=10.0)
        store.set_device_status(bytes.fromhex(B), "contraindicated", "bad", now=1.0)
        store.set_device_label(bytes.fromhex(B), "rack-7")
        store.set_device_manifests(
            bytes.fromhex(B),
            [(cbor.dumps(list(components.manifest_id("hello"))), 4)],
            now=1.0,
        )
        version = Delivery("hello", TA, b"\x01" * 32, 5)
        for at in (1.0, 2.0, 3.0):
            store.count_failed_deliveries(
                bytes.fromhex(B), [version], err_code=11, err_msg="no trust", now=at
            )
        store.record_event(bytes.fromhex(B), kind="update-failed", message="x", now=2.0)
        store.record_event(
            bytes.fromhex(A), kind="update-applied", message="y", now=3.0
        )
        store.record_event(None, kind="tam", message="z", now=4.0)
    return home


def kids(run: Run, home: Path, *options: str) -> list[str]:
    """The kid column of ``device list`` (header left out)."""
    result = run("tam", "device", "list", "--dir", str(home), *options)
    assert result.exit_code == 0, result.stderr
    return [line.split()[0] for line in result.stdout.splitlines()[1:]]


def test_list_shows_label_and_held_count(run: Run, fleet: Path) -> None:
    """Each row: kid, ueid, label, status, versions held back, last seen."""
    result = run("tam", "device", "list", "--dir", str(fleet))
    assert result.exit_code == 0, result.stderr
    header, *rows = [line.split() for line in result.stdout.splitlines()]
    assert header == ["kid", "ueid", "label", "status", "held", "last", "seen"]
    assert [row[:5] for row in rows] == [
        [A[:16], "-", "-", "affirming", "0"],
        [B[:16], UEID_B[:16], "rack-7", "contraindicated", "1"],
        [C[:16], "-", "-", "unknown", "0"],
    ]


def test_list_filters_and_sorts(run: Run, fleet: Path) -> None:
    """--status (repeatable, any case), --held and --sort pick and order rows."""
    assert kids(run, fleet, "--status", "Contraindicated") == [B[:16]]
    assert kids(run, fleet, "--status", "unknown", "--status", "affirming") == [
        A[:16],
        C[:16],
    ]
    assert kids(run, fleet, "--status", "quarantined") == []
    assert kids(run, fleet, "--held") == [B[:16]]
    assert kids(run, fleet, "--sort", "last-seen") == [A[:16], B[:16], C[:16]]
    assert kids(run, fleet, "--sort", "label") == [B[:16], A[:16], C[:16]]
    assert kids(run, fleet, "--sort", "status") == [A[:16], B[:16], C[:16]]
    with _store(fleet) as store:
        store.set_max_failed_deliveries(0)
    assert kids(run, fleet, "--held") == []
    bad = run("tam", "device", "list", "--dir", str(fleet), "--sort", "age")
    assert "--sort" in assert_one_line_error(bad, code=2)


def test_list_json(run: Run, fleet: Path) -> None:
    """--json prints every field, full kids, hex byte strings, held counts."""
    result = run("tam", "device", "list", "--dir", str(fleet), "--json", "--held")
    assert result.exit_code == 0, result.stderr
    (entry,) = json.loads(result.stdout)
    assert entry["kid"] == B and entry["ueid"] == UEID_B
    assert entry["label"] == "rack-7" and entry["held"] == 1
    assert entry["status"] == "contraindicated" and entry["status_reason"] == "bad"
    assert entry["last_seen"] == 40.0
    empty = run(
        "tam", "device", "list", "--dir", str(fleet), "--json", "--status", "released"
    )
    assert json.loads(empty.stdout) == []


@pytest.mark.parametrize("status", ["bogus", "affirmed", ""])
def test_list_refuses_an_unknown_status(run: Run, fleet: Path, status: str) -> None:
    """An --status no device can have is a usage error listing the ones it can."""
    result = run("tam", "device", "list", "--dir", str(fleet), "--status", status)
    line = assert_one_line_error(result, code=2)
    assert f"{status!r} is not a status" in line
    for known in (
        "affirming",
        "warning",
        "contraindicated",
        "none",
        "quarantined",
        "released",
        "unknown",
    ):
        assert known in line


def test_show_json(run: Run, fleet: Path) -> None:
    """``device show --json`` carries what the tables show."""
    result = run("tam", "device", "show", "--dir", str(fleet), "--json", "rack-7")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["kid"] == B
    assert shown["manifests"] == [
        {"manifest": "TEEP-Device/SecureFS/hello/suit", "sequence": 4}
    ]
    (held,) = shown["held_deliveries"]
    assert held["component"] == "hello" and held["failures"] == 3
    assert held["err_name"] == "ERR_MANIFEST_PROCESSING_FAILED"
    assert [e["kind"] for e in shown["events"]] == ["update-failed"]
    assert shown["suit_reports"] == {"stored": 0, "successful": 0}
    plain = run("tam", "device", "show", "--dir", str(fleet), B[:8])
    assert "label rack-7" in plain.stdout
    assert "status contraindicated: bad" in plain.stdout


def test_events_across_the_fleet(run: Run, fleet: Path) -> None:
    """``tam events``: newest first, by device or kind, as a table or JSON."""
    base = ("tam", "events", "--dir", str(fleet))
    table = run(*base)
    assert table.exit_code == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()[1:]]
    assert [(r[2], r[3]) for r in rows] == [
        ("-", "tam"),
        (A[:16], "update-applied"),
        (B[:16], "update-failed"),
    ]
    one = json.loads(run(*base, "--device", "rack-7", "--json").stdout)
    assert [(e["device"], e["kind"]) for e in one] == [(B, "update-failed")]
    kinds = json.loads(
        run(*base, "--kind", "tam", "--kind", "update-failed", "--json").stdout
    )
    assert [e["message"] for e in kinds] == ["z", "x"]
    assert len(json.loads(run(*base, "--limit", "1", "--json").stdout)) == 1
    nobody = run(*base, "--device", "dd" * 8)
    assert "no device matches" in assert_one_line_error(nobody)
    assert_one_line_error(run(*base, "--limit", "0"), code=2)


def test_policy_remove_takes_what_add_took(run: Run, fleet: Path) -> None:
    """A device named by kid prefix or label when its policy entry was
    added can be named the same way to remove it; its ueid entry goes too."""
    run("tam", "component", "add", "--dir", str(fleet), "hello", ta(fleet))
    base = ("tam", "policy")
    for device in (B[:8], f"ueid:{UEID_B}"):
        added = run(*base, "add", "--dir", str(fleet), "hello", "--device", device)
        assert added.exit_code == 0, added.stderr
    removed = run(*base, "remove", "--dir", str(fleet), "hello", "--device", "rack-7")
    assert removed.exit_code == 0, removed.stderr
    assert removed.stdout.splitlines() == [
        f"policy: hello no longer required on {B}",
        f"policy: hello no longer required on {UEID_B}",
    ]
    with _store(fleet) as store:
        assert store.list_policies() == []
    again = run(*base, "remove", "--dir", str(fleet), "hello", "--device", B[:8])
    assert f"no policy entry for 'hello' on {B[:8]}" in assert_one_line_error(again)
    run(*base, "add", "--dir", str(fleet), "hello", "--device", A[:8])
    by_kid = run(*base, "remove", "--dir", str(fleet), "hello", "--device", A)
    assert by_kid.exit_code == 0, by_kid.stderr


def test_data_remove_takes_a_kid_prefix(run: Run, fleet: Path) -> None:
    """``component remove --device`` names a device as ``component add`` did."""
    run("tam", "component", "add", "--dir", str(fleet), "hello", ta(fleet))
    add = ("tam", "component", "add", "--dir", str(fleet), "hello")
    assert run(*add, config(fleet), "--device", A[:10]).exit_code == 0
    assert run(*add, config(fleet, sequence=2)).exit_code == 0
    remove = ("tam", "component", "remove", "--dir", str(fleet), "hello")
    removed = run(*remove, "--device", A[:10])
    assert removed.exit_code == 0, removed.stderr
    assert removed.stdout.strip() == f"Personalization Data of hello for {A} removed"
    again = run(*remove, "--device", A[:10])
    assert "no Personalization Data of 'hello'" in assert_one_line_error(again)
    every = run(*remove, "--device", "*")
    assert "for every device removed" in every.stdout


def test_label_and_remove(run: Run, fleet: Path) -> None:
    """``device label`` names a device (or unnames it); a label that would
    read as a kid or a selector is refused; ``device remove`` forgets one
    device and records it."""
    base = ("tam", "device")
    named = run(*base, "label", "--dir", str(fleet), A[:8], "gate-1")
    assert named.exit_code == 0, named.stderr
    assert kids(run, fleet, "--sort", "label")[:2] == [A[:16], B[:16]]
    for bad in ("beef", "*", "ueid:01", "hwmodel:00", " x", "a\x1bb"):
        refused = run(*base, "label", "--dir", str(fleet), A[:8], bad)
        assert "bad label" in assert_one_line_error(refused)
    taken = run(*base, "label", "--dir", str(fleet), A[:8], "rack-7")
    assert "another device is labelled" in assert_one_line_error(taken)
    cleared = run(*base, "label", "--dir", str(fleet), "gate-1")
    assert cleared.exit_code == 0 and "label removed" in cleared.stdout
    removed = run(*base, "remove", "--dir", str(fleet), "rack-7")
    assert removed.exit_code == 0, removed.stderr
    assert kids(run, fleet) == [A[:16], C[:16]]
    with _store(fleet) as store:
        assert store.held_counts(at_least=1) == {}
        (event,) = store.list_events(bytes.fromhex(B), kinds=["device-removed"])
    assert event.message == "removed by an operator"
    gone = run(*base, "remove", "--dir", str(fleet), B)
    assert "no device matches" in assert_one_line_error(gone)


def test_bad_label_is_refused_and_echoed_as_given(run: Run, fleet: Path) -> None:
    """``-`` (how ``device list`` shows a device without a label) is no
    label; a refused label is quoted once, blanks and controls escaped so
    the error line shows what was given."""
    base = ("tam", "device", "label", "--dir", str(fleet), A[:8])
    dash = assert_one_line_error(run(*base, "-"))
    assert dash.startswith("teep: error: bad label '-': device list shows '-'")
    for given, shown in (
        ("bad\nlabel", "'bad\\nlabel'"),
        ("  ", "'\\x20\\x20'"),
        (" x", "' x'"),
    ):
        line = assert_one_line_error(run(*base, given))
        assert line == f"teep: error: bad label {shown}: give printable text"
    assert kids(run, fleet, "--sort", "label")[0] == B[:16]


def test_kid_prefix_hint_only_for_short_hex(run: Run, fleet: Path) -> None:
    """An unknown name gets the kid-prefix hint only when it reads as a
    short kid prefix (hex digits, fewer than 8)."""
    for name, hinted in (("gate-17", False), ("x", False), ("dd", True)):
        result = run("tam", "events", "--dir", str(fleet), "--device", name)
        line = assert_one_line_error(result)
        assert line.startswith(f"teep: error: no device matches {name!r}")
        assert ("needs at least 8 hex digits" in line) is hinted


def test_component_still_held_is_not_removed_without_force(
    run: Run, fleet: Path
) -> None:
    """A component a device still holds stays catalogued unless --force:
    the TAM must know it to have devices delete it."""
    assert (
        run(
            "tam", "component", "add", "--dir", str(fleet), "hello", ta(fleet)
        ).exit_code
        == 0
    )
    remove = ("tam", "component", "remove", "--dir", str(fleet), "hello")
    line = assert_one_line_error(run(*remove))
    assert line.startswith(
        "teep: error: 1 device(s) still hold hello: 'teep tam policy remove'"
    )
    listed = run("tam", "component", "list", "--dir", str(fleet))
    assert "hello" in listed.stdout
    forced = run(*remove, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert forced.stdout.strip() == "component hello removed"


def test_component_no_device_holds_is_removed(run: Run, fleet: Path) -> None:
    """Once the holder reports it gone, removal needs no --force."""
    assert (
        run(
            "tam", "component", "add", "--dir", str(fleet), "hello", ta(fleet)
        ).exit_code
        == 0
    )
    with _store(fleet) as store:
        store.set_device_manifests(bytes.fromhex(B), [], now=5.0)
    removed = run("tam", "component", "remove", "--dir", str(fleet), "hello")
    assert removed.exit_code == 0, removed.stderr
