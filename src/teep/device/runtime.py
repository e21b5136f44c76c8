"""A device: the TEEP Agent running on the simulated TEE, and its Broker.

:class:`Device` is the :class:`teep.protocol.agent.AgentHost` of the
simulated TEE: it reads trust anchors and identity from the TEE, builds the
Evidence, and runs the SUIT processor against the TEE's component store.
The device's folder holds ``tee/`` (sealed state), ``device.json`` (the
normal world's settings: the TAM URI) and ``session.lock`` (held while a
session with a TAM runs).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teep import __version__, cbor, components, cose
from teep.attestation.claims import (
    EAT_PROFILE_TEEP,
    EATClaims,
    HWVersion,
    ManifestEntry,
    SUITReference,
)
from teep.device import tam_trust
from teep.device.tee import SimulatedTEE
from teep.device.wasm import ComponentResult, run_component
from teep.errors import ConfigError, StoreError, reason
from teep.keys import PublicKey
from teep.protocol.agent import Agent, AgentConfig, Attestation
from teep.protocol.errors import ManifestProcessingFailed
from teep.protocol.messages import QueryRequest, RequestedTC
from teep.suit.errors import SuitError
from teep.suit.processor import SuitProcessor
from teep.suit.store import ComponentId
from teep.verifier.attester import attestation_payload
from teep.verifier.client import VerifierClient, VerifierMode
from teep.verifier.errors import VerifierUnavailable

__all__ = ["Device", "DeviceSettings"]

log = logging.getLogger("teep.device")

SETTINGS_FILE = "device.json"
TEE_DIR = "tee"
SESSION_LOCK = "session.lock"
"""Held for the whole of a session with a TAM (see :meth:`Device.session`)."""
# CoAP content-format of application/suit-report+cbor... the TEEP profile
# names SUIT_Reference entries; teep tags them with the SUIT envelope format.
SUIT_CONTENT_FORMAT = 742
SHA256 = -16
AGENT_SOFTWARE = "teep-agent"
MAX_ID_PARTS = 8
"""Most parts of a component id the device keeps components at."""
MAX_ID_PART = 128
"""Most bytes in one part of such an id."""


@dataclass(frozen=True)
class DeviceSettings:
    """Normal-world settings of a device (not secret, not sealed)."""

    tam_uri: str | None = None
    """The TAM this device contacts."""
    verifier_url: str | None = None
    """A Verifier to get Attestation Results from (passport model); None
    sends Evidence (background-check model)."""
    verifier_mode: str = "teep"
    """The API that Verifier speaks: ``teep`` or ``veraison``."""

    def save(self, folder: Path) -> None:
        """Write to ``folder/device.json``."""
        data = {
            "tam_uri": self.tam_uri,
            "verifier_url": self.verifier_url,
            "verifier_mode": self.verifier_mode,
        }
        (folder / SETTINGS_FILE).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> DeviceSettings:
        """Read ``folder/device.json`` (defaults when absent).

        :raises ConfigError: if the file is unreadable.
        """
        path = folder / SETTINGS_FILE
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError("it must hold a JSON object")
            for name in ("tam_uri", "verifier_url"):
                if not isinstance(data.get(name), (str, type(None))):
                    raise ValueError(f"{name} must be a string or null")
            mode = data.get("verifier_mode", "teep")
            if mode not in [m.value for m in VerifierMode]:
                choices = " or ".join(repr(m.value) for m in VerifierMode)
                raise ValueError(f"verifier_mode must be {choices}")
            return cls(
                tam_uri=data.get("tam_uri"),
                verifier_url=data.get("verifier_url"),
                verifier_mode=mode,
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path}: {reason(exc)}") from None


class Device:
    """A device folder opened for use: TEE, Agent and settings."""

    def __init__(self, folder: Path, tee: SimulatedTEE) -> None:
        self.folder = folder
        self.tee = tee
        self.settings = DeviceSettings.load(folder)
        required = bool(tee.get_setting(tam_trust.REQUIRE_SETTING, False))
        self.agent = Agent(
            AgentConfig(key=tee.agent_key, require_tam_attestation=required), self
        )

    @classmethod
    def init(
        cls,
        folder: str | Path,
        *,
        tam_uri: str | None = None,
        hwmodel: bytes = b"teep-sim",
        oemid: bytes = b"\x00\x00\x00",
        hwversion: str = "1.0",
        **kwargs: Any,
    ) -> Device:
        """Create a device folder with a fresh simulated TEE.

        :raises ConfigError: if the folder already holds a device.
        """
        path = Path(folder)
        if (path / TEE_DIR).exists():
            raise ConfigError(f"{path} already holds a device")
        path.mkdir(parents=True, exist_ok=True)
        tee = SimulatedTEE.create(
            path / TEE_DIR, oemid=oemid, hwmodel=hwmodel, hwversion=hwversion, **kwargs
        )
        DeviceSettings(tam_uri=tam_uri).save(path)
        return cls(path, tee)

    @classmethod
    def open(cls, folder: str | Path) -> Device:
        """Open an existing device folder.

        :raises ConfigError: if there is no device there.
        """
        path = Path(folder)
        if not (path / TEE_DIR).exists():
            raise ConfigError(f"no device in {path} (run 'teep device init' first)")
        return cls(path, SimulatedTEE.open(path / TEE_DIR))

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Hold the device for one session with a TAM: a second session of
        the same folder, in this process or another, fails at once rather
        than answer the same Update again.

        :raises ConfigError: if another session holds the device.
        :raises StoreError: if the lock file cannot be opened.
        """
        path = self.folder / SESSION_LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot lock {path}: {exc.strerror}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError("another session of this device is running") from None
            yield
        finally:
            os.close(fd)

    # -- AgentHost -----------------------------------------------------------

    def tam_keys(self, tam_uri: str) -> list[PublicKey]:
        """TAM keys trusted for ``tam_uri`` (and those trusted for any TAM)."""
        return self.tee.trusted_tam_keys(tam_uri)

    def pre_rfc_enabled(self, tam_uri: str) -> bool:
        """Whether the pre-RFC numbering is allowed from ``tam_uri``."""
        allowed = self.tee.get_setting("pre_rfc_tams", [])
        return tam_uri in allowed

    def attestation(self, nonce: bytes | None, request: QueryRequest) -> Attestation:
        """EAT Evidence in the TEEP profile for a QueryRequest, or the EAR a
        Verifier gives for it (passport model), encrypted to the TAM when its
        QueryRequest offers a key."""
        evidence = self.evidence(nonce)
        verifier = None
        if self.settings.verifier_url:
            mode = VerifierMode(self.settings.verifier_mode)
            verifier = VerifierClient(self.settings.verifier_url, mode=mode)
        try:
            return attestation_payload(
                evidence, nonce=nonce, extensions=request.extensions, verifier=verifier
            )
        except VerifierUnavailable as exc:
            # The TAM can still appraise the Evidence itself (background check).
            log.warning("no Attestation Result, sending Evidence: %s", exc)
            return attestation_payload(
                evidence, nonce=nonce, extensions=request.extensions
            )

    def evidence(self, nonce: bytes | None) -> bytes:
        """EAT Evidence signed by the TEE's attestation key."""
        claims = EATClaims(
            ueid=self.tee.ueid,
            oemid=self.tee.oemid,
            hwmodel=self.tee.hwmodel,
            hwversion=HWVersion(self.tee.hwversion, 1),
            manifests=tuple(self._manifest_claims()),
            cnf_kid=self.tee.agent_key.kid,
            nonce=nonce,
            eat_profile=EAT_PROFILE_TEEP,
            iat=int(time.time()),
        )
        value = claims.to_map()
        # RFC 8747 3.1: cnf carries the whole COSE_Key, so a TAM that has not
        # met this Agent can learn its key from Evidence it trusts; the binding
        # check compares the key's thumbprint all the same.
        value[8] = {1: self.tee.agent_key.public.cose_key()}
        return cose.sign1(cbor.det_dumps(value), self.tee.attestation_key)

    def verify_tam_attestation(
        self, attestation: Attestation, nonce: bytes | None, tam_key: PublicKey
    ) -> None:
        """Appraise a TAM's Evidence against the TAM attestation keys trusted."""
        tam_trust.verify_tam_attestation(
            self.tee, attestation, nonce, tam_key, now=time.time()
        )

    def _manifest_claims(self) -> Iterable[ManifestEntry]:
        # teep-protocol 10.2: the Agent itself is listed among the manifests.
        agent = f"{AGENT_SOFTWARE}:{__version__}".encode()
        digest = hashlib.sha256(agent).digest()
        yield ManifestEntry(
            SUIT_CONTENT_FORMAT, SUITReference(agent.decode(), SHA256, digest)
        )
        for held in self.tee.components.manifests():
            digest = hashlib.sha256(held.envelope).digest()
            uri = "teep:" + components.display(held.manifest_component_id)
            yield ManifestEntry(SUIT_CONTENT_FORMAT, SUITReference(uri, SHA256, digest))

    def tc_list(self) -> list[dict[Any, Any]]:
        """system-property-claims: component id and image digest of each component."""
        entries = []
        seen: set[ComponentId] = set()
        for held in self.tee.components.manifests():
            for component in held.components:
                # A manifest that depends on another (Personalization Data on
                # its component) names the other's components too: once each.
                if component in seen:
                    continue
                seen.add(component)
                content = self.tee.components.read(component)
                if content is None:
                    continue
                digest = cbor.dumps([SHA256, hashlib.sha256(content).digest()])
                entries.append({0: list(component), 3: digest})
        return entries

    def requested_tcs(self) -> list[RequestedTC]:
        """Components asked for with ``teep device request``."""
        return [RequestedTC(component_id=cid) for cid in self.tee.requested]

    def unneeded_manifests(self) -> list[ComponentId]:
        """Manifests given up with ``teep device unrequest``."""
        return list(self.tee.unneeded)

    def _processor(self) -> SuitProcessor:
        return SuitProcessor(
            self.tee.components,
            self.tee.trusted_signer_keys(),
            decryption_keys=[self.tee.kek],
            accept_component_id=acceptable_id,
        )

    def install(self, envelope: bytes, report_nonce: bytes | None) -> bytes:
        """Run the SUIT Update procedure on one envelope."""
        try:
            result = self._processor().install(envelope, report_nonce=report_nonce)
        except SuitError as exc:
            log.info("manifest refused: %s", exc)
            raise ManifestProcessingFailed(str(exc), _reports(exc)) from None
        installed = result.manifest.manifest_component_id
        log.info(
            "installed %s (sequence %d)",
            components.display(installed),
            result.manifest.sequence_number,
        )
        self._forget_request(result.manifest.components)
        return result.report

    def uninstall(self, manifest_id: ComponentId, report_nonce: bytes | None) -> bytes:
        """Unlink a manifest and its components."""
        try:
            result = self._processor().uninstall(manifest_id, report_nonce=report_nonce)
        except SuitError as exc:
            raise ManifestProcessingFailed(str(exc), _reports(exc)) from None
        self.tee.unneeded = [m for m in self.tee.unneeded if m != manifest_id]
        log.info("removed %s", components.display(manifest_id))
        return result.report

    def _forget_request(self, installed: Iterable[ComponentId]) -> None:
        done = set(installed)
        if any(cid in done for cid in self.tee.requested):
            self.tee.requested = [cid for cid in self.tee.requested if cid not in done]

    # -- local API ------------------------------------------------------------

    def request(self, name: str) -> bool:
        """RequestTA: ask the TAM for a component at the next session; for
        an installed component given up with :meth:`unrequest`, take it
        back instead.

        :returns: True if a give-up was taken back (nothing is sent to the
            TAM), False if the TAM is to be asked at the next session.
        :raises ConfigError: if the component is installed and not given up
            (a request for it would never be met, so never cleared).
        """
        mid = components.manifest_id(name)
        if self.tee.components.manifest(mid) is not None:
            if mid not in self.tee.unneeded:
                raise ConfigError(f"component {name!r} is already installed")
            self.tee.unneeded = [m for m in self.tee.unneeded if m != mid]
            return True
        cid = components.component_id(name)
        if cid not in self.tee.requested:
            self.tee.requested = [*self.tee.requested, cid]
        return False

    def unrequest(self, name: str) -> bool:
        """UnrequestTA: tell the TAM the component is no longer needed; for
        a component asked for and not yet installed, withdraw the request.

        :returns: True if a pending request was withdrawn (nothing is sent
            to the TAM), False if the TAM is to be told at the next session.
        :raises ConfigError: if the component is neither installed nor requested.
        """
        mid = components.manifest_id(name)
        if self.tee.components.manifest(mid) is None:
            cid = components.component_id(name)
            if cid not in self.tee.requested:
                raise ConfigError(
                    f"component {name!r} is neither installed nor requested"
                )
            self.tee.requested = [c for c in self.tee.requested if c != cid]
            return True
        if mid not in self.tee.unneeded:
            self.tee.unneeded = [*self.tee.unneeded, mid]
        return False

    def pending_requests(self) -> list[str]:
        """Names of the components requested and not installed yet."""
        return [
            components.name_of(cid) or components.display(cid)
            for cid in self.tee.requested
        ]

    def kept_unneeded(self) -> list[str]:
        """Names of the components given up with :meth:`unrequest` that are
        still installed: the TAM keeps those its policy requires (removing
        one takes it off the list, see :meth:`uninstall`)."""
        return [
            components.name_of(mid) or components.display(mid)
            for mid in self.tee.unneeded
            if self.tee.components.manifest(mid) is not None
        ]

    def invoke(
        self, name: str, stdin: bytes = b"", args: Sequence[str] = ()
    ) -> ComponentResult:
        """Run an installed component in the WebAssembly sandbox, with
        ``args`` after its ``argv[0]``.  A non-zero exit code is part of the
        result, not an error.

        :raises ConfigError: if it is not installed.
        :raises teep.device.wasm.ComponentError: if it traps, runs out of
            fuel or time, or breaks the contract.
        """
        module = self.tee.components.read(components.component_id(name))
        if module is None:
            raise ConfigError(f"component {name!r} is not installed on this device")
        config = self.tee.components.read(components.config_id(name))
        return run_component(module, args=args, stdin=stdin, config=config)


def acceptable_id(cid: ComponentId) -> bool:
    """Whether the device keeps components at ``cid``: 1 to
    ``MAX_ID_PARTS`` parts of at most ``MAX_ID_PART`` bytes each.  Ids are
    never file names here, so any bytes may appear in a part; the bounds
    keep a signer from filling the sealed index and every listing."""
    return 0 < len(cid) <= MAX_ID_PARTS and all(len(p) <= MAX_ID_PART for p in cid)


def _reports(exc: SuitError) -> tuple[bytes, ...]:
    report = getattr(exc, "report", None)
    return (report,) if isinstance(report, bytes) else ()
