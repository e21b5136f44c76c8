"""The TAM's attestation settings: the ``attestation`` object of ``tam.json``.

```
"attestation": {
  "verifier": "builtin",            # or the URL of a remote Verifier
  "verifier_mode": "teep",          # or "veraison" (challenge-response API)
  "verifier_keys": ["keys/verifier.pub.pem"],  # Verifiers whose EARs are
                                    # trusted (remote Verifier, passport model)
  "encrypted_evidence": false,      # offer keys/tam-ecdh.pem to Agents
  "model": "background-check",      # or "passport": token, no challenge
  "warning_installs": false,        # AttestationPolicy
  "contraindicated": "remove"       # or "quarantine"
}
```
Paths are relative to the TAM folder.  Every key is optional; an absent
object means the built-in Verifier, no passport, no encryption.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teep.attestation.encryption import encryption_offer
from teep.attestation.policy import AttestationPolicy, ContraindicatedAction
from teep.errors import ConfigError, TeepError, reason
from teep.keys import KeyKind, PrivateKey, PublicKey
from teep.protocol.tam import AttestationModel
from teep.tam.service import TAMService
from teep.verifier.client import VerifierClient, VerifierMode

__all__ = [
    "ENCRYPTION_KEY_FILE",
    "TAMAttestationSettings",
    "check_values",
    "update_tam_settings",
]

ENCRYPTION_KEY_FILE = "keys/tam-ecdh.pem"
_KEYS: dict[str, str] = {
    "verifier": "a string",
    "verifier_mode": "a string",
    "verifier_keys": "a list of files",
    "encrypted_evidence": "true or false",
    "model": "a string",
    "warning_installs": "true or false",
    "contraindicated": "a string",
}
"""Every key of the object, and what it must hold."""


def check_values(values: dict[Any, Any]) -> None:
    """Refuse a known key of the object holding a value of the wrong type
    (unknown keys are :meth:`TAMAttestationSettings.load`'s to refuse).

    :raises TypeError: naming the first such key.
    """
    for key, value in values.items():
        kind = _KEYS.get(key)
        if kind == "a string":
            fits = isinstance(value, str)
        elif kind == "true or false":
            fits = isinstance(value, bool)
        elif kind is not None:
            fits = isinstance(value, list) and all(isinstance(v, str) for v in value)
        else:
            fits = True
        if not fits:
            raise TypeError(f"attestation.{key} must be {kind}")


@dataclass(frozen=True)
class TAMAttestationSettings:
    """The ``attestation`` object of ``tam.json``, resolved."""

    folder: Path
    """The TAM folder the paths are relative to."""
    values: dict[str, Any]
    """The object as read."""

    @classmethod
    def load(cls, folder: Path, values: Any) -> TAMAttestationSettings:
        """Check the object's keys and the type of each value.

        :raises ConfigError: if it is not an object, has unknown keys or a
            value of the wrong type.
        """
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ConfigError("tam.json: attestation must be an object")
        unknown = set(values) - set(_KEYS)
        if unknown:
            raise ConfigError(f"tam.json: unknown attestation keys {sorted(unknown)}")
        try:
            check_values(values)
        except TypeError as exc:
            raise ConfigError(f"tam.json: {exc}") from None
        return cls(folder, dict(values))

    def verifier_keys(self) -> tuple[PublicKey, ...]:
        """The Verifier keys whose EARs the TAM trusts.

        :raises ConfigError: if a key file is unreadable.
        """
        paths = self.values.get("verifier_keys", [])
        try:
            return tuple(PublicKey.load(self.folder / str(p)) for p in paths)
        except TeepError as exc:
            raise ConfigError(f"tam.json: verifier_keys: {exc}") from None

    def policy(self) -> AttestationPolicy:
        """The policy on appraisal statuses.

        :raises ConfigError: for an unknown contraindicated action.
        """
        action = self.values.get("contraindicated", "remove")
        try:
            contraindicated = ContraindicatedAction(action)
        except ValueError:
            raise ConfigError(
                f"tam.json: contraindicated is {action!r} (use remove or quarantine)"
            ) from None
        warning = bool(self.values.get("warning_installs", False))
        return AttestationPolicy(warning, contraindicated)

    def model(self) -> AttestationModel:
        """The attestation model QueryRequests ask for.

        :raises ConfigError: for an unknown model.
        """
        name = self.values.get("model", AttestationModel.BACKGROUND_CHECK.value)
        try:
            return AttestationModel(name)
        except ValueError:
            raise ConfigError(
                f"tam.json: model is {name!r} (use background-check or passport)"
            ) from None

    def encryption_key(self) -> PrivateKey | None:
        """The TAM's key-agreement key, made on first use, if enabled."""
        if not self.values.get("encrypted_evidence"):
            return None
        path = self.folder / ENCRYPTION_KEY_FILE
        if not path.exists():
            PrivateKey.generate(KeyKind.P256).save(path)
        return PrivateKey.load(path)

    def query_extensions(self) -> dict[int, Any]:
        """Options every QueryRequest carries (the encryption offer)."""
        key = self.encryption_key()
        return {} if key is None else encryption_offer(key.public)

    def apply(self, service: TAMService) -> None:
        """Configure ``service``'s Verifier, trusted keys, decryption and policy.

        :raises ConfigError: if a setting is invalid.
        """
        keys = self.verifier_keys()
        service.verifier_keys = keys
        service.policy = self.policy()
        service.decryption_key = self.encryption_key()
        service.attestation_verifier = self.remote_verifier(keys)

    def remote_verifier(self, keys: tuple[PublicKey, ...]) -> VerifierClient | None:
        """The remote Verifier configured, or None for the built-in one.

        :raises ConfigError: if the URL or mode is invalid, or no key given.
        """
        where = self.values.get("verifier", "builtin")
        if where == "builtin":
            return None
        try:
            mode = VerifierMode(self.values.get("verifier_mode", "teep"))
        except ValueError:
            raise ConfigError("tam.json: verifier_mode is teep or veraison") from None
        if not isinstance(where, str) or not where.startswith(("http://", "https://")):
            raise ConfigError("tam.json: verifier is 'builtin' or an http(s) URL")
        if not keys:
            raise ConfigError("tam.json: a remote verifier needs verifier_keys")
        return VerifierClient(where, keys, mode=mode)


def update_tam_settings(folder: Path, **changes: Any) -> dict[str, Any]:
    """Change keys of the ``attestation`` object in ``folder/tam.json``.

    :raises ConfigError: if ``tam.json`` is unreadable or a key is unknown.
    """
    path = folder / "tam.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {reason(exc)}") from None
    merged = {**(data.get("attestation") or {}), **changes}
    settings = TAMAttestationSettings.load(folder, merged)
    settings.remote_verifier(settings.verifier_keys())
    settings.policy()
    settings.model()
    data["attestation"] = merged
    path.write_text(json.dumps(data, indent=2) + "\n")
    return merged
