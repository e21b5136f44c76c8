"""The Relying Party's side of attestation: what a TAM does with a payload.

teep-protocol 10.1 and 10.3, as the TAM applies them to the
attestation-payload of a QueryResponse:

1. an encrypted payload (a COSE_Encrypt, see :mod:`.encryption`) is opened
   with the TAM's key-agreement key;
2. a payload whose format names an EAR profile is an Attestation Result
   (passport model): it must be signed by a Verifier the TAM trusts, fresh,
   carry the session's nonce, and be bound by ``cnf`` to the key that signed
   the QueryResponse;
3. anything else is Evidence (background-check model), handed to the
   configured :class:`~teep.attestation.verifier.AttestationVerifier`, which
   checks the same binding.

Either way the outcome is an :class:`~teep.attestation.verifier.Appraisal`;
a refusal is an appraisal with a reason, never an exception.  Sans-I/O: the
Verifier may be remote, but that is the Verifier object's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from teep.attestation.ar4si import TrustTier, status_of
from teep.attestation.claims import EAT_CWT_MEDIA_TYPE, EATClaim, parse_media_type
from teep.attestation.ear import EAR_PROFILES, appraisal_of, verify_ear
from teep.attestation.encryption import (
    EncryptionError,
    KDFPurpose,
    decrypt,
    is_encrypted,
)
from teep.attestation.errors import (
    EvidenceDecodeError,
    EvidenceError,
    FreshnessError,
    UnknownAttesterError,
)
from teep.attestation.evidence import decode_claims_payload, parse_token
from teep.attestation.verifier import Appraisal, AttestationVerifier
from teep.errors import KeyLoadError, TeepError
from teep.keys import PrivateKey, PublicKey

__all__ = ["RelyingParty", "is_result_format", "refusal"]


def is_result_format(payload_format: str | None) -> bool:
    """Whether an attestation-payload-format names an EAR (an Attestation
    Result) rather than Evidence."""
    if payload_format is None:
        return False
    try:
        media_type, params = parse_media_type(payload_format)
    except ValueError:
        return False
    return media_type == EAT_CWT_MEDIA_TYPE and params.get("eat_profile") in (
        EAR_PROFILES
    )


def refusal(exc: EvidenceError) -> Appraisal:
    """The appraisal of a payload refused with ``exc``."""
    vector = exc.vector
    status = status_of(vector)
    if vector and status is TrustTier.none:
        status = TrustTier.contraindicated
    return Appraisal(status, vector, str(exc), None, None, None, None, type(exc))


@dataclass(frozen=True)
class RelyingParty:
    """How a TAM turns an attestation payload into an appraisal."""

    verifier: AttestationVerifier
    """Appraises Evidence (background-check model)."""
    verifier_keys: tuple[PublicKey, ...] = ()
    """Verifier keys whose Attestation Results are trusted (passport model)."""
    decryption_key: PrivateKey | None = None
    """The TAM's key-agreement key, if it accepts encrypted payloads."""
    result_max_age: float = 300.0
    """Oldest Attestation Result accepted, in seconds since its ``iat``."""

    def plaintext(self, payload: bytes) -> bytes:
        """The payload, decrypted if it was encrypted to the TAM.

        :raises EncryptionError: if it is encrypted and does not open.
        """
        if not is_encrypted(payload):
            return payload
        if self.decryption_key is None:
            raise EncryptionError("an encrypted payload, and no key to open it")
        return decrypt(payload, self.decryption_key, KDFPurpose.EAT)

    def open_report(self, report: bytes) -> bytes:
        """A SUIT Report, decrypted if the Agent encrypted it to the TAM.

        :raises EncryptionError: if it is encrypted and does not open.
        """
        if not is_encrypted(report):
            return report
        if self.decryption_key is None:
            raise EncryptionError("an encrypted SUIT Report, and no key to open it")
        # teep-protocol 7.2: reports have their own KDF context string.
        return decrypt(report, self.decryption_key, KDFPurpose.SUIT_REPORT)

    def session_nonce(self, payload: bytes) -> bytes | None:
        """The ``eat_nonce`` of Evidence or a result, read *unverified* to
        find the session (the appraisal checks it under the signature)."""
        claims = self._unverified(payload)
        nonce = claims.get(EATClaim.eat_nonce) if claims else None
        return nonce if isinstance(nonce, bytes) else None

    def cnf_key(self, payload: bytes) -> PublicKey | None:
        """The COSE_Key in the payload's ``cnf`` (RFC 8747 method 1), read
        *unverified*: only a candidate key for a device not yet enrolled."""
        claims = self._unverified(payload)
        cnf = claims.get(EATClaim.cnf) if claims else None
        if not isinstance(cnf, dict) or not isinstance(cnf.get(1), dict):
            return None
        try:
            return PublicKey.from_cose_key(cnf[1])
        except KeyLoadError:
            return None

    def _unverified(self, payload: bytes) -> Mapping[Any, Any] | None:
        try:
            message = parse_token(self.plaintext(payload))
            return decode_claims_payload(message.payload or b"")
        except TeepError:
            return None

    def appraise(
        self,
        payload: bytes,
        payload_format: str | None,
        *,
        nonce: bytes | None,
        agent_key: PublicKey,
        now: float,
    ) -> Appraisal:
        """Appraise an attestation payload; never raises on bad input.

        :param nonce: the challenge the session issued; None under timestamp
            freshness (the age of ``iat`` counts instead).
        :param agent_key: the key that signed the QueryResponse.
        :param now: the current time, seconds since the epoch.
        """
        try:
            plain = self.plaintext(payload)
        except EncryptionError as exc:
            return refusal(EvidenceDecodeError(str(exc)))
        if not is_result_format(payload_format):
            return self.verifier.appraise(
                plain, nonce=nonce, cnf_key=agent_key, now=now
            )
        try:
            # teep-protocol 10.3: trusted Verifier, and cnf names the key that
            # verified this TEEP message (P18).
            result = verify_ear(
                plain,
                self.verifier_keys,
                now=now,
                nonce=nonce,
                cnf_key=agent_key,
                max_age=self.result_max_age,
            )
        except (UnknownAttesterError, FreshnessError) as exc:
            # A result from a Verifier this TAM does not trust, or one too
            # old or for another session, proves nothing either way: the
            # device is asked to attest again (ERR_ATTESTATION_REQUIRED)
            # and keeps what it holds.  A forged or malformed result from a
            # trusted Verifier, or one bound to another key, is refused.
            return Appraisal(
                TrustTier.none, {}, f"Attestation Result not usable: {exc}",
                None, None, None, None, type(exc),
            )  # fmt: skip
        except EvidenceError as exc:
            return refusal(exc)
        return appraisal_of(result)
