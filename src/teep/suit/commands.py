"""The SUIT commands: one handler per condition and directive.

Each handler takes the running :class:`~teep.suit.processor._Interpreter`,
the command's argument and the component index it applies to, and returns
whether it succeeded (conditions may fail; directives raise instead) with
the values it measured for the report.  Semantics follow
draft-ietf-suit-manifest section 8.4 and the trust-domains and
firmware-encryption drafts; the processor module lists the choices made
where they leave room.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from teep.suit.encryption import SuitEncryptionInfo
from teep.suit.envelope import SuitDigest, SuitEnvelope, _Outer
from teep.suit.errors import (
    SuitAbortError,
    SuitDecodeError,
    SuitError,
    SuitRollbackError,
)
from teep.suit.registry import SuitCommand, SuitParameter
from teep.suit.store import ComponentId

if TYPE_CHECKING:
    from teep.suit.processor import _Interpreter as Interpreter

__all__ = ["HANDLERS", "SHARED", "Fetch", "Invocation", "Result", "digest_param"]

Fetch = Callable[[str], Iterable[bytes]]
"""Returns the chunks of a URI's content."""
# The shared sequence lives in suit-common (manifest key 3): records of its
# commands name that section.
SHARED = 3
MAX_DEPENDENCY_DEPTH = 8
"""Most dependencies nested one inside another: a chain deeper than this
(each one processing the next) is refused rather than left to exhaust the
interpreter's stack."""


@dataclass(frozen=True)
class Invocation:
    """A component the manifest asked to invoke (the device runs it)."""

    component_id: ComponentId
    """The component to start."""
    args: bytes | None
    """suit-parameter-invoke-args, if set."""


def digest_param(run: Interpreter, index: int) -> SuitDigest | None:
    raw = run.param(index, SuitParameter.image_digest)
    if raw is None:
        return None
    if not isinstance(raw, bytes):
        raise SuitDecodeError("image-digest must be a byte string")
    return SuitDigest.decode(raw)


Result = tuple[bool, dict[int, Any] | None]
_OK: Result = (True, None)
_FAIL: Result = (False, None)


def _identity(key: SuitParameter) -> Callable[[Interpreter, Any, int], Result]:
    def check(run: Interpreter, _arg: Any, index: int) -> Result:
        value = run.param(index, key)
        accepted = run.proc.identity[key]
        if value is None:
            return _FAIL
        return (accepted is None or value in accepted), {int(key): value}

    return check


def _image_match(run: Interpreter, _arg: Any, index: int) -> Result:
    expected = digest_param(run, index)
    if expected is None:
        return _FAIL
    if index in run.dependencies:
        return _dependency_match(run, index, expected)
    expected.hash(b"")  # refuses an unknown algorithm with the right reason
    found = run.measure(index, expected.algorithm)
    if found is None:
        return _FAIL
    value, length = found
    measured = SuitDigest(expected.algorithm, value)
    size = run.param(index, SuitParameter.image_size)
    ok = hmac.compare_digest(value, expected.value)
    if ok and isinstance(size, int):
        ok = size == length
    return ok, {int(SuitParameter.image_digest): measured.encode()}


def _dependency_match(run: Interpreter, index: int, expected: SuitDigest) -> Result:
    content = run.read(index)
    if content is None:
        return _FAIL
    # trust-domains 5.2: a dependency's digest is its manifest digest.
    try:
        content = _Outer.decode(content).manifest_bytes
    except SuitError:
        return _FAIL
    measured = SuitDigest(expected.algorithm, expected.hash(content))
    ok = hmac.compare_digest(measured.value, expected.value)
    if ok:
        run.checked[index] = run.dependency(index)
    return ok, {int(SuitParameter.image_digest): measured.encode()}


def _component_slot(run: Interpreter, _arg: Any, index: int) -> Result:
    return run.param(index, SuitParameter.component_slot) == 0, None


def _check_content(run: Interpreter, _arg: Any, index: int) -> Result:
    expected = run.param(index, SuitParameter.content)
    content = run.read(index)
    if not isinstance(expected, bytes) or content is None:
        return _FAIL
    return hmac.compare_digest(expected, content), None


