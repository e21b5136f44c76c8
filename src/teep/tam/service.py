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

A required component's Personalization Data goes with it: the data
catalogued for the device itself if there is any, else the data for every
device, sent after the component's manifest whenever the device does not
hold that exact version, and removed with the component.

A device that answers an Update with an Error gets the same envelopes again
at its next session, until a version has failed ``max_failed_deliveries``
times in a row on that device (by the SUIT Reports in the Errors, or every
version the Update carried when they do not say): that version is then held
back from the device, with a "delivery-held" event, until an operator
releases it (``teep tam device retry``) or a newer version is catalogued.
A Success clears the count of what it installed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from teep import cbor, components, cose
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
from teep.errors import TeepError
from teep.keys import PrivateKey, PublicKey
from teep.protocol.errors import UnknownPeer
from teep.protocol.messages import Error, QueryResponse, Success
from teep.protocol.registry import ErrCode
from teep.protocol.tam import Appraised, Plan, TAMHost
from teep.suit.envelope import SuitDigest, SuitEnvelope
from teep.suit.report import decode_report
from teep.suit.store import ComponentId
from teep.tam.models import (
    CONFIG,
    EVERY_DEVICE,
    TA,
    ComponentRecord,
    DeviceRecord,
    PolicyRecord,
)
from teep.tam.store import Delivery, NotFoundError, TAMStore, selectors_for
from teep.text import escape_controls

