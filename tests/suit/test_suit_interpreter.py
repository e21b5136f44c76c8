"""The command interpreter's rules, one test per rule, on hand-built signed
manifests (draft-ietf-suit-manifest 8.4, trust-domains 7.7; the digest's
section 9.4 pseudo-code).

Each manifest is real: encoded, signed and installed through
:class:`SuitProcessor` into a :class:`MemoryComponentStore`.  The tests
check the outcome, the SUIT report (reason, section, record) and what the
store holds afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest

from teep import cbor
from teep.keys import KeyKind, PrivateKey
from teep.suit.builder import encode_sequence, envelope_of
from teep.suit.errors import SuitError
from teep.suit.processor import ProcessResult, SuitProcessor
from teep.suit.registry import SuitCommand as C
from teep.suit.registry import SuitManifestKey as Key
from teep.suit.registry import SuitParameter as P
from teep.suit.registry import SuitReportReason as Reason
from teep.suit.report import SuitReport, decode_report
from teep.suit.store import ComponentId, MemoryComponentStore

SIGNER = PrivateKey.generate(KeyKind.P256)
VENDOR = b"\x11" * 16
OTHER_VENDOR = b"\x22" * 16
MCID: ComponentId = (b"manifest",)
A: ComponentId = (b"a",)
B: ComponentId = (b"b",)
D: ComponentId = (b"d",)
REPORT = 15
"""Reporting policy: records on success and failure."""


def seq(*commands: tuple[int, Any]) -> bytes:
    return encode_sequence(*commands)


def vendor(value: bytes) -> tuple[int, Any]:
    """override-parameters setting vendor-identifier."""
    return (C.directive_override_parameters, {P.vendor_identifier: value})


def write(content: bytes) -> list[tuple[int, Any]]:
    """Set content and write it into the current component."""
    return [
        (C.directive_override_parameters, {P.content: content}),
        (C.directive_write, REPORT),
    ]


VENDOR_FAILS = [vendor(OTHER_VENDOR), (C.condition_vendor_identifier, REPORT)]
"""A condition that fails: the device accepts only VENDOR."""


def envelope(
    sections: dict[int, bytes],
    components: tuple[ComponentId, ...] = (A,),
    number: int = 1,
) -> bytes:
    common = cbor.dumps({2: [list(c) for c in components]})
    manifest: dict[int, Any] = {1: 1, 2: number, 3: common, 5: list(MCID)}
    manifest.update(sections)
    return envelope_of(cbor.det_dumps(manifest), SIGNER)


def processor(store: MemoryComponentStore) -> SuitProcessor:
    return SuitProcessor(store, [SIGNER.public], vendor_ids=[VENDOR])


def install(
    install_seq: bytes,
    components: tuple[ComponentId, ...] = (A,),
    store: MemoryComponentStore | None = None,
    number: int = 1,
) -> tuple[ProcessResult, MemoryComponentStore]:
    store = store if store is not None else MemoryComponentStore()
    data = envelope({Key.install: install_seq}, components, number)
    return processor(store).install(data), store


def refused(
    install_seq: bytes,
    components: tuple[ComponentId, ...] = (A,),
    store: MemoryComponentStore | None = None,
    number: int = 1,
) -> tuple[SuitError, SuitReport, MemoryComponentStore]:
    store = store if store is not None else MemoryComponentStore()
    data = envelope({Key.install: install_seq}, components, number)
    with pytest.raises(SuitError) as info:
        processor(store).install(data)
    assert info.value.report is not None
    return info.value, decode_report(info.value.report), store


def offset_of(sequence: bytes, position: int) -> int:
    """Byte offset of the ``position``-th command label of ``sequence``."""
    from teep.suit.envelope import SuitCommandSequence

    return SuitCommandSequence.decode(sequence).commands[position].offset


def assert_condition_failed(
    report: SuitReport, section: int, offset: int | None = None
) -> None:
    assert not report.succeeded
    assert report.result is not None
    assert report.result.reason == Reason.condition_failed
    assert report.result.record.manifest_section == section
    if offset is not None:
        assert report.result.record.section_offset == offset


# try-each


def test_try_each_first_alternative_that_does_not_fail_wins() -> None:
    """The first alternative fails its condition, the second succeeds: its
    writes stand and the third alternative never runs."""
    first = seq(*VENDOR_FAILS, *write(b"first"))
    second = seq(
        vendor(VENDOR), (C.condition_vendor_identifier, REPORT), *write(b"second")
    )
    third = seq(*write(b"third"))
    result, store = install(seq((C.directive_try_each, [first, second, third])))
    assert store.read(A) == b"second"
    assert decode_report(result.report).succeeded


def test_try_each_stops_at_the_first_success() -> None:
    """When the first alternative succeeds, the later ones do not run."""
    first = seq(*write(b"first"))
    second = seq(*write(b"second"))
    _result, store = install(seq((C.directive_try_each, [first, second])))
    assert store.read(A) == b"first"


def test_try_each_trailing_null_accepts_all_failing() -> None:
    """With a trailing null, try-each succeeds although every alternative
    failed; nothing was written."""
    alternative = seq(*VENDOR_FAILS, *write(b"never"))
    result, store = install(
        seq((C.directive_try_each, [alternative, alternative, None]), *write(b"after"))
    )
    assert store.read(A) == b"after"
    assert decode_report(result.report).succeeded


def test_try_each_exhausted_fails_the_manifest() -> None:
    """Without a trailing null, an exhausted try-each fails the manifest as
    a condition failure, reported in its section."""
    alternative = seq(*VENDOR_FAILS)
    install_seq = seq((C.directive_try_each, [alternative, alternative]))
    error, report, store = refused(install_seq)
    assert error.reason is Reason.condition_failed
    assert_condition_failed(report, Key.install)
    assert store.read(A) is None and store.manifests() == []


def test_try_each_soft_failure_false_stops_the_alternatives() -> None:
    """An alternative that turns soft-failure off and then fails ends the
    try-each with a failure: the next alternative does not run."""
    strict = seq(
        (C.directive_override_parameters, {P.soft_failure: False}), *VENDOR_FAILS
    )
    fallback = seq(*write(b"fallback"))
    error, report, store = refused(seq((C.directive_try_each, [strict, fallback])))
    assert error.reason is Reason.condition_failed
    assert_condition_failed(report, Key.install)
    assert store.read(A) is None


def test_try_each_abort_is_not_caught() -> None:
    """A directive that fails inside an alternative aborts the procedure at
    once (directives never soft-fail); the next alternative does not run."""
    broken = seq((C.directive_fetch, REPORT))  # no uri set
    fallback = seq(*write(b"fallback"))
    install_seq = seq((C.directive_try_each, [broken, fallback]))
    error, report, store = refused(install_seq)
    assert error.reason is Reason.operation_failed
    assert report.result is not None
    assert report.result.reason == Reason.operation_failed
    assert report.result.record.manifest_section == Key.install
    assert store.read(A) is None


# run-sequence


def test_run_sequence_soft_failure_continues() -> None:
    """In a run-sequence with soft-failure set, a failed condition ends that
    sequence only: the commands after it in the sequence do not run and
    the outer sequence continues."""
    inner = seq(
        (C.directive_override_parameters, {P.soft_failure: True}),
        *VENDOR_FAILS,
        *write(b"never"),
    )
    result, store = install(
        seq((C.directive_run_sequence, inner), *write(b"after")),
    )
    assert store.read(A) == b"after"
    report = decode_report(result.report)
    assert report.succeeded
    # The failed condition's policy asks for a record: it is in the report.
    failed = [r for r in report.records if not isinstance(r, dict)]
    assert any(r.manifest_section == Key.install for r in failed)


def test_run_sequence_without_soft_failure_fails_the_manifest() -> None:
    """Without soft-failure (its default in run-sequence), a failed
    condition inside the run-sequence fails the manifest."""
    inner = seq(*VENDOR_FAILS)
    install_seq = seq((C.directive_run_sequence, inner), *write(b"after"))
    error, report, store = refused(install_seq)
    assert error.reason is Reason.condition_failed
    assert_condition_failed(report, Key.install)
    assert store.read(A) is None and store.manifests() == []


def test_soft_failure_outside_a_nested_sequence_aborts() -> None:
    """soft-failure may only be set inside try-each or run-sequence."""
    install_seq = seq((C.directive_override_parameters, {P.soft_failure: True}))
    error, report, _store = refused(install_seq)
    assert error.reason is Reason.operation_failed
    assert report.result is not None
    assert report.result.record.manifest_section == Key.install


# parameters


def test_set_parameters_keeps_an_already_set_parameter() -> None:
    """set-parameters (19) sets only what is unset."""
    _result, store = install(
        seq(
            (C.directive_override_parameters, {P.content: b"original"}),
            (C.directive_set_parameters, {P.content: b"ignored"}),
            (C.directive_write, REPORT),
        )
    )
    assert store.read(A) == b"original"


def test_set_parameters_sets_an_unset_parameter() -> None:
    """set-parameters on an unset parameter sets it."""
    _result, store = install(
        seq(
            (C.directive_set_parameters, {P.content: b"set"}),
            (C.directive_write, REPORT),
        )
    )
    assert store.read(A) == b"set"


def test_override_parameters_replaces_an_already_set_parameter() -> None:
    """override-parameters (20) always replaces."""
    _result, store = install(
        seq(
            (C.directive_set_parameters, {P.content: b"first"}),
            (C.directive_override_parameters, {P.content: b"override"}),
            (C.directive_write, REPORT),
        )
    )
    assert store.read(A) == b"override"


def test_unknown_parameter_is_refused() -> None:
    """A parameter outside the registries fails with reason 8."""
    error, report, _store = refused(seq((C.directive_override_parameters, {200: b"x"})))
    assert error.reason is Reason.parameter_unsupported
    assert report.result is not None
    assert report.result.reason == Reason.parameter_unsupported
    assert report.result.record.manifest_section == Key.install


# copy, swap


def test_copy() -> None:
    """copy writes the source component's content into the current one and
    leaves the source as it was."""
    _result, store = install(
        seq(
            (C.directive_set_component_index, 0),
            *write(b"AAA"),
            (C.directive_set_component_index, 1),
            (C.directive_override_parameters, {P.source_component: 0}),
            (C.directive_copy, REPORT),
        ),
        components=(A, B),
    )
    assert store.read(A) == b"AAA"
    assert store.read(B) == b"AAA"


def test_copy_from_an_empty_component_aborts() -> None:
    """copy from a component that holds nothing aborts."""
    error, _report, store = refused(
        seq(
            (C.directive_set_component_index, 1),
            (C.directive_override_parameters, {P.source_component: 0}),
            (C.directive_copy, REPORT),
        ),
        components=(A, B),
    )
    assert error.reason is Reason.operation_failed
    assert store.read(B) is None


def test_swap() -> None:
    """swap exchanges the contents of the current and source components."""
    _result, store = install(
        seq(
            (C.directive_set_component_index, 0),
            *write(b"AAA"),
            (C.directive_set_component_index, 1),
            *write(b"BBB"),
            (C.directive_override_parameters, {P.source_component: 0}),
            (C.directive_swap, REPORT),
        ),
        components=(A, B),
    )
    assert store.read(A) == b"BBB"
    assert store.read(B) == b"AAA"


# conditions


def test_abort_fails_the_manifest_at_its_offset() -> None:
    """condition-abort always fails; the report names its section and
    offset, and what was written before it is gone."""
    install_seq = seq(*write(b"x"), (C.condition_abort, REPORT))
    error, report, store = refused(install_seq)
    assert error.reason is Reason.condition_failed
    assert_condition_failed(report, Key.install, offset_of(install_seq, 2))
    assert store.read(A) is None and store.manifests() == []


def test_check_content_match() -> None:
    """check-content passes when the component holds the content parameter."""
    result, store = install(seq(*write(b"x"), (C.condition_check_content, REPORT)))
    assert store.read(A) == b"x"
    assert decode_report(result.report).succeeded


def test_check_content_mismatch() -> None:
    """check-content fails when the component differs from the content
    parameter."""
    install_seq = seq(
        *write(b"x"),
        (C.directive_override_parameters, {P.content: b"y"}),
        (C.condition_check_content, REPORT),
    )
    error, report, store = refused(install_seq)
    assert error.reason is Reason.condition_failed
    assert_condition_failed(report, Key.install, offset_of(install_seq, 3))
    assert store.read(A) is None


# invoke


def test_invoke_with_arguments() -> None:
    """The Invocation procedure runs validate, load and invoke and returns
    the component to start with its invoke-args."""
    store = MemoryComponentStore()
    data = envelope(
        {
            Key.install: seq(*write(b"code")),
            Key.invoke: seq(
                (C.directive_override_parameters, {P.invoke_args: b"--arg"}),
                (C.directive_invoke, REPORT),
            ),
        }
    )
    proc = processor(store)
    installed = proc.install(data)
    assert installed.invocations == ()  # Update does not run invoke
    result = proc.invoke(MCID)
    assert [(i.component_id, i.args) for i in result.invocations] == [(A, b"--arg")]
    assert decode_report(result.report).succeeded


# set-component-index


def test_set_component_index_single() -> None:
    """An integer index directs the following commands at one component."""
    _result, store = install(
        seq((C.directive_set_component_index, 1), *write(b"only b")),
        components=(A, B, D),
    )
    assert (store.read(A), store.read(B), store.read(D)) == (None, b"only b", None)


def test_set_component_index_list() -> None:
    """A list of indices runs each command once per listed component."""
    _result, store = install(
        seq((C.directive_set_component_index, [0, 2]), *write(b"x")),
        components=(A, B, D),
    )
    assert (store.read(A), store.read(B), store.read(D)) == (b"x", None, b"x")


def test_set_component_index_true() -> None:
    """True runs each command once for every component."""
    _result, store = install(
        seq((C.directive_set_component_index, True), *write(b"x")),
        components=(A, B, D),
    )
    assert (store.read(A), store.read(B), store.read(D)) == (b"x", b"x", b"x")


def test_set_component_index_out_of_range_aborts() -> None:
    """An index past the components aborts."""
    error, _report, _store = refused(
        seq((C.directive_set_component_index, 3), *write(b"x")),
        components=(A, B, D),
    )
    assert error.reason is Reason.operation_failed


def test_several_components_need_the_index_set_first() -> None:
    """With more than one component no index is implied: a sequence that
    does not start with set-component-index aborts and writes nothing."""
    error, report, store = refused(seq(*write(b"x")), components=(A, B))
    assert error.reason is Reason.operation_failed
    assert report.result is not None
    assert report.result.record.manifest_section == Key.install
    assert "set-component-index" in str(error)
    assert (store.read(A), store.read(B)) == (None, None)


def test_one_component_implies_index_zero() -> None:
    """With one component the index 0 is implied."""
    _result, store = install(seq(*write(b"x")))
    assert store.read(A) == b"x"


# atomicity


def test_failed_manifest_changes_nothing() -> None:
    """A manifest that writes two components and then fails in the middle
    of its sequence leaves the store as it was: the old content of the
    updated component, no new component, the old manifest record."""
    store = MemoryComponentStore()
    install(seq(*write(b"v1")), store=store)
    install_seq = seq(
        (C.directive_set_component_index, 0),
        *write(b"v2"),
        (C.directive_set_component_index, 1),
        *write(b"new"),
        *VENDOR_FAILS,
        *write(b"never"),
    )
    error, report, store = refused(
        install_seq, components=(A, B), store=store, number=2
    )
    assert error.reason is Reason.condition_failed
    assert_condition_failed(report, Key.install, offset_of(install_seq, 7))
    assert store.read(A) == b"v1"
    assert store.read(B) is None
    assert [
        (m.manifest_component_id, m.sequence_number) for m in store.manifests()
    ] == [(MCID, 1)]
