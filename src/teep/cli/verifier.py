"""``teep verifier``: a RATS Verifier service (Veraison-style HTTP API)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from aiohttp import web

from teep.cli.common import cannot_listen, console, fail
from teep.keys import PublicKey
from teep.verifier.home import VerifierHome
from teep.verifier.http import API_PREFIX, APPRAISE_PATH, IDLE_TIMEOUT, make_app

__all__ = ["verifier"]

dir_option = click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("verifier"),
    show_default=True,
    help="The Verifier's folder.",
)


@click.group("verifier")
def verifier() -> None:
    """Run a Verifier that appraises TEEP Evidence and signs EARs."""


@verifier.command("init")
@dir_option
@click.option("--port", type=click.IntRange(0, 65535), default=8444, show_default=True)
def init(folder: Path, port: int) -> None:
    """Create a Verifier folder: EAR signing key and verifier.toml."""
    home = VerifierHome.init(folder, port=port)
    console.print(f"Verifier in {home.path}")
    console.print(f"Relying Parties trust {home.public_key_file}")


@verifier.command("endorse")
@dir_option
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--hwmodel", required=True, help="Device class (text) the key is for.")
@click.option("--oemid", default="000000", show_default=True, help="Hex OUI/CID.")
@click.option("--name", default=None, help="A label (default: the hwmodel).")
def endorse(
    folder: Path, key_file: Path, hwmodel: str, oemid: str, name: str | None
) -> None:
    """Trust an attestation public key for one device class."""
    if not hwmodel.strip():
        fail("--hwmodel is empty: give the device class the key attests")
    home = VerifierHome.open(folder)
    try:
        raw = bytes.fromhex(oemid)
    except ValueError:
        fail(f"--oemid {oemid!r} is not hex")
    key = PublicKey.load(key_file)
    if any(
        (e.key.kid, e.oemid, e.hwmodel) == (key.kid, raw, hwmodel.encode())
        for e in home.verifier().endorsements
    ):
        console.print(f"{key_file} is already endorsed for {hwmodel}")
        return
    target = home.add_endorsement(key, name=name or hwmodel, oemid=raw, hwmodel=hwmodel)
    console.print(f"endorsed {target.name} for {hwmodel}")


@verifier.command("serve")
@dir_option
@click.option(
    "--host", default=None, help="Address to bind (default from verifier.toml)."
)
@click.option("--port", type=click.IntRange(0, 65535), default=None)
def serve(folder: Path, host: str | None, port: int | None) -> None:
    """Serve the challenge-response and direct appraisal APIs until interrupted."""
    home = VerifierHome.open(folder)
    service = home.service()
    bind = host or str(home.settings.get("host", "127.0.0.1"))
    number = port if port is not None else int(home.settings.get("port", 8444))
    try:
        asyncio.run(_serve(make_app(service), bind, number))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        fail(cannot_listen(bind, number, exc))


async def _serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, lingering_time=1.0, keepalive_timeout=IDLE_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    bound = server.sockets[0].getsockname()[1] if server else port  # type: ignore[attr-defined]
    console.print(f"Verifier listening on http://{host}:{bound}")
    console.print(f"  challenge-response: {API_PREFIX}/newSession")
    console.print(f"  background check:   {APPRAISE_PATH}")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
