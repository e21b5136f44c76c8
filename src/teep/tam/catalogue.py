"""The TAM's catalogue, as an operator fills it: which envelopes may be
catalogued under a component's name.

A catalogue entry is one of the two manifests teep's naming gives a
component NAME: the Trusted Component's (``[..., NAME, 'suit']`` installing
``[..., NAME, 'ta']``) or its Personalization Data's (``[...,
NAME, 'config.suit']`` installing ``[..., NAME, 'config']``), signed by a
Trusted Component signer key the operator registered.  It installs that
component alone, so the catalogue knows everything the TAM can put on a
device.
"""

from __future__ import annotations

from typing import Any

from teep import cbor, components
from teep.errors import ConfigError
from teep.keys import PublicKey
from teep.suit.envelope import (
    SuitCommandSequence,
    SuitDigest,
    SuitEnvelope,
    open_envelope,
)
from teep.suit.errors import SuitError
from teep.suit.processor import UPDATE
from teep.suit.registry import SuitCommand, SuitManifestKey, SuitParameter
from teep.suit.store import ComponentId
from teep.tam.models import CONFIG, EVERY_DEVICE, TA, ComponentRecord
from teep.tam.store import TAMStore

__all__ = ["add_component"]


def add_component(
    store: TAMStore,
    name: str,
    envelope: bytes,
    *,
    now: float,
    device: str = EVERY_DEVICE,
) -> ComponentRecord:
    """Catalogue a Trusted Component, or its Personalization Data, after
    checking its envelope.

    The envelope must be signed by a Trusted Component signer key the
    operator registered, must carry every severed member of its manifest
    and integrated payloads that match the image digest and size the
    manifest checks them against (or a device could never install it, yet
    its sequence number would be spent), and must be one of the two manifests teep's naming
    gives ``name``: the Trusted Component's (``[..., NAME, 'suit']``
    installing ``[..., NAME, 'ta']``) or its Personalization Data's
    (``[..., NAME, 'config.suit']`` installing ``[..., NAME, 'config']``).
    Personalization Data is for every device that holds ``name``, or, when
    ``device`` is a kid or ueid in hex, for that device alone.

    :raises ConfigError: if any of that does not hold.
    :raises StaleVersionError: if a version as new is already catalogued
        for the same name, kind and device.
    """
    components.validate_name(name)
    signers = [
        PublicKey.from_cose_key(cbor.loads(s.cose_key))
        for s in store.list_signer_keys()
    ]
    if not signers:
        raise ConfigError(
            "no component signer key registered (teep tam signer add KEY)"
        )
    try:
        env, signer = open_envelope(envelope, signers)
    except SuitError as exc:
        raise ConfigError(f"envelope refused: {exc}") from None
    _check_severed(env)
    _check_integrated(env)
    kind, manifest_id, cid = _kind_of(env, name)
    if kind == CONFIG and not any(
        c.name == name and c.kind == TA for c in store.list_components()
    ):
        raise ConfigError(
            f"no component named {name!r} to personalize: add the component first"
        )
    return store.add_component(
        name,
        kind=kind,
        device=device,
        manifest_component_id=cbor.dumps(list(manifest_id)),
        component_id=cbor.dumps(list(cid)),
        sequence_number=env.manifest.sequence_number,
        envelope=envelope,
        signer_kid=signer.thumbprint,
        now=now,
        newer_only=True,
    )


_KINDS = (
    (TA, components.manifest_id, components.component_id),
    (CONFIG, components.config_manifest_id, components.config_id),
)


def _kind_of(env: SuitEnvelope, name: str) -> tuple[str, ComponentId, ComponentId]:
    """Which of ``name``'s manifests an envelope is: its catalogue kind, its
    manifest id and the component id it installs.

    :raises ConfigError: if it is neither, or does not install that component.
    """
    manifest_id = env.manifest.manifest_component_id or components.manifest_id(name)
    for kind, manifest_of, component_of in _KINDS:
        if manifest_id != manifest_of(name):
            continue
        cid = component_of(name)
        common = env.manifest.common
        if cid not in common.components:
            raise ConfigError(
                f"the manifest does not install {components.display(cid)}"
            )
        # Anything else it touches would be code or data the catalogue does
        # not know of; only dependency slots (the component's own manifest,
        # for its data) and staging ids under the component's own (an
        # encrypted payload before it is decrypted) may stand beside it.
        for index, other in enumerate(common.components):
            own = other[: len(cid)] == cid
            if not own and index not in common.dependencies:
                raise ConfigError(
                    f"the manifest also installs {components.display(other)}: a "
                    f"catalogue entry installs {components.display(cid)} alone"
                )
        return kind, manifest_id, cid
    raise ConfigError(
        f"the manifest is for {components.display(manifest_id)}, not component "
        f"{name!r} or its Personalization Data"
    )


def _check_severed(env: SuitEnvelope) -> None:
    """Every member the manifest severed must travel in the envelope
    (:func:`open_envelope` has checked those it carries against their
    digests).

    :raises ConfigError: naming the first one missing.
    """
    for key in sorted(env.manifest.severed):
        if key not in env.severable:
            member = SuitManifestKey(key).name.replace("_", "-")
            raise ConfigError(
                f"envelope refused: severed member {member} is not in the "
                "envelope: catalogue the full envelope"
            )


