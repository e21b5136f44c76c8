"""The Verifier service over HTTP (aiohttp), in the Veraison API's shape.

==========================================  =================================
request                                     response
==========================================  =================================
POST /challenge-response/v1/newSession      201, relative ``Location:
  ?nonce=B64URL | ?nonceSize=N              session/ID``, session JSON
POST /challenge-response/v1/session/ID      200, session JSON with the EAR
  Content-Type: Evidence media type         (415 + ``Accept`` if the type is
                                            not appraised)
GET /challenge-response/v1/session/ID       200, session JSON
DELETE /challenge-response/v1/session/ID    204
GET /.well-known/veraison/verification      discovery JSON (EAR key as JWK)
POST /teep/v1/appraise?nonce=B64URL         200, the EAR itself
  Content-Type: Evidence media type         (``application/eat+cwt; eat_profile=
                                            ...ear...``): background check
==========================================  =================================

The challenge-response calls want ``Accept:
application/vnd.veraison.challenge-response-session+json`` (406 otherwise).
Errors are ``application/problem+json`` (RFC 7807).  A request body over
64 KiB is 413 and the connection closed (from ``Content-Length`` alone, before
any of the body is read, when the header declares it); a body not complete
within ``read_timeout`` seconds is 408 and the connection closed; a client
that closes its connection mid-body is one log line.  One deviation from
Veraison: the session's ``result`` is the EAR as a CWT in unpadded base64url,
not a JWT, because teep's EARs are CBOR.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from teep import __version__
from teep.attestation.ear import EAR_MEDIA_TYPE
from teep.keys import KeyKind, PublicKey
from teep.verifier.errors import BadRequest, VerifierServiceError
from teep.verifier.service import (
    MAX_NONCE,
    MIN_NONCE,
    ChallengeSession,
    VerifierService,
)
from teep.weblog import quiet_bad_requests

__all__ = [
    "API_PREFIX",
    "APPRAISE_PATH",
    "DISCOVERY_MEDIA_TYPE",
    "IDLE_TIMEOUT",
    "SESSION_MEDIA_TYPE",
    "b64url",
    "make_app",
    "unb64url",
]

log = logging.getLogger("teep.verifier.http")

API_PREFIX = "/challenge-response/v1"
APPRAISE_PATH = "/teep/v1/appraise"
DISCOVERY_PATH = "/.well-known/veraison/verification"
SESSION_MEDIA_TYPE = "application/vnd.veraison.challenge-response-session+json"
DISCOVERY_MEDIA_TYPE = "application/vnd.veraison.discovery+json"
PROBLEM_MEDIA_TYPE = "application/problem+json"
MAX_BODY = 64 * 1024
READ_TIMEOUT = 10.0
"""Seconds a client has to send a whole request body, by default."""
IDLE_TIMEOUT = 30.0
"""Seconds a connection may stay open without a whole request head (given to
aiohttp as its keep-alive timeout, which also runs before the first request)."""

Clock = Callable[[], float]


def b64url(data: bytes) -> str:
    """Unpadded base64url, as the Veraison API writes nonces."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def unb64url(text: str) -> bytes:
    """Decode base64url with or without padding.

    :raises ValueError: if it is not base64url (a character outside the
        alphabet, or a length no encoding has).
    """
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    bare = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


def make_app(
    service: VerifierService,
    *,
    clock: Clock = time.time,
    read_timeout: float = READ_TIMEOUT,
) -> web.Application:
    """The aiohttp application serving ``service``.

    Args:
        service: the Verifier service.
        clock: wall-clock seconds, for nonces' and sessions' expiry.
        read_timeout: seconds a client has to send a whole request body.
    """
    quiet_bad_requests()
    handlers = _Handlers(service, clock, read_timeout)
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_problems(service)])
    app.router.add_post(f"{API_PREFIX}/newSession", handlers.new_session)
    session_path = f"{API_PREFIX}/session/{{sid}}"
    app.router.add_get(session_path, handlers.get_session)
    app.router.add_post(session_path, handlers.submit)
    app.router.add_delete(session_path, handlers.delete)
    app.router.add_get(DISCOVERY_PATH, handlers.discovery)
    app.router.add_post(APPRAISE_PATH, handlers.appraise)
    return app


def _problems(service: VerifierService) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except VerifierServiceError as exc:
            headers = {}
            if exc.http_status == 415:
                headers["Accept"] = ", ".join(service.media_types)
            return _problem(exc.http_status, exc.title, str(exc), headers)
        except web.HTTPRequestEntityTooLarge:
            detail = f"over {MAX_BODY} bytes"
            return _closing(_problem(413, "Payload Too Large", detail))
        except _BodyTimeout as exc:
            log.warning("request body from %s not complete in time", request.remote)
            detail = f"the request body was not complete within {exc.seconds:g} s"
            return _closing(_problem(408, "Request Timeout", detail))
        except _ClientGone:
            log.info("client %s closed the connection mid-request", request.remote)
            # Nobody is left to read it; aiohttp discards it quietly.
            return _closing(web.Response(status=400))

    return middleware


