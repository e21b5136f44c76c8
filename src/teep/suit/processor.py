"""The SUIT manifest processor: a sans-I/O command interpreter.

Theory of operation.  :class:`SuitProcessor` authenticates an envelope
before it parses the manifest, refuses rollback, and then runs the Update
procedure of draft-ietf-suit-trust-domains section 6 (dependency-resolution,
payload-fetch, candidate-verification, install, validate, those present)
inside one store transaction: if any command fails, nothing the manifest
wrote remains.  Before each sequence the shared sequence runs.

Each manifest keeps one parameter table per component for the whole
procedure (the digest's recommendation for the lifetime the spec leaves
open).  Conditions return False when they fail; a failed condition ends
the current sequence, which fails the procedure unless a try-each or
run-sequence with soft-failure catches it.  Directives that fail raise
:class:`SuitAbortError` (directives never soft-fail).

Choices where the drafts leave room:

* an equal sequence number is refused like a lower one
  (:class:`SuitRollbackError`): a TAM never resends the installed version;
* the store has one slot per component, so component-slot matches slot 0;
* process-dependency verifies the dependency (signature, and its digest
  against image-digest) if no condition did so earlier, as the TD and TEEP
  examples need;
* a dependency the device already holds (same manifest) is not processed
  again, and one older than the manifest held at its manifest-component-id
  is refused like an older root manifest, so a bundled dependency cannot
  roll a component back;
* a dependent and its dependencies share one parameter table per component
  identifier, so what the dependent sets for a component (say content and
  encryption-info, as in the firmware-encryption dependency example) is what
  the dependency's commands on that component use, and changes persist;
* unlink removes the component at once (no reference counts);
* fetch of ``#name`` reads the integrated payload of the same envelope;
  any other URI goes to the injected ``fetch`` callable;
* write and copy decrypt with the device's ``decryption_keys`` when
  encryption-info is set (fetch never decrypts, as the draft says);
* a component is hashed while it is written, so image-match right after a
  fetch needs no second pass; otherwise it streams the stored content;
* a severed member the procedure needs but the envelope lacks fails it
  with operation-failed (reason 11) in that section: teep supports
  severing, so reason 9 would be wrong (the SUIT digest, 9.1 step 6);
* a COSE_Mac0 authentication block counts only under one of the
  ``mac_keys`` given; ``authorize`` then receives that :class:`MACKey`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from teep.cose import MACKey
from teep.keys import PublicKey
from teep.suit.commands import (
    HANDLERS,
    SHARED,
    Fetch,
    Invocation,
    digest_param,
)
from teep.suit.encryption import DecryptionKey
from teep.suit.envelope import (
    Authenticator,
    SuitCommandSequence,
    SuitDigest,
    SuitEnvelope,
    _Outer,
    open_envelope,
)
from teep.suit.envelope import (
    SuitCommand as Command,
)
from teep.suit.errors import (
    SuitAbortError,
    SuitAuthError,
    SuitConditionFailedError,
    SuitDecodeError,
    SuitError,
    SuitNotInstalledError,
    SuitRollbackError,
    SuitSeveredMemberError,
    SuitUnsupportedError,
)
from teep.suit.measure import bounded, finish, hasher_for, hashing_aside
from teep.suit.registry import (
    SuitCommand,
    SuitDigestAlgorithm,
    SuitManifestKey,
    SuitParameter,
    SuitReportingPolicy,
    SuitReportReason,
)
from teep.suit.report import SuitRecord, SuitReportFailure, build_report
from teep.suit.store import (
    ComponentId,
    ComponentStore,
    InstalledManifest,
    StoreTransaction,
)

__all__ = ["Invocation", "ProcessResult", "SuitProcessor"]

Authorize = Callable[[Authenticator, ComponentId], bool]
"""Decides whether what authenticated a manifest (a signer's public key or a
shared MAC key) may install at a manifest-component-id."""

UPDATE = (
    SuitManifestKey.dependency_resolution,
    SuitManifestKey.payload_fetch,
    SuitManifestKey.candidate_verification,
    SuitManifestKey.install,
    SuitManifestKey.validate,
)
"""The Update procedure's sequences, in the order they run."""
INVOCATION = (SuitManifestKey.validate, SuitManifestKey.load, SuitManifestKey.invoke)
"""The Invocation procedure's sequences."""

