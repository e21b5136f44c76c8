"""What every ``teep`` subcommand shares: consoles, failure, tables, input.

A command reports a problem by raising :class:`CLIError` (through
:func:`fail`) or by letting any :class:`~teep.errors.TeepError` escape; the
group in :mod:`teep.cli.main` turns either into one line on stderr and a
non-zero exit status.  Commands never print tracebacks themselves.
"""

from __future__ import annotations

import binascii
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table

from teep.errors import TeepError

__all__ = [
    "CLIError",
    "console",
    "echo",
    "err_console",
    "fail",
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
    are never folded, so a 64-digit kid survives a pipe or a file.
    """
    cells = [[str(cell) for cell in row] for row in rows]
    if not console.is_terminal:
        _plain_table([str(c) for c in columns], cells, title)
        return
    table = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in cells:
        table.add_row(*row)
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


def read_input(path: str) -> bytes:
    """Read a whole file, or standard input when ``path`` is ``-``.

    :raises CLIError: if the file cannot be read.
    """
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")


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


def echo(text: str = "") -> None:
    """Print plain text to stdout, with no markup processing."""
    click.echo(text)