__all__ = ["TAMService", "error_name", "image_digest"]

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

    @property
    def local(self) -> bool:
        """Whether all the service waits on is on this machine: the
        database and the Verifier."""
        return self.store.local and self.attestation_verifier is None

    def message(self) -> AbstractContextManager[object]:
        return self.store.unit("handle a TEEP message")

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
        record = None
        if evidence is None:
            verdict = Appraised(False, "none", "no Evidence in the QueryResponse")
        else:
            result = self.relying_party().appraise(
                evidence, payload_format, nonce=nonce, agent_key=agent_key, now=now
            )
            verdict = self._judge(result, kid)
            verified = (TrustTier.affirming, TrustTier.warning)
            if result.status in verified and result.claims is not None:
                record = self.store.upsert_device(
                    kid,
                    cose_key=cbor.det_dumps(agent_key.cose_key()),
                    ueid=result.claims.ueid,
                    hwmodel=result.claims.hwmodel,
                    now=now,
                )
        if record is None:
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
            # A validly signed QueryResponse is contact, whatever its verdict.
            with _enrolled(kid):
                self.store.set_device_status(
                    kid, verdict.status, verdict.reason, now=now, seen=True
                )
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
        with _enrolled(agent_key.thumbprint):
            return self._plan(agent_key, response, verdict)

    def _plan(
        self, agent_key: PublicKey, response: QueryResponse, verdict: Appraised
    ) -> Plan:
        device = self.store.get_device(agent_key.thumbprint)
        if device is None:
            raise _removed(agent_key.thumbprint)
        self._note_requests(device, response)
        held = _held_digests(response)
        holds = _Holdings(
            held, verdict.manifests or frozenset(), self._versions(), self._facts
        )
        decision = self.policy.decide(verdict.status)
        required = self._required(device)
        if decision.remove_managed:
            # A contraindicated device keeps none of the TAM's components.
            required = {}
        data = _personalization(self._catalogue(), device, required)
        wanted = [
            record
            for record in _with_personalization(required, data)
            if decision.install and not holds.has(record)
        ]
        install = self._not_held(device.kid, wanted) if wanted else wanted
        unneeded = _unneeded(self._catalogue(), required, held)
        self._note_manifests(device, holds)
        return Plan(
            tuple((_label(r), r.envelope) for r in install),
            unneeded,
            held_back=tuple(_label(r) for r in wanted if r not in install),
        )

    def _not_held(
        self, kid: bytes, install: list[ComponentRecord]
    ) -> list[ComponentRecord]:
        """The versions to send, less those the device failed to install
        too many times in a row; a version held from now on is recorded."""
        limit = self._cached("max-failed-deliveries", self.store.max_failed_deliveries)
        if limit == 0:
            return install
        failed = {
            (f.name, f.kind, f.envelope_digest): f
            for f in self.store.failed_deliveries(kid, at_least=limit)
        }
        if not failed:
            return install
        sending = []
        newly: list[Delivery] = []
        for record in install:
            delivery = self._delivery(record)
            found = failed.get((record.name, record.kind, delivery.envelope_digest))
            if found is None:
                sending.append(record)
            elif found.held_at is None:
                newly.append(delivery)
                self._event(
                    kid,
                    "delivery-held",
                    f"{_label(record)} sequence {record.sequence_number} held back "
                    f"after {found.failures} failed deliveries; last error "
                    f"{error_name(found.err_code)}: {found.err_msg}",
                )
        self.store.hold_deliveries(kid, newly, now=self.clock())
        return sending

    def _delivery(self, record: ComponentRecord) -> Delivery:
        return Delivery(
            record.name,
            record.kind,
            self._facts(record).digest,
            record.sequence_number,
        )

    def _required(self, device: DeviceRecord) -> dict[str, ComponentRecord]:
        """The newest version of each Trusted Component a rule requires on
        the device, by name (from what the worker cached)."""
        selectors = selectors_for(device)
        names = {p.component for p in self._policies() if p.selector in selectors}
        return {
            c.name: c for c in self._catalogue() if c.kind == TA and c.name in names
        }

    def _policies(self) -> list[PolicyRecord]:
        return self._cached("policies", self.store.list_policies)

    def _versions(self) -> dict[ComponentId, set[bytes]]:
        """Envelope digests of every catalogued version, per component id."""

        def load() -> dict[ComponentId, set[bytes]]:
            versions: dict[ComponentId, set[bytes]] = {}
            for record in self._catalogue(all_versions=True):
                facts = self._facts(record)
                versions.setdefault(facts.component, set()).add(facts.digest)
            return versions

        return self._cached("versions", load)

    def _facts(self, record: ComponentRecord) -> _Facts:
        """What the TAM reads from a catalogued envelope, worked out once
        per configuration generation."""
        known: dict[tuple[str, str, str, int], _Facts] = self._cached("facts", dict)
        key = (record.name, record.kind, record.device, record.sequence_number)
        facts = known.get(key)
        if facts is None:
            cid = _component_id(record)
            facts = _Facts(
                hashlib.sha256(record.envelope).digest(),
                cid,
                image_digest(record.envelope, cid),
            )
            known[key] = facts
        return facts

    def _note_requests(self, device: DeviceRecord, response: QueryResponse) -> None:
        selector = device.kid.hex()
        for wanted in response.requested_tc_list or ():
            record = self._by_component_id(wanted.component_id)
            if record is None:
                self._event(
                    device.kid, "request-refused", "unknown component requested"
                )
                continue
            least = wanted.tc_manifest_sequence_number
            if least is not None and record.sequence_number < least:
                # teep-protocol 5.2: the number is the lowest acceptable.
                self._event(
                    device.kid,
                    "request-refused",
                    f"{record.name}: sequence {least} or newer asked for, "
                    f"{record.sequence_number} catalogued",
                )
                continue
            if not any(
                p.component == record.name and p.selector == selector
                for p in self._policies()
            ):
                self.store.add_policy(record.name, selector=selector)
                self._cache.pop("policies", None)
                self._event(device.kid, "request-granted", record.name)
        for manifest in response.unneeded_manifest_list or ():
            record = self.store.component_by_manifest_id(cbor.dumps(list(manifest)))
            if record is None:
                continue
            if self.store.remove_policy(record.name, selector=selector):
                self._cache.pop("policies", None)
                self._event(device.kid, "unrequested", record.name)
            # Only the device's own request is its to give up; a component
            # another policy entry requires stays, and that is recorded.
            keeping = sorted(
                p.selector
                for p in self._policies()
                if p.component == record.name and p.selector in selectors_for(device)
            )
            if keeping:
                self._event(
                    device.kid,
                    "unrequest-kept",
                    f"{record.name}: given up by the device and kept: policy "
                    f"requires it on {', '.join(keeping)}",
                )

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
        with _enrolled(agent_key.thumbprint):
            self._finished(agent_key, message, session)

    def _finished(
        self, agent_key: PublicKey, message: Success | Error, session: dict[str, Any]
    ) -> None:
        kid = agent_key.thumbprint
        ok = isinstance(message, Success)
        now = self.clock()
        sealed = 0
        reports = []
        for report in message.suit_reports or ():
            # Reports are kept in the clear; that they came encrypted is
            # recorded as an event (the engine opened them once already).
            sealed += is_encrypted(report)
            plain = self.relying_party().open_report(report)
            reports.append(plain)
            self.store.record_suit_report(kid, report=plain, ok=ok, now=now)
        if sealed:
            self._event(kid, "suit-report-encrypted", f"{sealed} SUIT Report(s) opened")
        if ok:
            self._applied(kid, session)
        else:
            assert isinstance(message, Error)
            self._event(
                kid,
                "update-failed",
                f"{error_name(message.err_code)}: {message.err_msg or ''}",
            )
            self._count_failed(kid, message, session, reports)

    def _count_failed(
        self, kid: bytes, error: Error, session: dict[str, Any], reports: list[bytes]
    ) -> None:
        """Count a failed delivery against what failed in an Update: the
        versions the Error's SUIT Reports say failed, or every version the
        Update carried when none of them says."""
        sent = self._carried(kid, session)
        if not sent:
            return
        failed = _failed_manifests(reports)
        named = [d for d, record in sent if _manifest_digest(record) in failed]
        self.store.count_failed_deliveries(
            kid,
            named or [d for d, _ in sent],
            err_code=int(error.err_code),
            err_msg=error.err_msg or "",
            now=self.clock(),
        )

    def _carried(
        self, kid: bytes, session: dict[str, Any]
    ) -> list[tuple[Delivery, ComponentRecord]]:
        """The catalogue versions an Update carried, found by the digests
        its session kept (an older session without them: by name, as
        :meth:`plan` would choose now); a version no longer catalogued is
        left out."""
        labels = [n for n in session.get("install", []) if isinstance(n, str)]
        digests = session.get("digests")
        if not isinstance(digests, list) or len(digests) != len(labels):
            digests = [None] * len(labels)
        carried = []
        for label, digest in zip(labels, digests, strict=True):
            name, _, kind = label.partition("/")
            kind = kind or TA
            record: ComponentRecord | None = None
            if isinstance(digest, bytes):
                record = next(
                    (
                        c
                        for c in self._catalogue(all_versions=True)
                        if c.name == name
                        and c.kind == kind
                        and self._facts(c).digest == digest
                    ),
                    None,
                )
            else:
                record = self._sent(kid, label)
            if record is not None:
                carried.append((self._delivery(record), record))
        return carried

    def agent_error(self, agent_key: PublicKey, error: Error) -> None:
        """Record an Error the Agent sent in answer to a QueryRequest."""
        reason = f"{error_name(error.err_code)}: {error.err_msg or ''}"
        self._event(agent_key.thumbprint, "agent-error", reason)

    def _applied(self, kid: bytes, session: dict[str, Any]) -> None:
        """Bring the device's record up to date after a Success."""
        installed = [n for n in session.get("install", []) if isinstance(n, str)]
        unneeded = [m for m in session.get("unneeded", []) if isinstance(m, list)]
        removed = {cbor.dumps(m) for m in unneeded}
        held = dict(self.store.device_manifests(kid))
        for name in installed:
            component, _, kind = name.partition("/")
            self.store.clear_failed_deliveries(kid, component, kind or TA)
            record = self._sent(kid, name)
            if record is not None:
                held[record.manifest_component_id] = record.sequence_number
        for manifest in removed:
            held.pop(manifest, None)
        self.store.set_device_manifests(kid, list(held.items()), now=self.clock())
        parts = []
        if installed:
            parts.append("installed " + ", ".join(installed))
        if removed:
            parts.append("removed " + ", ".join(_display(m) for m in unneeded))
        self._event(kid, "update-applied", "; ".join(parts) or "nothing to change")

    def _event(self, kid: bytes | None, kind: str, message: str) -> None:
        # A message may quote a device's err-msg: stored escaped.
        text = escape_controls(message)
        self.store.record_event(kid, kind=kind, message=text, now=self.clock())

    def _sent(self, kid: bytes, label: str) -> ComponentRecord | None:
        """The catalogue entry an Update's install label names (see
        :func:`_label`), as :meth:`plan` chooses it for the device."""
        name, _, kind = label.partition("/")
        if kind != CONFIG:
            return next(
                (c for c in self._catalogue() if c.kind == TA and c.name == name),
                None,
            )
        device = self.store.get_device(kid)
        if device is None:
            return None
        return _personalization(self._catalogue(), device, {name}).get(name)


