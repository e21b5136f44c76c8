"""``teep device``: a device (TEEP Broker + Agent on the simulated TEE)."""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path

import click

from teep import components
from teep.attestation.encryption import is_encrypted
from teep.attestation.relying_party import is_result_format
from teep.cli.common import (
    check_http_uri,
    console,
    fail,
    http_uri_problem,
    print_table,
)
from teep.device import tam_trust
from teep.device.broker import Broker, BrokerConfig
from teep.device.runtime import Device
from teep.errors import TeepError
from teep.keys import KeyKind, PublicKey
from teep.protocol import codec
from teep.protocol.agent import Dropped, ErrorSent, TAMReported
from teep.protocol.messages import (
    Error,
    Message,
    QueryRequest,
    QueryResponse,
    Success,
    Update,
)
from teep.protocol.registry import FINAL
from teep.protocol.signing import peek
from teep.tam.attester import TAM_HWMODEL, TAM_OEMID
from teep.text import escape_controls

DEFAULT_DIR = "teep-device"

dir_option = click.option(
    "--dir",
    "folder",
    default=DEFAULT_DIR,
    show_default=True,
    envvar="TEEP_DEVICE_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="The device's folder (simulated TEE state).",
)


@click.group("device")
def device() -> None:
    """Run a device: TEEP Broker and Agent in a simulated TEE."""


@device.command("init")
@dir_option
@click.option(
    "--tam-uri",
    default=None,
    metavar="URI",
    callback=check_http_uri,
    help="The TAM this device contacts.",
)
@click.option("--hwmodel", default="teep-sim", show_default=True, help="Device class.")
@click.option(
    "--key-type",
    type=click.Choice(["p256", "ed25519"]),
    default="p256",
    show_default=True,
    help="Kind of the Agent's TEEP key.",
)
def init(folder: Path, tam_uri: str | None, hwmodel: str, key_type: str) -> None:
    """Create a device with a fresh simulated TEE and its keys."""
    dev = Device.init(
        folder,
        tam_uri=tam_uri,
        hwmodel=hwmodel.encode(),
        key_kind=KeyKind.parse(key_type),
    )
    agent_file = folder / "agent.pub.pem"
    attest_file = folder / "attestation.pub.pem"
    agent_file.write_bytes(dev.tee.agent_key.public.to_pem())
    attest_file.write_bytes(dev.tee.attestation_key.public.to_pem())
    console.print(f"device created in {folder} (ueid {dev.tee.ueid.hex()[:16]}..)")
    console.print(
        f"  TEEP Agent key   {dev.tee.agent_key.kid.hex()[:16]}..  {agent_file}"
    )
    console.print(
        f"  attestation key  {dev.tee.attestation_key.kid.hex()[:16]}..  {attest_file}"
        "  (the TAM endorses it)"
    )


@device.command("trust-tam")
@dir_option
@click.argument("keyfiles", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--tam-uri",
    default=None,
    metavar="URI",
    callback=check_http_uri,
    help="Trust the key only for this TAM URI.",
)
def trust_tam(folder: Path, keyfiles: tuple[Path, ...], tam_uri: str | None) -> None:
    """Trust TAM signing keys (the TAM's keys/tam-p256.pub.pem and
    keys/tam-ed25519.pub.pem; its attestation key goes to
    trust-tam-attestation instead)."""
    dev = Device.open(folder)
    for keyfile in keyfiles:
        key = PublicKey.load(keyfile)
        dev.tee.add_tam_key(key, tam_uri)
        console.print(f"trusting TAM key {key.kid.hex()[:16]}..")
    suite = dev.tee.agent_key.kind
    trusted = dev.tee.trusted_tam_keys(tam_uri)
    if not any(k.kind.algs & suite.algs for k in trusted):
        alg = suite.default_alg.name
        console.print(
            f"note: this Agent signs with {alg} and a TAM must too (a cipher "
            f"suite is used both ways): trust the TAM's {alg} key as well, or "
            "sessions with it fail"
        )


@device.command("trust-signer")
@dir_option
@click.argument("keyfile", type=click.Path(path_type=Path))
def trust_signer(folder: Path, keyfile: Path) -> None:
    """Trust a Trusted Component signer key."""
    dev = Device.open(folder)
    key = PublicKey.load(keyfile)
    dev.tee.add_signer_key(key)
    console.print(f"trusting component signer {key.kid.hex()[:16]}..")


@device.command("pre-rfc")
@dir_option
@click.argument("tam_uri")
@click.option("--disable", is_flag=True, help="Turn the profile off again.")
def pre_rfc(folder: Path, tam_uri: str, disable: bool) -> None:
    """Accept the pre-RFC numbering (drafts -05 to -25) from TAM_URI."""
    problem = None if disable else http_uri_problem(tam_uri)
    if problem is not None:
        raise click.BadParameter(f"{tam_uri!r} {problem}", param_hint="TAM_URI")
    dev = Device.open(folder)
    allowed = set(dev.tee.get_setting("pre_rfc_tams", []))
    allowed.discard(tam_uri) if disable else allowed.add(tam_uri)
    dev.tee.set_setting("pre_rfc_tams", sorted(allowed))
    state = "off" if disable else "on"
    console.print(f"pre-RFC numbering {state} for {tam_uri}")