_POLICY_COMMANDS = frozenset(
    c
    for c in SuitCommand
    if c.is_condition
    or c
    in (
        SuitCommand.directive_write,
        SuitCommand.directive_fetch,
        SuitCommand.directive_copy,
        SuitCommand.directive_invoke,
        SuitCommand.directive_swap,
        SuitCommand.directive_unlink,
        SuitCommand.directive_process_dependency,
    )
)


@dataclass(frozen=True)
class ProcessResult:
    """What a successful procedure did."""

    manifest: InstalledManifest
    """The manifest record (as stored, or as removed for uninstall)."""
    report: bytes
    """The encoded SUIT_Report (result true)."""
    signer: Authenticator | None = None
    """The key that authenticated the envelope (None for uninstall)."""
    invocations: tuple[Invocation, ...] = ()
    """Invoke directives met, in order."""
    removed: tuple[ComponentId, ...] = ()
    """Components unlinked."""


@dataclass(frozen=True)
class _Measure:
    """A digest and size taken while a component was written."""

    algorithm: int
    digest: bytes
    size: int


@dataclass
class _Effects:
    """What the procedure changed, shared by a manifest and its dependencies."""

    records: list[SuitRecord] = field(default_factory=list)
    params: dict[ComponentId, dict[int, Any]] = field(default_factory=dict)
    measured: dict[ComponentId, _Measure] = field(default_factory=dict)
    written: list[ComponentId] = field(default_factory=list)
    removed: list[ComponentId] = field(default_factory=list)
    invocations: list[Invocation] = field(default_factory=list)


