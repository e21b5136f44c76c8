"""``teep tam``: run a TAM and manage what it knows."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import click

from teep import cbor, components
from teep.cli.common import console, fail, print_table
from teep.keys import PublicKey
from teep.protocol.tam import SessionEvent
from teep.tam.home import TAMHome
from teep.tam.http import HTTPConfig, bound_port, make_app, run_app
from teep.tam.service import TAMService, add_component
from teep.tam.store import TAMStore

DEFAULT_DIR = "teep-tam"

dir_option = click.option(
    "--dir",
    "folder",
    default=DEFAULT_DIR,
    show_default=True,
    envvar="TEEP_TAM_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="The TAM's folder (keys, settings, SQLite database).",
)
db_option = click.option(
    "--database",
    default=None,
    help="Database URL (overrides tam.json), e.g. postgresql://...",
)


def _store(folder: Path, database: str | None = None) -> TAMStore:
    return TAMHome.open(folder).open_store(database)


@click.group("tam")
def tam() -> None:
    """Run a TAM and manage its components, policy and devices."""


@tam.command("init")
@dir_option
@db_option
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8443,
    show_default=True,
    help="Port for 'teep tam serve'.",
)
def init(folder: Path, database: str | None, port: int) -> None:
    """Create a TAM: signing keys, settings and database."""
    home = TAMHome.init(folder, database=database or "", port=port)
    console.print(f"TAM created in {folder}")
    for key, path in zip(home.keys(), home.public_key_files(), strict=False):
        console.print(
            f"  {key.kind.value:8} key {key.kid.hex()[:16]}..  devices trust {path}"
        )


@tam.command("serve")
@dir_option
@db_option
@click.option("--host", default=None, help="Address to bind (default from tam.json).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to bind; 0 picks a free one.",
)
def serve(
    folder: Path, database: str | None, host: str | None, port: int | None
) -> None:
    """Serve TEEP over HTTP until interrupted."""
    home = TAMHome.open(folder)
    store = home.open_store(database)
    service = TAMService(store)
    config = HTTPConfig(
        host=host or home.settings.host,
        port=home.settings.port if port is None else port,
    )
    app = make_app(home.endpoints(service), config=config, on_event=_print_event)
    try:
        asyncio.run(_serve(app, config, list(home.settings.endpoints)))
    finally:
        store.close()


async def _serve(app: object, config: HTTPConfig, paths: list[str]) -> None:
    runner = await run_app(app, config)  # type: ignore[arg-type]
    port = bound_port(runner)
    for path in paths:
        console.print(f"TAM listening on http://{config.host}:{port}{path}")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


_EVENT_TEXT = {
    "query-request": "QueryRequest sent (COSE_Sign: ESP256 + Ed25519 signatures)",
    "query-response": "QueryResponse received",
    "appraisal": "Evidence appraised",
    "update": "Update sent",
    "compliant": "Device compliant: no Update sent",
    "success": "Success received",
    "error": "Error received",
    "dropped": "Message dropped",
}


def _print_event(event: SessionEvent) -> None:
    device = f" [device {event.device.hex()[:12]}]" if event.device else ""
    text = _EVENT_TEXT.get(event.kind, event.kind)
    try:
        console.print(f"{text}{device}: {event.detail}", markup=False)
        sys.stdout.flush()
    except OSError:
        # Nobody reads the console any more; the TAM keeps serving.
        pass


# -- trust ----------------------------------------------------------------------


@tam.group("signer")
def signer() -> None:
    """Trusted Component signer keys the TAM accepts."""


@signer.command("add")
@dir_option
@click.argument("keyfile", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--label", default="", help="A name for the signer.")
def signer_add(folder: Path, keyfile: Path, label: str) -> None:
    """Accept components signed by KEYFILE's key."""
    key = PublicKey.load(keyfile)
    with _Closing(_store(folder)) as store:
        store.add_signer_key(
            cose_key=cbor.det_dumps(key.cose_key()),
            kid=key.kid,
            label=label,
            now=time.time(),
        )
    console.print(f"component signer {key.kid.hex()[:16]}.. added")


@signer.command("list")
@dir_option
def signer_list(folder: Path) -> None:
    """List the component signer keys."""
    with _Closing(_store(folder)) as store:
        rows = [(r.kid.hex(), r.label) for r in store.list_signer_keys()]
    print_table(("kid", "label"), rows)


@tam.group("attestation-key")
def attestation_key() -> None:
    """TEE attestation keys the built-in Verifier trusts (endorsements)."""


