"""Builder, processor and reports: install, rollback, failure, uninstall."""

from __future__ import annotations

from collections.abc import Iterator

import cddl_verifier
import pytest

from teep import cbor
from teep.components import component_id, manifest_id
from teep.keys import KeyKind, PrivateKey
from teep.suit.builder import build_envelope, sign_envelope
from teep.suit.envelope import SuitEnvelope, open_envelope
from teep.suit.errors import (
    SuitAbortError,
    SuitAuthError,
    SuitConditionFailedError,
    SuitError,
    SuitNotInstalledError,
    SuitRollbackError,
)
from teep.suit.processor import SuitProcessor
from teep.suit.registry import SuitManifestKey, SuitReportReason
from teep.suit.report import decode_report
from teep.suit.store import MemoryComponentStore

from .vectors import ENVELOPE_CDDL, REPORT_CDDL, cddl, example_key, hexfile, names

SIGNER = PrivateKey.generate(KeyKind.P256)
TC = component_id("hello")
MID = manifest_id("hello")
VENDOR = bytes(range(16))


@pytest.fixture(scope="module")
def envelope_schema() -> cddl_verifier.Validator:
    return cddl_verifier.Validator(cddl(*ENVELOPE_CDDL))


@pytest.fixture(scope="module")
def report_schema() -> cddl_verifier.Validator:
    return cddl_verifier.Validator(cddl(*REPORT_CDDL))


def build(seq: int = 1, payload: bytes = b"\0asm module", **kw: object) -> bytes:
    args: dict[object, object] = {
        "manifest_component_id": MID,
        "component_id": TC,
        "payload": payload,
        "sequence_number": seq,
        "signer": SIGNER,
        "vendor_id": VENDOR,
    }
    args.update(kw)
    return build_envelope(**args)  # type: ignore[arg-type]


def processor(store: MemoryComponentStore, **kw: object) -> SuitProcessor:
    return SuitProcessor(store, [SIGNER.public], **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [KeyKind.P256, KeyKind.ED25519])
def test_builder_output_validates(
    kind: KeyKind, envelope_schema: cddl_verifier.Validator
) -> None:
    """Built envelopes match the SUIT CDDL and are deterministic."""
    signer = PrivateKey.generate(kind)
    data = build(signer=signer, text={"en-US": {1: "hello"}}, tagged=True)
    value = cbor.loads(data)
    assert envelope_schema.validate(value.value, "SUIT_Envelope").valid
    env, key = open_envelope(data, [signer.public])
    assert key.thumbprint == signer.public.thumbprint
    assert cbor.det_dumps(cbor.loads(env.manifest.raw)) == env.manifest.raw


def test_install_and_uninstall(report_schema: cddl_verifier.Validator) -> None:
    """A built envelope installs its payload, reports success, and uninstalls."""
    store = MemoryComponentStore()
    result = processor(store, vendor_ids=[VENDOR]).install(build(), report_nonce=b"tok")
    assert store.read(TC) == b"\0asm module"
    assert result.manifest.components == (TC,)
    held = store.manifest(MID)
    assert held is not None and held.sequence_number == 1
    report = decode_report(result.report)
    assert report.succeeded and report.nonce == b"tok"
    assert report_schema.validate(cbor.loads(result.report), "SUIT_Report").valid

    removed = processor(store).uninstall(MID)
    assert removed.removed == (TC,)
    assert store.read(TC) is None and store.manifest(MID) is None


def test_install_by_uri() -> None:
    """A detached payload is fetched through the injected fetcher in chunks."""
    store = MemoryComponentStore()
    fetched: list[str] = []

    def fetch(uri: str) -> Iterator[bytes]:
        fetched.append(uri)
        yield b"\0asm "
        yield b"module"

    data = build(integrated=False, uri="https://tam.example/hello.wasm")
    processor(store, fetch=fetch).install(data)
    assert fetched == ["https://tam.example/hello.wasm"]
    assert store.read(TC) == b"\0asm module"


def test_rollback_refused() -> None:
    """Equal and lower sequence numbers are refused; a greater one upgrades."""
    store = MemoryComponentStore()
    proc = processor(store)
    proc.install(build(5))
    for seq in (5, 4):
        with pytest.raises(SuitRollbackError) as info:
            proc.install(build(seq, payload=b"old"))
        assert info.value.report is not None
        assert not decode_report(info.value.report).succeeded
    proc.install(build(6, payload=b"new"))
    assert store.read(TC) == b"new"


def test_wrong_digest_leaves_store_untouched() -> None:
    """A failing image-match aborts the whole install; nothing is stored."""
    store = MemoryComponentStore()
    proc = processor(store)
    proc.install(build(1, payload=b"first"))
    bad = build(2, payload=b"second", integrated=False, uri="https://x/y")
    with pytest.raises(SuitConditionFailedError) as info:
        SuitProcessor(store, [SIGNER.public], lambda _uri: [b"evil!!"]).install(bad)
    assert store.read(TC) == b"first"
    held = store.manifest(MID)
    assert held is not None and held.sequence_number == 1
    report = decode_report(info.value.report or b"")
    assert report.result is not None
    assert report.result.reason == SuitReportReason.condition_failed
    assert report.result.record.manifest_section == SuitManifestKey.install
    assert str(info.value) == "a condition failed in section install (20)"