class SuitProcessor:
    """Installs, invokes and uninstalls manifests in a :class:`ComponentStore`.

    :param store: where components and manifest records live.
    :param trust_anchors: keys allowed to sign manifests.
    :param mac_keys: shared keys that authenticate manifests with a
        COSE_Mac0 (HMAC) instead of a signature, as the firmware-encryption
        AES-KW examples do; none by default.
    :param fetch: returns the chunks of a URI's content (None: only
        integrated payloads can be fetched).
    :param vendor_ids, class_ids, device_ids: identifiers this device
        accepts in the matching conditions (None accepts any value).
    :param authorize: decides whether a signer may install at a
        manifest-component-id (None allows every trusted signer).
    :param max_component_size: largest content a fetch may produce.
    :param decryption_keys: the device's keys for encrypted payloads: P-256
        private keys (ECDH-ES + A128KW) and symmetric KEKs (AES-KW).
    :param default_manifest_component_id: where to record a manifest that
        names no suit-manifest-component-id (a core-only manifest); None
        refuses such manifests.
    :param accept_component_id: decides whether the device can keep a
        component (or manifest) at an id, checked for the manifest's own id
        and every id it lists before anything runs (None accepts any id).
    """

    def __init__(
        self,
        store: ComponentStore,
        trust_anchors: Iterable[PublicKey],
        fetch: Fetch | None = None,
        *,
        vendor_ids: Collection[bytes] | None = None,
        class_ids: Collection[bytes] | None = None,
        device_ids: Collection[bytes] | None = None,
        authorize: Authorize | None = None,
        max_component_size: int = 64 << 20,
        decryption_keys: Iterable[DecryptionKey] = (),
        default_manifest_component_id: ComponentId | None = None,
        mac_keys: Iterable[MACKey] = (),
        accept_component_id: Callable[[ComponentId], bool] | None = None,
    ) -> None:
        self.store = store
        self.trust_anchors = list(trust_anchors)
        self.mac_keys = list(mac_keys)
        self.fetch = fetch
        self.identity: dict[int, Collection[bytes] | None] = {
            SuitParameter.vendor_identifier: vendor_ids,
            SuitParameter.class_identifier: class_ids,
            SuitParameter.device_identifier: device_ids,
        }
        self.authorize = authorize
        self.max_component_size = max_component_size
        self.decryption_keys = list(decryption_keys)
        self.default_manifest_component_id = default_manifest_component_id
        self.accept_component_id = accept_component_id

    def install(
        self, envelope: bytes, *, report_nonce: bytes | None = None
    ) -> ProcessResult:
        """Authenticate and install an envelope (the Update procedure).

        :param report_nonce: the TEEP token, echoed in the report.
        :raises SuitError: any subclass; ``.report`` holds the failure report.
        """
        try:
            env, signer = open_envelope(
                envelope, self.trust_anchors, mac_keys=self.mac_keys
            )
            mcid = self._admit(env, signer)
            effects = _Effects()
            with self.store.transaction() as txn:
                _Interpreter(self, txn, env, effects).run(UPDATE)
                installed = InstalledManifest(
                    mcid,
                    env.manifest.sequence_number,
                    bytes(envelope),
                    _kept(effects),
                )
                txn.record_manifest(installed)
        except SuitError as exc:
            exc.report = _failure_report(envelope, exc, report_nonce)
            raise
        return _result(installed, env, effects, report_nonce, signer)

    def uninstall(
        self, manifest_component_id: ComponentId, *, report_nonce: bytes | None = None
    ) -> ProcessResult:
        """Remove an installed manifest and what it installed.

        Runs the manifest's suit-uninstall sequence when it has one, else
        unlinks the components the manifest installed.

        :raises SuitNotInstalledError: if no such manifest is held.
        :raises SuitError: if the uninstall sequence fails (``.report`` set).
        """
        installed = self.store.manifest(manifest_component_id)
        if installed is None:
            raise SuitNotInstalledError(f"no manifest at {manifest_component_id!r}")
        try:
            env = SuitEnvelope.decode(installed.envelope)
            effects = _Effects()
            with self.store.transaction() as txn:
                if env.sequence(SuitManifestKey.uninstall) is not None:
                    _Interpreter(self, txn, env, effects).run(
                        (SuitManifestKey.uninstall,)
                    )
                else:
                    for component in installed.components:
                        txn.unlink(component)
                        effects.removed.append(component)
                txn.remove_manifest(manifest_component_id)
        except SuitError as exc:
            exc.report = _failure_report(installed.envelope, exc, report_nonce)
            raise
        return _result(installed, env, effects, report_nonce)

    def invoke(
        self, manifest_component_id: ComponentId, *, report_nonce: bytes | None = None
    ) -> ProcessResult:
        """Run the Invocation procedure (validate, load, invoke) of an
        installed manifest; the caller starts the returned invocations.

        :raises SuitNotInstalledError: if no such manifest is held.
        :raises SuitError: if a sequence fails (``.report`` set).
        """
        installed = self.store.manifest(manifest_component_id)
        if installed is None:
            raise SuitNotInstalledError(f"no manifest at {manifest_component_id!r}")
        try:
            env = SuitEnvelope.decode(installed.envelope)
            effects = _Effects()
            with self.store.transaction() as txn:
                _Interpreter(self, txn, env, effects).run(INVOCATION)
        except SuitError as exc:
            exc.report = _failure_report(installed.envelope, exc, report_nonce)
            raise
        return _result(installed, env, effects, report_nonce)

    def _admit(self, env: SuitEnvelope, signer: Authenticator) -> ComponentId:
        mcid = env.manifest.manifest_component_id or self.default_manifest_component_id
        if mcid is None:
            raise SuitUnsupportedError(
                "a root manifest without manifest-component-id",
                reason=SuitReportReason.component_unsupported,
            )
        self.check_ids(env, mcid)
        # trust-domains 6.2: the signer must be entitled to this location,
        # or it could overwrite another party's manifest.
        if self.authorize is not None and not self.authorize(signer, mcid):
            raise SuitAuthError(
                "the signer may not install at this manifest-component-id",
                reason=SuitReportReason.component_unauthorised,
            )
        held = self.store.manifest(mcid)
        # manifest 8.4.2: a new manifest needs a strictly greater number.
        if held is not None and env.manifest.sequence_number <= held.sequence_number:
            raise SuitRollbackError(
                f"sequence number {env.manifest.sequence_number} is not greater "
                f"than the installed {held.sequence_number}"
            )
        return mcid

    def check_ids(self, env: SuitEnvelope, mcid: ComponentId | None) -> None:
        """Refuse a manifest (root or dependency) naming an id the device
        cannot keep components at.

        :raises SuitUnsupportedError: if ``accept_component_id`` refuses one.
        """
        accept = self.accept_component_id
        if accept is None:
            return
        common = env.manifest.common
        ids = [*common.components] if mcid is None else [mcid, *common.components]
        ids += [prefix for prefix in common.dependencies.values() if prefix]
        for cid in ids:
            if not accept(cid):
                raise SuitUnsupportedError(
                    f"this device keeps no component at {_shown(cid)}",
                    reason=SuitReportReason.component_unsupported,
                )


