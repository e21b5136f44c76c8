"""Appraising a TAM's own attestation on the device (TAM attestation).

An Agent configured with ``require_tam_attestation`` answers a QueryRequest
that carries no attestation-payload with ERR_ATTESTATION_REQUIRED.  The TAM's
Evidence in the next QueryRequest is appraised here by the built-in Verifier
against the TAM attestation keys the device was told to trust (each endorsed
for a TAM class), with the Agent's challenge as the expected nonce and the
TAM key that signed the QueryRequest as the ``cnf`` binding.
"""

from __future__ import annotations

from typing import Any

from teep import cbor
from teep.attestation.claims import is_teep_profile_format
from teep.attestation.verifier import Endorsement, ReferenceValues, Verifier
from teep.device.tee import SimulatedTEE
from teep.errors import TeepError, VerifyError
from teep.keys import PublicKey
from teep.protocol.messages import Attestation

__all__ = [
    "REQUIRE_SETTING",
    "add_tam_attestation_key",
    "tam_endorsements",
    "verify_tam_attestation",
]

REQUIRE_SETTING = "require_tam_attestation"
"""TEE setting: whether the Agent demands TAM attestation."""
KEYS_SETTING = "tam_attestation_keys"
"""TEE setting: the TAM attestation keys the Agent trusts."""


def add_tam_attestation_key(
    tee: SimulatedTEE, key: PublicKey, *, hwmodel: bytes, oemid: bytes
) -> None:
    """Trust ``key`` as the attestation key of TAMs of class ``hwmodel``.

    :raises teep.errors.StoreError: if the sealed settings cannot be written.
    """
    entry = {"key": cbor.det_dumps(key.cose_key()), "hwmodel": hwmodel, "oemid": oemid}
    kept = [e for e in _entries(tee) if e.get("key") != entry["key"]]
    tee.set_setting(KEYS_SETTING, [*kept, entry])


def tam_endorsements(tee: SimulatedTEE) -> list[Endorsement]:
    """The TAM attestation keys this device trusts, as Verifier endorsements."""
    found = []
    for entry in _entries(tee):
        try:
            key = PublicKey.from_cose_key(cbor.loads(entry["key"]))
        except (TeepError, KeyError, TypeError):
            continue
        found.append(
            Endorsement(
                key=key,
                oemid=entry.get("oemid", b""),
                hwmodel=entry.get("hwmodel", b""),
                name="trusted TAM",
            )
        )
    return found


def verify_tam_attestation(
    tee: SimulatedTEE,
    attestation: Attestation,
    nonce: bytes | None,
    tam_key: PublicKey,
    *,
    now: float,
) -> None:
    """Appraise a TAM's Evidence.

    :raises teep.errors.VerifyError: if it is not affirming (the reason says why).
    """
    if not is_teep_profile_format(attestation.payload_format):
        raise VerifyError(
            f"TAM attestation format {attestation.payload_format!r} is not supported"
        )
    verifier = Verifier(tam_endorsements(tee), [ReferenceValues()])
    appraisal = verifier.appraise(
        attestation.payload, nonce=nonce, cnf_key=tam_key, now=now
    )
    if not appraisal.affirming:
        raise VerifyError(appraisal.reason)


def _entries(tee: SimulatedTEE) -> list[dict[str, Any]]:
    value = tee.get_setting(KEYS_SETTING, [])
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []
