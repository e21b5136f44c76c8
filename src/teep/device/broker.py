"""The TEEP Broker: TEEP over HTTP, client side (teep-over-http section 5).

The Broker lives in the normal world.  It opens a session with an empty
POST, relays each message between the TAM and the Agent, and ends the
session when either side has nothing more to say.  It never follows a
redirect, never stores cookies, and treats any HTTP or network failure as
the end of the session.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from teep.errors import TeepError
from teep.protocol.agent import Agent, AgentEvent
from teep.protocol.registry import TEEP_MEDIA_TYPE

__all__ = ["Broker", "BrokerConfig", "SessionOutcome", "TransportError"]

log = logging.getLogger("teep.broker")


class TransportError(TeepError):
    """The HTTP exchange with the TAM failed; the session was dropped."""


@dataclass(frozen=True)
class BrokerConfig:
    """How the Broker talks HTTP."""

    connect_timeout: float = 10.0
    """Seconds to wait for a connection."""
    read_timeout: float = 60.0
    """Seconds to wait for each read of the response: a TAM that sends
    nothing for this long is given up on.  It bounds the silence between
    bytes, not the whole exchange, so a large Update over a slow link still
    arrives."""
    exchange_timeout: float = 600.0
    """Seconds one request and its whole response may take: bounds a TAM
    that keeps a device waiting by sending a byte now and then (the largest
    body, ``max_body``, still arrives at about 110 kB/s)."""
    max_messages: int = 16
    """Most round trips in one session, a guard against a looping peer."""
    max_body: int = 64 * 1024 * 1024
    """Largest response body accepted."""


@dataclass
class SessionOutcome:
    """How a session went."""

    round_trips: int = 0
    """HTTP requests made."""
    events: list[AgentEvent] = field(default_factory=list)
    """What the Agent did."""


class Broker:
    """Relays one Agent's messages to a TAM over HTTP."""

    def __init__(
        self,
        agent: Agent,
        config: BrokerConfig = BrokerConfig(),
        on_message: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.agent = agent
        self.config = config
        self.on_message = on_message

    async def policy_check(self, tam_uri: str) -> SessionOutcome:
        """Run one session with the TAM at ``tam_uri`` (RequestPolicyCheck).

        :raises TransportError: on an HTTP error status or a network failure.
        """
        timeout = aiohttp.ClientTimeout(
            sock_connect=self.config.connect_timeout, sock_read=self.config.read_timeout
        )
        jar = aiohttp.DummyCookieJar()
        async with aiohttp.ClientSession(timeout=timeout, cookie_jar=jar) as http:
            return await self._session(http, tam_uri)

    async def _session(
        self, http: aiohttp.ClientSession, tam_uri: str
    ) -> SessionOutcome:
        outcome = SessionOutcome()
        outgoing = b""
        while outcome.round_trips < self.config.max_messages:
            outcome.round_trips += 1
            incoming = await self._post(http, tam_uri, outgoing)
            if not incoming:
                log.info("session with %s ended by the TAM", tam_uri)
                return outcome
            self._notify("received", incoming)
            result = self.agent.process(incoming, tam_uri)
            outcome.events.extend(result.events)
            if result.reply is None:
                log.info("session with %s ended by the Agent", tam_uri)
                return outcome
            self._notify("sending", result.reply)
            outgoing = result.reply
        raise TransportError(
            f"session with {tam_uri} exceeded {self.config.max_messages} messages"
        )

    async def _post(self, http: aiohttp.ClientSession, uri: str, body: bytes) -> bytes:
        headers = {"Accept": TEEP_MEDIA_TYPE}
        if body:
            headers["Content-Type"] = TEEP_MEDIA_TYPE
        deadline = asyncio.timeout(self.config.exchange_timeout)
        try:
            async with (
                deadline,
                http.post(
                    uri, data=body, headers=headers, allow_redirects=False
                ) as resp,
            ):
                if resp.status == 204:
                    return b""
                if resp.status != 200:
                    raise TransportError(
                        f"TAM answered HTTP {resp.status} {resp.reason}"
                    )
                kind = resp.headers.get("Content-Type", "").split(";")[0].strip()
                if kind != TEEP_MEDIA_TYPE:
                    raise TransportError(
                        f"TAM answered with media type {kind or 'none'}"
                    )
                data = await self._body(resp)
        except aiohttp.ConnectionTimeoutError:
            raise TransportError(
                f"cannot reach the TAM at {uri}: no connection within "
                f"{_seconds(self.config.connect_timeout)} s"
            ) from None
        except TimeoutError:
            if deadline.expired():
                raise TransportError(
                    f"the TAM at {uri} did not finish its answer within "
                    f"{_seconds(self.config.exchange_timeout)} s"
                ) from None
            # aiohttp's read timeout is a TimeoutError and a ClientError.
            raise TransportError(
                f"the TAM at {uri} did not answer within "
                f"{_seconds(self.config.read_timeout)} s"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ssl.SSLError):
                # An SSLError's errno is OpenSSL's, not the OS's (1 is no EPERM).
                raise TransportError(
                    f"TLS with the TAM at {uri} failed: {_tls_reason(exc.os_error)}"
                ) from None
            # aiohttp's own text adds "ssl:default" and the socket call; the
            # operating system's reason is what a user can act on.
            reason = _os_reason(exc.os_error)
            raise TransportError(f"cannot reach the TAM at {uri}: {reason}") from None
        except aiohttp.ServerDisconnectedError:
            raise TransportError(
                f"the TAM at {uri} closed the connection without answering"
            ) from None
        except aiohttp.ClientPayloadError:
            raise TransportError(
                f"the TAM at {uri} closed the connection before its answer was whole"
            ) from None
        except aiohttp.ClientResponseError as exc:
            # Raised by the response parser: the peer was reached, but what it
            # sent is not HTTP/1.1 (aiohttp's text spans lines and quotes it).
            what = exc.message.split(":", 1)[0].strip().lower() or "malformed"
            raise TransportError(
                f"the TAM at {uri} did not answer in HTTP/1.1 ({what})"
            ) from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"cannot reach the TAM at {uri}: {exc}") from None
        return data

    async def _body(self, resp: aiohttp.ClientResponse) -> bytes:
        """The whole response body, however many reads it takes."""
        limit = self.config.max_body
        if resp.content_length is not None and resp.content_length > limit:
            raise TransportError("the TAM's response is too large")
        data = bytearray()
        async for chunk in resp.content.iter_any():
            data += chunk
            if len(data) > limit:
                raise TransportError("the TAM's response is too large")
        return bytes(data)

    def _notify(self, direction: str, data: bytes) -> None:
        if self.on_message is not None:
            self.on_message(direction, data)


def _os_reason(error: OSError) -> str:
    """The operating system's words for a failed connection ("Connection
    refused", "Name or service not known")."""
    if isinstance(error, socket.gaierror) or not error.errno or error.errno < 0:
        return error.strerror or str(error)
    return os.strerror(error.errno)


def _tls_reason(error: ssl.SSLError) -> str:
    """OpenSSL's words for a failed TLS handshake, without its codes and
    source line ("certificate verify failed (self-signed certificate)")."""
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"certificate verify failed ({error.verify_message})"
    if error.reason == "WRONG_VERSION_NUMBER":
        return "wrong version number (is it serving plain HTTP?)"
    text = error.strerror if isinstance(error.strerror, str) else str(error)
    text = re.sub(r"^\[[^]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", text)
    if text:
        return text
    return (error.reason or "handshake failed").replace("_", " ").lower()


def _seconds(value: float) -> str:
    return f"{value:g}"