def test_shared_sequence_failure_names_the_common_section() -> None:
    """A condition of the shared sequence (vendor-id here) that fails is
    recorded under suit-common, where that sequence lives."""
    store = MemoryComponentStore()
    proc = processor(store, vendor_ids=[bytes(16)])
    with pytest.raises(SuitConditionFailedError) as info:
        proc.install(build())
    report = decode_report(info.value.report or b"")
    assert report.result is not None
    assert report.result.record.manifest_section == SuitManifestKey.common
    assert store.manifests() == []


def test_oversized_fetch_aborts() -> None:
    """A fetch that streams more than image-size is aborted."""
    store = MemoryComponentStore()
    data = build(integrated=False, uri="https://x/y")
    with pytest.raises(SuitAbortError):
        processor(store, fetch=lambda _u: [b"\0asm module", b"+more"]).install(data)
    assert store.read(TC) is None


def test_fetcher_failure_is_abort() -> None:
    """An exception from the fetcher becomes SuitAbortError."""

    def broken(_uri: str) -> list[bytes]:
        raise OSError("network down")

    with pytest.raises(SuitAbortError):
        processor(MemoryComponentStore(), fetch=broken).install(
            build(integrated=False, uri="https://x/y")
        )


def test_vendor_mismatch() -> None:
    """A vendor id the device does not accept fails the condition."""
    with pytest.raises(SuitConditionFailedError):
        processor(MemoryComponentStore(), vendor_ids=[b"\1" * 16]).install(build())


def test_untrusted_signer_refused() -> None:
    """A manifest signed by an unknown key is refused with a report."""
    other = PrivateKey.generate(KeyKind.P256)
    with pytest.raises(SuitAuthError) as info:
        processor(MemoryComponentStore()).install(build(signer=other))
    report = decode_report(info.value.report or b"")
    assert report.result is not None
    assert report.result.reason == SuitReportReason.unauthorised


def test_authorize_hook() -> None:
    """The authorize hook can refuse a signer for a manifest location."""
    proc = processor(MemoryComponentStore(), authorize=lambda _k, _m: False)
    with pytest.raises(SuitAuthError) as info:
        proc.install(build())
    assert info.value.reason is SuitReportReason.component_unauthorised


def test_resign() -> None:
    """sign_envelope re-signs an envelope and wraps a bare manifest."""
    other = PrivateKey.generate(KeyKind.ED25519)
    data = sign_envelope(build(), other)
    _env, key = open_envelope(data, [other.public])
    assert key.thumbprint == other.public.thumbprint
    both = sign_envelope(build(), other, keep_existing=True)
    open_envelope(both, [SIGNER.public])
    open_envelope(both, [other.public])
    bare = SuitEnvelope.decode(build()).manifest.raw
    open_envelope(sign_envelope(bare, other), [other.public])


def test_uninstall_unknown() -> None:
    """Uninstalling a manifest that is not held is a typed error."""
    with pytest.raises(SuitNotInstalledError):
        processor(MemoryComponentStore()).uninstall(MID)


def test_teep_integrated_vector_installs() -> None:
    """The TEEP Appendix E integrated example installs and uninstalls."""
    store = MemoryComponentStore()
    proc = SuitProcessor(store, [example_key()])
    result = proc.install(hexfile("teep-suit_integrated"))
    assert store.read(result.manifest.components[0]) == b"Hello, Secure World!"
    proc.uninstall(result.manifest.manifest_component_id)
    assert store.manifests() == []


def test_teep_uri_vector_installs() -> None:
    """The TEEP Appendix E URI example installs with a fetcher."""
    store = MemoryComponentStore()
    proc = SuitProcessor(store, [example_key()], lambda _u: [b"Hello, Secure World!"])
    result = proc.install(hexfile("teep-suit_uri"))
    assert result.manifest.sequence_number == 3


def test_trust_domains_dependency() -> None:
    """The TD integrated dependency example runs its dependency and invokes."""
    store = MemoryComponentStore()
    proc = SuitProcessor(store, [example_key()])
    result = proc.install(hexfile("trust-domains-example2_integrated"))
    assert store.read((b"00",)) == b"hello world"
    assert store.read((b"10",)) == b" in multiple trust domains"
    invoked = proc.invoke(result.manifest.manifest_component_id).invocations
    assert [i.args for i in invoked] == [b"cat 00 10"]


def test_root_manifest_needs_component_id() -> None:
    """A root manifest without manifest-component-id cannot be installed."""
    with pytest.raises(SuitError) as info:
        SuitProcessor(MemoryComponentStore(), [example_key()]).install(
            hexfile("manifest-ex1")
        )
    assert info.value.reason is SuitReportReason.component_unsupported


@pytest.mark.parametrize("name", names("report-synth-s") + names("report-synth-f"))
def test_report_vectors(name: str) -> None:
    """The synthesized reports decode and re-encode identically."""
    data = hexfile(name)
    if name.endswith("sign1"):
        return
    assert decode_report(data).encode() == data
