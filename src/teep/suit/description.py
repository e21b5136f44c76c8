"""Readable manifest descriptions (TOML) for ``teep manifest create``.

A description names the manifest (``name`` for teep's layout, or an
explicit ``manifest-component-id``), its ``sequence-number``, one or more
``[[component]]`` tables (payload file, fetch URI, vendor and class ids),
and optionally ``[encryption]`` (a device public key for ECDH-ES, or a
shared AES-KW KEK), ``[dependency]`` (the envelope this manifest depends
on, as Personalization Data depends on its TA manifest) and ``[text]``.
``docs/manifests.md`` documents every field with a full example.

tomllib reports no positions for values, so every error names the field
and finds the line that sets it in the text itself.
"""

from __future__ import annotations

import os
import re
import tomllib
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from teep import components as names
from teep.errors import ConfigError, KeyLoadError, TeepError, reason
from teep.keys import COSEAlgorithm, PublicKey
from teep.suit.builder import (
    MAX_SEQUENCE_NUMBER,
    ComponentSpec,
    DependencySpec,
    compose_manifest,
)
from teep.suit.encryption import (
    CONTENT_ALGORITHMS,
    EncryptionRecipient,
    SymmetricKEK,
    encrypt_payload,
)
from teep.suit.envelope import SuitEnvelope
from teep.suit.errors import SuitError
from teep.suit.registry import SuitTextComponentKey, SuitTextKey
from teep.suit.store import ComponentId

__all__ = ["DescriptionError", "ManifestDescription", "load_description"]

_TOP = {
    "name",
    "manifest-component-id",
    "sequence-number",
    "reference-uri",
    "tagged",
    "signer",
    "component",
    "encryption",
    "dependency",
    "text",
}
_COMPONENT = {"id", "payload", "uri", "ciphertext", "vendor-id", "class-id", "text"}
_ENCRYPTION = {"recipient", "kek", "kek-id", "algorithm"}
_DEPENDENCY = {"envelope", "uri"}
_MANIFEST_TEXT = {k.name.replace("_", "-"): k for k in SuitTextKey}
_COMPONENT_TEXT = {k.name.replace("_", "-"): k for k in SuitTextComponentKey}
_UUID_HEX = re.compile(r"[0-9a-fA-F]{32}")
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:.")
"""RFC 3986 4.3: an absolute URI starts with its scheme and a colon."""


Where = tuple[str, int | None, str | None]
"""A field's place: table name, index among ``[[table]]``s, key."""


class DescriptionError(ConfigError):
    """A manifest description is wrong; the message names file, line and field."""


@dataclass(frozen=True)
class ManifestDescription:
    """A parsed description, ready to build."""

    manifest_component_id: ComponentId
    """Where the device records the manifest."""
    sequence_number: int
    """suit-manifest-sequence-number."""
    components: tuple[ComponentSpec, ...]
    """The components, payloads read (and encrypted when asked)."""
    integrated: Mapping[str, bytes]
    """Envelope members under ``#name`` keys (payloads, a dependency)."""
    detached: Mapping[Path, bytes]
    """Files to publish beside the envelope (fetched ciphertexts)."""
    dependency: DependencySpec | None = None
    """The manifest this one depends on, if any."""
    text: Mapping[str, Mapping[Any, Any]] | None = None
    """The SUIT_Text_Map, if any."""
    reference_uri: str | None = None
    """suit-reference-uri, if any."""
    tagged: bool = False
    """Whether to emit tag 107."""
    signer: Path | None = None
    """The signing key file named by the description, if any."""
    encrypted: tuple[str, ...] = field(default_factory=tuple)
    """Component ids (displayed) whose payload is encrypted."""

    def manifest(self) -> bytes:
        """The encoded SUIT_Manifest."""
        return compose_manifest(
            manifest_component_id=self.manifest_component_id,
            sequence_number=self.sequence_number,
            components=self.components,
            dependency=self.dependency,
            text=self.text,
            reference_uri=self.reference_uri,
        )


