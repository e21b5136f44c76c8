"""TEEP over HTTP, server side (draft-ietf-teep-otrp-over-http section 6).

A thin aiohttp adapter: it checks the HTTP framing, hands the body to the
sans-I/O :class:`teep.protocol.tam.TAM` in a worker thread (the store is
synchronous), and maps the outcome to a response:

=============================  =============================================
request                        response
=============================  =============================================
not POST                       405
no acceptable Accept           406
body with another media type   415
body over the size limit       413
empty body                     200 + QueryRequest
message the TAM accepts        200 + next message, or 204 when done
message the TAM drops          400 (empty body)
TAM failure                    500
=============================  =============================================
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from teep.protocol.registry import TEEP_MEDIA_TYPE
from teep.protocol.tam import TAM, SessionEvent, TAMResult

__all__ = ["HTTPConfig", "make_app", "run_app"]

log = logging.getLogger("teep.tam.http")

# teep-over-http 4: exactly these headers on every response with content.
CONTENT_HEADERS: Mapping[str, str] = {
    "Content-Type": TEEP_MEDIA_TYPE,
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class HTTPConfig:
    """How the TAM's HTTP endpoint listens."""

    host: str = "127.0.0.1"
    """Address to bind."""
    port: int = 8443
    """Port to bind (0 picks a free one)."""
    max_body: int = 256 * 1024
    """Largest request body accepted, in bytes."""


def make_app(
    endpoints: Mapping[str, TAM],
    *,
    config: HTTPConfig = HTTPConfig(),
    on_event: Callable[[SessionEvent], None] | None = None,
) -> web.Application:
    """Build the aiohttp application serving each TAM at its path."""
    app = web.Application(client_max_size=config.max_body)
    for path, tam in endpoints.items():
        app.router.add_post(path, _handler(tam, config, on_event))
    return app


def _handler(
    tam: TAM, config: HTTPConfig, on_event: Callable[[SessionEvent], None] | None
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        if not _accepts(request.headers.get("Accept", "")):
            return web.Response(status=406)
        declared = request.content_length
        if declared is not None and declared > config.max_body:
            # Refuse from the header alone, before reading any of the body.
            return web.Response(status=413)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413)
        if body and not _is_teep(request.headers.get("Content-Type", "")):
            return web.Response(status=415)
        try:
            if body:
                result = await asyncio.to_thread(tam.process, body)
            else:
                result = await asyncio.to_thread(tam.connect)
        except Exception:
            log.exception("TAM failed on a request from %s", request.remote)
            return web.Response(status=500)
        _emit(result, on_event)
        return _response(result)

    return handle


def _emit(result: TAMResult, on_event: Callable[[SessionEvent], None] | None) -> None:
    for event in result.events:
        device = event.device.hex()[:16] if event.device else "-"
        log.info("%s device=%s %s", event.kind, device, event.detail)
        if on_event is not None:
            on_event(event)


def _response(result: TAMResult) -> web.Response:
    if result.dropped:
        return web.Response(status=400)
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


async def run_app(app: web.Application, config: HTTPConfig) -> web.AppRunner:
    """Start serving; the caller keeps the runner and cleans it up."""
    runner = web.AppRunner(app, access_log=None)
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