def _abort(_run: Interpreter, _arg: Any, _index: int) -> Result:
    return _FAIL


def _is_dependency(run: Interpreter, _arg: Any, index: int) -> Result:
    return index in run.dependencies, None


def _dependency_integrity(run: Interpreter, _arg: Any, index: int) -> Result:
    if index not in run.dependencies:
        raise SuitAbortError(f"component {index} is not a dependency")
    run.checked[index] = run.dependency(index)
    return _OK


def _process_dependency(run: Interpreter, _arg: Any, index: int) -> Result:
    # trust-domains 7.7.1: only an authenticated dependency, and never
    # from the shared sequence.
    if index not in run.dependencies or run.section == SHARED:
        raise SuitAbortError(f"cannot process component {index} as a dependency")
    if len(run.path) >= MAX_DEPENDENCY_DEPTH:
        raise SuitAbortError(
            f"dependencies nested more than {MAX_DEPENDENCY_DEPTH} deep"
        )
    env = run.checked.get(index)
    if env is None:
        # The TD and TEEP examples process a dependency that no condition
        # checked; like libcsuit, run the full dependency-integrity check
        # here instead of refusing.
        env = run.checked[index] = run.dependency(index)
    if _already_held(run, env):
        return _OK
    run.proc.check_ids(env, env.manifest.manifest_component_id)
    child = type(run)(run.proc, run.txn, env, run.effects, (*run.path, index))
    child.run_section(run.section)
    return _OK


def _already_held(run: Interpreter, env: SuitEnvelope) -> bool:
    """Whether the device already holds this dependency, so that processing
    it again would change nothing.

    A dependency is a manifest like any other: one older than the device
    holds at its manifest-component-id would roll that manifest's
    components back (manifest 8.4.2), so it is refused as a root manifest
    would be.

    :raises SuitRollbackError: if it is older than the one held, or as old
        but another manifest.
    """
    mcid = env.manifest.manifest_component_id
    held = None if mcid is None else run.proc.store.manifest(mcid)
    if held is None or env.manifest.sequence_number > held.sequence_number:
        return False
    if env.manifest.sequence_number == held.sequence_number:
        try:
            same = SuitEnvelope.decode(held.envelope).digest == env.digest
        except SuitError:
            same = False
        if same:
            return True
    raise SuitRollbackError(
        f"dependency sequence number {env.manifest.sequence_number} is not "
        f"newer than the installed {held.sequence_number}"
    )


def _set_component_index(_run: Interpreter, _arg: Any, _index: int) -> Result:
    return _OK  # handled in exec; listed so the label is known


def _try_each(run: Interpreter, arg: Any, index: int) -> Result:
    if not isinstance(arg, list) or len(arg) < 2:
        raise SuitDecodeError("try-each needs at least two alternatives")
    for position, alternative in enumerate(arg):
        if alternative is None and position == len(arg) - 1:
            return _OK
        ok, soft = run.nested(alternative, index, True)
        if ok:
            return _OK
        if not soft:
            return _FAIL
    return _FAIL


def _run_sequence(run: Interpreter, arg: Any, index: int) -> Result:
    ok, soft = run.nested(arg, index, False)
    # manifest 8.4.10.7: with soft-failure, a failed condition ends the
    # sequence without failing its caller.
    return (ok or soft), None


def _write(run: Interpreter, _arg: Any, index: int) -> Result:
    content = run.need(index, SuitParameter.content)
    if not isinstance(content, bytes):
        raise SuitDecodeError("content must be a byte string")
    run.store(index, [_decrypted(run, index, content)])
    return _OK


def _decrypted(run: Interpreter, index: int, content: bytes) -> bytes:
    """``content`` itself, or its plaintext when encryption-info is set."""
    info = run.param(index, SuitParameter.encryption_info)
    if info is None:
        return content
    if not isinstance(info, bytes):
        raise SuitDecodeError("encryption-info must be a byte string")
    # firmware-encryption 8: write and copy decrypt with the KEK the device
    # holds; a payload no key opens aborts the procedure.
    return SuitEncryptionInfo.decode(info).decrypt(content, run.proc.decryption_keys)