class _BodyTimeout(Exception):
    """The request body was not complete in time."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class _ClientGone(Exception):
    """The client closed its connection before its request body was complete."""


async def _read_body(request: web.Request, timeout: float) -> bytes:
    """The whole request body, within ``timeout`` seconds.

    A body declared (``Content-Length``) over :data:`MAX_BODY` is refused
    from the header alone, before any of it is read.

    :raises web.HTTPRequestEntityTooLarge: if the body is over the limit.
    :raises _BodyTimeout: if it is not complete in time.
    :raises _ClientGone: if the connection is lost first.
    """
    declared = request.content_length
    if declared is not None and declared > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=declared)
    try:
        return await asyncio.wait_for(request.read(), timeout)
    except TimeoutError:
        raise _BodyTimeout(timeout) from None
    except ConnectionError:
        raise _ClientGone from None


def _closing(response: web.Response) -> web.Response:
    # The rest of the body is not worth reading: drop the connection.
    response.force_close()
    return response


def _problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


class _Handlers:
    def __init__(
        self, service: VerifierService, clock: Clock, read_timeout: float
    ) -> None:
        self.service = service
        self.clock = clock
        self.read_timeout = read_timeout

    async def new_session(self, request: web.Request) -> web.Response:
        _want(request, SESSION_MEDIA_TYPE)
        nonce, size = _nonce_params(request)
        session = self.service.new_session(
            now=self.clock(), nonce=nonce, nonce_size=size
        )
        # Veraison: the Location is relative to the request URL.
        headers = {"Location": f"session/{session.id}"}
        return _session_response(session, self.service, 201, headers)

    async def get_session(self, request: web.Request) -> web.Response:
        _want(request, SESSION_MEDIA_TYPE)
        session = self.service.get(request.match_info["sid"], now=self.clock())
        return _session_response(session, self.service)

    async def submit(self, request: web.Request) -> web.Response:
        _want(request, SESSION_MEDIA_TYPE)
        body = await _read_body(request, self.read_timeout)
        media_type = request.headers.get("Content-Type", "")
        session = self.service.submit(
            request.match_info["sid"], media_type, body, now=self.clock()
        )
        return _session_response(session, self.service)

    async def delete(self, request: web.Request) -> web.Response:
        self.service.delete(request.match_info["sid"], now=self.clock())
        return web.Response(status=204)

    async def appraise(self, request: web.Request) -> web.Response:
        nonce, _ = _nonce_params(request)
        body = await _read_body(request, self.read_timeout)
        media_type = request.headers.get("Content-Type", "")
        _, ear = self.service.appraise(body, media_type, nonce=nonce, now=self.clock())
        return web.Response(
            body=ear, headers={"Content-Type": EAR_MEDIA_TYPE}, status=200
        )

    async def discovery(self, request: web.Request) -> web.Response:
        body = {
            "ear-verification-key": _jwk(self.service.key.public),
            "media-types": list(self.service.media_types),
            "attestation-schemes": ["TEEP-EAT"],
            "version": __version__,
            "service-state": "READY",
            "api-endpoints": {
                "newChallengeResponseSession": f"{API_PREFIX}/newSession",
                "teepAppraise": APPRAISE_PATH,
            },
        }
        return web.Response(
            text=json.dumps(body),
            content_type=DISCOVERY_MEDIA_TYPE,
            headers={"Cache-Control": "max-age=60"},
        )


def _want(request: web.Request, media_type: str) -> None:
    accept = request.headers.get("Accept", "*/*")
    offered = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    if not offered & {media_type, "*/*", "application/*"}:
        raise web.HTTPNotAcceptable(text=f"this resource is {media_type}")


_SIZE = re.compile(r"0|[1-9][0-9]*")
"""A size in a query: ASCII decimal digits, no sign, no leading zero."""


def _nonce_params(request: web.Request) -> tuple[bytes | None, int | None]:
    nonce = size = None
    text = _single(request, "nonce")
    if text is not None:
        try:
            nonce = unb64url(text)
        except ValueError:
            raise BadRequest("nonce is not base64url") from None
    text = _single(request, "nonceSize")
    if text is not None:
        # int() would also take signs, white space, underscores and
        # non-ASCII digits.
        if not _SIZE.fullmatch(text):
            raise BadRequest("nonceSize is not a number of bytes in plain decimal")
        # Checked here by length first: int() refuses thousands of digits.
        if len(text) > len(str(MAX_NONCE)) or not MIN_NONCE <= int(text) <= MAX_NONCE:
            raise BadRequest(f"nonceSize is {MIN_NONCE} to {MAX_NONCE} bytes")
        size = int(text)
    return nonce, size


def _single(request: web.Request, name: str) -> str | None:
    """The one value of query parameter ``name``, or None if it is absent.

    :raises BadRequest: if it is given more than once.
    """
    values = request.rel_url.query.getall(name, [])
    if len(values) > 1:
        raise BadRequest(f"{name} is given more than once")
    return values[0] if values else None


def _session_response(
    session: ChallengeSession,
    service: VerifierService,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(_session_json(session, service)),
        content_type=SESSION_MEDIA_TYPE,
        headers=headers,
    )


def _session_json(session: ChallengeSession, service: VerifierService) -> Any:
    expiry = datetime.datetime.fromtimestamp(session.expiry, datetime.UTC)
    body: dict[str, Any] = {
        "nonce": b64url(session.nonce),
        "expiry": expiry.isoformat().replace("+00:00", "Z"),
        "accept": list(service.media_types),
        "status": session.status.value,
    }
    if session.evidence is not None:
        body["evidence"] = {
            "type": session.evidence_type,
            "value": base64.b64encode(session.evidence).decode(),
        }
    if session.result is not None:
        body["result"] = b64url(session.result)
    return body


def _jwk(key: PublicKey) -> dict[str, str]:
    cose = key.cose_key()
    if key.kind is KeyKind.P256:
        return {
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "x": b64url(cose[-2]),
            "y": b64url(cose[-3]),
            "kid": b64url(key.kid),
        }
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(cose[-2]),
        "kid": b64url(key.kid),
    }