def _shown(cid: ComponentId, limit: int = 60) -> str:
    """A component id for a message, cut short when long."""
    parts = []
    for part in cid[:8]:
        text = part.decode("ascii", "replace")
        plain = part and text.isprintable() and "/" not in text and "\ufffd" not in text
        parts.append(text if plain else "h'" + part.hex() + "'")
    text = "/".join(parts) + ("/..." if len(cid) > 8 else "")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kept(effects: _Effects) -> tuple[ComponentId, ...]:
    """Components written and still present (a staging copy is not kept)."""
    gone = set(effects.removed)
    return tuple(c for c in dict.fromkeys(effects.written) if c not in gone)


def _result(
    manifest: InstalledManifest,
    env: SuitEnvelope,
    effects: _Effects,
    nonce: bytes | None,
    signer: Authenticator | None = None,
) -> ProcessResult:
    """What a procedure that succeeded returns, with its report."""
    return ProcessResult(
        manifest,
        _success_report(env, effects, nonce),
        signer,
        tuple(effects.invocations),
        tuple(effects.removed),
    )


def _success_report(env: SuitEnvelope, effects: _Effects, nonce: bytes | None) -> bytes:
    return build_report(
        manifest_digest=env.digest,
        manifest_uri=env.manifest.reference_uri,
        nonce=nonce,
        records=effects.records,
    )


def _failure_report(data: bytes, exc: SuitError, nonce: bytes | None) -> bytes:
    digest, uri = _reference(data)
    record = exc.record or SuitRecord((), 0, 0, 0)
    failure = SuitReportFailure(record.manifest_section, record, exc.reason)
    records = [record] if exc.record is not None else []
    return build_report(
        manifest_digest=digest,
        manifest_uri=uri,
        nonce=nonce,
        records=records,
        failure=failure,
    )


def _reference(data: bytes) -> tuple[SuitDigest, str | None]:
    """The best suit-reference available for bytes that may be broken."""
    try:
        env = SuitEnvelope.decode(data)
        return env.digest, env.manifest.reference_uri
    except SuitError:
        pass
    try:
        outer = _Outer.decode(data)
        return SuitDigest.of(outer.manifest_bytes), None
    except SuitError:
        # Nothing manifest-like is readable: the report names the
        # received bytes by their hash instead.
        return SuitDigest.of(bytes(data)), None


