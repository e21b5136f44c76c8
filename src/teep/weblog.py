"""Logging of teep's HTTP servers (the TAM and the Verifier).

aiohttp answers a request it cannot parse (a bad request line, a header
over its limit, a bad chunk) with 400 and logs it at ERROR with a full
traceback.  Any peer can send those, so each becomes one line with the
peer's address and the reason, at WARNING at most (aiohttp already logs a
connection's first request with a bad method at DEBUG: port scans, TLS
sent to a plain port); internal errors stay as they are.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

from teep.text import escape_controls

__all__ = ["BadRequestFilter", "quiet_bad_requests"]

SERVER_LOGGER = "aiohttp.server"
"""The logger aiohttp's request handler writes to."""

REASON_LIMIT = 200
"""Characters of the parser's reason kept (it may quote the peer's bytes)."""


class BadRequestFilter(logging.Filter):
    """Turns a record about a request aiohttp could not parse into one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        peer = args[0] if args else None
        # The parser's message may span lines (a caret under the bad byte).
        reason = " ".join(str(exc.message).split()) or type(exc).__name__
        record.msg = "bad HTTP request from %s: %s"
        record.args = (peer or "-", escape_controls(reason, REASON_LIMIT))
        record.exc_info = None
        record.exc_text = None
        if record.levelno > logging.WARNING:
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
        # The logger let the record through at its old level; check the new.
        return logging.getLogger(record.name).isEnabledFor(record.levelno)


def quiet_bad_requests() -> None:
    """Install :class:`BadRequestFilter` on aiohttp's server logger, once."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, BadRequestFilter) for f in logger.filters):
        logger.addFilter(BadRequestFilter())
