"""The TAM's policy on appraisal statuses, over whole in-memory exchanges."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest

from exchange.conftest import NAME, World
from teep import components
from teep.attestation.ar4si import TrustClaim, TrustTier, TrustValue
from teep.attestation.policy import (
    QUARANTINED,
    AttestationPolicy,
    ContraindicatedAction,
)
from teep.attestation.verifier import Appraisal, ReferenceValues, Verifier
from teep.keys import PublicKey
from teep.protocol.messages import Update
from teep.protocol.registry import FINAL, ErrCode
from teep.protocol.signing import open_signed, peek
from teep.verifier.client import VerifierClient

from .conftest import endorsement

EXTRA = "extra"


class Downgraded:
    """A Verifier that finds known vulnerabilities in otherwise good Evidence."""

    def __init__(self, inner: Verifier) -> None:
        self.inner = inner

    def appraise(
        self,
        evidence: bytes,
        *,
        nonce: bytes | None,
        cnf_key: PublicKey | None,
        now: float,
    ) -> Appraisal:
        found = self.inner.appraise(evidence, nonce=nonce, cnf_key=cnf_key, now=now)
        vector = {
            **found.trust_vector,
            TrustClaim.configuration: TrustValue.known_vulnerabilities,
        }
        return dataclasses.replace(
            found,
            status=TrustTier.warning,
            trust_vector=MappingProxyType(vector),
            reason="known vulnerabilities in the TEE firmware",
        )


def held(world: World, name: str) -> bool:
    """Whether the device holds ``name``."""
    manifest = components.manifest_id(name)
    return world.device.tee.components.manifest(manifest) is not None


def last_update(world: World) -> Update:
    """The Update of the last session (its second TAM message)."""
    steps = world.session()
    assert len(steps) >= 2, "the TAM sent no Update"
    keys = [k.public for k in world.tam_keys]
    message = open_signed(peek(steps[1].tam), keys, dialect=FINAL).message
    assert isinstance(message, Update)
    return message


def built_in(world: World, **reference: object) -> Verifier:
    """The built-in Verifier endorsing the world's device."""
    values = ReferenceValues(**reference)  # type: ignore[arg-type]
    return Verifier([endorsement(world.device)], [values])


def require_extra(world: World) -> None:
    """Catalogue a second component and require it everywhere."""
    world.catalogue(EXTRA)
    world.store.add_policy(EXTRA, selector="*")


def test_affirming_recorded_with_rule(world: World) -> None:
    """Every appraisal is recorded per device, with its status, reason and rule."""
    world.session()
    kid = world.device.tee.agent_key.kid
    (record,) = world.store.list_appraisals(kid)
    assert record.status == "affirming"
    assert record.detail["rule"] == "affirming: serve"
    assert world.store.get_device(kid).status == "affirming"  # type: ignore[union-attr]


def test_warning_keeps_but_installs_nothing(world: World) -> None:
    """Warning: components already held stay, new ones are not installed."""
    world.session()
    require_extra(world)
    world.service.attestation_verifier = Downgraded(built_in(world))
    steps = world.session()
    assert held(world, NAME) and not held(world, EXTRA)
    assert "compliant" in [e.kind for e in steps[-1].after.events]  # type: ignore[union-attr]
    (latest, *_) = world.store.list_appraisals(world.device.tee.agent_key.kid)
    assert latest.status == "warning"
    assert latest.reason == "known vulnerabilities in the TEE firmware"


def test_warning_installs_when_configured(world: World) -> None:
    """With warning_installs, a warning device still gets new components."""
    world.session()
    require_extra(world)
    world.service.attestation_verifier = Downgraded(built_in(world))
    world.service.policy = AttestationPolicy(warning_installs=True)
    world.session()
    assert held(world, EXTRA)


def test_contraindicated_removes_managed(world: World) -> None:
    """Contraindicated (default): every TAM-managed component is unlinked."""
    world.session()
    blocked = frozenset({world.device.tee.ueid})
    world.service.attestation_verifier = built_in(world, blocked_ueids=blocked)
    update = last_update(world)
    assert update.unneeded_manifest_list == (components.manifest_id(NAME),)
    assert not update.manifest_list
    assert not held(world, NAME)
    (latest, *_) = world.store.list_appraisals(world.device.tee.agent_key.kid)
    assert latest.status == "contraindicated"
    assert "blocked" in latest.reason
    assert latest.detail["rule"] == "remove managed"


def test_contraindicated_unknown_device_is_refused(world: World) -> None:
    """A contraindicated device the TAM never enrolled gets err-code 7."""
    blocked = frozenset({world.device.tee.ueid})
    world.service.attestation_verifier = built_in(world, blocked_ueids=blocked)
    update = last_update(world)
    assert update.err_code == ErrCode.ERR_ATTESTATION_REQUIRED
    assert not held(world, NAME)


def test_quarantine_holds_until_released(world: World) -> None:
    """Quarantine changes nothing, refuses the device, and outlasts good Evidence."""
    world.session()
    require_extra(world)
    world.service.policy = AttestationPolicy(
        contraindicated=ContraindicatedAction.quarantine
    )
    blocked = frozenset({world.device.tee.ueid})
    world.service.attestation_verifier = built_in(world, blocked_ueids=blocked)
    assert last_update(world).err_code == ErrCode.ERR_ATTESTATION_REQUIRED
    assert held(world, NAME)
    kid = world.device.tee.agent_key.kid
    assert world.store.get_device(kid).status == QUARANTINED  # type: ignore[union-attr]

    # Good Evidence alone does not lift the quarantine.
    world.service.attestation_verifier = None
    assert last_update(world).err_code == ErrCode.ERR_ATTESTATION_REQUIRED
    assert not held(world, EXTRA)

    world.store.set_device_status(kid, "unknown", "released", now=0.0)
    world.session()
    assert held(world, EXTRA)


def test_none_changes_nothing(world: World) -> None:
    """Status none (no Verifier answer): err-code 7, nothing removed."""
    world.session()
    world.service.attestation_verifier = VerifierClient("http://127.0.0.1:9", timeout=1)
    update = last_update(world)
    assert update.err_code == ErrCode.ERR_ATTESTATION_REQUIRED
    assert held(world, NAME)
    (latest, *_) = world.store.list_appraisals(world.device.tee.agent_key.kid)
    assert latest.status == "none"
    assert "unavailable" in latest.reason


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (TrustTier.affirming, (True, True, False, False)),
        (TrustTier.warning, (True, False, False, False)),
        (TrustTier.contraindicated, (True, False, True, False)),
        (TrustTier.none, (False, False, False, False)),
        ("bogus", (False, False, False, False)),
    ],
)
def test_policy_table(status: TrustTier | str, expected: tuple[bool, ...]) -> None:
    """Each status maps to (serve, install, remove managed, quarantine)."""
    decision = AttestationPolicy().decide(status)
    got = (
        decision.serve,
        decision.install,
        decision.remove_managed,
        decision.quarantine,
    )
    assert got == expected
