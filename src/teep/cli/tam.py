"""``teep tam``: run a TAM and manage what it knows."""

from __future__ import annotations

import asyncio
import functools
import socket
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import click
from aiohttp import web

from teep import cbor
from teep.cli.common import (
    cannot_listen,
    console,
    fail,
    http_uri_problem,
    print_table,
)
from teep.cli.tam_common import (
    KID_BYTES,
    UEID_BYTES,
    UEID_FORM,
    db_option,
    dir_option,
    known_device,
    open_store,
)
from teep.cli.tam_devices import device, events
from teep.errors import TeepError, reason
from teep.keys import PublicKey
from teep.protocol.tam import SessionEvent
from teep.tam.catalogue import add_component
from teep.tam.database import unhex
from teep.tam.home import ATTESTATION_KEY_FILE, TAMHome
from teep.tam.http import (
    HTTPConfig,
    bind_socket,
    make_app,
    run_workers,
    serve_socket,
    stop_on_signals,
)
from teep.tam.models import (
    EVERY_DEVICE,
    TA,
    ComponentRecord,
)
from teep.tam.service import TAMService
from teep.tam.store import TAMStore


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
    attestation = folder / "keys" / ATTESTATION_KEY_FILE.replace(".pem", ".pub.pem")
    console.print(
        f"  the TAM's own Evidence: {attestation} "
        "(for 'teep device trust-tam-attestation' only)"
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
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes sharing the socket and database (default from tam.json).",
)
def serve(
    folder: Path,
    database: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
) -> None:
    """Serve TEEP over HTTP until interrupted."""
    home = TAMHome.open(folder)
    url = database or home.database_url
    # Migrations run here, once, before any worker exists; the settings and
    # key files are checked here too, so a mistake is one line, not a dying
    # worker, and nothing claims to listen before they are known good.
    with closing(home.open_store(url)) as store:
        home.endpoints(home.service(store))
    config = _http_config(home, host, port)
    try:
        sock = bind_socket(config)
    except OSError as exc:
        fail(cannot_listen(config.host, config.port, exc))
    bound = sock.getsockname()[1]
    count = workers or home.settings.workers
    for path in home.settings.endpoints:
        console.print(f"TAM listening on http://{config.host}:{bound}{path}")
    if count > 1:
        console.print(f"{count} worker processes")
    sys.stdout.flush()
    worker = functools.partial(_worker, home, url, config, sock)
    try:
        if count == 1:
            worker()
        else:
            run_workers(count, worker)
    finally:
        sock.close()


def _http_config(home: TAMHome, host: str | None, port: int | None) -> HTTPConfig:
    settings = home.settings
    return HTTPConfig(
        host=host or settings.host,
        port=settings.port if port is None else port,
        max_body=settings.max_body,
        read_timeout=settings.read_timeout,
        idle_timeout=settings.idle_timeout,
        connect_rate=settings.connect_rate,
        connect_burst=settings.connect_burst,
        max_outstanding_challenges=settings.max_outstanding_challenges,
    )


def _worker(home: TAMHome, url: str, config: HTTPConfig, sock: socket.socket) -> None:
    """One serving process: its own database connections and event loop."""
    store = TAMStore.open(url, migrate=False)
    service = home.service(store)

    def outstanding() -> int:
        return store.count_outstanding_nonces(None, now=service.clock())

    app = make_app(
        home.endpoints(service),
        config=config,
        on_event=_print_event,
        outstanding=outstanding,
        offload=not service.local
        if home.settings.threads is None
        else home.settings.threads,
    )
    try:
        asyncio.run(_serve(app, sock, service, config.idle_timeout))
    finally:
        store.close()


PURGE_EVERY_S = 60.0
"""How often a worker deletes expired challenges and tokens."""


async def _serve(
    app: web.Application,
    sock: socket.socket,
    service: TAMService,
    idle_timeout: float,
) -> None:
    stop = asyncio.Event()
    stop_on_signals(stop)
    purging = asyncio.create_task(_purge(service))
    try:
        await serve_socket(app, sock, stop, idle_timeout=idle_timeout)
    finally:
        purging.cancel()


async def _purge(service: TAMService) -> None:
    # Used values stay until they expire (a replay must still find them
    # used); past that they only cost space.
    while True:
        await asyncio.sleep(PURGE_EVERY_S)
        try:
            await asyncio.to_thread(service.store.purge_nonces, now=service.clock())
        except TeepError as exc:
            console.print(f"cannot purge expired one-time values: {exc}")


