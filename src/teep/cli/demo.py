"""``teep demo``: a TAM and a device on loopback, from nothing to a running component.

The demo does what an operator and a device maker would do by hand, one
visible step at a time, with real processes talking TEEP over HTTP:

1. keys: a Trusted Component signer key; ``teep tam init``; ``teep device init``;
2. enrollment: the device trusts the TAM's keys and the signer's key; the TAM
   endorses the device's attestation key and accepts the signer;
3. publishing: the demo component is built from its WebAssembly text source,
   wrapped in a signed SUIT envelope, catalogued, and required by policy;
4. a session: ``teep tam serve`` and ``teep device run`` as separate processes;
5. the installed component runs inside the simulated TEE.

Run again in the same folder, it skips the set-up and the device is found
compliant.  Set-up ends by writing ``.demo-ready``; a folder without it was
interrupted and is refused rather than reused.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import click

from teep.cli.common import console, fail
from teep.tam.home import TAMHome, TAMSettings

__all__ = ["demo"]

COMPONENT = "hello"
#: Written as the very last set-up step: a folder without it was interrupted.
READY = ".demo-ready"


@click.command("demo")
@click.option(
    "--workdir",
    default="teep-demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the TAM, the device and the keys are kept.",
)
def demo(workdir: Path) -> None:
    """Run a TAM and a device on loopback: attest, install, invoke."""
    workdir = workdir.resolve()
    tam_dir, dev_dir = workdir / "tam", workdir / "device"
    if not (workdir / READY).is_file():
        if workdir.exists() and any(workdir.iterdir()):
            fail(
                f"{workdir} holds an incomplete demo; remove it or choose another "
                "--workdir"
            )
        _setup(workdir, tam_dir, dev_dir)
        _mark_ready(workdir)
    else:
        _step(f"reusing the TAM and device in {workdir}")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}/tam"
    _step(f"starting the TAM: teep tam serve --port {port}")
    server = _spawn(["tam", "serve", "--dir", str(tam_dir), "--port", str(port)])
    try:
        _wait_listening(server, len(TAMHome.open(tam_dir).settings.endpoints))
        _step(f"starting the device: teep device run --tam-uri {uri}")
        device = _spawn(["device", "run", "--dir", str(dev_dir), "--tam-uri", uri])
        _pump(device, "device")
        if device.wait() != 0:
            fail("the device's session failed (see above)")
        time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=10)
    _step(
        f"invoking {COMPONENT} inside the simulated TEE: teep device invoke {COMPONENT}"
    )
    _run(
        ["device", "invoke", "--dir", str(dev_dir), COMPONENT, "--input", "teep demo"],
        show=True,
    )
    _step("done")


def _setup(workdir: Path, tam_dir: Path, dev_dir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    signer = workdir / "signer.pem"
    _step("creating keys: a Trusted Component signer, the TAM, the device")
    _run(["keys", "generate", "--type", "p256", str(signer)])
    _run(["tam", "init", "--dir", str(tam_dir)], show=True)
    _run(["device", "init", "--dir", str(dev_dir)], show=True)

    _step("enrollment: the device trusts the TAM's keys and the component signer")
    # The TAM's TEEP signing keys only: keys/tam-attestation.pem signs the
    # TAM's own Evidence and is trusted, if at all, by trust-tam-attestation.
    tam_keys = sorted(
        str(p) for p in TAMHome(tam_dir, TAMSettings()).public_key_files()
    )
    _run(["device", "trust-tam", "--dir", str(dev_dir), *tam_keys], show=True)
    _run(
        [
            "device",
            "trust-signer",
            "--dir",
            str(dev_dir),
            str(workdir / "signer.pub.pem"),
        ],
        show=True,
    )
    _step(
        "enrollment: the TAM endorses the device's attestation key, accepts the signer"
    )
    _run(
        [
            "tam",
            "attestation-key",
            "add",
            "--dir",
            str(tam_dir),
            "--label",
            "demo TEE",
            str(dev_dir / "attestation.pub.pem"),
        ],
        show=True,
    )
    _run(
        [
            "tam",
            "signer",
            "add",
            "--dir",
            str(tam_dir),
            "--label",
            "demo signer",
            str(workdir / "signer.pub.pem"),
        ],
        show=True,
    )

    _step(
        f"publishing {COMPONENT}: WebAssembly from source, signed SUIT envelope, policy"
    )
    from teep.device.components import demo_component_source

    source = workdir / f"{COMPONENT}.wat"
    source.write_text(demo_component_source())
    envelope = workdir / f"{COMPONENT}.suit"
    _run(
        [
            "manifest",
            "create",
            "--name",
            COMPONENT,
            "--payload",
            str(source),
            "--sequence",
            "1",
            "--signer",
            str(signer),
            "-o",
            str(envelope),
        ],
        show=True,
    )
    _run(
        ["tam", "component", "add", "--dir", str(tam_dir), COMPONENT, str(envelope)],
        show=True,
    )
    _run(["tam", "policy", "add", "--dir", str(tam_dir), COMPONENT], show=True)


def _mark_ready(workdir: Path) -> None:
    """Record that set-up finished, atomically (written aside, then renamed)."""
    partial = workdir / f"{READY}.partial"
    partial.write_text("set-up complete\n")
    os.replace(partial, workdir / READY)


def _step(text: str) -> None:
    console.print(f"[bold]==>[/bold] {text}")
    sys.stdout.flush()


def _command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "teep", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "100"
    return env


def _run(args: Sequence[str], *, show: bool = False) -> None:
    done = subprocess.run(_command(args), capture_output=True, text=True, env=_env())
    if show:
        for line in done.stdout.splitlines():
            console.print(f"    {line}", markup=False)
    if done.returncode != 0:
        message = (done.stderr.strip().splitlines() or ["no message"])[-1]
        fail(f"'teep {' '.join(args[:2])}' failed: {message}")


def _spawn(args: Sequence[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _command(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )


def _wait_listening(server: subprocess.Popen[str], endpoints: int) -> None:
    """Show the TAM's output until it listens on all its ``endpoints``."""
    assert server.stdout is not None
    deadline = time.monotonic() + 30
    listening = 0
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            fail("the TAM stopped before it was listening")
        console.print(f"    [tam] {line.rstrip()}", markup=False)
        listening += "listening on" in line
        if listening >= max(1, endpoints):
            threading.Thread(target=_pump, args=(server, "tam"), daemon=True).start()
            return
    fail("the TAM did not start listening in time")


def _pump(process: subprocess.Popen[str], name: str) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        console.print(f"    [{name}] {line.rstrip()}", markup=False)
        sys.stdout.flush()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