def _check_integrated(env: SuitEnvelope) -> None:
    """Each integrated payload must match the image digest and size its
    component is checked against once fetched.

    The Update procedure's sequences are followed as a device runs them,
    each after the shared sequence, tracking per component its parameters
    and which integrated payload it holds: image-match on a component
    holding ``#name`` compares that payload with the digest and size in
    force, and a ``#name`` fetched must be in the envelope.  A payload
    fetched or copied with encryption-info set is not followed (the TAM
    cannot decrypt it), nor is one fetched from elsewhere.  Nested
    sequences (try-each, run-sequence) end the walk, as which branch runs
    is the device's to decide.

    :raises ConfigError: naming the payload and its component, or a
        severed sequence that does not decode.
    """
    walk = _PayloadWalk(env)
    shared = env.manifest.common.shared_sequence
    for key in UPDATE:
        try:
            sequence = env.sequence(key)  # every severed member is present
        except SuitError as exc:
            raise ConfigError(f"envelope refused: {exc}") from None
        if sequence is None:
            continue
        for part in (shared, sequence):
            if part is not None and not walk.run(part):
                return


class _PayloadWalk:
    """Follows integrated payloads through command sequences."""

    def __init__(self, env: SuitEnvelope) -> None:
        self.env = env
        self.ids = env.manifest.common.component_ids()
        self.params: dict[int, dict[Any, Any]] = {}
        self.holds: dict[int, str] = {}

    def run(self, sequence: SuitCommandSequence) -> bool:
        """Follow one sequence; False once the rest cannot be followed.

        :raises ConfigError: at an image-match an integrated payload fails.
        """
        current = [0]
        for command in sequence.commands:
            if command.label == SuitCommand.directive_set_component_index:
                indices = self._indices(command.argument)
                if indices is None:
                    return False
                current = indices
            elif command.label in (
                SuitCommand.directive_try_each,
                SuitCommand.directive_run_sequence,
            ):
                return False
            else:
                for index in current:
                    self._step(command.label, command.argument, index)
        return True

    def _indices(self, arg: Any) -> list[int] | None:
        if arg is True:
            return list(range(len(self.ids)))
        values = arg if isinstance(arg, list) else [arg]
        ok = all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(self.ids)
            for v in values
        )
        return list(values) if values and ok else None

    def _step(self, label: int, arg: Any, index: int) -> None:
        params = self.params.setdefault(index, {})
        encrypted = params.get(SuitParameter.encryption_info) is not None
        if label == SuitCommand.directive_override_parameters and isinstance(arg, dict):
            params.update(arg)
        elif label == SuitCommand.directive_set_parameters and isinstance(arg, dict):
            for key, value in arg.items():
                params.setdefault(key, value)
        elif label == SuitCommand.directive_fetch:
            uri = params.get(SuitParameter.uri)
            if isinstance(uri, str) and uri.startswith("#"):
                if uri not in self.env.integrated:
                    raise ConfigError(
                        f"envelope refused: the integrated payload {uri!r} the "
                        f"manifest fetches for {components.display(self.ids[index])} "
                        "is not in the envelope"
                    )
            self._hold(index, uri if isinstance(uri, str) and not encrypted else None)
        elif label == SuitCommand.directive_copy:
            source = params.get(SuitParameter.source_component)
            held = self.holds.get(source) if isinstance(source, int) else None
            self._hold(index, None if encrypted else held)
        elif label == SuitCommand.directive_swap:
            source = params.get(SuitParameter.source_component)
            if isinstance(source, int):
                mine, theirs = self.holds.get(index), self.holds.get(source)
                self._hold(index, theirs)
                self._hold(source, mine)
        elif label in (SuitCommand.directive_write, SuitCommand.directive_unlink):
            self._hold(index, None)
        elif label == SuitCommand.condition_image_match:
            self._match(index, params)

    def _hold(self, index: int, uri: str | None) -> None:
        if uri is not None and uri.startswith("#"):
            self.holds[index] = uri
        else:
            self.holds.pop(index, None)

    def _match(self, index: int, params: dict[Any, Any]) -> None:
        uri = self.holds.get(index)
        payload = self.env.integrated.get(uri) if uri is not None else None
        raw = params.get(SuitParameter.image_digest)
        if payload is None or not isinstance(raw, bytes):
            return  # a dependency, or nothing integrated to check
        if index in self.env.manifest.common.dependencies:
            return  # its digest is its manifest's, checked by the device
        try:
            digest = SuitDigest.decode(raw)
            matches = digest.matches(payload)
        except SuitError:
            return  # a digest the device refuses on its own terms
        size = params.get(SuitParameter.image_size)
        what = "digest"
        if matches and isinstance(size, int) and size != len(payload):
            matches, what = False, "size"
        if not matches:
            raise ConfigError(
                f"envelope refused: the integrated payload {uri!r} does not "
                f"match the manifest's image {what} for "
                f"{components.display(self.ids[index])}"
            )
