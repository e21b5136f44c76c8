"""TEEP over HTTP, server side (draft-ietf-teep-otrp-over-http section 6).

A thin aiohttp adapter: it checks the HTTP framing, hands the body to the
sans-I/O :class:`teep.protocol.tam.TAM`, and maps the outcome to a
response.  The engine and its store are synchronous.  When everything they
wait on is local (SQLite, the built-in Verifier) the engine runs in the
event loop itself: a message costs a few milliseconds of CPU, and handing it
to a thread would cost almost as much again in switches.  When they wait on
the network (PostgreSQL, a remote Verifier), each message goes to a thread,
so one message's waits do not hold up the others (``offload``).

==============================  =============================================
request                         response
==============================  =============================================
not POST                        405
no acceptable Accept            406
declared body over the limit    413, before any of the body is read
body over the limit             413, as soon as the limit is crossed
body not complete in time       408, connection closed
connection lost mid-body        one log line (INFO), nothing sent
body with another media type    415
empty body, client over rate    429 + Retry-After
empty body, too many open       503 + Retry-After
challenges TAM-wide
empty body                      200 + QueryRequest
message the TAM accepts         200 + next message, or 204 when done
message the TAM drops           400 (empty body); also a Success or
                                Error of a device removed mid-session
database unreachable            503 + Retry-After, one log line
TAM failure                     500
==============================  =============================================

Empty POSTs are the only requests an unauthenticated client can make that
cost the TAM a stored challenge and two signatures, so they alone are
metered: a token bucket per client address (in each worker process), and a
TAM-wide cap on outstanding challenges read from the shared database.

Several worker processes can serve one socket: :func:`bind_socket` binds it
once, :func:`run_workers` forks the workers and replaces any that die, and
each worker runs its own event loop with :func:`serve_socket`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

from aiohttp import web

from teep.errors import TeepError
from teep.protocol import legacy
from teep.protocol.registry import TEEP_MEDIA_TYPE
from teep.protocol.tam import TAM, SessionEvent, TAMResult
from teep.tam.database import DatabaseUnavailableError
from teep.weblog import quiet_bad_requests

__all__ = [
    "ClientLimiter",
    "HTTPConfig",
    "OutstandingGauge",
    "WorkersFailing",
    "bind_socket",
    "bound_port",
    "make_app",
    "run_app",
    "run_workers",
    "serve_socket",
    "stop_on_signals",
]

log = logging.getLogger("teep.tam.http")

# teep-over-http 4: exactly these headers on every response with content.
CONTENT_HEADERS: Mapping[str, str] = {
    "Content-Type": TEEP_MEDIA_TYPE,
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
    "Referrer-Policy": "no-referrer",
}


IDLE_TIMEOUT = 30.0
"""Default seconds a connection may stay open without a whole request head.
Longer than aiohttp's client keep-alive (15 s), so a Broker closes an idle
connection before the TAM does and never posts into one being closed."""


UNAVAILABLE_RETRY_S = 5.0
"""Retry-After, in seconds, of the 503 answering a request the database
could not serve (unreachable, or timed out)."""


@dataclass(frozen=True)
class HTTPConfig:
    """How the TAM's HTTP endpoint listens and what it tolerates."""

    host: str = "127.0.0.1"
    """Address to bind."""
    port: int = 8443
    """Port to bind (0 picks a free one)."""
    max_body: int = 256 * 1024
    """Largest request body accepted, in bytes."""
    read_timeout: float = 10.0
    """Seconds a client has to send a whole request body."""
    idle_timeout: float = IDLE_TIMEOUT
    """Seconds a connection may go without a whole request head (a new
    connection, or one kept alive between messages) before it is closed."""
    connect_rate: float = 5.0
    """Empty POSTs (new sessions) per second allowed to one client address;
    0 turns the per-client limit off (for a TAM behind a proxy, say)."""
    connect_burst: int = 20
    """Empty POSTs one client address may send at once before being metered."""
    max_outstanding_challenges: int = 100_000
    """Unanswered, unexpired challenges the whole TAM may hold; 0 for no cap."""


