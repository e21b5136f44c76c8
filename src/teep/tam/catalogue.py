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

from teep import cbor, components
from teep.errors import ConfigError
from teep.keys import PublicKey
from teep.suit.envelope import SuitEnvelope, open_envelope
from teep.suit.errors import SuitError
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
    operator registered, and must be one of the two manifests teep's naming
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
