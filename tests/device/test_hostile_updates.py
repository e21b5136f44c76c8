"""Updates from a trusted TAM that carry what no device should accept.

Each case ends in an Error (ERR_MANIFEST_PROCESSING_FAILED) and leaves the
component store as it was; nothing raises out of the Agent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from teep import cbor, components
from teep.device.components import demo_component_wasm
from teep.device.runtime import MAX_ID_PART, MAX_ID_PARTS, Device
from teep.keys import KeyKind, PrivateKey
from teep.protocol.agent import AgentResult, ComponentsChanged, ErrorSent
from teep.protocol.messages import Error, Update
from teep.protocol.registry import FINAL, ErrCode
from teep.protocol.signing import open_signed, peek, sign_message
from teep.suit.builder import (
    ComponentSpec,
    DependencySpec,
    build_envelope,
    compose_manifest,
    envelope_of,
)
from teep.suit.commands import MAX_DEPENDENCY_DEPTH
from teep.suit.store import ComponentId

URI = "http://tam.test/tam"
WASM = demo_component_wasm()


@dataclass
class Rig:
    device: Device
    tam: PrivateKey
    signer: PrivateKey

    def envelope(
        self,
        name: str = "tc",
        *,
        sequence: int = 1,
        signer: PrivateKey | None = None,
        mcid: ComponentId | None = None,
        cid: ComponentId | None = None,
        **kwargs: Any,
    ) -> bytes:
        return build_envelope(
            manifest_component_id=mcid or components.manifest_id(name),
            component_id=cid or components.component_id(name),
            payload=WASM,
            sequence_number=sequence,
            signer=signer or self.signer,
            **kwargs,
        )

    def update(
        self,
        manifests: Sequence[bytes] = (),
        unneeded: Sequence[ComponentId] = (),
    ) -> AgentResult:
        message = Update(
            token=os.urandom(16),
            manifest_list=tuple(manifests) or None,
            unneeded_manifest_list=tuple(unneeded) or None,
        )
        return self.device.agent.process(sign_message(message, [self.tam]), URI)

    def state(self) -> tuple[list[Any], list[ComponentId]]:
        store = self.device.tee.components
        held = sorted(
            (m.manifest_component_id, m.sequence_number, m.components)
            for m in store.manifests()
        )
        return held, sorted(store.component_ids())

    def refused(self, result: AgentResult) -> Error:
        (event,) = result.events
        assert isinstance(event, ErrorSent), event
        assert event.code == ErrCode.ERR_MANIFEST_PROCESSING_FAILED
        assert result.reply is not None
        key = self.device.tee.agent_key.public
        message = open_signed(peek(result.reply), [key], dialect=FINAL).message
        assert isinstance(message, Error)
        return message


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    device = Device.init(tmp_path / "device")
    tam = PrivateKey.generate(KeyKind.P256)
    signer = PrivateKey.generate(KeyKind.P256)
    device.tee.add_tam_key(tam.public)
    device.tee.add_signer_key(signer.public)
    rig = Rig(device, tam, signer)
    assert isinstance(
        rig.update([rig.envelope("held", sequence=2)]).events[0], ComponentsChanged
    )
    return rig


def _tampered_payload(rig: Rig) -> bytes:
    value = cbor.loads(rig.envelope())
    value["#tc"] = value["#tc"][:-1] + bytes([value["#tc"][-1] ^ 1])
    return cbor.det_dumps(value)


def _longer_than_declared(rig: Rig) -> bytes:
    manifest = compose_manifest(
        manifest_component_id=components.manifest_id("tc"),
        sequence_number=1,
        components=[ComponentSpec(components.component_id("tc"), WASM, "#tc")],
    )
    return envelope_of(manifest, rig.signer, {"#tc": WASM + b"more"})


def _dependency_missing(rig: Rig) -> bytes:
    manifest = compose_manifest(
        manifest_component_id=components.config_manifest_id("tc"),
        sequence_number=1,
        components=[ComponentSpec(components.config_id("tc"), b"cfg", "#cfg")],
        dependency=DependencySpec(components.manifest_id("tc"), rig.envelope(), "#tc"),
    )
    return envelope_of(manifest, rig.signer, {"#cfg": b"cfg"})


def _dependency_chain(rig: Rig, depth: int) -> bytes:
    """Manifests each bundling the one before and processing it in install."""
    envelope = rig.envelope("c0")
    for level in range(1, depth + 1):
        manifest = cbor.loads(
            compose_manifest(
                manifest_component_id=components.manifest_id(f"c{level}"),
                sequence_number=1,
                components=[
                    ComponentSpec(components.component_id(f"c{level}"), b"p", "#p")
                ],
                dependency=DependencySpec(
                    components.manifest_id(f"c{level - 1}"), envelope, "#dep"
                ),
            )
        )
        # Fetch and check the dependency in install itself, so each level
        # processes the next one.
        resolution = cbor.loads(manifest.pop(15))
        manifest[20] = cbor.det_dumps(resolution + cbor.loads(manifest[20]))
        envelope = envelope_of(
            cbor.det_dumps(manifest), rig.signer, {"#p": b"p", "#dep": envelope}
        )
    return envelope


def _prefixed(*parts: bytes) -> ComponentId:
    return (b"TEEP-Device", b"SecureFS", *parts)


CASES: dict[str, Callable[[Rig], list[bytes]]] = {
    "untrusted signer": lambda r: [
        r.envelope(signer=PrivateKey.generate(KeyKind.P256))
    ],
    "rollback": lambda r: [r.envelope("held", sequence=1)],
    "equal sequence": lambda r: [r.envelope("held", sequence=2)],
    "payload digest mismatch": lambda r: [_tampered_payload(r)],
    "payload longer than declared": lambda r: [_longer_than_declared(r)],
    "file uri": lambda r: [r.envelope(integrated=False, uri="file:///etc/passwd")],
    "silent port": lambda r: [
        r.envelope(integrated=False, uri="http://127.0.0.1:9/tc")
    ],
    "dependency missing": lambda r: [_dependency_missing(r)],
    "dependencies nested too deep": lambda r: [
        _dependency_chain(r, MAX_DEPENDENCY_DEPTH + 2)
    ],
    "encrypted for another device": lambda r: [
        r.envelope(encrypt_for=[PrivateKey.generate(KeyKind.P256).public])
    ],
    "id part too long": lambda r: [
        r.envelope(
            mcid=_prefixed(b"x" * (MAX_ID_PART + 1), b"suit"),
            cid=_prefixed(b"x", b"ta"),
        )
    ],
    "component id with too many parts": lambda r: [
        r.envelope(cid=tuple([b"a"] * (MAX_ID_PARTS + 1)))
    ],
    "manifest id with too many parts": lambda r: [
        r.envelope(mcid=tuple([b"a"] * 5000))
    ],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_and_nothing_changes(rig: Rig, case: str) -> None:
    """The Update is answered with an Error and the store is unchanged."""
    before = rig.state()
    error = rig.refused(rig.update(CASES[case](rig)))
    assert error.suit_reports
    assert rig.state() == before


def test_deep_dependencies_are_refused_by_depth(rig: Rig) -> None:
    """A long chain of bundled dependencies is refused for its depth, not
    by exhausting the interpreter's stack."""
    error = rig.refused(rig.update([_dependency_chain(rig, 300)]))
    assert f"nested more than {MAX_DEPENDENCY_DEPTH} deep" in (error.err_msg or "")