@contextmanager
def _enrolled(kid: bytes) -> Iterator[None]:
    """Bookkeeping for one device.  An operator may remove the device while
    its message is handled (the store sees the removal as soon as it is
    committed); the device is then unknown, and its message is dropped as
    any from an unknown device is."""
    try:
        yield
    except NotFoundError:
        raise _removed(kid) from None


def _removed(kid: bytes) -> UnknownPeer:
    return UnknownPeer(f"device {kid.hex()[:16]} was removed during its session")


@dataclass(frozen=True)
class _Facts:
    """What the TAM reads from a catalogued envelope."""

    digest: bytes
    """SHA-256 of the envelope."""
    component: ComponentId
    """The component it installs."""
    image: bytes | None
    """The SHA-256 image digest it sets for that component, if any."""


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
    facts: Callable[[ComponentRecord], _Facts]
    """What a catalogued envelope holds."""

    def has(self, record: ComponentRecord) -> bool:
        """Whether the device holds exactly this version of the component."""
        facts = self.facts(record)
        if facts.digest in self.manifests:
            return True
        cid = facts.component
        if cid not in self.images or self.images[cid] != facts.image:
            return False
        # The image matches; an attested digest of another catalogued version
        # means the device holds that version (two versions can share an
        # image).  Agents that list no manifests are judged by the image.
        return not (self.versions.get(cid, set()) & self.manifests)


