"""Load benchmark: simulated devices run attested install sessions against
``teep tam serve`` over loopback HTTP.  Run by hand; it asserts nothing.

    python bench/bench_load.py                       # SQLite, 1 worker
    python bench/bench_load.py --database postgresql://postgres@127.0.0.1/test \\
        --workers 1,2                                # throughput per worker count
    python bench/bench_load.py --registry 1000,100000   # p99 as the registry grows

Each device is a Device folder made up front, trusted by the TAM through an
endorsed attestation key and enrolled by a first (unmeasured) session, the
real path.  A measured session is a full install: before it the device
drops the component, so the TAM sends QueryRequest, appraises Evidence,
sends an Update with the envelope and records the Success.  Devices run in
client processes (multiprocessing), several per process.

In the same run it measures the crypto floor: the sessions per second one
core could do if the TAM did nothing but one session's signature work (sign
the QueryRequest twice, verify the QueryResponse and its Evidence, sign the
Update, verify the Success).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import create_engine, make_url

from teep import cbor, components, cose
from teep.device.broker import Broker
from teep.device.components import demo_component_wasm
from teep.device.runtime import Device
from teep.keys import KeyKind, PrivateKey
from teep.protocol.registry import TEEP_MEDIA_TYPE
from teep.suit.builder import build_envelope
from teep.tam.catalogue import add_component
from teep.tam.home import SETTINGS, TAMHome
from teep.tam.models import DeviceRecord
from teep.tam.store import TAMStore, normalise_url

NAME = "hello"


# the crypto floor


def crypto_floor(rounds: int = 300) -> float:
    """Sessions per second if the TAM only did its signature operations."""
    p256, ed = PrivateKey.generate(KeyKind.P256), PrivateKey.generate(KeyKind.ED25519)
    agent, attester = (
        PrivateKey.generate(KeyKind.P256),
        PrivateKey.generate(KeyKind.P256),
    )
    payload = bytes(200)
    response = cose.sign1(payload, agent)
    evidence = cose.sign1(payload, attester)
    success = cose.sign1(payload[:40], agent)
    started = time.perf_counter()
    for _ in range(rounds):
        cose.sign(payload, [p256, ed])  # QueryRequest, one signature per suite
        cose.verify(response, [agent.public])  # QueryResponse
        cose.verify(evidence, [attester.public])  # Evidence
        cose.sign1(payload, p256)  # Update
        cose.verify(success, [agent.public])  # Success
    return rounds / (time.perf_counter() - started)


def _bare_server(port_out: Any) -> None:
    """An aiohttp server that answers every POST with 300 bytes, no work."""

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=bytes(300), content_type=TEEP_MEDIA_TYPE)

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/tam", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_out.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(serve())


def http_floor(sessions: int = 300) -> float | None:
    """Sessions per second one core could serve if the TAM only answered a
    session's three HTTP requests (aiohttp, a new connection per session as
    the Broker opens), from the server's CPU time; None without /proc."""
    context = multiprocessing.get_context("fork")
    port_out = context.Queue()
    server = context.Process(target=_bare_server, args=(port_out,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port_out.get()}/tam"

    async def session() -> None:
        headers = {"Content-Type": TEEP_MEDIA_TYPE, "Accept": TEEP_MEDIA_TYPE}
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                async with http.post(url, data=bytes(300), headers=headers) as got:
                    await got.read()

    try:
        assert server.pid is not None
        asyncio.run(session())
        before = tam_cpu_seconds(server.pid)
        for _ in range(sessions):
            asyncio.run(session())
        after = tam_cpu_seconds(server.pid)
    finally:
        server.terminate()
        server.join()
    if before is None or after is None or after <= before:
        return None
    return sessions / (after - before)


# setting up


def make_tam(root: Path, database: str, workers: int) -> tuple[TAMHome, PrivateKey]:
    """A TAM folder with the demo component required everywhere, no limits."""
    home = TAMHome.init(root / "tam", database=database)
    settings = json.loads((home.path / SETTINGS).read_text())
    settings.update(workers=workers, connect_rate=0, max_outstanding_challenges=0)
    (home.path / SETTINGS).write_text(json.dumps(settings))
    signer = PrivateKey.generate(KeyKind.P256)
    with TAMStore.open(home.database_url) as store:
        store.add_signer_key(
            cose_key=cbor.det_dumps(signer.public.cose_key()),
            kid=signer.public.thumbprint,
            label="bench",
            now=time.time(),
        )
        env = build_envelope(
            manifest_component_id=components.manifest_id(NAME),
            component_id=components.component_id(NAME),
            payload=demo_component_wasm(),
            sequence_number=1,
            signer=signer,
        )
        add_component(store, NAME, env, now=time.time())
        store.add_policy(NAME)
    return home, signer


def make_devices(
    root: Path, home: TAMHome, signer: PrivateKey, count: int
) -> list[Path]:
    """Device folders trusting the TAM, their attestation keys endorsed."""
    folders = []
    with TAMStore.open(home.database_url, migrate=False) as store:
        for index in range(count):
            device = Device.init(root / f"device{index}")
            for key in home.keys():
                device.tee.add_tam_key(key.public)
            device.tee.add_signer_key(signer.public)
            public = device.tee.attestation_key.public
            store.add_attestation_key(
                cose_key=cbor.det_dumps(public.cose_key()),
                kid=public.thumbprint,
                hwmodel=b"teep-sim",
                oemid=b"\x00\x00\x00",
                label=f"bench {index}",
                now=time.time(),
            )
            folders.append(device.folder)
    return folders


def grow_registry(url: str, total: int) -> None:
    """Add fake enrolled devices until the registry holds ``total``."""
    with TAMStore.open(url, migrate=False) as store:
        missing = total - len(store.list_devices())
        batch = 20_000
        while missing > 0:
            size = min(batch, missing)
            now = time.time()
            store.add_devices([_fake_device(now) for _ in range(size)])
            missing -= size


def _fake_device(now: float) -> DeviceRecord:
    return DeviceRecord(
        kid=os.urandom(32),
        cose_key=b"\xa0",
        ueid=os.urandom(16),
        hwmodel=b"teep-sim",
        numbering="final",
        label=None,
        status="affirming",
        status_reason="imported",
        status_at=now,
        first_seen=now,
        last_seen=now,
    )


def serve(home: TAMHome, workers: int) -> tuple[subprocess.Popen[str], str]:
    """Start ``teep tam serve``; the process and its TAM URI."""
    process = subprocess.Popen(
        [sys.executable, "-m", "teep", "tam", "serve", "--dir", str(home.path),
         "--port", "0", "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:
        if "listening on" in line and line.rstrip().endswith("/tam"):
            # Drain the console in a thread-free way: to /dev/null via a child.
            subprocess.Popen(["cat"], stdin=process.stdout, stdout=subprocess.DEVNULL)
            return process, line.split("listening on", 1)[1].strip()
    raise RuntimeError("teep tam serve did not start")


def tam_cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds used so far by the TAM process and its
    worker processes (read from /proc; None where there is none)."""
    proc = Path("/proc")
    if not (proc / str(pid) / "stat").exists():
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # After the command name: state, ppid, ..., utime (14), stime (15).
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


# the clients


def _client(folders: list[Path], url: str, sessions: int, start: Any, out: Any) -> None:
    devices = [Device.open(f) for f in folders]
    manifest = components.manifest_id(NAME)
    start.wait()
    latencies = []
    for index in range(sessions):
        device = devices[index % len(devices)]
        if device.tee.components.manifest(manifest) is not None:
            device.uninstall(manifest, None)
        began = time.perf_counter()
        asyncio.run(Broker(device.agent).policy_check(url))
        latencies.append(time.perf_counter() - began)
    out.put(latencies)


def run_clients(
    folders: list[Path], url: str, procs: int, sessions: int
) -> dict[str, float]:
    """Run ``sessions`` install sessions from ``procs`` client processes."""
    context = multiprocessing.get_context("fork")
    start, out = context.Event(), context.Queue()
    share = [folders[i::procs] for i in range(procs)]
    workers = [
        context.Process(target=_client, args=(s, url, sessions // procs, start, out))
        for s in share
    ]
    for worker in workers:
        worker.start()
    time.sleep(1.0)
    began = time.perf_counter()
    start.set()
    latencies = [x for _ in workers for x in out.get()]
    wall = time.perf_counter() - began
    for worker in workers:
        worker.join()
    latencies.sort()
    return {
        "sessions": len(latencies),
        "per_s": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def warm_up(folders: list[Path], url: str) -> None:
    """Enroll every device through a first session (not measured)."""
    for folder in folders:
        asyncio.run(Broker(Device.open(folder).agent).policy_check(url))


# one configuration


def postgres_schema(base: str) -> str:
    """A fresh schema on the server at ``base``; its URL."""
    schema = f"teep_bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(normalise_url(base))
    with engine.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def measure(args: argparse.Namespace, workers: int, registry: int) -> dict[str, float]:
    """Set up a TAM and devices, then time the sessions."""
    root = Path(tempfile.mkdtemp(prefix="teep-bench-"))
    database = postgres_schema(args.database) if args.database else ""
    home, signer = make_tam(root, database, workers)
    folders = make_devices(root, home, signer, args.devices)
    if registry:
        grow_registry(home.database_url, registry)
    process, url = serve(home, workers)
    try:
        warm_up(folders, url)
        before = tam_cpu_seconds(process.pid)
        got = run_clients(folders, url, args.clients, args.sessions)
        after = tam_cpu_seconds(process.pid)
        if before is not None and after is not None:
            got["tam_cpu_ms"] = 1000 * (after - before) / got["sessions"]
        return got
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    """Parse the options, run each configuration, print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database", default="", help="PostgreSQL URL (default SQLite)"
    )
    parser.add_argument("--workers", default="1", help="comma-separated worker counts")
    parser.add_argument(
        "--registry", default="0", help="comma-separated registry sizes"
    )
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--sessions", type=int, default=120)
    args = parser.parse_args()

    floor = crypto_floor()
    backend = "postgresql" if args.database else "sqlite"
    print(f"crypto floor: {floor:.0f} sessions/s on one core; CPUs: {os.cpu_count()}")
    http = http_floor()
    if http is not None:
        both = 1 / (1 / floor + 1 / http)
        print(
            f"HTTP floor: {http:.0f} sessions/s on one core (aiohttp answering a "
            f"session's 3 requests, no work); crypto and HTTP together: "
            f"{both:.0f}/s ({both / floor:.0%} of the crypto floor)"
        )
    for workers in (int(w) for w in args.workers.split(",")):
        for registry in (int(r) for r in args.registry.split(",")):
            got = measure(args, workers, registry)
            print(
                f"{backend} workers={workers} registry={registry or args.devices}: "
                f"{got['sessions']:.0f} sessions, {got['per_s']:.1f}/s "
                f"({got['per_s'] / floor:.0%} of floor), "
                f"p50 {got['p50_ms']:.0f} ms, p99 {got['p99_ms']:.0f} ms"
            )
            if "tam_cpu_ms" in got:
                # The simulated devices share this machine's cores with the
                # TAM, so the rate above is also bounded by their own work;
                # what the TAM could serve on one core of its own is this.
                capacity = 1000 / got["tam_cpu_ms"]
                print(
                    f"  TAM CPU per session {got['tam_cpu_ms']:.1f} ms: "
                    f"{capacity:.0f} sessions/s per core "
                    f"({capacity / floor:.0%} of floor)"
                )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
