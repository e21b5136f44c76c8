"""The TAM's policy and bookkeeping: the :class:`TAMHost` over the store.

The protocol engine (:mod:`teep.protocol.tam`) asks; this module answers
from the database: which one-time values are outstanding, which devices are
enrolled, what the Verifier thinks of their Evidence, and what each device
must install or remove.

Policy, as an operator sets it with ``teep tam policy``: a component is
required on every device its selectors match.  A device may also request a
catalogued component; granting that request adds a policy entry for that
device alone, and giving it up (unneeded-manifest-list) removes the entry.
A catalogued component a device holds but no policy requires is removed.
Components the TAM did not catalogue are never touched.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from teep import cbor, components
from teep.attestation.ar4si import TrustTier
from teep.attestation.encryption import is_encrypted
from teep.attestation.policy import QUARANTINED, AttestationPolicy
from teep.attestation.relying_party import RelyingParty
from teep.attestation.verifier import (
    Appraisal,
    AttestationVerifier,
    Endorsement,
    ReferenceValues,
    Verifier,
)
from teep.errors import ConfigError, TeepError
from teep.keys import PrivateKey, PublicKey
from teep.protocol.messages import Error, QueryResponse, Success
from teep.protocol.tam import Appraised, Plan, TAMHost
from teep.suit.envelope import SuitEnvelope, open_envelope
from teep.suit.errors import SuitError
from teep.suit.store import ComponentId
from teep.tam.models import ComponentRecord, DeviceRecord
from teep.tam.store import TAMStore

__all__ = ["TAMService", "add_component", "image_digest"]

log = logging.getLogger("teep.tam")

_T = TypeVar("_T")

SHA256 = -16


@dataclass
class TAMService(TAMHost):
    """Answers the protocol engine's questions from a :class:`TAMStore`."""

    store: TAMStore
    """Where everything is kept."""
    clock: Callable[[], float] = time.time
    """The current time, in UNIX seconds."""
    challenge_ttl: float = 600.0
    """Lifetime of a challenge."""
    token_ttl: float = 6 * 3600.0
    """Lifetime of an Update's token."""
    attestation_verifier: AttestationVerifier | None = None
    """The Verifier Evidence goes to; None: the built-in one over the
    attestation keys in the store."""
    verifier_keys: tuple[PublicKey, ...] = ()
    """Verifier keys whose Attestation Results (passport model) are trusted."""
    decryption_key: PrivateKey | None = None
    """The TAM's key-agreement key, if it accepts encrypted payloads."""
    policy: AttestationPolicy = field(default_factory=AttestationPolicy)
    """What each appraisal status allows."""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    _generation: int = field(default=-1, repr=False)

    # -- one-time values -----------------------------------------------------

    def issue(
        self, value: bytes, kind: str, data: bytes, device_kid: bytes | None
    ) -> None:
        ttl = self.challenge_ttl if kind == "challenge" else self.token_ttl
        self.store.issue_nonce(
            value,
            kind=kind,
            now=self.clock(),
            ttl=ttl,
            device_kid=device_kid,
            data=data,
        )

    def consume(
        self, value: bytes, kind: str, device_kid: bytes | None = None
    ) -> bytes | None:
        record = self.store.consume_nonce(
            value, kind=kind, now=self.clock(), device_kid=device_kid
        )
        return None if record is None else record.data

    # -- devices and attestation ----------------------------------------------

    def device_key(self, kid: bytes) -> PublicKey | None:
        # Every message the engine processes starts here, so this is where
        # what the worker cached is checked against the store.
        self._refresh()
        slot = "key:" + kid.hex()
        cached = self._cache.get(slot)
        if isinstance(cached, PublicKey):
            return cached
        device = self.store.get_device(kid)
        if device is None:
            return None
        # A kid is the key's own thumbprint, so a cached key cannot go stale;
        # removing the device bumps the generation and empties the cache.
        key = PublicKey.from_cose_key(cbor.loads(device.cose_key))
        self._cache[slot] = key
        return key

    def _refresh(self) -> None:
        generation = self.store.config_generation()
        if generation != self._generation:
            self._cache.clear()
            self._generation = generation

    def _cached(self, slot: str, load: Callable[[], _T]) -> _T:
        if slot not in self._cache:
            self._cache[slot] = load()
        value: _T = self._cache[slot]
        return value

    def _catalogue(self, *, all_versions: bool = False) -> list[ComponentRecord]:
        slot = "catalogue:all" if all_versions else "catalogue:newest"
        return self._cached(
            slot, lambda: self.store.list_components(all_versions=all_versions)
        )

    def enrollment_key(self, response: QueryResponse, kid: bytes) -> PublicKey | None:
        """The Agent key named in the Evidence's cnf, if it is the signer's.

        The key is only a candidate: the engine checks the message's
        signature with it and the Verifier appraises the Evidence before the
        device is enrolled.
        """
        if response.attestation_payload is None:
            return None
        key = self.relying_party().cnf_key(response.attestation_payload)
        if key is None or key.thumbprint != kid:
            return None
        return key

    def verifier(self) -> Verifier:
        """A Verifier over the attestation keys the operator endorsed."""
        return self._cached("verifier", self._build_verifier)

    def _build_verifier(self) -> Verifier:
        endorsements = []
        for record in self.store.list_attestation_keys():
            endorsements.append(
                Endorsement(
                    key=PublicKey.from_cose_key(cbor.loads(record.cose_key)),
                    oemid=record.oemid if record.oemid is not None else b"",
                    hwmodel=record.hwmodel if record.hwmodel is not None else b"",
                    name=record.label,
                )
            )
        return Verifier(endorsements, [ReferenceValues()])

    def relying_party(self) -> RelyingParty:
        """How attestation payloads are opened, routed and checked."""
        return RelyingParty(
            self.attestation_verifier or self.verifier(),
            self.verifier_keys,
            self.decryption_key,
        )

    def session_nonce(self, payload: bytes, payload_format: str | None) -> bytes | None:
        """The eat_nonce of an EAT, read without verification (the Verifier
        checks the same nonce under the signature)."""
        return self.relying_party().session_nonce(payload)

    def appraise(
        self,
        evidence: bytes | None,
        payload_format: str | None,
        nonce: bytes | None,
        agent_key: PublicKey,
    ) -> Appraised:
        now = self.clock()
        kid = agent_key.thumbprint
        if evidence is None:
            verdict = Appraised(False, "none", "no Evidence in the QueryResponse")
        else:
            result = self.relying_party().appraise(
                evidence, payload_format, nonce=nonce, agent_key=agent_key, now=now
            )
            verdict = self._judge(result, kid)
            verified = (TrustTier.affirming, TrustTier.warning)
            if result.status in verified and result.claims is not None:
                self.store.upsert_device(
                    kid,
                    cose_key=cbor.det_dumps(agent_key.cose_key()),
                    ueid=result.claims.ueid,
                    hwmodel=result.claims.hwmodel,
                    now=now,
                )
        record = self.store.get_device(kid)
        known = record is not None
        device = kid if known else None
        if record is not None and record.status == QUARANTINED:
            # The policy's quarantine holds until an operator releases it.
            reason = f"{verdict.status}: {verdict.reason}"
            verdict = Appraised(False, QUARANTINED, reason)
        detail = {
            "nonce": (nonce or b"")[:4].hex(),
            "agent_key": kid.hex(),
            "rule": self.policy.decide(verdict.status).rule,
        }
        self.store.record_appraisal(
            device, status=verdict.status, reason=verdict.reason, detail=detail, now=now
        )
        if known:
            self.store.set_device_status(kid, verdict.status, verdict.reason, now=now)
        if not verdict.ok:
            self.store.record_event(
                device, kind="attestation-failed", message=verdict.reason, now=now
            )
        return verdict

    def _judge(self, result: Appraisal, kid: bytes) -> Appraised:
        """The verdict the policy gives an appraisal."""
        decision = self.policy.decide(result.status)
        # Removing components needs a device record; an unknown device whose
        # attestation failed is simply refused.
        serve = decision.serve and (
            decision.install or self.store.get_device(kid) is not None
        )
        status = QUARANTINED if decision.quarantine else result.status.name
        attested = None
        if result.claims is not None:
            attested = frozenset(m.digest for m in result.claims.manifests) or None
        return Appraised(serve, status, result.reason, attested)

    def open_report(self, agent_key: PublicKey, report: bytes) -> bytes:
        """A SUIT Report, decrypted if it was encrypted to the TAM; one that
        does not open is recorded against the device before it is refused.

        :raises EncryptionError: if it is encrypted and does not open.
        """
        try:
            return self.relying_party().open_report(report)
        except TeepError as exc:
            self._event(agent_key.thumbprint, "suit-report-refused", str(exc))
            raise

    # -- policy ------------------------------------------------------------------

    def plan(
        self, agent_key: PublicKey, response: QueryResponse, verdict: Appraised
    ) -> Plan:
        device = self.store.get_device(agent_key.thumbprint)
        if device is None:
            raise ConfigError("planning for a device that is not enrolled")
        self._note_requests(device, response)
        held = _held_digests(response)
        holds = _Holdings(held, verdict.manifests or frozenset(), self._versions())
        decision = self.policy.decide(verdict.status)
        required = {c.name: c for c in self.store.required_components(device)}
        if decision.remove_managed:
            # A contraindicated device keeps none of the TAM's components.
            required = {}
        install = []
        for name, component in sorted(required.items()):
            if decision.install and not holds.has(component):
                install.append((name, component.envelope))
        unneeded = []
        for component in self._catalogue():
            cid = _component_id(component)
            if component.name not in required and cid in held:
                unneeded.append(tuple(cbor.loads(component.manifest_component_id)))
        self._note_manifests(device, holds)
        return Plan(tuple(install), tuple(unneeded))

    def _versions(self) -> dict[ComponentId, set[bytes]]:
        versions: dict[ComponentId, set[bytes]] = {}
        for record in self._catalogue(all_versions=True):
            digest = hashlib.sha256(record.envelope).digest()
            versions.setdefault(_component_id(record), set()).add(digest)
        return versions

    def _note_requests(self, device: DeviceRecord, response: QueryResponse) -> None:
        selector = device.kid.hex()
        for wanted in response.requested_tc_list or ():
            record = self._by_component_id(wanted.component_id)
            if record is None:
                self._event(
                    device.kid, "request-refused", "unknown component requested"
                )
                continue
            if not any(
                p.component == record.name and p.selector == selector
                for p in self.store.list_policies()
            ):
                self.store.add_policy(record.name, selector=selector)
                self._event(device.kid, "request-granted", record.name)
        for manifest in response.unneeded_manifest_list or ():
            record = self.store.component_by_manifest_id(cbor.dumps(list(manifest)))
            if record is not None and self.store.remove_policy(
                record.name, selector=selector
            ):
                self._event(device.kid, "unrequested", record.name)

    def _by_component_id(self, wanted: ComponentId) -> ComponentRecord | None:
        for record in self._catalogue():
            if _component_id(record) == wanted:
                return record
        return None

    def _note_manifests(self, device: DeviceRecord, holds: _Holdings) -> None:
        manifests = [
            (c.manifest_component_id, c.sequence_number)
            for c in self._catalogue(all_versions=True)
            if holds.has(c)
        ]
        self.store.set_device_manifests(device.kid, manifests, now=self.clock())

    def finished(
        self, agent_key: PublicKey, message: Success | Error, session: dict[str, Any]
    ) -> None:
        kid = agent_key.thumbprint
        ok = isinstance(message, Success)
        now = self.clock()
        sealed = 0
        for report in message.suit_reports or ():
            # Reports are kept in the clear; that they came encrypted is
            # recorded as an event (the engine opened them once already).
            sealed += is_encrypted(report)
            plain = self.relying_party().open_report(report)
            self.store.record_suit_report(kid, report=plain, ok=ok, now=now)
        if sealed:
            self._event(kid, "suit-report-encrypted", f"{sealed} SUIT Report(s) opened")
        if ok:
            self._applied(kid, session)
        else:
            assert isinstance(message, Error)
            self._event(
                kid, "update-failed", f"{message.err_code}: {message.err_msg or ''}"
            )

    def agent_error(self, agent_key: PublicKey, error: Error) -> None:
        """Record an Error the Agent sent in answer to a QueryRequest."""
        reason = f"{error.err_code}: {error.err_msg or ''}"
        self._event(agent_key.thumbprint, "agent-error", reason)

    def _applied(self, kid: bytes, session: dict[str, Any]) -> None:
        """Bring the device's record up to date after a Success."""
        installed = [n for n in session.get("install", []) if isinstance(n, str)]
        removed = {
            cbor.dumps(m) for m in session.get("unneeded", []) if isinstance(m, list)
        }
        held = dict(self.store.device_manifests(kid))
        for name in installed:
            record = self.store.get_component(name)
            if record is not None:
                held[record.manifest_component_id] = record.sequence_number
        for manifest in removed:
            held.pop(manifest, None)
        self.store.set_device_manifests(kid, list(held.items()), now=self.clock())
        parts = []
        if installed:
            parts.append("installed " + ", ".join(installed))
        if removed:
            parts.append(f"removed {len(removed)} manifest(s)")
        self._event(kid, "update-applied", "; ".join(parts) or "nothing to change")

    def _event(self, kid: bytes | None, kind: str, message: str) -> None:
        self.store.record_event(kid, kind=kind, message=message, now=self.clock())