@device.command("kek")
@dir_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the PEM here instead of to standard output.",
)
def kek(folder: Path, output: Path | None) -> None:
    """Export the device's public key-agreement key (P-256, PEM), the
    recipient key for payloads encrypted for this device."""
    pem = Device.open(folder).tee.kek.public.to_pem()
    if output is None:
        sys.stdout.write(pem.decode("ascii"))
        return
    try:
        output.write_bytes(pem)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    console.print(f"payload recipient key written to {output}")


@device.command("require-tam-attestation")
@dir_option
@click.option("--off", is_flag=True, help="Stop requiring it.")
def require_tam_attestation(folder: Path, off: bool) -> None:
    """Answer a TAM only once it has sent trusted attestation Evidence."""
    dev = Device.open(folder)
    dev.tee.set_setting(tam_trust.REQUIRE_SETTING, None if off else True)
    console.print(f"TAM attestation {'not ' if off else ''}required")


@device.command("trust-tam-attestation")
@dir_option
@click.argument("keyfile", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--hwmodel",
    default=TAM_HWMODEL.decode(),
    show_default=True,
    help="The TAM class the key attests.",
)
@click.option(
    "--oemid",
    default=TAM_OEMID.hex(),
    show_default=True,
    help="The manufacturer id its Evidence names (hex).",
)
def trust_tam_attestation(
    folder: Path, keyfile: Path, hwmodel: str, oemid: str
) -> None:
    """Trust KEYFILE's key to sign TAM attestation Evidence."""
    try:
        oem = bytes.fromhex(oemid)
    except ValueError:
        fail(f"--oemid must be hex, not {oemid!r}")
    key = PublicKey.load(keyfile)
    dev = Device.open(folder)
    tam_trust.add_tam_attestation_key(dev.tee, key, hwmodel=hwmodel.encode(), oemid=oem)
    console.print(f"trusting TAM attestation key {key.kid.hex()[:16]}.. for {hwmodel}")


@device.command("verifier")
@dir_option
@click.argument("url", required=False)
@click.option("--mode", type=click.Choice(["teep", "veraison"]), default="teep")
def verifier(folder: Path, url: str | None, mode: str) -> None:
    """Present Attestation Results from the Verifier at URL (passport
    model); without URL, send Evidence again (background check)."""
    import dataclasses

    problem = None if url is None else http_uri_problem(url)
    if problem is not None:
        raise click.BadParameter(f"{url!r} {problem}", param_hint="URL")
    dev = Device.open(folder)
    settings = dataclasses.replace(dev.settings, verifier_url=url, verifier_mode=mode)
    settings.save(folder)
    console.print(f"passport model via {url}" if url else "background-check model")


@device.command("run")
@dir_option
@click.option(
    "--tam-uri",
    default=None,
    help="TAM to contact this time (default: the one set at init).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    default=BrokerConfig.read_timeout,
    show_default=True,
    metavar="SECONDS",
    help="Give up when the TAM sends nothing for this long (a limit on each "
    "wait; any one answer may take at most 10 minutes in all).",
)
def run(folder: Path, tam_uri: str | None, timeout: float) -> None:
    """Run one session with the TAM (RequestPolicyCheck) and print each step."""
    if not math.isfinite(timeout):
        raise click.BadParameter("not a finite number", param_hint="'--timeout'")
    dev = Device.open(folder)
    # A --tam-uri given is checked even when empty, not replaced by the stored one.
    uri = dev.settings.tam_uri if tam_uri is None else tam_uri
    if uri is None or (tam_uri is None and not uri):
        fail("no TAM URI: pass --tam-uri or set one with 'teep device init --tam-uri'")
    problem = http_uri_problem(uri)
    if problem is not None:
        fail(f"the TAM URI {uri!r} {problem}")
    config = BrokerConfig(
        connect_timeout=min(BrokerConfig.connect_timeout, timeout),
        read_timeout=timeout,
    )
    broker = Broker(dev.agent, config, on_message=_describe)
    with dev.session():
        outcome = asyncio.run(broker.policy_check(uri))
    failed = any(
        isinstance(e, ErrorSent | Dropped | TAMReported) for e in outcome.events
    )
    for event in outcome.events:
        if isinstance(event, Dropped):
            _say(f"message dropped: {event.reason}")
        elif isinstance(event, TAMReported):
            name = codec.error_code_name(event.code)
            _say(f"the TAM refused this device: {name}: {event.reason}")
    _say(f"session ended after {outcome.round_trips} round trip(s)")
    pending = dev.pending_requests()
    if pending and not failed:
        _say(
            f"requested and not sent by the TAM: {', '.join(pending)} "
            "('teep tam events' on the TAM says why; 'teep device unrequest' "
            "withdraws a request)"
        )
    kept = dev.kept_unneeded()
    if kept and not failed:
        _say(
            f"given up and kept by the TAM: {', '.join(kept)} (its policy "
            "requires it; 'teep device request' takes it back)"
        )
    if failed:
        sys.exit(1)


