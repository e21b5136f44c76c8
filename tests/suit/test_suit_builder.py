"""The builder refuses what it must never write: an out-of-range sequence
number, two payloads under one integrated ``#name``, a member replacing the
envelope's own."""

from __future__ import annotations

import pytest

from teep.components import component_id, config_id, config_manifest_id, manifest_id
from teep.errors import TeepError
from teep.keys import KeyKind, PrivateKey
from teep.suit.builder import (
    MAX_SEQUENCE_NUMBER,
    ComponentSpec,
    DependencySpec,
    build_envelope,
    compose_manifest,
    envelope_of,
)
from teep.suit.envelope import SuitEnvelope
from teep.suit.errors import SuitError

SIGNER = PrivateKey.generate(KeyKind.P256)


def _envelope(seq: int) -> bytes:
    return build_envelope(
        manifest_component_id=manifest_id("hello"),
        component_id=component_id("hello"),
        payload=b"\0asm",
        sequence_number=seq,
        signer=SIGNER,
    )


def test_sequence_number_limits_are_written_as_uints() -> None:
    """0 and 2^63-1 are the bounds, and decode back as plain integers."""
    for seq in (0, MAX_SEQUENCE_NUMBER):
        assert SuitEnvelope.decode(_envelope(seq)).manifest.sequence_number == seq


@pytest.mark.parametrize("seq", [-1, MAX_SEQUENCE_NUMBER + 1, 10**23, True, 1.0])
def test_sequence_number_out_of_range_refused(seq: object) -> None:
    with pytest.raises(SuitError, match="sequence number"):
        _envelope(seq)  # type: ignore[arg-type]


def test_two_components_under_one_integrated_name_refused() -> None:
    specs = [
        ComponentSpec(component_id("a"), b"a", "#tc"),
        ComponentSpec(component_id("b"), b"b", "#tc"),
    ]
    with pytest.raises(SuitError, match="'#tc' is named twice"):
        compose_manifest(
            manifest_component_id=manifest_id("a"),
            sequence_number=1,
            components=specs,
        )


def test_component_and_dependency_under_one_integrated_name_refused() -> None:
    with pytest.raises(SuitError, match="'#tc' is named twice"):
        compose_manifest(
            manifest_component_id=config_manifest_id("hello"),
            sequence_number=1,
            components=[ComponentSpec(config_id("hello"), b"cfg", "#tc")],
            dependency=DependencySpec(manifest_id("hello"), _envelope(1), "#tc"),
        )


def test_fetched_uris_may_repeat() -> None:
    """Only integrated names must be unique: a URI the device fetches is
    not an envelope member."""
    uri = "https://tam.example/p"
    compose_manifest(
        manifest_component_id=manifest_id("a"),
        sequence_number=1,
        components=[
            ComponentSpec(component_id("a"), b"p", uri),
            ComponentSpec(component_id("b"), b"p", uri),
        ],
    )


@pytest.mark.parametrize("key", [2, 3])
def test_member_replacing_the_envelope_own_refused(key: int) -> None:
    manifest = compose_manifest(
        manifest_component_id=manifest_id("a"),
        sequence_number=1,
        components=[ComponentSpec(component_id("a"), b"p", "#tc")],
    )
    with pytest.raises(TeepError, match="would replace the envelope's own"):
        envelope_of(manifest, SIGNER, {"#tc": b"p", key: b"x"})