def _personalization(
    catalogue: Iterable[ComponentRecord],
    device: DeviceRecord,
    names: Collection[str],
) -> dict[str, ComponentRecord]:
    """The Personalization Data each of ``names`` gets on ``device``: the
    newest catalogued for the device (by kid, else by ueid), else the newest
    for every device."""
    rank = {EVERY_DEVICE: 0, device.kid.hex(): 2}
    if device.ueid:
        rank[device.ueid.hex()] = 1
    chosen: dict[str, ComponentRecord] = {}
    for record in catalogue:
        if record.kind != CONFIG or record.name not in names:
            continue
        if record.device not in rank:
            continue
        best = chosen.get(record.name)
        if best is None or rank[record.device] > rank[best.device]:
            chosen[record.name] = record
    return chosen


def _with_personalization(
    required: Mapping[str, ComponentRecord], data: Mapping[str, ComponentRecord]
) -> Iterator[ComponentRecord]:
    """Each required component by name, followed by its Personalization
    Data (which usually depends on the component's manifest)."""
    for name, component in sorted(required.items()):
        yield component
        if name in data:
            yield data[name]


def _label(record: ComponentRecord) -> str:
    """How an Update's session names what it installs: ``NAME`` for a
    Trusted Component, ``NAME/config`` for its Personalization Data."""
    return record.name if record.kind == TA else f"{record.name}/{CONFIG}"


def _unneeded(
    catalogue: Iterable[ComponentRecord],
    required: Mapping[str, ComponentRecord],
    held: Mapping[ComponentId, bytes],
) -> tuple[ComponentId, ...]:
    """The manifest ids of catalogued components no policy requires on the
    device but it holds, each once (with their Personalization Data)."""
    unneeded: dict[bytes, None] = {}
    for record in catalogue:
        if record.name not in required and _component_id(record) in held:
            unneeded[record.manifest_component_id] = None
    return tuple(tuple(cbor.loads(mid)) for mid in unneeded)


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
    sequences = [env.manifest.common.shared_sequence]
    for key in (20, 7):  # install, validate
        try:
            sequences.append(env.sequence(key))
        except TeepError:  # a severed member the envelope no longer carries
            continue
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


def _display(manifest_id: list[Any]) -> str:
    """A manifest id as events name it (``TEEP-Device/SecureFS/hello/suit``)."""
    try:
        return components.display(tuple(manifest_id))
    except (AttributeError, TypeError):
        return repr(manifest_id)


def error_name(code: int) -> str:
    """The name of a stored err-code (final numbering), known or not."""
    try:
        return ErrCode(code).name
    except ValueError:
        return f"unknown error {code}"


def _failed_manifests(reports: Iterable[bytes]) -> set[SuitDigest]:
    """The manifest digests of the SUIT Reports that report a failure (bare
    or inside a COSE_Sign1); a report that does not decode says nothing."""
    failed = set()
    for report in reports:
        data = report
        try:
            data = cose.parse(report).payload or b""
        except TeepError:
            pass
        try:
            decoded = decode_report(data)
        except TeepError:
            continue
        if not decoded.succeeded:
            failed.add(decoded.manifest_digest)
    return failed


def _manifest_digest(record: ComponentRecord) -> SuitDigest | None:
    """The manifest digest a SUIT Report about this version names."""
    try:
        return SuitEnvelope.decode(record.envelope).digest
    except TeepError:
        return None
