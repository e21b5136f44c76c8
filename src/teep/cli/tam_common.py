"""What the ``teep tam`` commands share: the TAM folder and database
options, and how an operator names a device the TAM has met."""

from __future__ import annotations

import string
import time
from pathlib import Path

import click

from teep.cli.common import fail
from teep.tam.database import AmbiguousMatchError
from teep.tam.home import TAMHome
from teep.tam.models import DeviceRecord
from teep.tam.store import TAMStore

DEFAULT_DIR = "teep-tam"

dir_option = click.option(
    "--dir",
    "folder",
    default=DEFAULT_DIR,
    show_default=True,
    envvar="TEEP_TAM_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="The TAM's folder (keys, settings, SQLite database).",
)
db_option = click.option(
    "--database",
    default=None,
    help="Database URL (overrides tam.json), e.g. postgresql://...",
)

KID_BYTES = 32
"""A kid is a SHA-256 thumbprint."""
UEID_BYTES = range(7, 34)
"""The lengths a UEID may have (EAT: 7 to 33 bytes)."""
UEID_FORM = "ueid:"
"""How an operator names, by its ueid, a device the TAM has not met yet."""


def open_store(folder: Path, database: str | None = None) -> TAMStore:
    """The store of the TAM in ``folder`` (or at ``database``)."""
    return TAMHome.open(folder).open_store(database)


def known_device(store: TAMStore, text: str) -> DeviceRecord | None:
    """The device ``text`` names (kid, kid prefix, ueid or label), if the
    TAM has met it; a name that fits several devices is a failure."""
    try:
        return store.find_device(text)
    except AmbiguousMatchError as exc:
        fail(str(exc))


def find_device(store: TAMStore, text: str) -> DeviceRecord:
    """The device an operator named, or a one-line failure."""
    record = known_device(store, text)
    if record is None:
        short_hex = 0 < len(text) < 8 and all(c in string.hexdigits for c in text)
        hint = " (a kid prefix needs at least 8 hex digits)" if short_hex else ""
        fail(f"no device matches {text!r}{hint}")
    return record


def ago(at: float | None) -> str:
    """A moment as a table prints it (local time), or ``-``."""
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