class _Interpreter:
    """Runs the sequences of one manifest (or dependency) over a transaction."""

    def __init__(
        self,
        proc: SuitProcessor,
        txn: StoreTransaction,
        env: SuitEnvelope,
        effects: _Effects,
        path: tuple[int, ...] = (),
    ) -> None:
        self.proc = proc
        self.txn = txn
        self.env = env
        self.effects = effects
        self.path = path
        common = env.manifest.common
        self.ids = common.component_ids()
        self.dependencies = common.dependencies
        # Equal component ids share one table across the dependency tree.
        self.params: list[dict[int, Any]] = [
            effects.params.setdefault(cid, {}) if cid else {} for cid in self.ids
        ]
        self.current: list[int] = [0]
        self.section = 0
        self.soft_failure = False
        self.nesting = 0
        self.checked: dict[int, SuitEnvelope] = {}
        self.failed: SuitRecord | None = None

    def run(self, sections: Iterable[int]) -> None:
        """Run each present section, preceded by the shared sequence."""
        for key in sections:
            self.run_section(key)

    def run_section(self, key: int) -> None:
        """Run one section (absent: nothing to do)."""
        try:
            sequence = self.env.sequence(key)
        except SuitSeveredMemberError as exc:
            # The report names the section that could not be run.
            exc.record = SuitRecord(self.path, key, 0, 0, {})
            raise
        if sequence is None:
            return
        shared = self.env.manifest.common.shared_sequence
        if shared is not None:
            self._top(SHARED, shared)
        self._top(key, sequence)

    def _top(self, section: int, sequence: SuitCommandSequence) -> None:
        self.section = section
        self.current = [0]
        self.soft_failure = False
        first = sequence.commands[0] if sequence.commands else None
        if (
            len(self.ids) > 1
            and first is not None
            and first.label != SuitCommand.directive_set_component_index
        ):
            # With more than one component (dependencies included) the index
            # is not implied: every sequence must set it first.
            raise self._attach(
                SuitAbortError(
                    f"section {_section_name(section)} does not start with "
                    "set-component-index "
                    f"although the manifest has {len(self.ids)} components"
                ),
                first,
                0,
            )
        if not self.exec(sequence):
            failure = SuitConditionFailedError(
                f"a condition failed in section {_section_name(section)}"
            )
            failure.record = self.failed
            raise failure

    def exec(self, sequence: SuitCommandSequence) -> bool:
        """Run a sequence; False when a condition fails."""
        for command in sequence.commands:
            if command.label == SuitCommand.directive_set_component_index:
                self.current = self._indices(command)
                continue
            for index in list(self.current):
                if not self._step(command, index):
                    return False
        return True

    def _indices(self, command: Command) -> list[int]:
        arg = command.argument
        if arg is True:
            return list(range(len(self.ids)))
        values = arg if isinstance(arg, list) else [arg]
        if not values or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(self.ids)
            for v in values
        ):
            raise self._attach(
                SuitAbortError(f"component index {arg!r} out of range"), command, 0
            )
        return list(values)

    def _step(self, command: Command, index: int) -> bool:
        try:
            label = SuitCommand(command.label)
            handler = HANDLERS[label]
        except (ValueError, KeyError):
            raise self._attach(
                SuitUnsupportedError(f"command {command.label}"), command, index
            ) from None
        try:
            ok, measured = handler(self, command.argument, index)
        except SuitError as exc:
            raise self._attach(exc, command, index) from None
        self._policy(label, command, index, ok, measured)
        return ok

    def _record(
        self, command: Command, index: int, props: dict[int, Any]
    ) -> SuitRecord:
        return SuitRecord(self.path, self.section, command.offset, index, props)

    def _attach(self, exc: SuitError, command: Command, index: int) -> SuitError:
        if exc.record is None:
            exc.record = self._record(command, index, {})
        return exc

    def _policy(
        self, label: SuitCommand, command: Command, index: int, ok: bool, props: Any
    ) -> None:
        record = self._record(command, index, props or {})
        if not ok:
            self.failed = record
        if label not in _POLICY_COMMANDS or not isinstance(command.argument, int):
            return
        policy = SuitReportingPolicy(command.argument & 15)
        want = (
            SuitReportingPolicy.send_record_on_success
            if ok
            else SuitReportingPolicy.send_record_on_failure
        )
        if want in policy:
            self.effects.records.append(record)

    # parameters

    def param(self, index: int, key: SuitParameter) -> Any:
        """A parameter's value, or None if unset."""
        return self.params[index].get(key)

    def need(self, index: int, key: SuitParameter) -> Any:
        """A parameter a directive cannot do without."""
        value = self.params[index].get(key)
        if value is None:
            raise SuitAbortError(f"parameter {key.name} is not set")
        return value

    def set_params(self, arg: Any, index: int, override: bool) -> None:
        """Apply override-parameters or set-parameters."""
        if not isinstance(arg, dict) or not arg:
            raise SuitDecodeError("parameters must be a non-empty map")
        for key, value in arg.items():
            if not isinstance(key, int) or isinstance(key, bool):
                raise SuitDecodeError("parameter keys are integers")
            if key not in SuitParameter.__members__.values() and key > -256:
                raise SuitUnsupportedError(
                    f"parameter {key}", reason=SuitReportReason.parameter_unsupported
                )
            if key == SuitParameter.soft_failure:
                self._set_soft_failure(value)
            elif override or key not in self.params[index]:
                self.params[index][key] = value

    def _set_soft_failure(self, value: Any) -> None:
        # manifest 8.4.8.13: soft-failure may only be set inside try-each
        # or run-sequence; elsewhere it is an error.
        if self.nesting == 0 or not isinstance(value, bool):
            raise SuitAbortError("soft-failure set outside try-each/run-sequence")
        self.soft_failure = value

    # nested sequences

    def nested(self, raw: Any, index: int, soft: bool) -> tuple[bool, bool]:
        """Run a nested sequence with soft-failure scoped to it.

        :returns: (sequence succeeded, soft-failure at its end).
        """
        if not isinstance(raw, bytes):
            raise SuitDecodeError("a nested sequence must be a byte string")
        sequence = SuitCommandSequence.decode(raw)
        saved = (self.current, self.soft_failure)
        self.current, self.soft_failure = [index], soft
        self.nesting += 1
        try:
            ok = self.exec(sequence)
            return ok, self.soft_failure
        finally:
            self.nesting -= 1
            self.current, self.soft_failure = saved

    # component access

    def read(self, index: int) -> bytes | None:
        """The current content of component ``index``."""
        return self.txn.read(self.ids[index])

    def read_chunks(self, index: int) -> Iterator[bytes] | None:
        """The current content of component ``index``, piece by piece."""
        return self.txn.read_chunks(self.ids[index])

    def store(self, index: int, chunks: Iterable[bytes]) -> None:
        """Write component ``index``, enforcing image-size and hashing the
        content on the way, so that nothing needs a second pass."""
        limit = self.param(index, SuitParameter.image_size)
        if not isinstance(limit, int) or limit > self.proc.max_component_size:
            limit = self.proc.max_component_size
        cid = self.ids[index]
        self.effects.measured.pop(cid, None)
        expected = digest_param(self, index)
        algorithm = expected.algorithm if expected else SuitDigestAlgorithm.sha_256
        hasher = hasher_for(algorithm)
        if hasher is None:
            self.txn.write(cid, bounded(chunks, limit))
        else:
            # The hash runs beside the store's own work; the block ends only
            # once every byte is hashed, so image-match sees the full digest.
            with hashing_aside(hasher) as feed:
                self.txn.write(cid, bounded(chunks, limit, feed))
            self.effects.measured[cid] = _Measure(
                algorithm, finish(hasher, algorithm), hasher.size
            )
        if index not in self.dependencies:
            self.effects.written.append(cid)
        self.checked.pop(index, None)

    def measure(self, index: int, algorithm: int) -> tuple[bytes, int] | None:
        """Digest and size of component ``index`` (None if absent)."""
        known = self.effects.measured.get(self.ids[index])
        if known is not None and known.algorithm == algorithm:
            return known.digest, known.size
        chunks = self.read_chunks(index)
        hasher = hasher_for(algorithm)
        if chunks is None or hasher is None:
            return None
        for chunk in chunks:
            hasher.update(chunk)
        return finish(hasher, algorithm), hasher.size

    def dependency(self, index: int) -> SuitEnvelope:
        """Authenticate the dependency at ``index`` against its digest."""
        content = self.read(index)
        if content is None:
            raise SuitAbortError(f"dependency {index} has not been fetched")
        env, _signer = open_envelope(
            content, self.proc.trust_anchors, mac_keys=self.proc.mac_keys
        )
        expected = digest_param(self, index)
        if expected is None or expected != env.digest:
            raise SuitAuthError(f"dependency {index} does not match its image-digest")
        return env


def _section_name(section: int) -> str:
    """A manifest section as messages name it: ``install (20)``."""
    try:
        return f"{SuitManifestKey(section).name.replace('_', '-')} ({section})"
    except ValueError:
        return str(section)
