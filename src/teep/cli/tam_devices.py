"""``teep tam device`` and ``teep tam events``: the devices a TAM has met,
what it knows of each, and what an operator does about them."""

from __future__ import annotations

import json
import re
import time
from contextlib import closing
from pathlib import Path

import click

from teep import cbor, components
from teep.attestation.ar4si import TrustTier
from teep.attestation.policy import QUARANTINED
from teep.cli.common import console, echo, fail, print_table
from teep.cli.tam_common import UEID_FORM, ago, dir_option, find_device, open_store
from teep.tam.models import EVERY_DEVICE, TA, DeviceRecord, EventRecord
from teep.tam.service import error_name
from teep.text import escape_controls


@click.group("device")
def device() -> None:
    """Devices the TAM has met."""


_SORT_KEYS = {
    "first-seen": lambda d: (d.first_seen, d.kid),
    "last-seen": lambda d: (d.last_seen, d.kid),
    "status": lambda d: (d.status, d.kid),
    "kid": lambda d: (d.kid,),
    "label": lambda d: (d.label is None, d.label or "", d.kid),
}
"""How ``device list --sort`` orders devices (oldest or smallest first)."""

RELEASED = "released"
"""The status of a device an operator took out of quarantine."""
STATUSES = (
    *(tier.name for tier in TrustTier if tier is not TrustTier.none),
    TrustTier.none.name,
    QUARANTINED,
    RELEASED,
    "unknown",  # a device not appraised since it was stored
)
"""Every attestation status a device can have: an appraisal's tier, or what
the TAM or an operator set."""


