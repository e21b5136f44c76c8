"""A Verifier's folder: its EAR signing key, endorsements and reference values.

```
VERIFIER_DIR/
  verifier.toml           settings, [[endorsement]] and [[reference]] tables
  keys/verifier.pem       EAR signing key (ESP256)
  keys/verifier.pub.pem   what Relying Parties (TAMs) trust
  endorsements/*.pem      attestation public keys named by verifier.toml
```

``verifier.toml``, every key optional::

    host = "127.0.0.1"        # address `teep verifier serve` binds
    port = 8444
    session_ttl = 150         # seconds a challenge-response session lives
    result_validity = 300     # seconds an EAR is valid
    include_raw_evidence = false
    eat_profile = "urn:ietf:rfc:rfcXXXX"

    [[endorsement]]           # an attestation key, for one device class
    name = "teep-sim"
    key = "endorsements/dev.pem"   # PEM, DER or COSE_Key; relative to the folder
    oemid = "000000"          # hex (3 or 16 bytes), or an integer (IANA PEN)
    hwmodel = "teep-sim"      # text (UTF-8), or hwmodel_hex = "..."
    ueid = "01..."            # optional: the one device the key belongs to

    [[reference]]             # appraisal policy; the first that applies wins
    name = "sim devices"
    oemid = "000000"          # selectors, optional
    hwmodel = "teep-sim"
    hwversions = ["1.0"]      # accepted values, each optional
    manifest_digests = ["a7fd..."]
    measurement_digests = ["..."]
    min_dbgstat = "disabled"  # a DebugStatus name
    require_oemboot = true
    blocked_ueids = ["01..."]

A device no ``[[reference]]`` applies to is refused; ``teep verifier init``
writes one that applies to every endorsed device.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teep.attestation.claims import EAT_PROFILE_TEEP, DebugStatus
from teep.attestation.verifier import (
    Endorsement,
    ReferenceValues,
    Verifier,
    VerifierConfig,
)
from teep.errors import ConfigError, TeepError, reason
from teep.keys import KeyKind, PrivateKey, PublicKey
from teep.verifier.service import ServiceConfig, VerifierService

__all__ = ["VerifierHome"]

SETTINGS = "verifier.toml"
KEY_FILE = "keys/verifier.pem"
PUBLIC_KEY_FILE = "keys/verifier.pub.pem"

_TEMPLATE = """\
# teep Verifier settings; the format is described in teep.verifier.home.
host = "127.0.0.1"
port = {port}
session_ttl = 150
result_validity = 300
include_raw_evidence = false
eat_profile = "{profile}"

