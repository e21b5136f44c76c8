"""What every ``teep`` subcommand shares: consoles, failure, tables, input.

A command reports a problem by raising :class:`CLIError` (through
:func:`fail`) or by letting any :class:`~teep.errors.TeepError` escape; the
group in :mod:`teep.cli.main` turns either into one line on stderr and a
non-zero exit status.  Commands never print tracebacks themselves.
"""

from __future__ import annotations

import binascii
import os
import re
import socket
import sys
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO, NoReturn

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from teep.errors import TeepError

__all__ = [
    "CLIError",
    "cannot_listen",
    "check_http_uri",
    "console",
    "echo",
    "err_console",
    "fail",
    "full_option",
    "http_uri_problem",
    "print_table",
    "read_input",
    "write_output",
]

#: Rich output to stdout; it follows ``sys.stdout`` at write time, so tests
#: that swap the stream still capture it.
console = Console(highlight=False, soft_wrap=True)
#: Rich output to stderr.
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class CLIError(TeepError):
    """A command cannot go on; the message is shown to the user as is."""


def fail(message: str) -> NoReturn:
    """Stop the command with a one-line error.

    :raises CLIError: always.
    """
    raise CLIError(message)


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None
) -> None:
    """Print rows as a table with a header.

    On a terminal it is a rich table; otherwise plain aligned columns that
    are never folded, so a 64-digit kid survives a pipe or a file.  Cells
    are plain text: brackets in them (a device's err-msg) are not markup.
    """
    cells = [[str(cell) for cell in row] for row in rows]
    if not console.is_terminal:
        _plain_table([str(c) for c in columns], cells, title)
        return
    table = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


def _plain_table(columns: list[str], rows: list[list[str]], title: str | None) -> None:
    widths = [len(c) for c in columns]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=False)]
    if title:
        click.echo(title)
    for row in [columns, *rows]:
        padded = (cell.ljust(w) for cell, w in zip(row, widths, strict=False))
        click.echo("  ".join(padded).rstrip())


MAX_INPUT = 512 * 1024 * 1024
"""The largest file or standard input a command reads whole (bytes)."""

_CHUNK = 1024 * 1024

SHOWN_BYTES = 256
"""How many bytes of a long byte string (a payload) diagnostic output shows
unless asked for all of them (``--full``)."""

full_option = click.option(
    "--full",
    is_flag=True,
    help=f"Show every byte of long byte strings (otherwise the first {SHOWN_BYTES}).",
)


def read_input(path: str, limit: int | None = None) -> bytes:
    """Read a whole file, or standard input when ``path`` is ``-``, of at
    most ``limit`` bytes (default :data:`MAX_INPUT`).

    The input is read a chunk at a time, so an endless one (``/dev/zero``,
    a pipe that never closes) stops at the limit, and Ctrl-C interrupts it.

    :raises CLIError: if the file cannot be read or is larger than ``limit``.
    """
    name = "standard input" if path == "-" else path
    limit = MAX_INPUT if limit is None else limit
    try:
        if path == "-":
            return _read_limited(sys.stdin.buffer, name, limit)
        with open(path, "rb") as stream:
            return _read_limited(stream, name, limit)
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")


def _read_limited(stream: BinaryIO, name: str, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while chunk := stream.read(min(_CHUNK, limit + 1 - size)):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            fail(f"{name} is larger than {limit // (1024 * 1024)} MiB: not read")
    return b"".join(parts)


_HEX = re.compile(rb"(?:0x)?[0-9a-fA-F\s]+")
_TEXT = re.compile(rb"[\x20-\x7e\t\r\n]*")
_COMMENT = re.compile(rb"(?:^|(?<=\s))#[^\n]*", re.MULTILINE)
_DIAG_BYTES = re.compile(rb"h'([0-9a-fA-F\s]*)'")


def _strip_comments(data: bytes) -> bytes:
    """Drop ``#`` comments (from a ``#`` that starts a line or follows
    white space, to the end of the line) from text input.

    Binary input is returned unchanged: only input that is entirely
    printable ASCII text can be commented hex.
    """
    if b"#" not in data or not _TEXT.fullmatch(data):
        return data
    return _COMMENT.sub(b"", data)


def parse_input(data: bytes, *, force_hex: bool = False) -> bytes:
    """Turn the input into CBOR bytes: hex text is detected or forced.

    Hex text may span lines, start with ``0x``, carry ``#`` comments or
    be written as a diagnostic-notation byte string (``h'...'``).

    :raises CLIError: if the input is empty, or is (or must be) hex and
        does not decode as such.
    """
    if not data.strip():
        fail("the input is empty")
    text = _strip_comments(data).strip()
    if not text:
        fail("the input holds only comments")
    quoted = _DIAG_BYTES.fullmatch(text)
    if quoted is not None:
        text = quoted.group(1)
    looks_hex = bool(text) and _HEX.fullmatch(text) is not None
    if not (force_hex or looks_hex):
        return data
    text = re.sub(rb"\s+", b"", text)
    text = text[2:] if text[:2].lower() == b"0x" else text
    if not force_hex and len(text) % 2:
        fail(f"the input looks like hex but has an odd number of digits ({len(text)})")
    try:
        return binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        fail("the input is not valid hex (odd length or a non-hex character)")


def write_output(path: str | Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to a file (``-`` is standard output).

    :raises CLIError: if the file cannot be written.
    """
    if str(path) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    target = Path(path)
    try:
        target.write_bytes(data)
        target.chmod(mode)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}")


def http_uri_problem(uri: str) -> str | None:
    """What is wrong with ``uri`` as a TAM or Verifier address, or None.

    It must be ``http://`` or ``https://`` with a host, and a port, if
    given, in 1..65535; no spaces or control characters.
    """
    if any(c.isspace() or not c.isprintable() for c in uri):
        return "must not contain spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:
        return "is not a valid URI"
    try:
        port = parts.port
    except ValueError:
        return "has an invalid port (use 1 to 65535)"
    if parts.scheme.lower() not in ("http", "https"):
        return "must be an http:// or https:// URI"
    if not parts.hostname:
        return "has no host"
    if port == 0:
        return "has an invalid port (use 1 to 65535)"
    return None


def check_http_uri(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    """A click callback: ``value`` unless :func:`http_uri_problem` finds
    fault with it, which is then a usage error naming the parameter."""
    problem = None if value is None else http_uri_problem(value)
    if problem is not None:
        raise click.BadParameter(f"{value!r} {problem}", ctx, param)
    return value


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    """The one-line reason a server cannot listen on ``host``:``port``."""
    where = f"[{host}]" if ":" in host else host
    if exc.errno and exc.errno > 0 and not isinstance(exc, socket.gaierror):
        # asyncio rewrites the message ("error while attempting to bind on
        # address ..."); the errno says it plainly.
        reason = os.strerror(exc.errno)
    else:
        reason = exc.strerror or str(exc)
    return f"cannot listen on {where}:{port}: {reason}"


def echo(text: str = "") -> None:
    """Print plain text to stdout, with no markup processing."""
    click.echo(text)