# metering


class ClientLimiter:
    """A token bucket per client address, sans I/O (the caller passes the time).

    Each address holds up to ``burst`` tokens and earns ``rate`` per second;
    each metered request spends one.  Full buckets are forgotten, so memory
    follows the number of clients active in the last ``burst / rate``
    seconds, and is capped at ``max_clients`` (the oldest are then dropped,
    which only ever favours a client).
    """

    def __init__(self, rate: float, burst: int, max_clients: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}

    def acquire(self, client: str, now: float) -> float:
        """Spend a token of ``client``: 0.0 if granted, else seconds to wait."""
        tokens, then = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens - 1.0, now)
        if len(self._buckets) > self.max_clients:
            self._forget(now)
        return 0.0

    def _forget(self, now: float) -> None:
        full = [
            c
            for c, (t, then) in self._buckets.items()
            if t + (now - then) * self.rate >= self.burst
        ]
        for client in full:
            del self._buckets[client]
        # Dicts keep insertion order and acquire() re-inserts: oldest first.
        while len(self._buckets) > self.max_clients:
            del self._buckets[next(iter(self._buckets))]


class OutstandingGauge:
    """The TAM-wide count of outstanding challenges, read at most every
    ``interval`` seconds and counted up locally in between."""

    def __init__(self, count: Callable[[], int], interval: float = 1.0) -> None:
        self._count = count
        self.interval = interval
        self._value = 0
        self._read_at = -math.inf

    async def value(self, now: float) -> int:
        """The estimate; refreshed from ``count`` (in a thread) when stale."""
        if now - self._read_at >= self.interval:
            self._value = await asyncio.to_thread(self._count)
            self._read_at = now
        return self._value

    def issued(self) -> None:
        """Note one challenge issued since the last read."""
        self._value += 1


# the application


@dataclass(frozen=True)
class _Meters:
    limiter: ClientLimiter | None
    gauge: OutstandingGauge | None
    clock: Callable[[], float]


def make_app(
    endpoints: Mapping[str, TAM],
    *,
    config: HTTPConfig = HTTPConfig(),
    on_event: Callable[[SessionEvent], None] | None = None,
    outstanding: Callable[[], int] | None = None,
    clock: Callable[[], float] = time.monotonic,
    offload: bool = True,
) -> web.Application:
    """Build the aiohttp application serving each TAM at its path.

    Args:
        endpoints: URL path -> protocol engine.
        config: limits (the address and port are used by the caller).
        on_event: called with every session event, in the event loop.
        outstanding: counts the TAM's outstanding challenges (a database
            query, run in a thread); None disables that cap.
        clock: monotonic seconds, for rate limiting.
        offload: run the engines in worker threads (for stores and
            Verifiers across the network) rather than in the event loop.
    """
    quiet_bad_requests()
    app = web.Application(client_max_size=config.max_body, middlewares=[_bare_errors])
    gauge = None
    if outstanding is not None and config.max_outstanding_challenges > 0:
        gauge = OutstandingGauge(outstanding)
    limiter = None
    if config.connect_rate > 0:
        limiter = ClientLimiter(config.connect_rate, max(1, config.connect_burst))
    meters = _Meters(limiter, gauge, clock)
    for path, tam in endpoints.items():
        app.router.add_post(path, _handler(tam, config, meters, on_event, offload))
    return app