# The appraisal policy for every endorsed device.  Add selectors (oemid,
# hwmodel) and accepted values (hwversions, manifest_digests, ...) to narrow it.
[[reference]]
name = "any endorsed device"
"""


@dataclass
class VerifierHome:
    """An initialised Verifier folder, its settings parsed."""

    path: Path
    """The folder."""
    settings: dict[str, Any]
    """``verifier.toml`` as parsed."""

    @classmethod
    def init(cls, path: str | Path, *, port: int = 8444) -> VerifierHome:
        """Create the folder, the EAR signing key and ``verifier.toml``.

        :raises ConfigError: if the folder already holds a Verifier.
        """
        folder = Path(path)
        if (folder / SETTINGS).exists():
            raise ConfigError(f"{folder} already holds a Verifier")
        (folder / "keys").mkdir(parents=True, exist_ok=True)
        (folder / "endorsements").mkdir(exist_ok=True)
        key = PrivateKey.generate(KeyKind.P256)
        key.save(folder / KEY_FILE)
        (folder / PUBLIC_KEY_FILE).write_bytes(key.public.to_pem())
        text = _TEMPLATE.format(port=port, profile=EAT_PROFILE_TEEP)
        (folder / SETTINGS).write_text(text)
        return cls.open(folder)

    @classmethod
    def open(cls, path: str | Path) -> VerifierHome:
        """Open a Verifier folder.

        :raises ConfigError: if there is none or ``verifier.toml`` is invalid.
        """
        folder = Path(path)
        file = folder / SETTINGS
        if not file.exists():
            raise ConfigError(f"no Verifier in {folder} (run 'teep verifier init')")
        try:
            settings = tomllib.loads(file.read_text())
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {file}: {reason(exc)}") from None
        return cls(folder, settings)

    @property
    def public_key_file(self) -> Path:
        """The file Relying Parties trust."""
        return self.path / PUBLIC_KEY_FILE

    def key(self) -> PrivateKey:
        """The EAR signing key."""
        return PrivateKey.load(self.path / KEY_FILE)

    def add_endorsement(
        self, key: PublicKey, *, name: str, oemid: bytes | int, hwmodel: str
    ) -> Path:
        """Copy an attestation key into ``endorsements/`` and endorse it.

        :param oemid: 3 or 16 bytes, or an IANA PEN.
        :raises ConfigError: if the oemid has another length.
        """
        if isinstance(oemid, bytes) and len(oemid) not in (3, 16):
            raise ConfigError("an oemid is 3 or 16 bytes, or an integer")
        shown = str(oemid) if isinstance(oemid, int) else _toml_str(oemid.hex())
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        target = self.path / "endorsements" / f"{stem}-{key.kid.hex()[:8]}.pem"
        target.write_bytes(key.to_pem())
        block = (
            "\n[[endorsement]]\n"
            f"name = {_toml_str(name)}\n"
            f"key = {_toml_str(str(target.relative_to(self.path)))}\n"
            f"oemid = {shown}\n"
            f"hwmodel = {_toml_str(hwmodel)}\n"
        )
        with (self.path / SETTINGS).open("a") as file:
            file.write(block)
        self.settings = VerifierHome.open(self.path).settings
        return target

    def verifier(self) -> Verifier:
        """The appraisal policy the settings describe.

        :raises ConfigError: if an entry is malformed or a key unreadable.
        """
        endorsements = [
            self._endorsement(entry, i)
            for i, entry in enumerate(_tables(self.settings, "endorsement"))
        ]
        references = [
            _reference(entry, i)
            for i, entry in enumerate(_tables(self.settings, "reference"))
        ]
        profile = self.settings.get("eat_profile", EAT_PROFILE_TEEP)
        if not isinstance(profile, str):
            raise ConfigError("eat_profile must be text")
        return Verifier(endorsements, references, VerifierConfig(eat_profile=profile))

    def service(self) -> VerifierService:
        """The Verifier service over these settings and key."""
        config = ServiceConfig(
            session_ttl=_number(self.settings, "session_ttl", 150.0),
            result_validity=_number(self.settings, "result_validity", 300.0),
            include_raw_evidence=bool(self.settings.get("include_raw_evidence")),
        )
        return VerifierService(self.verifier(), self.key(), config)

    def _endorsement(self, entry: dict[str, Any], index: int) -> Endorsement:
        where = f"endorsement #{index + 1}"
        key_path = entry.get("key")
        if not isinstance(key_path, str):
            raise ConfigError(f"{where}: key (a file name) is required")
        try:
            key = PublicKey.load(self.path / key_path)
        except TeepError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        oemid = _field(entry, "oemid", _oemid, where)
        hwmodel = _bytes_field(entry, "hwmodel", where)
        if oemid is None or hwmodel is None:
            raise ConfigError(f"{where}: oemid and hwmodel are required")
        return Endorsement(
            key=key,
            oemid=oemid,
            hwmodel=hwmodel,
            ueid=_field(entry, "ueid", _hex, where),
            name=str(entry.get("name", key.kid.hex()[:16])),
        )


def _reference(entry: dict[str, Any], index: int) -> ReferenceValues:
    where = f"reference #{index + 1}"
    versions = _field(entry, "hwversions", _texts, where)
    manifests = _field(entry, "manifest_digests", _hex_set, where)
    measured = _field(entry, "measurement_digests", _hex_set, where)
    return ReferenceValues(
        oemid=_field(entry, "oemid", _oemid, where),
        hwmodel=_bytes_field(entry, "hwmodel", where),
        hwversions=frozenset(versions) if versions is not None else None,
        manifest_digests=manifests,
        measurement_digests=measured,
        min_dbgstat=_field(entry, "min_dbgstat", _dbgstat, where),
        require_oemboot=bool(entry.get("require_oemboot", False)),
        blocked_ueids=_field(entry, "blocked_ueids", _hex_set, where) or frozenset(),
        name=str(entry.get("name", where)),
    )


def _tables(settings: dict[str, Any], name: str) -> list[dict[str, Any]]:
    tables = settings.get(name, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"[[{name}]] entries must be tables")
    return tables


def _field(
    entry: dict[str, Any], name: str, parse: Callable[[Any], Any], where: str
) -> Any:
    if name not in entry:
        return None
    try:
        return parse(entry[name])
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"{where}: {name}: {exc}") from None


def _bytes_field(entry: dict[str, Any], name: str, where: str) -> bytes | None:
    if f"{name}_hex" in entry:
        value: bytes | None = _field(entry, f"{name}_hex", _hex, where)
        return value
    text = _field(entry, name, _text, where)
    return None if text is None else text.encode()


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("must be text")
    return value


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise TypeError("must be a list of text")
    return [_text(v) for v in value]


def _hex(value: Any) -> bytes:
    return bytes.fromhex(_text(value))


def _hex_set(value: Any) -> frozenset[bytes]:
    return frozenset(bytes.fromhex(v) for v in _texts(value))


def _oemid(value: Any) -> bytes | int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raw = _hex(value)
    if len(raw) not in (3, 16):
        raise ValueError("an oemid is 3 or 16 bytes, or an integer")
    return raw


def _dbgstat(value: Any) -> DebugStatus:
    return DebugStatus[_text(value).replace("-", "_")]


def _number(settings: dict[str, Any], name: str, default: float) -> float:
    value = settings.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds")
    return float(value)


def _toml_str(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
