"""A TAM's folder: its keys, its settings and (by default) its database.

```
TAM_DIR/
  tam.json            settings: database URL, listen address, endpoints
  keys/tam-p256.pem   TEEP signing key, ESP256 suite
  keys/tam-ed25519.pem TEEP signing key, Ed25519 suite
  keys/tam-attestation.pem  the TAM's own attestation key (its Evidence)
  tam.db              SQLite database (unless tam.json names another)
```
Devices need the two public keys (``keys/*.pub.pem``) as trust anchors.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from teep.errors import ConfigError, reason
from teep.keys import KeyKind, PrivateKey
from teep.protocol.registry import FINAL, PRE_RFC, Dialect, FreshnessMechanism
from teep.protocol.tam import TAM, Attester, TAMConfig, ordered_keys
from teep.tam.attester import tam_attester
from teep.tam.database import normalise_url
from teep.tam.service import TAMService
from teep.tam.store import TAMStore
from teep.verifier.tam_settings import TAMAttestationSettings, check_values

__all__ = ["TAMHome", "TAMSettings"]

SETTINGS = "tam.json"
KEY_FILES = {KeyKind.P256: "tam-p256.pem", KeyKind.ED25519: "tam-ed25519.pem"}
ATTESTATION_KEY_FILE = "tam-attestation.pem"


@dataclass
class TAMSettings:
    """What ``tam.json`` holds."""

    database: str = ""
    """SQLAlchemy URL; empty means ``sqlite:///TAM_DIR/tam.db``."""
    host: str = "127.0.0.1"
    """Address ``teep tam serve`` binds."""
    port: int = 8443
    """Port ``teep tam serve`` binds."""
    endpoints: dict[str, str] = field(
        default_factory=lambda: {"/tam": FINAL.name, "/tam/pre-rfc": PRE_RFC.name}
    )
    """URL path -> numbering spoken there."""
    freshness: str = "nonce"
    """How QueryRequests ask for fresh Evidence: ``nonce`` (a challenge) or
    ``timestamp`` (no challenge; the Evidence's ``iat`` must be recent)."""
    workers: int = 1
    """Processes ``teep tam serve`` runs, sharing the socket and database."""
    threads: bool | None = None
    """Whether a worker hands each message to a thread (True) or handles it
    in its event loop (False); None decides by what the TAM waits on:
    threads for PostgreSQL or a remote Verifier, the loop for SQLite and the
    built-in Verifier.  A PostgreSQL on the same machine is faster with
    False."""
    max_body: int = 256 * 1024
    """Largest request body accepted, in bytes."""
    read_timeout: float = 10.0
    """Seconds a client has to send a whole request body."""
    idle_timeout: float = 30.0
    """Seconds a connection may stay open without a whole request head."""
    connect_rate: float = 5.0
    """New sessions (empty POSTs) per second per client address, per worker;
    0 turns the limit off."""
    connect_burst: int = 20
    """New sessions one client address may open at once."""
    max_outstanding_challenges: int = 100_000
    """Unanswered challenges the TAM holds before refusing new sessions (0: no cap)."""
    attestation: dict[str, object] = field(default_factory=dict)
    """Verifier, trusted Verifier keys, encryption and policy; the keys are
    described in :mod:`teep.verifier.tam_settings`."""

    def __post_init__(self) -> None:
        for name in ("database", "host", "freshness"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a string")
        if not isinstance(self.endpoints, dict) or not all(
            isinstance(v, str) for v in self.endpoints.values()
        ):
            raise TypeError(
                "endpoints must be an object of URL paths to numberings"
                " (final or pre-rfc)"
            )
        if self.threads is not None and not isinstance(self.threads, bool):
            raise TypeError("threads must be true, false or null")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int):
            raise TypeError("workers must be a whole number")
        for name, low, whole in _NUMBERS:
            _check_number(name, getattr(self, name), low, whole)
        if self.attestation is None:
            self.attestation = {}
        if not isinstance(self.attestation, dict):
            raise TypeError("attestation must be an object")
        check_values(self.attestation)