def _describe(direction: str, data: bytes) -> None:
    try:
        peeked = peek(data)
        dialect = codec.classify(peeked.payload) or FINAL
        message = codec.decode_value(peeked.payload, dialect)
    except TeepError:
        _say(f"{direction} a message that does not decode")
        return
    if direction == "received":
        _say(_received(message, len(peeked.cose.signatures), dialect.name))
    else:
        _say(_sending(message))


def _received(message: Message, signatures: int, numbering: str) -> str:
    if isinstance(message, QueryRequest):
        return (
            f"QueryRequest received ({signatures} signature(s), {numbering} numbering)"
        )
    if isinstance(message, Update):
        count = len(message.manifest_list or ())
        removed = len(message.unneeded_manifest_list or ())
        note = ""
        if message.err_code is not None:
            note = f"; TAM reports {codec.error_code_name(message.err_code)}: {message.err_msg}"
        return f"Update received: {count} signed SUIT manifest(s), {removed} to remove{note}"
    return f"{type(message).__name__} received"


def _sending(message: Message) -> str:
    if isinstance(message, QueryResponse):
        held = len(message.tc_list or ())
        return f"QueryResponse sent{_attestation(message)}, {held} component(s) held"
    if isinstance(message, Success):
        reports = len(message.suit_reports or ())
        return f"Update applied: manifests verified and processed ({reports} SUIT report(s)); Success sent"
    if isinstance(message, Error):
        name = codec.error_code_name(message.err_code)
        return f"Error sent: {name}: {message.err_msg or ''}"
    return f"{type(message).__name__} sent"


def _attestation(message: QueryResponse) -> str:
    payload = message.attestation_payload
    if not payload:
        return ""
    if is_result_format(message.attestation_payload_format):
        kind = " with an Attestation Result (EAR)"
    else:
        kind = " with attestation Evidence (EAT)"
    return kind + (" (encrypted)" if is_encrypted(payload) else "")


def _say(text: str) -> None:
    # The text may quote the TAM (an err-msg): no markup, controls escaped.
    console.print(escape_controls(text), markup=False)
    sys.stdout.flush()


@device.command("request")
@dir_option
@click.argument("name")
def request(folder: Path, name: str) -> None:
    """Ask the TAM for component NAME at the next session (RequestTA), or
    take back the give-up of an installed NAME marked unneeded."""
    if Device.open(folder).request(name):
        console.print(f"{name} taken back: no longer marked unneeded")
        return
    console.print(f"{name} requested; run 'teep device run' to contact the TAM")


@device.command("unrequest")
@dir_option
@click.argument("name")
def unrequest(folder: Path, name: str) -> None:
    """Tell the TAM at the next session that NAME is no longer needed, or
    withdraw a request for NAME not met yet."""
    if Device.open(folder).unrequest(name):
        console.print(f"request for {name} withdrawn")
        return
    console.print(f"{name} marked unneeded; run 'teep device run' to contact the TAM")


@device.command("list")
@dir_option
def list_components(folder: Path) -> None:
    """List the installed Trusted Components."""
    dev = Device.open(folder)
    rows = []
    for held in dev.tee.components.manifests():
        mid = held.manifest_component_id
        # Only a component's own manifest goes by its short name; its
        # Personalization Data's shows in full.
        own = mid[-1:] == (components.MANIFEST_SUFFIX,)
        name = components.name_of(mid) if own else None
        rows.append(
            (
                name or components.display(mid),
                held.sequence_number,
                len(held.components),
            )
        )
    print_table(("component", "sequence", "parts"), rows)


@device.command("invoke")
@dir_option
@click.argument("name")
@click.argument("args", nargs=-1)
@click.option(
    "--input", "text", default="", help="Text to give the component on stdin."
)
def invoke(folder: Path, name: str, args: tuple[str, ...], text: str) -> None:
    """Run installed component NAME inside the simulated TEE, passing it
    ARGS (put -- before them if one starts with -).

    The command exits with the component's own exit status."""
    dev = Device.open(folder)
    result = dev.invoke(name, text.encode(), args)
    sys.stdout.write(result.stdout.decode("utf-8", "replace"))
    errors = result.stderr.decode("utf-8", "replace")
    sys.stderr.write(errors)
    if result.exit_code:
        # The component's status is its result, not teep's error.
        sys.stdout.flush()
        if errors and not errors.endswith("\n"):
            sys.stderr.write("\n")
        sys.stderr.write(f"component {name} exited with status {result.exit_code}\n")
        sys.exit(min(max(result.exit_code, 1), 255))
