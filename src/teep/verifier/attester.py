"""The Attester's side: what a TEEP Agent puts in its attestation-payload.

* Background-check model (the default): the Evidence itself.
* Passport model (RFC 9334 5.1), when the device has a Verifier: the EAR the
  Verifier returns for that Evidence, presented under the EAR media type.
  The Agent treats it as opaque; its ``eat_nonce`` is the QueryRequest's
  challenge (or token) because the Evidence carried it.
* Either way, encrypted to the TAM (teep-protocol 7.2) when the signed
  QueryRequest offered a key-agreement key (see :mod:`teep.attestation.encryption`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from teep.attestation.ear import EAR_MEDIA_TYPE
from teep.attestation.encryption import KDFPurpose, encrypt, offered_key
from teep.protocol.messages import Attestation
from teep.verifier.client import VerifierClient

__all__ = ["attestation_payload"]

log = logging.getLogger("teep.agent")


def attestation_payload(
    evidence: bytes,
    *,
    nonce: bytes | None,
    extensions: Mapping[int, Any],
    verifier: VerifierClient | None = None,
) -> Attestation:
    """The attestation payload answering a QueryRequest.

    :param evidence: the TEE's Evidence, its ``eat_nonce`` set to ``nonce``.
    :param nonce: the QueryRequest's challenge or token (None: timestamps).
    :param extensions: the QueryRequest's unknown options (the TAM's
        encryption offer, if any).
    :param verifier: the Verifier to get a passport from; None sends the
        Evidence (background check).
    :raises VerifierUnavailable: the Verifier did not answer with an EAR.
    :raises EncryptionError: the offered key cannot be used.
    """
    payload, payload_format = evidence, None
    if verifier is not None:
        payload = verifier.attestation_result(evidence, nonce=nonce)
        payload_format = EAR_MEDIA_TYPE
    tam_key = offered_key(extensions)
    if tam_key is not None:
        log.debug("encrypting the attestation payload to %s", tam_key.kid.hex()[:16])
        payload = encrypt(payload, tam_key, KDFPurpose.EAT)
    return Attestation(payload, payload_format)