@dataclass(frozen=True)
class _Holdings:
    """What a device reported holding: image digests from its tc-list and,
    when its Evidence lists them, the digests of its manifests."""

    images: dict[ComponentId, bytes]
    """Image digest per component id, from the tc-list."""
    manifests: frozenset[bytes]
    """Digests of the manifests the verified Evidence lists."""
    versions: dict[ComponentId, set[bytes]]
    """Envelope digests of every catalogued version, per component id."""

    def has(self, record: ComponentRecord) -> bool:
        """Whether the device holds exactly this version of the component."""
        digest = hashlib.sha256(record.envelope).digest()
        if digest in self.manifests:
            return True
        cid = _component_id(record)
        if self.images.get(cid) != image_digest(record.envelope, cid):
            return False
        # The image matches; an attested digest of another catalogued version
        # means the device holds that version (two versions can share an
        # image).  Agents that list no manifests are judged by the image.
        return not (self.versions.get(cid, set()) & self.manifests)


def add_component(
    store: TAMStore, name: str, envelope: bytes, *, now: float
) -> ComponentRecord:
    """Catalogue a Trusted Component after checking its envelope.

    The envelope must be signed by a Trusted Component signer key the
    operator registered, and must name the manifest and component ids that
    teep's naming gives ``name``.

    :raises ConfigError: if any of that does not hold.
    :raises StaleVersionError: if a version as new is already catalogued.
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
    manifest_id = env.manifest.manifest_component_id or components.manifest_id(name)
    if manifest_id != components.manifest_id(name):
        raise ConfigError(
            f"the manifest is for {components.display(manifest_id)}, not component {name!r}"
        )
    cid = components.component_id(name)
    if cid not in env.manifest.common.components:
        raise ConfigError(f"the manifest does not install {components.display(cid)}")
    return store.add_component(
        name,
        manifest_component_id=cbor.dumps(list(manifest_id)),
        component_id=cbor.dumps(list(cid)),
        sequence_number=env.manifest.sequence_number,
        envelope=envelope,
        signer_kid=signer.thumbprint,
        now=now,
        newer_only=True,
    )


def image_digest(envelope: bytes, component: ComponentId) -> bytes | None:
    """The SHA-256 image digest an envelope sets for ``component``, if any."""
    try:
        env = SuitEnvelope.decode(envelope)
    except TeepError:
        return None
    ids = env.manifest.common.components
    if component not in ids:
        return None
    index = ids.index(component)
    sequences = [env.manifest.common.shared_sequence, env.sequence(20), env.sequence(7)]
    for sequence in sequences:
        if sequence is None:
            continue
        current = 0
        for command in sequence.commands:
            if command.label == 12 and isinstance(command.argument, int):
                current = command.argument
            elif command.label in (19, 20) and current == index:
                found = _digest_param(command.argument)
                if found is not None:
                    return found
    return None


def _digest_param(params: Any) -> bytes | None:
    if not isinstance(params, dict) or not isinstance(params.get(3), bytes):
        return None
    try:
        value = cbor.loads(params[3])
    except TeepError:
        return None
    ok = isinstance(value, list) and len(value) == 2 and value[0] == SHA256
    return value[1] if ok and isinstance(value[1], bytes) else None


def _component_id(record: ComponentRecord) -> ComponentId:
    return tuple(cbor.loads(record.component_id))


def _held_digests(response: QueryResponse) -> dict[ComponentId, bytes]:
    held: dict[ComponentId, bytes] = {}
    for entry in response.tc_list or ():
        cid = tuple(entry[0])
        digest = entry.get(3)
        value = _digest_param({3: digest}) if isinstance(digest, bytes) else None
        held[cid] = value or b""
    return held


def payload_digest(payload: bytes) -> bytes:
    """SHA-256 of a payload, as SUIT image digests carry it."""
    return hashlib.sha256(payload).digest()