class _Context:
    """The description's text and path, for error messages with lines."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def error(self, where: Where, message: str) -> NoReturn:
        line = self.line_of(*where)
        raise DescriptionError(f"{self.path}:{line}: {self.label(where)}: {message}")

    @staticmethod
    def label(where: Where) -> str:
        """The field's name as messages show it (``component[1].uri``)."""
        table, index, key = where
        return ".".join(
            p for p in (table + (f"[{index}]" if index is not None else ""), key) if p
        )

    def line_of(self, table: str, index: int | None, key: str | None) -> int:
        """The line that sets ``key`` in ``[table]`` (or its ``index``-th
        ``[[table]]``); the table header, or 1, if not found."""
        current, count, header = "", -1, 1
        pattern = re.compile(rf"^\s*\"?{re.escape(key or '')}\"?\s*=") if key else None
        for number, raw in enumerate(self.lines, 1):
            line = raw.strip()
            heading = re.match(r"^\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?", line)
            if heading:
                current = heading.group(1)
                if current == table:
                    count += 1
                    if index is None or count == index:
                        header = number
                continue
            in_table = current == table and (index is None or count == index)
            if in_table and pattern is not None and pattern.match(raw):
                return number
        return header


PayloadFilter = Callable[[ComponentId, str, bytes], bytes]
"""Turns a payload file's bytes into the payload (component id, file name,
bytes); raises a TeepError to refuse it."""


def load_description(
    path: str | Path,
    *,
    payload_filter: PayloadFilter | None = None,
    others: Mapping[str, str | Path] | None = None,
) -> ManifestDescription:
    """Read a TOML description and the files it names (relative to it).

    :param payload_filter: applied to each component payload as read (the
        ``teep`` command compiles WebAssembly text and checks modules with it).
    :param others: files the caller reads or writes besides those the
        description names, by what they are (``"the output envelope (-o)"``);
        like the description's own files, no ciphertext file may be one of
        them (``-`` is standard output, never a file).

    :raises DescriptionError: if anything in it is missing or wrong, with
        the file, line and field in the message.
    """
    source = Path(path)
    try:
        text = source.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DescriptionError(f"cannot read {source}: {reason(exc)}") from None
    try:
        value = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DescriptionError(f"{source}: not valid TOML: {exc}") from None
    parser = _Parser(_Context(source, text), source.parent, payload_filter)
    return parser.parse(value, others or {})