_EVENT_TEXT = {
    "query-request": "QueryRequest sent (COSE_Sign: one signature per suite offered)",
    "query-response": "QueryResponse received",
    "appraisal": "Evidence appraised",
    "update": "Update sent",
    "compliant": "Device compliant: no Update sent",
    "held-back": "No Update sent",
    "success": "Success received",
    "error": "Error received",
    "dropped": "Message dropped",
}


def _print_event(event: SessionEvent) -> None:
    device = f" [device {event.device.hex()[:12]}]" if event.device else ""
    text = _EVENT_TEXT.get(event.kind, event.kind)
    try:
        # A plain write: a busy TAM prints several lines per session, and
        # rich's rendering would cost more than the session's signatures.
        sys.stdout.write(f"{text}{device}: {event.detail}\n")
        sys.stdout.flush()
    except OSError:
        # Nobody reads the console any more; the TAM keeps serving.
        pass


# -- trust ----------------------------------------------------------------------


@tam.command("verifier")
@dir_option
@click.argument("where", metavar="URL|builtin")
@click.option(
    "--key",
    "keys",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A Verifier key to trust (file).",
)
@click.option(
    "--mode",
    type=click.Choice(["teep", "veraison"]),
    default=None,
    help="The remote Verifier's API (default teep); not with builtin.",
)
@click.option("--encrypt/--no-encrypt", default=None, help="Offer encryption.")
@click.option(
    "--contraindicated", type=click.Choice(["remove", "quarantine"]), default=None
)
@click.option(
    "--model",
    type=click.Choice(["background-check", "passport"]),
    default=None,
    help="passport: QueryRequests carry a token, no challenge.",
)
def verifier(
    folder: Path,
    where: str,
    keys: tuple[str, ...],
    mode: str | None,
    encrypt: bool | None,
    contraindicated: str | None,
    model: str | None,
) -> None:
    """Choose the Verifier (builtin or a URL), trusted keys and policy."""
    from teep.verifier.tam_settings import update_tam_settings

    if where == "builtin":
        if mode is not None:
            raise click.UsageError("--mode is for a remote Verifier, not with builtin")
    else:
        problem = http_uri_problem(where)
        if problem is not None:
            raise click.BadParameter(f"{where!r} {problem}", param_hint="URL|builtin")
    for key in keys:
        # Named as given: tam.json's own keys are checked on the merge.
        try:
            PublicKey.from_bytes(Path(key).read_bytes())
        except OSError as exc:
            fail(f"cannot read --key {key}: {reason(exc)}")
        except TeepError as exc:
            fail(f"cannot read --key {key}: {exc}")
    # An option left out keeps its current value, the mode included.
    changes: dict[str, object] = {"verifier": where}
    if mode is not None:
        changes["verifier_mode"] = mode
    if keys:
        changes["verifier_keys"] = [str(Path(k).resolve()) for k in keys]
    if encrypt is not None:
        changes["encrypted_evidence"] = encrypt
    if contraindicated is not None:
        changes["contraindicated"] = contraindicated
    if model is not None:
        changes["model"] = model
    settings = update_tam_settings(folder, **changes)
    console.print(f"attestation settings: {settings}")
    console.print("restart 'teep tam serve' to apply them")


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
    with closing(open_store(folder)) as store:
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
    with closing(open_store(folder)) as store:
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
    if not hwmodel.strip():
        fail("--hwmodel is empty: give the device class the key attests")
    key = PublicKey.load(keyfile)
    try:
        oem = bytes.fromhex(oemid)
    except ValueError:
        fail(f"--oemid must be hex, not {oemid!r}")
    with closing(open_store(folder)) as store:
        if any(
            (r.kid, r.hwmodel, r.oemid) == (key.kid, hwmodel.encode(), oem)
            for r in store.list_attestation_keys()
        ):
            console.print(
                f"attestation key {key.kid.hex()[:16]}.. is already endorsed "
                f"for {hwmodel}"
            )
            return
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
    with closing(open_store(folder)) as store:
        rows = [
            (r.kid.hex()[:16], (r.hwmodel or b"").decode(errors="replace"), r.label)
            for r in store.list_attestation_keys()
        ]
    print_table(("kid", "hwmodel", "label"), rows)


# -- components and policy -------------------------------------------------------


@tam.group("component")
def component() -> None:
    """The catalogue of Trusted Components and their Personalization Data
    (signed SUIT envelopes)."""