@web.middleware
async def _bare_errors(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Framework refusals (404, 405) without aiohttp's text/plain body: a TAM
    answers only in TEEP or with a bare status."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return web.Response(status=exc.status, headers=allow)


def _handler(
    tam: TAM,
    config: HTTPConfig,
    meters: _Meters,
    on_event: Callable[[SessionEvent], None] | None,
    offload: bool,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def run(work: Callable[..., TAMResult], *args: bytes) -> TAMResult:
        if offload:
            return await asyncio.to_thread(work, *args)
        return work(*args)

    async def handle(request: web.Request) -> web.StreamResponse:
        if not _accepts(request.headers.get("Accept", "")):
            # legacy/VERSIONS.md 3.2: a refusal names an older dialect.
            text = legacy.refusal_for_media(request.headers.get("Accept", ""))
            return web.Response(status=406, text=text)
        declared = request.content_length
        if declared is not None and declared > config.max_body:
            # Refuse from the header alone, before reading any of the body.
            return _closing(web.Response(status=413))
        try:
            body = await asyncio.wait_for(request.read(), config.read_timeout)
        except web.HTTPRequestEntityTooLarge:
            return _closing(web.Response(status=413))
        except TimeoutError:
            log.warning("request body from %s not complete in time", request.remote)
            return _closing(web.Response(status=408))
        except ConnectionError:
            log.info("client %s closed the connection mid-request", request.remote)
            # Nobody is left to read it; aiohttp discards it quietly.
            return _closing(web.Response(status=400))
        if body and not _is_teep(request.headers.get("Content-Type", "")):
            content_type = request.headers.get("Content-Type", "")
            text = legacy.refusal_for_body(content_type, body)
            return web.Response(status=415, text=text)
        if not body:
            refused = await _metered(request, config, meters)
            if refused is not None:
                return refused
        try:
            if body:
                result = await run(tam.process, body)
            else:
                result = await run(tam.connect)
        except DatabaseUnavailableError as exc:
            return _unavailable(request, exc)
        except Exception:
            log.exception("TAM failed on a request from %s", request.remote)
            return web.Response(status=500)
        _emit(result, on_event)
        return _response(result)

    return handle


async def _metered(
    request: web.Request, config: HTTPConfig, meters: _Meters
) -> web.Response | None:
    """None if a new session may start, else the refusal to send."""
    now = meters.clock()
    if meters.limiter is not None:
        wait_s = meters.limiter.acquire(request.remote or "-", now)
        if wait_s > 0:
            return _retry_later(429, wait_s)
    if meters.gauge is not None:
        try:
            open_now = await meters.gauge.value(now)
        except DatabaseUnavailableError as exc:
            return _unavailable(request, exc)
        except Exception:
            log.exception("cannot count outstanding challenges")
            return web.Response(status=500)
        if open_now >= config.max_outstanding_challenges:
            log.warning("%d challenges outstanding: new sessions refused", open_now)
            return _retry_later(503, meters.gauge.interval)
        meters.gauge.issued()
    return None


def _unavailable(request: web.Request, exc: DatabaseUnavailableError) -> web.Response:
    # Foreseen, and the cause is in the message: no traceback, and the
    # client comes back once the database may be reachable again.
    log.error("database unavailable: %s answered 503: %s", request.remote, exc)
    return _retry_later(503, UNAVAILABLE_RETRY_S)


def _retry_later(status: int, seconds: float) -> web.Response:
    return web.Response(
        status=status, headers={"Retry-After": str(max(1, math.ceil(seconds)))}
    )


def _closing(response: web.Response) -> web.Response:
    # The rest of the body is not worth reading: drop the connection.
    response.force_close()
    return response


def _emit(result: TAMResult, on_event: Callable[[SessionEvent], None] | None) -> None:
    for event in result.events:
        device = event.device.hex()[:16] if event.device else "-"
        log.info("%s device=%s %s", event.kind, device, event.detail)
        if on_event is not None:
            on_event(event)


def _response(result: TAMResult) -> web.Response:
    if result.dropped:
        return web.Response(status=400, text=result.refusal)
    if result.reply is None:
        return web.Response(status=204)
    return web.Response(status=200, body=result.reply, headers=dict(CONTENT_HEADERS))


def _media(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _is_teep(content_type: str) -> bool:
    return _media(content_type) == TEEP_MEDIA_TYPE


def _accepts(accept: str) -> bool:
    if not accept:
        # A missing Accept means any type (RFC 9110 12.5.1).
        return True
    kinds = {_media(part) for part in accept.split(",")}
    return bool(kinds & {TEEP_MEDIA_TYPE, "application/*", "*/*"})


# serving

LINGER_S = 1.0
"""Seconds the server keeps reading (and discarding) a refused request's body
before closing, so the client sees the response rather than a reset."""


def _runner(app: web.Application, idle_timeout: float) -> web.AppRunner:
    # aiohttp's keep-alive timer also runs from the moment a connection is
    # accepted and is not reset by a request head trickling in, so it bounds
    # how long a client can hold a connection without sending a request
    # (its own default is an hour).
    return web.AppRunner(
        app,
        access_log=None,
        lingering_time=LINGER_S,
        keepalive_timeout=idle_timeout,
    )


async def run_app(app: web.Application, config: HTTPConfig) -> web.AppRunner:
    """Start serving; the caller keeps the runner and cleans it up."""
    runner = _runner(app, config.idle_timeout)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port a started runner listens on (useful with port 0)."""
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("the server is not listening")


def bind_socket(config: HTTPConfig, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket on the configured address, to share with workers.

    Raises:
        OSError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def serve_socket(
    app: web.Application,
    sock: socket.socket,
    stop: asyncio.Event,
    *,
    idle_timeout: float = IDLE_TIMEOUT,
) -> None:
    """Serve ``app`` on an already listening socket until ``stop`` is set."""
    runner = _runner(app, idle_timeout)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        await stop.wait()
    finally:
        await runner.cleanup()


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on SIGINT or SIGTERM, and when a forking parent dies."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    parent = multiprocessing.parent_process()
    if parent is not None and parent.sentinel is not None:
        # The sentinel becomes readable when the supervisor is gone, even if
        # it was killed: a worker never outlives it.
        loop.add_reader(parent.sentinel, stop.set)


class WorkersFailing(TeepError):
    """Workers die faster than the supervisor may replace them."""


def run_workers(
    count: int,
    worker: Callable[[], None],
    *,
    restart_limit: int = 10,
    restart_window: float = 60.0,
    grace: float = 10.0,
) -> None:
    """Fork ``count`` processes running ``worker`` and supervise them.

    A worker that dies is replaced, unless more than ``restart_limit``
    died within the last ``restart_window`` seconds: then every worker is
    stopped and :class:`WorkersFailing` raised (a worker that cannot start
    is not retried for ever, and a TAM that loses a worker now and then
    keeps serving however long it runs).  SIGINT or SIGTERM stops every
    worker (SIGTERM, then SIGKILL after ``grace`` seconds) and returns.
    Call it with no threads running: the workers are forked.
    """
    context = multiprocessing.get_context("fork")
    stopping: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda s, _f: stopping.append(s))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    workers: list[BaseProcess] = []
    try:
        workers = [_start(context, worker) for _ in range(count)]
        deaths: collections.deque[float] = collections.deque()
        while not stopping:
            wait([w.sentinel for w in workers], timeout=0.5)
            for index, process in enumerate(workers):
                if process.is_alive() or stopping:
                    continue
                log.warning("worker %d exited (%s)", process.pid, process.exitcode)
                now = time.monotonic()
                deaths.append(now)
                while deaths[0] < now - restart_window:
                    deaths.popleft()
                if len(deaths) > restart_limit:
                    raise WorkersFailing(
                        f"{len(deaths)} TAM workers exited within "
                        f"{restart_window:g} s; giving up"
                    )
                workers[index] = _start(context, worker)
    finally:
        _stop_all(workers, grace)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(
    context: multiprocessing.context.ForkContext, worker: Callable[[], None]
) -> BaseProcess:
    process = context.Process(target=_worker_main, args=(worker,), daemon=False)
    process.start()
    return process


def _worker_main(worker: Callable[[], None]) -> None:
    # The supervisor's Python handlers were inherited; restore the defaults
    # so the worker's own event loop decides.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    worker()


def _stop_all(workers: list[BaseProcess], grace: float) -> None:
    for process in workers:
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
