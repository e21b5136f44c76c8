"""Personalization Data in the catalogue: chosen per device, sent with its
component, judged like it, removed with it."""

from __future__ import annotations

import time

import pytest

from teep import cbor, components
from teep.device.runtime import Device
from teep.errors import ConfigError
from teep.protocol.errors import ManifestProcessingFailed
from teep.protocol.messages import QueryResponse, Update
from teep.protocol.tam import Appraised
from teep.suit.builder import ComponentSpec, DependencySpec, compose_manifest
from teep.suit.builder import envelope_of as sign
from teep.suit.encryption import encrypt_payload
from teep.suit.envelope import SuitEnvelope
from teep.tam.catalogue import add_component
from teep.tam.models import CONFIG, TA
from teep.tam.store import StaleVersionError

from .conftest import NAME, World, envelope
from .test_exchange import from_tam

GREETING = "Hello from a Trusted Component"


def personalization(
    world: World,
    data: bytes,
    *,
    sequence: int = 1,
    encrypt_for: Device | None = None,
    name: str = NAME,
) -> bytes:
    """Personalization Data for ``name``, depending on its newest manifest,
    encrypted for one device's key if asked."""
    ta = world.store.get_component(name)
    assert ta is not None
    members = {"#tc.suit": ta.envelope}
    info = None
    shipped = data
    if encrypt_for is not None:
        info, shipped = encrypt_payload(data, [encrypt_for.tee.kek.public])
    members["#config"] = shipped
    spec = ComponentSpec(components.config_id(name), data, "#config", None, None, info)
    manifest = compose_manifest(
        manifest_component_id=components.config_manifest_id(name),
        sequence_number=sequence,
        components=[spec],
        dependency=DependencySpec(
            components.manifest_id(name), ta.envelope, "#tc.suit"
        ),
    )
    return sign(manifest, world.signer, members)


def catalogue_data(
    world: World,
    data: bytes,
    *,
    sequence: int = 1,
    device: Device | None = None,
) -> None:
    """Catalogue Personalization Data for every device, or for ``device``
    alone (encrypted to its key, selected by its kid)."""
    envelope = personalization(world, data, sequence=sequence, encrypt_for=device)
    selector = "*" if device is None else device.tee.agent_key.kid.hex()
    add_component(world.store, NAME, envelope, now=time.time(), device=selector)


def update_of(world: World) -> Update | None:
    """Run a session; the Update the TAM sent, if any."""
    steps = world.session()
    for step in steps:
        message = from_tam(world, step.tam)
        if isinstance(message, Update):
            return message
    return None


def manifest_ids(update: Update) -> list[tuple[bytes, ...]]:
    """The manifest ids of the envelopes an Update carries, in order."""
    out = []
    for data in update.manifest_list or ():
        manifest_id = SuitEnvelope.decode(data).manifest.manifest_component_id
        assert manifest_id is not None
        out.append(manifest_id)
    return out


def config_of(device: Device) -> bytes | None:
    """The Personalization Data installed for NAME on ``device``."""
    return device.tee.components.read(components.config_id(NAME))


def held(world: World, device: Device | None = None) -> list[tuple[bytes, ...]]:
    """The manifest ids the TAM records for the device."""
    kid = (device or world.device).tee.agent_key.kid
    return [tuple(cbor.loads(m)) for m, _ in world.store.device_manifests(kid)]


def test_component_and_its_data_in_one_update(world: World) -> None:
    """A device missing both gets the component, then its data, in one
    Update; the module reads the data as /config."""
    catalogue_data(world, b"colour=blue", device=world.device)
    update = update_of(world)
    assert update is not None
    assert manifest_ids(update) == [
        components.manifest_id(NAME),
        components.config_manifest_id(NAME),
    ]
    assert config_of(world.device) == b"colour=blue"
    stdout = world.device.invoke(NAME).stdout.decode()
    assert GREETING in stdout and "config: colour=blue" in stdout
    assert held(world) == [
        components.manifest_id(NAME),
        components.config_manifest_id(NAME),
    ]
    # The data's manifest names its component's too: still one entry each.
    listed = [tuple(entry[0]) for entry in world.device.tc_list()]
    assert sorted(listed) == sorted(
        [components.component_id(NAME), components.config_id(NAME)]
    )