def test_a_chain_within_the_depth_installs(rig: Rig) -> None:
    result = rig.update([_dependency_chain(rig, 3)])
    assert isinstance(result.events[0], ComponentsChanged)
    assert rig.device.tee.components.read(components.component_id("c0")) == WASM


def test_a_bundled_dependency_is_held_to_the_same_ids(rig: Rig) -> None:
    """A dependency that names an id the device cannot keep is refused like
    a root manifest that does."""
    long_id = _prefixed(b"d" * (MAX_ID_PART + 1), b"ta")
    dependency = rig.envelope("dep", cid=long_id)
    manifest = compose_manifest(
        manifest_component_id=components.config_manifest_id("dep"),
        sequence_number=1,
        components=[ComponentSpec(components.config_id("dep"), b"cfg", "#cfg")],
        dependency=DependencySpec(components.manifest_id("dep"), dependency, "#dep"),
    )
    before = rig.state()
    error = rig.refused(
        rig.update(
            [envelope_of(manifest, rig.signer, {"#cfg": b"cfg", "#dep": dependency})]
        )
    )
    assert "keeps no component" in (error.err_msg or "")
    assert rig.state() == before


def test_path_like_parts_are_only_names(rig: Rig) -> None:
    """Component ids are never file names in the sealed store: parts such
    as "..", "/" or NUL install as opaque names and are listed so that
    they cannot pass for another id."""
    for part in (b"..", b"/", b"a/../../b", b"\x00"):
        mcid, cid = _prefixed(part, b"suit"), _prefixed(part, b"ta")
        result = rig.update([rig.envelope(mcid=mcid, cid=cid)])
        assert isinstance(result.events[0], ComponentsChanged)
        assert rig.device.tee.components.read(cid) == WASM
    blobs = rig.device.tee.path / "components" / "blobs"
    assert all(item.parent == blobs for item in blobs.iterdir())
    assert components.display(_prefixed(b"SecureFS/hello", b"ta")) == (
        "TEEP-Device/SecureFS/h'5365637572654653" + b"/hello".hex() + "'/ta"
    )


def test_a_duplicate_in_one_list_is_refused(rig: Rig) -> None:
    """Each manifest lands on its own: the first copy installs, the second
    is refused as not newer, and the Error carries both reports."""
    error = rig.refused(rig.update([rig.envelope(), rig.envelope()]))
    assert error.suit_reports is not None and len(error.suit_reports) == 2
    assert "not greater" in (error.err_msg or "")
    held = rig.device.tee.components.manifest(components.manifest_id("tc"))
    assert held is not None and held.sequence_number == 1


def test_unneeded_names_what_the_device_lacks(rig: Rig) -> None:
    before = rig.state()
    rig.refused(rig.update(unneeded=[components.manifest_id("absent")]))
    rig.refused(rig.update(unneeded=[(b"",)]))
    assert rig.state() == before


def test_an_error_after_a_removal_carries_its_report(rig: Rig) -> None:
    """A failure after manifests were removed sends their reports too: the
    TAM learns what the device no longer holds (a manifest the device never
    had has no report of its own)."""
    rig.update([rig.envelope("other")])
    error = rig.refused(
        rig.update(
            unneeded=[components.manifest_id("other"), components.manifest_id("absent")]
        )
    )
    assert error.suit_reports is not None and len(error.suit_reports) == 1
    assert rig.device.tee.components.manifest(components.manifest_id("other")) is None