def _fetch(run: Interpreter, _arg: Any, index: int) -> Result:
    uri = run.need(index, SuitParameter.uri)
    if not isinstance(uri, str):
        raise SuitDecodeError("uri must be a text string")
    if uri.startswith("#"):
        payload = run.env.integrated.get(uri)
        if payload is None:
            raise SuitAbortError(f"no integrated payload {uri!r} in the envelope")
        chunks: Iterable[bytes] = [payload]
    elif run.proc.fetch is None:
        raise SuitAbortError(f"cannot fetch {uri!r}: no fetcher configured")
    else:
        chunks = _call_fetch(run.proc.fetch, uri)
    run.store(index, chunks)
    return _OK


def _call_fetch(fetch: Fetch, uri: str) -> Iterable[bytes]:
    try:
        return fetch(uri)
    except SuitError:
        raise
    except Exception as exc:  # the injected fetcher's failures, whatever they are
        raise SuitAbortError(f"fetch of {uri!r} failed: {exc}") from None


def _source(run: Interpreter, index: int) -> int:
    source = run.need(index, SuitParameter.source_component)
    if not isinstance(source, int) or not 0 <= source < len(run.ids):
        raise SuitAbortError(f"source-component {source!r} out of range")
    return source


def _copy(run: Interpreter, _arg: Any, index: int) -> Result:
    source = _source(run, index)
    if run.param(index, SuitParameter.encryption_info) is None:
        chunks = run.read_chunks(source)
        if chunks is None:
            raise SuitAbortError("the source component is empty")
        run.store(index, chunks)
        return _OK
    content = run.read(source)
    if content is None:
        raise SuitAbortError("the source component is empty")
    run.store(index, [_decrypted(run, index, content)])
    return _OK


def _swap(run: Interpreter, _arg: Any, index: int) -> Result:
    source = _source(run, index)
    first, second = run.read(index), run.read(source)
    if first is None or second is None:
        raise SuitAbortError("swap needs both components present")
    run.store(index, [second])
    run.store(source, [first])
    return _OK


def _invoke(run: Interpreter, _arg: Any, index: int) -> Result:
    args = run.param(index, SuitParameter.invoke_args)
    run.effects.invocations.append(
        Invocation(run.ids[index], args if isinstance(args, bytes) else None)
    )
    return _OK


def _unlink(run: Interpreter, _arg: Any, index: int) -> Result:
    run.txn.unlink(run.ids[index])
    run.effects.removed.append(run.ids[index])
    return _OK


def _set_parameters(run: Interpreter, arg: Any, index: int) -> Result:
    run.set_params(arg, index, override=False)
    return _OK


def _override_parameters(run: Interpreter, arg: Any, index: int) -> Result:
    run.set_params(arg, index, override=True)
    return _OK


HANDLERS: dict[SuitCommand, Callable[[Interpreter, Any, int], Result]] = {
    SuitCommand.condition_vendor_identifier: _identity(SuitParameter.vendor_identifier),
    SuitCommand.condition_class_identifier: _identity(SuitParameter.class_identifier),
    SuitCommand.condition_device_identifier: _identity(SuitParameter.device_identifier),
    SuitCommand.condition_image_match: _image_match,
    SuitCommand.condition_component_slot: _component_slot,
    SuitCommand.condition_check_content: _check_content,
    SuitCommand.condition_abort: _abort,
    SuitCommand.condition_is_dependency: _is_dependency,
    SuitCommand.condition_dependency_integrity: _dependency_integrity,
    SuitCommand.directive_process_dependency: _process_dependency,
    SuitCommand.directive_set_component_index: _set_component_index,
    SuitCommand.directive_try_each: _try_each,
    SuitCommand.directive_run_sequence: _run_sequence,
    SuitCommand.directive_write: _write,
    SuitCommand.directive_fetch: _fetch,
    SuitCommand.directive_copy: _copy,
    SuitCommand.directive_swap: _swap,
    SuitCommand.directive_invoke: _invoke,
    SuitCommand.directive_unlink: _unlink,
    SuitCommand.directive_set_parameters: _set_parameters,
    SuitCommand.directive_override_parameters: _override_parameters,
}