@attestation_key.command("add")
@dir_option
@click.argument("keyfile", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--hwmodel", default="teep-sim", show_default=True, help="Device class.")
@click.option(
    "--oemid", default="000000", show_default=True, help="Manufacturer id (hex)."
)
@click.option("--label", default="", help="A name for the endorsement.")
def attestation_key_add(
    folder: Path, keyfile: Path, hwmodel: str, oemid: str, label: str
) -> None:
    """Trust Evidence signed by KEYFILE's key for devices of HWMODEL."""
    key = PublicKey.load(keyfile)
    try:
        oem = bytes.fromhex(oemid)
    except ValueError:
        fail(f"--oemid must be hex, not {oemid!r}")
    with _Closing(_store(folder)) as store:
        store.add_attestation_key(
            cose_key=cbor.det_dumps(key.cose_key()),
            kid=key.kid,
            hwmodel=hwmodel.encode(),
            oemid=oem,
            label=label or hwmodel,
            now=time.time(),
        )
    console.print(f"attestation key {key.kid.hex()[:16]}.. endorsed for {hwmodel}")


@attestation_key.command("list")
@dir_option
def attestation_key_list(folder: Path) -> None:
    """List the endorsed attestation keys."""
    with _Closing(_store(folder)) as store:
        rows = [
            (r.kid.hex()[:16], (r.hwmodel or b"").decode(errors="replace"), r.label)
            for r in store.list_attestation_keys()
        ]
    print_table(("kid", "hwmodel", "label"), rows)


# -- components and policy -------------------------------------------------------


@tam.group("component")
def component() -> None:
    """The catalogue of Trusted Components (signed SUIT envelopes)."""


@component.command("add")
@dir_option
@click.argument("name")
@click.argument("envelope", type=click.Path(dir_okay=False, path_type=Path))
def component_add(folder: Path, name: str, envelope: Path) -> None:
    """Catalogue NAME from a signed SUIT ENVELOPE (payload integrated)."""
    data = envelope.read_bytes()
    with _Closing(_store(folder)) as store:
        record = add_component(store, name, data, now=time.time())
    console.print(f"component {record.name} sequence {record.sequence_number} added")


@component.command("list")
@dir_option
def component_list(folder: Path) -> None:
    """List the catalogued components (newest versions)."""
    with _Closing(_store(folder)) as store:
        rows = [
            (r.name, r.sequence_number, len(r.envelope), r.signer_kid.hex()[:16])
            for r in store.list_components()
        ]
    print_table(("name", "sequence", "bytes", "signer"), rows)


@component.command("remove")
@dir_option
@click.argument("name")
def component_remove(folder: Path, name: str) -> None:
    """Remove NAME (every version) and its policy entries."""
    with _Closing(_store(folder)) as store:
        if not store.remove_component(name):
            fail(f"no component named {name!r}")
    console.print(f"component {name} removed")


@tam.group("policy")
def policy() -> None:
    """Which devices must hold which components."""


selector_option = click.option(
    "--device",
    "selector",
    default="*",
    show_default=True,
    help="'*' for every device, or a device kid / ueid (hex), or hwmodel:<hex>.",
)


@policy.command("add")
@dir_option
@click.argument("name")
@selector_option
def policy_add(folder: Path, name: str, selector: str) -> None:
    """Require component NAME on the selected devices."""
    with _Closing(_store(folder)) as store:
        if store.get_component(name) is None:
            fail(f"no component named {name!r} (add it with 'teep tam component add')")
        store.add_policy(name, selector=selector)
    console.print(f"policy: {name} required on {selector}")


@policy.command("remove")
@dir_option
@click.argument("name")
@selector_option
def policy_remove(folder: Path, name: str, selector: str) -> None:
    """Stop requiring NAME; devices holding it remove it at their next session."""
    with _Closing(_store(folder)) as store:
        if not store.remove_policy(name, selector=selector):
            fail(f"no policy entry for {name!r} on {selector}")
    console.print(f"policy: {name} no longer required on {selector}")


@policy.command("list")
@dir_option
def policy_list(folder: Path) -> None:
    """List the policy entries."""
    with _Closing(_store(folder)) as store:
        rows = [(p.component, p.selector) for p in store.list_policies()]
    print_table(("component", "devices"), rows)


# -- devices --------------------------------------------------------------------------


@tam.group("device")
def device() -> None:
    """Devices the TAM has met."""


@device.command("list")
@dir_option
def device_list(folder: Path) -> None:
    """List devices with their attestation status."""
    with _Closing(_store(folder)) as store:
        rows = [
            (d.kid.hex()[:16], (d.ueid or b"").hex()[:16], d.status, _ago(d.last_seen))
            for d in store.list_devices()
        ]
    print_table(("kid", "ueid", "status", "last seen"), rows)


@device.command("show")
@dir_option
@click.argument("device_id")
def device_show(folder: Path, device_id: str) -> None:
    """Show a device: components, appraisals, events, SUIT reports."""
    with _Closing(_store(folder)) as store:
        record = store.find_device(device_id)
        if record is None:
            fail(f"no device matches {device_id!r}")
        console.print(f"device {record.kid.hex()}")
        console.print(
            f"  ueid {(record.ueid or b'').hex()}  status {record.status}: "
            f"{record.status_reason}"
        )
        held = store.device_manifests(record.kid)
        print_table(
            ("manifest", "sequence"),
            ((components.display(tuple(cbor.loads(m))), s) for m, s in held),
            title="components",
        )
        print_table(
            ("when", "status", "reason"),
            (
                (_ago(a.at), a.status, a.reason)
                for a in store.list_appraisals(record.kid, 10)
            ),
            title="appraisals",
        )
        print_table(
            ("when", "event", "message"),
            (
                (_ago(e.at), e.kind, e.message)
                for e in store.list_events(record.kid, 20)
            ),
            title="events",
        )
        reports = store.list_suit_reports(record.kid, 10)
        console.print(
            f"SUIT reports: {len(reports)} stored "
            f"({sum(r.ok for r in reports)} successful)"
        )


def _ago(at: float | None) -> str:
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


class _Closing:
    """Close a store when the block ends."""

    def __init__(self, store: TAMStore) -> None:
        self.store = store

    def __enter__(self) -> TAMStore:
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.store.close()