@component.command("add")
@dir_option
@click.argument("name")
@click.argument("envelope", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--device",
    default=EVERY_DEVICE,
    show_default=True,
    help="Personalization Data only: '*' for every device holding NAME, "
    "or one device the TAM has met (kid, kid prefix, ueid or label); "
    "a device not met yet: ueid:HEX or its full kid.",
)
def component_add(folder: Path, name: str, envelope: Path, device: str) -> None:
    """Catalogue NAME, or its Personalization Data, from a signed SUIT
    ENVELOPE (payload integrated); which one is read from its manifest id."""
    data = envelope.read_bytes()
    note = None
    with closing(open_store(folder)) as store:
        if device != EVERY_DEVICE and not device.lower().startswith("hwmodel:"):
            device, note = _device_selector(store, device)
        record = add_component(store, name, data, now=time.time(), device=device)
    console.print(f"{_entry(record)} sequence {record.sequence_number} added")
    if note:
        console.print(note)


def _entry(record: ComponentRecord) -> str:
    """How a catalogue entry is named in messages."""
    if record.kind == TA:
        return f"component {record.name}"
    where = "every device" if record.device == EVERY_DEVICE else record.device
    return f"Personalization Data of {record.name} for {where}"


@component.command("list")
@dir_option
def component_list(folder: Path) -> None:
    """List the catalogue (newest versions): each component, then its
    Personalization Data for every device ('*') or for one."""
    with closing(open_store(folder)) as store:
        rows = [
            (
                r.name,
                r.kind,
                r.device,
                r.sequence_number,
                len(r.envelope),
                r.signer_kid.hex()[:16],
            )
            for r in store.list_components()
        ]
    print_table(("name", "kind", "device", "sequence", "bytes", "signer"), rows)


@component.command("remove")
@dir_option
@click.argument("name")
@click.option(
    "--config",
    is_flag=True,
    help="Remove only NAME's Personalization Data (all of it, unless --device).",
)
@click.option(
    "--device",
    default=None,
    help="Remove only the Personalization Data for one device (as 'component "
    "list' shows it, ueid:HEX, or a device the TAM has met named as 'add' "
    "takes it: its data by kid and by ueid), or for every device ('*'); "
    "implies --config.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Remove NAME even though devices still hold it; they keep it, as the "
    "TAM no longer knows it.",
)
def component_remove(
    folder: Path, name: str, config: bool, device: str | None, force: bool
) -> None:
    """Remove NAME (every version), its Personalization Data and its policy
    entries; or, with --config or --device, only Personalization Data.

    Devices delete a component only when the TAM, which knows it, no longer
    requires it: while devices hold NAME, first 'teep tam policy remove' it
    and let them run a session; removing it from the catalogue before that
    needs --force and leaves it on them.
    """
    with closing(open_store(folder)) as store:
        if device is not None:
            removed = _remove_for(
                store, device, lambda d: store.remove_personalization(name, d)
            )
            if not removed:
                where = _removal_selector(device)
                fail(f"no Personalization Data of {name!r} for {where}")
            for entry in removed:
                where = "every device" if entry == EVERY_DEVICE else entry
                console.print(f"Personalization Data of {name} for {where} removed")
            return
        if config:
            if not store.remove_personalization(name):
                fail(f"no Personalization Data of {name!r}")
            console.print(f"Personalization Data of {name} removed")
            return
        holders = store.count_holders(name)
        if holders and not force:
            fail(
                f"{holders} device(s) still hold {name}: 'teep tam policy remove' "
                "it so they delete it at their next session, then remove it "
                "(--force removes it now and leaves it on them)"
            )
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
    help="'*' for every device, hwmodel:<hex>, or one device the TAM has met "
    "(kid, kid prefix, ueid or label); a device not met yet: ueid:HEX or its "
    "full kid. 'remove' takes the same, or the selector as 'policy list' "
    "shows it; naming a device the TAM has met removes its entries by kid "
    "and by ueid.",
)


@policy.command("add")
@dir_option
@click.argument("name")
@selector_option
def policy_add(folder: Path, name: str, selector: str) -> None:
    """Require component NAME on the selected devices."""
    with closing(open_store(folder)) as store:
        if store.get_component(name) is None:
            fail(f"no component named {name!r} (add it with 'teep tam component add')")
        note = None
        if selector != "*" and not selector.lower().startswith("hwmodel:"):
            selector, note = _device_selector(store, selector)
        store.add_policy(name, selector=selector)
    console.print(f"policy: {name} required on {selector}")
    if note:
        console.print(note)