def _check_statuses(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    """A click callback: ``values`` in lower case, each a known status."""
    wanted = tuple(v.strip().lower() for v in values)
    for given, status in zip(values, wanted, strict=True):
        if status not in STATUSES:
            raise click.BadParameter(
                f"{given!r} is not a status (use {', '.join(STATUSES)})", ctx, param
            )
    return wanted


@device.command("list")
@dir_option
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    callback=_check_statuses,
    help=f"Only devices with this attestation status ({', '.join(STATUSES)}); "
    "repeatable.",
)
@click.option(
    "--held", is_flag=True, help="Only devices with deliveries held back from them."
)
@click.option(
    "--sort",
    "sort_by",
    type=click.Choice(sorted(_SORT_KEYS)),
    default="first-seen",
    show_default=True,
    help="Order (oldest or smallest first); last-seen puts the devices "
    "silent longest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
def device_list(
    folder: Path, statuses: tuple[str, ...], held: bool, sort_by: str, as_json: bool
) -> None:
    """List devices: attestation status, versions held back, last contact."""
    wanted = sorted(set(statuses)) if statuses else None
    with closing(open_store(folder)) as store:
        devices = store.list_devices(statuses=wanted)
        limit = store.max_failed_deliveries()
        holding = store.held_counts(at_least=limit) if limit else {}
    if held:
        devices = [d for d in devices if d.kid in holding]
    devices.sort(key=_SORT_KEYS[sort_by])
    if as_json:
        echo(
            json.dumps(
                [_device_json(d, held=holding.get(d.kid, 0)) for d in devices],
                indent=2,
            )
        )
        return
    rows = [
        (
            d.kid.hex()[:16],
            (d.ueid or b"").hex()[:16] or "-",
            escape_controls(d.label) if d.label else "-",
            d.status,
            holding.get(d.kid, 0),
            ago(d.last_seen),
        )
        for d in devices
    ]
    print_table(("kid", "ueid", "label", "status", "held", "last seen"), rows)


def _device_json(record: DeviceRecord, **extra: object) -> dict[str, object]:
    """A device as ``--json`` prints it: byte strings in hex, times in
    seconds since the epoch."""
    return {
        "kid": record.kid.hex(),
        "ueid": None if record.ueid is None else record.ueid.hex(),
        "hwmodel": None if record.hwmodel is None else record.hwmodel.hex(),
        "label": record.label,
        "numbering": record.numbering,
        "status": record.status,
        "status_reason": record.status_reason,
        "status_at": record.status_at,
        "first_seen": record.first_seen,
        "last_seen": record.last_seen,
        **extra,
    }


@device.command("show")
@dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
@click.argument("device_id")
def device_show(folder: Path, as_json: bool, device_id: str) -> None:
    """Show a device: components, appraisals, held deliveries, events, SUIT
    reports."""
    with closing(open_store(folder)) as store:
        record = find_device(store, device_id)
        manifests = [
            (components.display(tuple(cbor.loads(m))), s)
            for m, s in store.device_manifests(record.kid)
        ]
        appraisals = store.list_appraisals(record.kid, 10)
        limit = store.max_failed_deliveries()
        holding = store.failed_deliveries(record.kid, at_least=limit) if limit else []
        events = store.list_events(record.kid, 20)
        reports = store.list_suit_reports(record.kid, 10)
    if as_json:
        shown = _device_json(
            record,
            manifests=[{"manifest": m, "sequence": s} for m, s in manifests],
            appraisals=[
                {"at": a.at, "status": a.status, "reason": a.reason} for a in appraisals
            ],
            held_deliveries=[
                {
                    "component": f.name,
                    "kind": f.kind,
                    "sequence": f.sequence_number,
                    "failures": f.failures,
                    "err_code": f.err_code,
                    "err_name": error_name(f.err_code),
                    "err_msg": f.err_msg,
                    "last_at": f.last_at,
                    "held_at": f.held_at,
                }
                for f in holding
            ],
            events=[_event_json(e) for e in events],
            suit_reports={
                "stored": len(reports),
                "successful": sum(r.ok for r in reports),
            },
        )
        echo(json.dumps(shown, indent=2))
        return
    console.print(f"device {record.kid.hex()}")
    label = f"  label {escape_controls(record.label)}" if record.label else ""
    console.print(
        f"  ueid {(record.ueid or b'').hex() or '-'}{label}  "
        f"last seen {ago(record.last_seen)}"
    )
    console.print(f"  status {record.status}: {escape_controls(record.status_reason)}")
    print_table(("manifest", "sequence"), manifests, title="components")
    print_table(
        ("when", "status", "reason"),
        ((ago(a.at), a.status, escape_controls(a.reason)) for a in appraisals),
        title="appraisals",
    )
    print_table(
        ("component", "sequence", "failures", "last error", "last failed"),
        (
            (
                _label(f.name, f.kind),
                f.sequence_number,
                f.failures,
                f"{error_name(f.err_code)}: {escape_controls(f.err_msg)}",
                ago(f.last_at),
            )
            for f in holding
        ),
        title="held deliveries",
    )
    print_table(
        ("when", "event", "message"),
        ((ago(e.at), e.kind, escape_controls(e.message)) for e in events),
        title="events",
    )
    console.print(
        f"SUIT reports: {len(reports)} stored ({sum(r.ok for r in reports)} successful)"
    )


def _event_json(event: EventRecord) -> dict[str, object]:
    return {
        "at": event.at,
        "device": None if event.device_kid is None else event.device_kid.hex(),
        "kind": event.kind,
        "message": event.message,
    }


@click.command("events")
@dir_option
@click.option(
    "--device",
    "device_id",
    default=None,
    help="Only this device's events (kid, kid prefix, ueid or label).",
)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    metavar="KIND",
    help="Only events of this kind (delivery-held, update-failed, "
    "update-applied, ...); repeatable.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=50,
    show_default=True,
    help="How many of the newest events to print.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
def events(
    folder: Path,
    device_id: str | None,
    kinds: tuple[str, ...],
    limit: int,
    as_json: bool,
) -> None:
    """Print the TAM's events, newest first, across the fleet or for one
    device."""
    with closing(open_store(folder)) as store:
        kid = None if device_id is None else find_device(store, device_id).kid
        found = store.list_events(
            kid, limit, kinds=sorted({k.strip() for k in kinds}) if kinds else None
        )
    if as_json:
        echo(json.dumps([_event_json(e) for e in found], indent=2))
        return
    print_table(
        ("when", "device", "event", "message"),
        (
            (
                ago(e.at),
                "-" if e.device_kid is None else e.device_kid.hex()[:16],
                e.kind,
                escape_controls(e.message),
            )
            for e in found
        ),
    )


@device.command("reports")
@dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
@click.argument("device_id")
def device_reports(folder: Path, as_json: bool, device_id: str) -> None:
    """Print a device's SUIT Reports decoded: manifest, result, failing record."""
    from teep.cli.manifest import print_reports

    with closing(open_store(folder)) as store:
        record = find_device(store, device_id)
        stored = store.list_suit_reports(record.kid, 50)
    print_reports([(r.at, r.ok, r.report) for r in stored], as_json)


@device.command("release")
@dir_option
@click.argument("device_id")
def device_release(folder: Path, device_id: str) -> None:
    """Lift a device's quarantine: its next appraisal decides again."""
    with closing(open_store(folder)) as store:
        record = find_device(store, device_id)
        if record.status != QUARANTINED:
            fail(f"device {record.kid.hex()[:16]} is not quarantined ({record.status})")
        store.set_device_status(
            record.kid, RELEASED, "quarantine lifted by an operator", now=time.time()
        )
        store.record_event(
            record.kid,
            kind="quarantine-released",
            message="released by an operator",
            now=time.time(),
        )
    console.print(
        f"device {record.kid.hex()[:16]} released; appraised again next session"
    )


@device.command("label")
@dir_option
@click.argument("device_id")
@click.argument("label", required=False)
def device_label(folder: Path, device_id: str, label: str | None) -> None:
    """Name a device LABEL, which every command then accepts in place of
    its kid; without LABEL, remove its name."""
    if label is not None:
        _check_label(label)
    with closing(open_store(folder)) as store:
        record = find_device(store, device_id)
        store.set_device_label(record.kid, label)
    kid = record.kid.hex()[:16]
    if label is None:
        console.print(f"device {kid}: label removed")
    else:
        console.print(f"device {kid} labelled {label}")


def _check_label(label: str) -> None:
    """Refuse a label that would read as something else where devices are
    named: a kid or kid prefix, a ueid, a selector, or ``-`` (what
    ``device list`` shows for a device without a label)."""
    text = label.strip()
    if text != label or not text or not text.isprintable():
        fail(f"bad label '{_shown_label(label)}': give printable text")
    if text == "-":
        fail("bad label '-': device list shows '-' for a device without a label")
    if all(c in "0123456789abcdefABCDEF" for c in text):
        fail(f"bad label {text!r}: a label of hex digits would read as a kid")
    if text == EVERY_DEVICE or text.lower().startswith((UEID_FORM, "hwmodel:")):
        fail(f"bad label {text!r}: it would read as a selector")


_WHITESPACE = re.compile(r"[^\S ]| {2,}")


def _shown_label(label: str) -> str:
    """``label`` as an error line quotes it: controls escaped, and every
    blank but a lone space written as an escape too (an error line folds
    runs of blanks into one space)."""

    def escape(match: re.Match[str]) -> str:
        return "".join(
            f"\\x{ord(c):02x}" if ord(c) <= 0xFF else f"\\u{ord(c):04x}"
            for c in match.group()
        )

    return _WHITESPACE.sub(escape, escape_controls(label))


@device.command("remove")
@dir_option
@click.argument("device_id")
def device_remove(folder: Path, device_id: str) -> None:
    """Forget a device: its record, what it holds, its failed deliveries.

    Its events, appraisals and SUIT Reports stay; policy entries and
    Personalization Data that name it stay too.  A device still enrolled
    is met again at its next session.
    """
    with closing(open_store(folder)) as store:
        record = find_device(store, device_id)
        store.remove_device(record.kid)
        store.record_event(
            record.kid,
            kind="device-removed",
            message="removed by an operator",
            now=time.time(),
        )
    console.print(f"device {record.kid.hex()[:16]} removed")


@device.command("retry")
@dir_option
@click.argument("device_id")
@click.argument("name", required=False)
def device_retry(folder: Path, device_id: str, name: str | None) -> None:
    """Send what is held back from a device again at its next session: every
    version, or component NAME's (and its Personalization Data's).

    Their counts of failed deliveries start again from zero.
    """
    with closing(open_store(folder)) as store:
        record = find_device(store, device_id)
        if (
            name is not None
            and store.get_component(name) is None
            and not any(f.name == name for f in store.failed_deliveries(record.kid))
        ):
            fail(f"no component named {name!r}")
        cleared = store.clear_failed_deliveries(record.kid, name)
        what = "every component" if name is None else name
        if cleared:
            store.record_event(
                record.kid,
                kind="delivery-retry",
                message=f"{what}: released by an operator",
                now=time.time(),
            )
    kid = record.kid.hex()[:16]
    if cleared:
        console.print(
            f"device {kid}: {what} released ({cleared} version(s)); "
            "sent again next session"
        )
    else:
        console.print(f"device {kid}: nothing failed or held back for {what}")


def _label(name: str, kind: str) -> str:
    """How an entry is named in the device's tables."""
    return name if kind == TA else f"{name}/{kind}"