_NUMBERS = (
    # name, least value (a float: more than it), whether it must be whole
    ("port", 0, True),
    ("max_body", 1, True),
    ("read_timeout", 0.0, False),
    ("idle_timeout", 0.0, False),
    ("connect_rate", 0, False),
    ("connect_burst", 1, True),
    ("max_outstanding_challenges", 0, True),
)


def _check_number(name: str, value: object, low: float, whole: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        raise TypeError(f"{name} must be {'a whole' if whole else 'a'} number")
    if isinstance(low, float):
        if not low < value < float("inf"):
            raise ValueError(f"{name} must be more than {low:g}, not {value}")
    elif value < low:
        raise ValueError(f"{name} must be at least {low}, not {value}")
    if name == "port" and value > 65535:
        raise ValueError(f"port must be at most 65535, not {value}")


class TAMHome:
    """An initialised TAM folder."""

    def __init__(self, path: Path, settings: TAMSettings) -> None:
        self.path = path
        self.settings = settings

    @classmethod
    def init(cls, path: str | Path, *, database: str = "", port: int = 8443) -> TAMHome:
        """Create the folder, keys and settings, and migrate the database.

        The database is opened (and migrated) first, so a URL that names no
        usable database fails before any key or ``tam.json`` is written.  On
        any failure, what this call created is removed again; files that
        were there before are left alone.

        :raises ConfigError: if the folder already holds a TAM.
        """
        folder = Path(path)
        if (folder / SETTINGS).exists():
            raise ConfigError(f"{folder} already holds a TAM")
        _check_kept(database)
        settings = TAMSettings(database=database, port=port)
        home = cls(folder, settings)
        watched = [folder, folder / "keys", *_sqlite_files(home.database_url)]
        existed = {p for p in watched if p.exists() or p.is_symlink()}
        written: list[Path] = []
        try:
            folder.mkdir(parents=True, exist_ok=True)
            home.open_store().close()
            (folder / "keys").mkdir(exist_ok=True)
            for kind, name in KEY_FILES.items():
                key = PrivateKey.generate(kind)
                pub = name.replace(".pem", ".pub.pem")
                written += _new(folder / "keys" / name, folder / "keys" / pub)
                key.save(folder / "keys" / name)
                (folder / "keys" / pub).write_bytes(key.public.to_pem())
            # The TAM's attestation key, apart from its TEEP keys (teep-protocol
            # 5.1: the TAM's Evidence is not signed with a TEEP signing key).
            attestation = PrivateKey.generate(KeyKind.P256)
            public = ATTESTATION_KEY_FILE.replace(".pem", ".pub.pem")
            written += _new(
                folder / "keys" / ATTESTATION_KEY_FILE, folder / "keys" / public
            )
            attestation.save(folder / "keys" / ATTESTATION_KEY_FILE)
            (folder / "keys" / public).write_bytes(attestation.public.to_pem())
            written += _new(folder / SETTINGS)
            (folder / SETTINGS).write_text(
                json.dumps(asdict(settings), indent=2) + "\n"
            )
        except BaseException:
            _undo(written, [p for p in watched if p not in existed])
            raise
        return home

    @classmethod
    def open(cls, path: str | Path) -> TAMHome:
        """Open an initialised TAM folder.

        :raises ConfigError: if there is none, or its settings are unreadable.
        """
        folder = Path(path)
        file = folder / SETTINGS
        if not file.exists():
            raise ConfigError(f"no TAM in {folder} (run 'teep tam init' first)")
        try:
            raw = json.loads(file.read_text())
            if not isinstance(raw, dict):
                raise TypeError("it must hold a JSON object")
            unknown = sorted(set(raw) - {f.name for f in fields(TAMSettings)})
            if unknown:
                raise TypeError(f"unknown setting {unknown[0]!r}")
            settings = TAMSettings(**raw)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot read {file}: {reason(exc)}") from None
        home = cls(folder, settings)
        home.attestation_settings()
        return home

    @property
    def database_url(self) -> str:
        """The database URL in effect."""
        return self.settings.database or f"sqlite:///{(self.path / 'tam.db').resolve()}"

    def keys(self) -> tuple[PrivateKey, ...]:
        """The TAM's TEEP signing keys, P-256 first."""
        found = [
            PrivateKey.load(self.path / "keys" / name) for name in KEY_FILES.values()
        ]
        return ordered_keys(found)

    def attester(self) -> Attester | None:
        """The TAM's own attestation (``keys/tam-attestation.pem``), if any."""
        path = self.path / "keys" / ATTESTATION_KEY_FILE
        if not path.exists():
            return None
        return tam_attester(PrivateKey.load(path))

    def service(self, store: TAMStore) -> TAMService:
        """The TAM host over ``store``, configured from ``tam.json``: the
        Verifier, trusted Verifier keys, decryption key and status policy.

        :raises ConfigError: if the attestation settings are invalid.
        """
        service = TAMService(store)
        self.attestation_settings().apply(service)
        return service

    def attestation_settings(self) -> TAMAttestationSettings:
        """The ``attestation`` settings, checked.

        :raises ConfigError: if they are malformed.
        """
        return TAMAttestationSettings.load(self.path, self.settings.attestation)

    def public_key_files(self) -> list[Path]:
        """The public key files devices must trust."""
        return [
            self.path / "keys" / n.replace(".pem", ".pub.pem")
            for n in KEY_FILES.values()
        ]

    def open_store(self, url: str | None = None) -> TAMStore:
        """Open (and migrate) the database."""
        _check_kept(url or self.database_url)
        return TAMStore.open(url or self.database_url)

    def endpoints(self, service: TAMService) -> dict[str, TAM]:
        """One protocol engine per configured URL path."""
        keys = self.keys()
        attestation = self.attestation_settings()
        result = {}
        for path, numbering in self.settings.endpoints.items():
            dialect = _dialect(numbering)
            config = TAMConfig(
                keys=keys,
                dialect=dialect,
                challenge_ttl=service.challenge_ttl,
                token_ttl=service.token_ttl,
                freshness=_freshness(self.settings.freshness),
                attester=self.attester(),
                query_extensions=attestation.query_extensions(),
                attestation_model=attestation.model(),
            )
            result[path] = TAM(config, service)
        return result


def _check_kept(url: str) -> None:
    """Refuse a database that would keep nothing: an in-memory SQLite
    database lives and dies with one process, so what one command adds the
    next would not see.

    :raises ConfigError: if ``url`` names an in-memory database.
    """
    if not url or "://" not in url:
        return
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (
        None,
        "",
        ":memory:",
    ):
        raise ConfigError(
            f"{url!r} is an in-memory database, which keeps nothing between "
            "commands: give a file (sqlite:///PATH) or a PostgreSQL URL"
        )


def _sqlite_files(url: str) -> list[Path]:
    """The files SQLite may create for ``url`` (none for other databases)."""
    try:
        parsed = normalise_url(url)
    except ConfigError:
        return []
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or name in (None, "", ":memory:"):
        return []
    base = Path(name)
    return [base, *(Path(f"{base}{end}") for end in ("-wal", "-shm", "-journal"))]


def _new(*paths: Path) -> list[Path]:
    """Those of ``paths`` that do not exist yet (a failed init may remove them)."""
    return [p for p in paths if not (p.exists() or p.is_symlink())]


def _undo(files: list[Path], created: list[Path]) -> None:
    """Remove a failed init's files, then what it created, deepest first.

    A folder is removed only if it is empty by then.
    """
    for path in [*files, *reversed(created)]:
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)


def _freshness(name: str) -> FreshnessMechanism:
    try:
        return FreshnessMechanism[name.upper()]
    except KeyError:
        raise ConfigError(
            f"unknown freshness {name!r} in tam.json (use nonce or timestamp)"
        ) from None


def _dialect(name: str) -> Dialect:
    if name == FINAL.name:
        return FINAL
    if name == PRE_RFC.name:
        return PRE_RFC
    raise ConfigError(f"unknown numbering {name!r} in tam.json (use final or pre-rfc)")