def _device_selector(store: TAMStore, text: str) -> tuple[str, str | None]:
    """A one-device selector from what an operator typed, and a note to
    print once the change is made when it names a device not met yet.

    A device the TAM has met may be named as ``teep tam device`` commands
    accept (kid, ueid, label, or a kid prefix of 8 or more hex digits); the
    selector is then its full kid, or its ueid when that is what was typed.
    A device not met yet must be named explicitly: ``ueid:HEX``, or its
    full kid (64 hex digits).  Anything else that matches no device is
    refused, so a mistyped kid prefix is not taken for a ueid.
    """
    typed = text.strip().lower()
    if typed.startswith(UEID_FORM):
        ueid = typed.removeprefix(UEID_FORM).strip()
        raw = unhex(ueid)
        if raw is None or len(raw) not in UEID_BYTES:
            fail(
                f"bad ueid {ueid!r}: give {2 * UEID_BYTES.start} to "
                f"{2 * (UEID_BYTES.stop - 1)} hex digits after {UEID_FORM}"
            )
        return ueid, None if known_device(store, ueid) else _not_met("ueid")
    record = known_device(store, typed)
    if record is not None:
        if record.ueid is not None and typed == record.ueid.hex():
            return typed, None
        return record.kid.hex(), None
    raw = unhex(typed)
    if raw is not None and len(raw) == KID_BYTES:
        return typed, _not_met("kid")
    hexadecimal = bool(typed) and all(c in "0123456789abcdef" for c in typed)
    what = "kid prefix" if hexadecimal else "label or kid"
    fail(
        f"no device has {what} {text.strip()}; to name a device not yet met use "
        f"{UEID_FORM}HEX or its full kid ({2 * KID_BYTES} hex digits)"
    )


def _not_met(form: str) -> str:
    return f"no device with this {form} has been met yet: it will apply when one does"


def _removal_selector(text: str) -> str:
    """A selector to remove, as stored: ``ueid:HEX`` is stored as the hex."""
    typed = text.strip()
    if typed.lower().startswith(UEID_FORM):
        return typed[len(UEID_FORM) :].strip()
    return typed


def _remove_for(store: TAMStore, text: str, remove: Callable[[str], bool]) -> list[str]:
    """Remove the entries an operator's ``--device`` names; the selectors
    removed (none: nothing matched).

    ``*``, ``hwmodel:HEX`` and ``ueid:HEX`` name one entry as stored.  A
    device the TAM has met may be named as when the entry was added (kid,
    kid prefix, ueid or label): the entries held under its kid and under
    its ueid both go.  Anything else is taken as the stored value.
    """
    typed = text.strip()
    lowered = typed.lower()
    if lowered == EVERY_DEVICE or lowered.startswith(("hwmodel:", UEID_FORM)):
        selector = _removal_selector(typed)
        return [selector] if remove(selector) else []
    record = known_device(store, typed)
    if record is None:
        return [typed] if remove(typed) else []
    names = [record.kid.hex()]
    if record.ueid is not None:
        names.append(record.ueid.hex())
    return [name for name in names if remove(name)]


@policy.command("remove")
@dir_option
@click.argument("name")
@selector_option
def policy_remove(folder: Path, name: str, selector: str) -> None:
    """Stop requiring NAME; devices holding it remove it at their next session."""
    with closing(open_store(folder)) as store:
        removed = _remove_for(
            store, selector, lambda s: store.remove_policy(name, selector=s)
        )
    if not removed:
        fail(f"no policy entry for {name!r} on {_removal_selector(selector)}")
    for entry in removed:
        console.print(f"policy: {name} no longer required on {entry}")


@policy.command("list")
@dir_option
def policy_list(folder: Path) -> None:
    """List the policy entries."""
    with closing(open_store(folder)) as store:
        rows = [(p.component, p.selector) for p in store.list_policies()]
    print_table(("component", "devices"), rows)


@policy.command("delivery")
@dir_option
@click.option(
    "--max-failed-deliveries",
    "limit",
    type=click.IntRange(0, 2**31 - 1),
    default=None,
    help="Failed deliveries in a row after which a version is held back "
    "from a device; 0: never hold back (default 3).",
)
def policy_delivery(folder: Path, limit: int | None) -> None:
    """Show or set when the TAM stops sending a version a device keeps failing.

    A device that answers an Update with an Error gets the same envelopes
    again at its next session.  Once one version has failed on a device
    --max-failed-deliveries times in a row, the TAM holds it back from that
    device (a 'delivery-held' event) until 'teep tam device retry' releases
    it or a newer version is catalogued.  Kept in the database: every
    worker applies a change at its next message, no restart needed.
    """
    with closing(open_store(folder)) as store:
        if limit is not None:
            store.set_max_failed_deliveries(limit)
        limit = store.max_failed_deliveries()
    if limit == 0:
        console.print("policy: versions a device fails to install are never held back")
    else:
        console.print(
            f"policy: a version is held back from a device after {limit} "
            "failed deliveries in a row"
        )


tam.add_command(device)
tam.add_command(events)
