"""A client for a remote Verifier: ``teep verifier serve`` or a Veraison-style one.

:class:`VerifierClient` serves both RATS models:

* background check: the TAM calls :meth:`VerifierClient.appraise`, the same
  call it makes on the built-in :class:`~teep.attestation.verifier.Verifier`;
  the EAR that comes back is verified (trusted Verifier key, freshness,
  nonce, ``cnf`` bound to the Agent key) before its status is believed;
* passport: the Agent calls :meth:`VerifierClient.attestation_result` and
  presents the EAR to the TAM as an opaque token.

Two wire modes: ``teep`` posts Evidence once to ``/teep/v1/appraise``;
``veraison`` runs the challenge-response API (new session with the Relying
Party's nonce, Evidence, result, delete).  The client is synchronous (the
TAM appraises in a worker thread, the Agent in its session); it never
follows redirects.
"""

from __future__ import annotations

import enum
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from teep.attestation.ar4si import TrustTier
from teep.attestation.ear import appraisal_of, verify_ear
from teep.attestation.errors import CnfMismatchError, EvidenceError
from teep.attestation.relying_party import refusal
from teep.attestation.verifier import Appraisal
from teep.keys import PublicKey
from teep.verifier.errors import VerifierUnavailable
from teep.verifier.http import (
    API_PREFIX,
    APPRAISE_PATH,
    SESSION_MEDIA_TYPE,
    b64url,
    unb64url,
)
from teep.verifier.service import EVIDENCE_MEDIA_TYPES

__all__ = ["VerifierClient", "VerifierMode"]

log = logging.getLogger("teep.verifier.client")


class VerifierMode(enum.Enum):
    """Which API the remote Verifier speaks."""

    teep = "teep"
    """One POST of the Evidence with the nonce (``teep verifier serve``)."""
    veraison = "veraison"
    """The Veraison challenge-response session API."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass(frozen=True)
class VerifierClient:
    """A remote Verifier, usable wherever the built-in one is."""

    url: str
    """The service's base URL, for example ``http://127.0.0.1:8444``."""
    keys: tuple[PublicKey, ...] = ()
    """Verifier keys whose EARs are trusted (needed by :meth:`appraise`)."""
    mode: VerifierMode = VerifierMode.teep
    """The API to use."""
    timeout: float = 10.0
    """Seconds to wait for each HTTP exchange."""
    max_age: float = 300.0
    """Oldest EAR accepted, in seconds since its ``iat``."""
    media_type: str = EVIDENCE_MEDIA_TYPES[0]
    """The media type the Evidence is sent as."""

    def attestation_result(self, evidence: bytes, *, nonce: bytes | None) -> bytes:
        """Have the Verifier appraise Evidence for ``nonce``; return its EAR.

        The EAR is returned unverified: the Attester treats it as opaque
        (RFC 9334 5.1) and the Relying Party verifies it.

        :param nonce: the challenge the Evidence carries; None (timestamp
            freshness) only in ``teep`` mode.
        :raises VerifierUnavailable: on a network, HTTP or protocol failure.
        """
        if self.mode is VerifierMode.veraison:
            if nonce is None:
                raise VerifierUnavailable("the Veraison API needs a nonce")
            return self._challenge_response(evidence, nonce)
        query = "" if nonce is None else "?" + _nonce_query(nonce)
        status, _, body = self._call(
            "POST",
            f"{self._base}{APPRAISE_PATH}{query}",
            evidence,
            {"Content-Type": self.media_type},
        )
        _expect(status, 200, body)
        return body

    def appraise(
        self,
        evidence: bytes,
        *,
        nonce: bytes | None,
        cnf_key: PublicKey | None,
        now: float,
    ) -> Appraisal:
        """Appraise Evidence remotely and verify the EAR that comes back.

        Never raises: an unreachable Verifier gives status ``none``.
        """
        try:
            ear = self.attestation_result(evidence, nonce=nonce)
        except VerifierUnavailable as exc:
            return _unavailable(str(exc))
        try:
            result = verify_ear(
                ear,
                self.keys,
                now=now,
                nonce=nonce,
                cnf_key=cnf_key,
                max_age=self.max_age,
            )
        except CnfMismatchError as exc:
            # The Verifier bound its result to the key the Evidence names:
            # the device's Evidence, not the Verifier, is at fault.
            return refusal(exc)
        except EvidenceError as exc:
            # A result this TAM cannot check (a Verifier key it does not
            # trust, a bad signature, a stale or malformed result) says
            # nothing about the device: no appraisal, as when the Verifier
            # is down, rather than a verdict that removes its components.
            log.warning("no appraisal: the Verifier's result is unusable: %s", exc)
            return Appraisal(
                TrustTier.none,
                {},
                f"the Verifier's result is unusable: {exc}",
                None,
                None,
                None,
                None,
                type(exc),
            )
        return appraisal_of(result)

    # -- Veraison challenge-response ----------------------------------------

    def _challenge_response(self, evidence: bytes, nonce: bytes) -> bytes:
        start = f"{self._base}{API_PREFIX}/newSession?{_nonce_query(nonce)}"
        status, headers, body = self._call("POST", start, b"", {})
        _expect(status, 201, body)
        location = headers.get("Location")
        if not location:
            raise VerifierUnavailable("newSession answered without a Location")
        # Veraison's Location is relative to the request URL.
        session_url = urllib.parse.urljoin(start, location)
        try:
            status, _, body = self._call(
                "POST", session_url, evidence, {"Content-Type": self.media_type}
            )
            _expect(status, 200, body)
            return _session_result(body)
        finally:
            self._forget(session_url)

    def _forget(self, session_url: str) -> None:
        try:
            self._call("DELETE", session_url, None, {})
        except VerifierUnavailable as exc:
            log.debug("could not delete a session: %s", exc)

    # -- HTTP -----------------------------------------------------------------

    @property
    def _base(self) -> str:
        return self.url.rstrip("/")

    def _call(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Any, bytes]:
        headers = {"Accept": SESSION_MEDIA_TYPE + ", */*;q=0.5", **headers}
        request = urllib.request.Request(url, body, headers, method=method)
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise VerifierUnavailable(f"{method} {url}: {exc}") from None


def _nonce_query(nonce: bytes) -> str:
    return urllib.parse.urlencode({"nonce": b64url(nonce)})


def _expect(status: int, wanted: int, body: bytes) -> None:
    if status == wanted:
        return
    detail = ""
    try:
        detail = str(json.loads(body).get("detail", ""))
    except (ValueError, AttributeError):
        pass
    raise VerifierUnavailable(f"the Verifier answered {status} {detail}".strip())


def _session_result(body: bytes) -> bytes:
    try:
        session = json.loads(body)
        status, result = session.get("status"), session.get("result")
    except (ValueError, AttributeError):
        raise VerifierUnavailable("the session is not JSON") from None
    if status != "complete" or not isinstance(result, str):
        raise VerifierUnavailable(f"the session is {status!r}, with no result")
    try:
        return unb64url(result)
    except ValueError:
        raise VerifierUnavailable("the session's result is not base64url") from None


def _unavailable(reason: str) -> Appraisal:
    log.warning("no appraisal: %s", reason)
    return Appraisal(
        TrustTier.none, {}, f"Verifier unavailable: {reason}", None, None, None, None
    )