def test_compliant_device_gets_nothing_then_new_data_alone(world: World) -> None:
    """A device holding the component and its data gets no Update; a new
    data version is then sent without the component."""
    catalogue_data(world, b"v1")
    world.session()
    assert update_of(world) is None
    catalogue_data(world, b"v2", sequence=2)
    update = update_of(world)
    assert update is not None
    assert manifest_ids(update) == [components.config_manifest_id(NAME)]
    assert config_of(world.device) == b"v2"
    assert update_of(world) is None
    assert world.store.device_manifests(world.device.tee.agent_key.kid)[-1][1] == 2


def test_device_data_preferred_to_general(world: World) -> None:
    """A device with its own data gets it; another device gets the data for
    every device."""
    other = world.new_device("other")
    world.endorse(other)
    catalogue_data(world, b"general")
    catalogue_data(world, b"mine", sequence=2, device=world.device)
    world.session()
    world.session(other)
    assert config_of(world.device) == b"mine"
    assert config_of(other) == b"general"


def test_data_by_ueid(world: World) -> None:
    """Data catalogued under a device's ueid reaches that device."""
    envelope = personalization(world, b"by ueid", encrypt_for=world.device)
    ueid = world.device.tee.ueid.hex()
    add_component(world.store, NAME, envelope, now=time.time(), device=ueid)
    world.session()
    assert config_of(world.device) == b"by ueid"


def test_data_removed_with_its_component(world: World) -> None:
    """When the component is no longer required, its data's manifest is
    removed as well."""
    catalogue_data(world, b"v1")
    world.session()
    world.store.remove_policy(NAME)
    update = update_of(world)
    assert update is not None and update.manifest_list is None
    assert update.unneeded_manifest_list == (
        components.manifest_id(NAME),
        components.config_manifest_id(NAME),
    )
    assert world.device.tee.components.manifests() == []
    assert held(world) == []


def test_data_of_unrequired_component_not_sent(world: World) -> None:
    """Data for a component no policy requires on the device stays home."""
    world.catalogue("extra")
    envelope = personalization(world, b"x", name="extra")
    add_component(world.store, "extra", envelope, now=time.time())
    catalogue_data(world, b"v1")
    update = update_of(world)
    assert update is not None
    assert [m[2] for m in manifest_ids(update)] == [b"hello", b"hello"]


def test_catalogue_entries(world: World) -> None:
    """The catalogue lists the component, then its data for every device
    and per device, each with its kind and device."""
    catalogue_data(world, b"general")
    catalogue_data(world, b"mine", device=world.device)
    listed = [(c.name, c.kind, c.device) for c in world.store.list_components()]
    kid = world.device.tee.agent_key.kid.hex()
    assert listed == [(NAME, TA, "*"), (NAME, CONFIG, "*"), (NAME, CONFIG, kid)]


def test_data_versions_newer_only_per_device(world: World) -> None:
    """Sequence numbers grow per component, kind and device."""
    catalogue_data(world, b"general", sequence=3)
    catalogue_data(world, b"mine", sequence=1, device=world.device)
    with pytest.raises(StaleVersionError, match="Personalization Data"):
        catalogue_data(world, b"older", sequence=3)


@pytest.mark.parametrize(
    ("manifest_id", "device", "message"),
    [
        (components.manifest_id("other"), "*", "not component 'hello'"),
        (components.config_manifest_id("other"), "*", "or its Personalization"),
        (components.manifest_id(NAME), "00" * 32, "every device"),
        (components.config_manifest_id(NAME), "hwmodel:00", "bad device"),
        (components.config_manifest_id(NAME), "xyz", "bad selector"),
    ],
)
def test_refused_entries(
    world: World, manifest_id: tuple[bytes, ...], device: str, message: str
) -> None:
    """Manifests that are neither of NAME's, a component for one device and
    malformed devices are refused with one ConfigError."""
    cid = components.config_id(NAME)
    if manifest_id[-1] == b"suit":
        cid = components.component_id(NAME)
    spec = ComponentSpec(cid, b"data", "#tc")
    manifest = compose_manifest(
        manifest_component_id=manifest_id, sequence_number=9, components=[spec]
    )
    data = sign(manifest, world.signer, {"#tc": b"data"})
    with pytest.raises(ConfigError, match=message):
        add_component(world.store, NAME, data, now=time.time(), device=device)


