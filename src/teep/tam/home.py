"""A TAM's folder: its keys, its settings and (by default) its database.

```
TAM_DIR/
  tam.json            settings: database URL, listen address, endpoints
  keys/tam-p256.pem   TEEP signing key, ESP256 suite
  keys/tam-ed25519.pem TEEP signing key, Ed25519 suite
  tam.db              SQLite database (unless tam.json names another)
```
Devices need the two public keys (``keys/*.pub.pem``) as trust anchors.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from teep.errors import ConfigError
from teep.keys import KeyKind, PrivateKey
from teep.protocol.registry import FINAL, PRE_RFC, Dialect
from teep.protocol.tam import TAM, TAMConfig, ordered_keys
from teep.tam.service import TAMService
from teep.tam.store import TAMStore

__all__ = ["TAMHome", "TAMSettings"]

SETTINGS = "tam.json"
KEY_FILES = {KeyKind.P256: "tam-p256.pem", KeyKind.ED25519: "tam-ed25519.pem"}


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


class TAMHome:
    """An initialised TAM folder."""

    def __init__(self, path: Path, settings: TAMSettings) -> None:
        self.path = path
        self.settings = settings

    @classmethod
    def init(cls, path: str | Path, *, database: str = "", port: int = 8443) -> TAMHome:
        """Create the folder, keys and settings, and migrate the database.

        :raises ConfigError: if the folder already holds a TAM.
        """
        folder = Path(path)
        if (folder / SETTINGS).exists():
            raise ConfigError(f"{folder} already holds a TAM")
        (folder / "keys").mkdir(parents=True, exist_ok=True)
        for kind, name in KEY_FILES.items():
            key = PrivateKey.generate(kind)
            key.save(folder / "keys" / name)
            (folder / "keys" / name.replace(".pem", ".pub.pem")).write_bytes(
                key.public.to_pem()
            )
        settings = TAMSettings(database=database, port=port)
        (folder / SETTINGS).write_text(json.dumps(asdict(settings), indent=2) + "\n")
        home = cls(folder, settings)
        home.open_store().close()
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
            settings = TAMSettings(**raw)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot read {file}: {exc}") from None
        return cls(folder, settings)

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

    def public_key_files(self) -> list[Path]:
        """The public key files devices must trust."""
        return [
            self.path / "keys" / n.replace(".pem", ".pub.pem")
            for n in KEY_FILES.values()
        ]

    def open_store(self, url: str | None = None) -> TAMStore:
        """Open (and migrate) the database."""
        return TAMStore.open(url or self.database_url)

    def endpoints(self, service: TAMService) -> dict[str, TAM]:
        """One protocol engine per configured URL path."""
        keys = self.keys()
        result = {}
        for path, numbering in self.settings.endpoints.items():
            dialect = _dialect(numbering)
            config = TAMConfig(
                keys=keys,
                dialect=dialect,
                challenge_ttl=service.challenge_ttl,
                token_ttl=service.token_ttl,
            )
            result[path] = TAM(config, service)
        return result


def _dialect(name: str) -> Dialect:
    if name == FINAL.name:
        return FINAL
    if name == PRE_RFC.name:
        return PRE_RFC
    raise ConfigError(f"unknown numbering {name!r} in tam.json (use final or pre-rfc)")