class _Parser:
    def __init__(
        self, ctx: _Context, base: Path, payload_filter: PayloadFilter | None = None
    ) -> None:
        self.ctx = ctx
        self.base = base
        self.payload_filter = payload_filter
        self.inputs: list[tuple[Path, Where]] = []
        self.ciphertexts: list[tuple[Path, str, Where, bool]] = []
        self.integrated: dict[str, bytes] = {}
        self.integrated_at: dict[str, Where] = {}
        self.detached: dict[Path, bytes] = {}
        self.fetched: dict[str, tuple[bytes, Where, bool]] = {}
        self.encrypted: list[str] = []

    def parse(
        self, doc: dict[str, Any], others: Mapping[str, str | Path]
    ) -> ManifestDescription:
        self._known(doc, _TOP, "")
        name = self._opt(doc, "name", str, ("", None, "name"))
        mcid = self._manifest_id(doc, name)
        seq = doc.get("sequence-number")
        if (
            not isinstance(seq, int)
            or isinstance(seq, bool)
            or not 0 <= seq <= MAX_SEQUENCE_NUMBER
        ):
            self.ctx.error(
                ("", None, "sequence-number"),
                f"must be an integer from 0 to {MAX_SEQUENCE_NUMBER}",
            )
        recipients, alg = self._encryption(doc.get("encryption"))
        tables = doc.get("component")
        if not isinstance(tables, list) or not tables:
            self.ctx.error(("", None, "component"), "at least one [[component]]")
        specs = [
            self._component(t, i, name, recipients, alg) for i, t in enumerate(tables)
        ]
        signer = self._opt(doc, "signer", str, ("", None, "signer"))
        if signer:
            self.inputs.append((self.base / signer, ("", None, "signer")))
        dependency = self._dependency(doc.get("dependency"))
        self._spare(others)
        return ManifestDescription(
            manifest_component_id=mcid,
            sequence_number=seq,
            components=tuple(specs),
            integrated=self.integrated,
            detached=self.detached,
            dependency=dependency,
            text=self._text(doc.get("text"), tables, specs),
            reference_uri=self._reference_uri(doc),
            tagged=bool(self._opt(doc, "tagged", bool, ("", None, "tagged"))),
            signer=None if signer is None else self.base / signer,
            encrypted=tuple(self.encrypted),
        )

    # -- helpers

    def _known(
        self, table: Any, allowed: set[str], name: str, index: int | None = None
    ) -> None:
        if not isinstance(table, dict):
            self.ctx.error((name, index, None), "must be a table")
        for key in table:
            if key not in allowed:
                self.ctx.error((name, index, key), "unknown field")

    def _opt(self, table: dict[str, Any], key: str, kind: type, where: Where) -> Any:
        value = table.get(key)
        if value is not None and not isinstance(value, kind):
            self.ctx.error(where, f"must be a {kind.__name__}")
        return value

    def _file(self, name: Any, where: Where) -> bytes:
        if not isinstance(name, str) or not name:
            self.ctx.error(where, "must name a file")
        self.inputs.append((self.base / name, where))
        try:
            return (self.base / name).read_bytes()
        except OSError as exc:
            return self.ctx.error(where, f"cannot read {name}: {exc.strerror or exc}")

    def _ident(self, value: Any, where: Where) -> ComponentId:
        if not isinstance(value, list):
            self.ctx.error(where, "must be an array of strings or {hex = ...}")
        if not value:
            self.ctx.error(where, "must not be empty: give at least one element")
        parts: list[bytes] = []
        for part in value:
            if isinstance(part, str):
                parts.append(part.encode())
            elif (
                isinstance(part, dict)
                and set(part) == {"hex"}
                and isinstance(part["hex"], str)
            ):
                try:
                    parts.append(bytes.fromhex(part["hex"]))
                except ValueError:
                    self.ctx.error(where, f"{part['hex']!r} is not hex")
            else:
                self.ctx.error(where, "elements are strings or {hex = ...}")
        return tuple(parts)

    def _manifest_id(self, doc: dict[str, Any], name: str | None) -> ComponentId:
        where = ("", None, "manifest-component-id")
        if "manifest-component-id" in doc:
            return self._ident(doc["manifest-component-id"], where)
        if name is None:
            self.ctx.error(("", None, "name"), "give name or manifest-component-id")
        try:
            return names.manifest_id(name)
        except ConfigError as exc:
            return self.ctx.error(("", None, "name"), str(exc))

    def _component(
        self,
        table: Any,
        index: int,
        name: str | None,
        recipients: list[EncryptionRecipient],
        alg: COSEAlgorithm,
    ) -> ComponentSpec:
        self._known(table, _COMPONENT, "component", index)

        def at(key: str) -> Where:
            return ("component", index, key)

        if "id" in table:
            cid = self._ident(table["id"], at("id"))
        elif name is not None and index == 0:
            cid = names.component_id(name)
        else:
            cid = self.ctx.error(
                at("id"), "missing (only the first may default to name)"
            )
        payload = self._file(table.get("payload"), at("payload"))
        if self.payload_filter is not None:
            try:
                payload = self.payload_filter(cid, str(table["payload"]), payload)
            except TeepError as exc:
                self.ctx.error(at("payload"), str(exc))
        uri = self._uri(table, "#tc" if index == 0 else f"#tc{index}", at("uri"))
        out = self._opt(table, "ciphertext", str, at("ciphertext"))
        if out is not None:
            self._ciphertext_applies(out, uri, bool(recipients), at("ciphertext"))
        shipped, info = payload, None
        if recipients:
            try:
                info, shipped = encrypt_payload(
                    payload, recipients, content_algorithm=alg
                )
            except SuitError as exc:
                self.ctx.error(("encryption", None, None), str(exc))
            self.encrypted.append(names.display(cid))
        if uri.startswith("#"):
            self._integrate(uri, shipped, at("uri"), "uri" not in table)
        else:
            if info is not None:
                name = out or f"{table['payload']}.enc"
                self._detach(name, shipped, at("ciphertext"), out is None)
            self._fetch(uri, shipped, at("uri"), info is not None)
        vendor = self._vendor(table.get("vendor-id"), at("vendor-id"))
        klass = self._class(table.get("class-id"), vendor, at("class-id"))
        return ComponentSpec(cid, payload, uri, vendor, klass, info)

    def _reference_uri(self, doc: dict[str, Any]) -> str | None:
        """``reference-uri``: an absolute URI, where the manifest is found."""
        where: Where = ("", None, "reference-uri")
        uri: str | None = self._opt(doc, "reference-uri", str, where)
        if uri is None:
            return None
        self._printable(uri, where)
        if not _ABSOLUTE_URI.match(uri):
            self.ctx.error(
                where,
                f"{uri!r} is not an absolute URI: give scheme:... "
                "(as in https://tam.example/manifests/x.suit)",
            )
        return uri

    def _printable(self, uri: str, where: Where) -> None:
        if any(c.isspace() or unicodedata.category(c) == "Cc" for c in uri):
            self.ctx.error(
                where, f"{uri!r} has white space or control characters: remove them"
            )

    def _uri(self, table: dict[str, Any], default: str, where: Where) -> str:
        """The table's ``uri``: ``#name`` (integrated) or an absolute URI."""
        uri: str | None = self._opt(table, "uri", str, where)
        if uri is None:
            return default
        self._printable(uri, where)
        if uri.startswith("#"):
            if uri == "#":
                self.ctx.error(where, "'#' needs a name after it, as in '#tc'")
        elif not _ABSOLUTE_URI.match(uri):
            self.ctx.error(
                where,
                f"{uri!r} is neither '#name' (integrated) "
                "nor an absolute URI (scheme:...) to fetch",
            )
        return uri

    def _integrate(self, uri: str, data: bytes, where: Where, default: bool) -> None:
        """Carry ``data`` in the envelope under ``uri``, once per name."""
        first = self.integrated_at.get(uri)
        if first is not None:
            given = " (the default)" if default else ""
            self.ctx.error(
                where,
                f"{uri!r}{given} is already used by {self._at_line(first)}: "
                "give each integrated payload its own #name",
            )
        self.integrated[uri] = data
        self.integrated_at[uri] = where

    def _at_line(self, where: Where) -> str:
        """``component[0].uri at line 5``: a field's place in a message."""
        return f"{self.ctx.label(where)} at line {self.ctx.line_of(*where)}"

    def _fetch(self, uri: str, data: bytes, where: Where, encrypted: bool) -> None:
        """Note that the device fetches ``data`` from ``uri``: one URI serves
        one byte string, so a second, different one is refused."""
        first = self.fetched.get(uri)
        if first is None:
            self.fetched[uri] = (data, where, encrypted)
            return
        before, place, was_encrypted = first
        if before == data:
            return
        why = (
            "each encrypted payload has its own ciphertext"
            if encrypted or was_encrypted
            else "the payloads differ"
        )
        self.ctx.error(
            where,
            f"{uri!r} is already fetched by {self._at_line(place)} and {why}: "
            "a URI serves one payload, give each its own uri",
        )

    def _ciphertext_applies(
        self, name: str, uri: str, encrypted: bool, where: Where
    ) -> None:
        """A ``ciphertext`` is only for an encrypted payload the device fetches."""
        if not name:
            self.ctx.error(where, "must name a file")
        if not encrypted:
            self.ctx.error(
                where,
                "the payload is not encrypted: ciphertext applies only with "
                "[encryption] and an absolute uri, remove it",
            )
        if uri.startswith("#"):
            self.ctx.error(
                where,
                f"the payload is integrated ({uri!r}), not fetched: ciphertext "
                "applies only with an absolute uri, remove it",
            )

    def _spare(self, others: Mapping[str, str | Path]) -> None:
        """Refuse a ciphertext file that is a file the description reads
        (payloads, keys, the dependency, the description itself) or one of
        ``others``: writing it would destroy that file."""
        kept = [(path, f"the file of {self._at_line(at)}") for path, at in self.inputs]
        kept.append((self.ctx.path, "the description itself"))
        kept += [(Path(p), what) for what, p in others.items() if str(p) != "-"]
        for target, name, where, default in self.ciphertexts:
            for path, what in kept:
                if _same_file(target, path):
                    given = " (the default)" if default else ""
                    self.ctx.error(
                        where,
                        f"{name!r}{given} would overwrite {what}: give the "
                        "ciphertext a file of its own",
                    )

    def _detach(self, name: str, data: bytes, where: Where, default: bool) -> None:
        """Write ``data`` to ``name`` beside the description, once per file."""
        target = self.base / name
        first = next(
            (c for c in self.ciphertexts if c[0].resolve() == target.resolve()), None
        )
        if first is not None:
            _, _, place, first_default = first
            given = " (the default)" if default else ""
            also = " (its default)" if first_default else ""
            self.ctx.error(
                where,
                f"{name!r}{given} is already the ciphertext file of "
                f"{self._at_line(place)}{also}: give each fetched encrypted "
                "payload its own ciphertext file",
            )
        self.detached[target] = data
        self.ciphertexts.append((target, name, where, default))

    def _vendor(self, value: Any, where: Where) -> bytes | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.ctx.error(where, "a domain name or 32 hex digits")
        if _UUID_HEX.fullmatch(value):
            return bytes.fromhex(value)
        # manifest 8.4.8.1: vendor id = UUID5(DNS namespace, vendor domain).
        return uuid.uuid5(uuid.NAMESPACE_DNS, value).bytes

    def _class(self, value: Any, vendor: bytes | None, where: Where) -> bytes | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.ctx.error(where, "a model name or 32 hex digits")
        if _UUID_HEX.fullmatch(value):
            return bytes.fromhex(value)
        if vendor is None:
            self.ctx.error(where, "a class id by name needs vendor-id")
        # manifest 8.4.8.2: class id = UUID5(vendor id, model info).
        return uuid.uuid5(uuid.UUID(bytes=vendor), value).bytes

    def _encryption(
        self, table: Any
    ) -> tuple[list[EncryptionRecipient], COSEAlgorithm]:
        if table is None:
            return [], COSEAlgorithm.A128GCM
        self._known(table, _ENCRYPTION, "encryption")

        def at(key: str) -> Where:
            return ("encryption", None, key)

        recipients: list[EncryptionRecipient] = []
        if "recipient" in table:
            data = self._file(table["recipient"], at("recipient"))
            try:
                recipients.append(PublicKey.from_bytes(data))
            except KeyLoadError as exc:
                self.ctx.error(at("recipient"), str(exc))
        if "kek" in table:
            recipients.append(self._kek(table, at))
        if not recipients:
            self.ctx.error(("encryption", None, None), "give recipient or kek")
        alg_name = self._opt(table, "algorithm", str, at("algorithm")) or "A128GCM"
        algs = {a.name.replace("_", "/"): a for a in CONTENT_ALGORITHMS}
        alg = algs.get(alg_name.upper())
        if alg is None:
            self.ctx.error(at("algorithm"), f"one of {', '.join(sorted(algs))}")
        return recipients, alg

    def _kek(self, table: dict[str, Any], at: Any) -> SymmetricKEK:
        raw = table["kek"]
        try:
            key = bytes.fromhex(raw) if isinstance(raw, str) else None
        except ValueError:
            key = None
        if key is None or len(key) not in (16, 32):
            self.ctx.error(at("kek"), "16 or 32 bytes in hex")
        kid = self._opt(table, "kek-id", str, at("kek-id"))
        return SymmetricKEK(key, None if kid is None else kid.encode())

    def _dependency(self, table: Any) -> DependencySpec | None:
        if table is None:
            return None
        self._known(table, _DEPENDENCY, "dependency")
        where = ("dependency", None, "envelope")
        envelope = self._file(table.get("envelope"), where)
        try:
            mcid = SuitEnvelope.decode(envelope).manifest.manifest_component_id
        except SuitError as exc:
            return self.ctx.error(where, f"not a SUIT envelope: {exc}")
        if mcid is None:
            self.ctx.error(where, "the dependency has no manifest-component-id")
        at = ("dependency", None, "uri")
        uri = self._uri(table, "#dependency", at)
        if uri.startswith("#"):
            self._integrate(uri, envelope, at, "uri" not in table)
        else:
            self._fetch(uri, envelope, at, False)
        return DependencySpec(mcid, envelope, uri)

    def _text(
        self, table: Any, tables: list[Any], specs: list[ComponentSpec]
    ) -> dict[str, Any] | None:
        entries: dict[Any, Any] = {}
        if table is not None:
            self._known(table, set(_MANIFEST_TEXT), "text")
            for key, value in table.items():
                if not isinstance(value, str):
                    self.ctx.error(("text", None, key), "must be a string")
                entries[int(_MANIFEST_TEXT[key])] = value
        for index, (raw, spec) in enumerate(zip(tables, specs, strict=True)):
            sub = raw.get("text")
            if sub is None:
                continue
            self._known(sub, set(_COMPONENT_TEXT), f"component[{index}].text")
            entries[spec.component_id] = {
                int(_COMPONENT_TEXT[k]): v for k, v in sub.items() if isinstance(v, str)
            }
        # manifest 8.4.4: the text map is keyed by language tag first.
        return {"en-US": entries} if entries else None


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file: one resolved path, or (both
    existing) one file under two names, as links make."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