def test_data_manifest_must_install_the_data(world: World) -> None:
    """A Personalization Data manifest that installs another component is
    refused."""
    spec = ComponentSpec(components.component_id(NAME), b"x", "#tc")
    manifest = compose_manifest(
        manifest_component_id=components.config_manifest_id(NAME),
        sequence_number=1,
        components=[spec],
    )
    data = sign(manifest, world.signer, {"#tc": b"x"})
    with pytest.raises(ConfigError, match="does not install"):
        add_component(world.store, NAME, data, now=time.time())


def test_new_component_version_keeps_data(world: World) -> None:
    """A new version of the component alone is sent to a device holding its
    data; the data stays."""
    catalogue_data(world, b"v1")
    world.session()
    add_component(world.store, NAME, envelope(NAME, world.signer, 2), now=time.time())
    update = update_of(world)
    assert update is not None
    assert manifest_ids(update) == [components.manifest_id(NAME)]
    assert config_of(world.device) == b"v1"
    assert update_of(world) is None


def test_tc_list_judges_data_without_attested_manifests(world: World) -> None:
    """Without manifest digests in Evidence, the config component's image
    digest in the tc-list tells whether the data is current."""
    catalogue_data(world, b"v1", device=world.device)
    world.session()
    key = world.device.tee.agent_key.public
    response = QueryResponse(tc_list=tuple(world.device.tc_list()))
    verdict = Appraised(True, "affirming", "test")
    assert world.service.plan(key, response, verdict).empty
    catalogue_data(world, b"v2", sequence=2, device=world.device)
    # As at every message, the engine first looks up the device's key.
    world.service.device_key(key.thumbprint)
    plan = world.service.plan(key, response, verdict)
    assert [label for label, _ in plan.install] == [f"{NAME}/config"]


def test_data_bundling_an_older_component_cannot_roll_it_back(world: World) -> None:
    """Data whose integrated dependency is an older version of its component
    than the device holds is refused; the newer code stays."""
    old_data = personalization(world, b"v1")  # depends on version 1
    world.session()
    world.catalogue(NAME, sequence=2)
    world.session()
    newer = world.device.tee.components.manifest(components.manifest_id(NAME))
    assert newer is not None and newer.sequence_number == 2
    before = world.device.tee.components.read(components.component_id(NAME))
    with pytest.raises(
        ManifestProcessingFailed, match="not newer than the installed 2"
    ):
        world.device.install(old_data, None)
    assert world.device.tee.components.read(components.component_id(NAME)) == before
    assert config_of(world.device) is None


def test_data_bundling_the_held_component_is_accepted(world: World) -> None:
    """A dependency the device already holds (same version) is not a
    rollback: the data goes in, the component stays."""
    world.session()
    ta = components.component_id(NAME)
    before = world.device.tee.components.read(ta)
    world.device.install(personalization(world, b"v1"), None)
    assert config_of(world.device) == b"v1"
    assert world.device.tee.components.read(ta) == before


def test_entry_installing_another_component_refused(world: World) -> None:
    """A manifest that would also install code the catalogue does not know
    of is refused, for a component and for its data."""
    stowaway = ComponentSpec(components.component_id("other"), b"x", "#other")
    for manifest_id, own in (
        (components.manifest_id(NAME), components.component_id(NAME)),
        (components.config_manifest_id(NAME), components.config_id(NAME)),
    ):
        manifest = compose_manifest(
            manifest_component_id=manifest_id,
            sequence_number=5,
            components=[ComponentSpec(own, b"y", "#own"), stowaway],
        )
        envelope = sign(manifest, world.signer, {"#own": b"y", "#other": b"x"})
        with pytest.raises(ConfigError, match=r"also installs .*other/ta"):
            add_component(world.store, NAME, envelope, now=time.time())
