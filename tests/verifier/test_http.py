"""The Verifier service over loopback HTTP, and the client for it."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from exchange.conftest import World
from teep.attestation.ar4si import TrustTier
from teep.attestation.ear import EAR_MEDIA_TYPE, verify_ear
from teep.attestation.errors import UnknownAttesterError
from teep.attestation.verifier import ReferenceValues, Verifier
from teep.keys import KeyKind, PrivateKey
from teep.verifier.client import VerifierClient, VerifierMode
from teep.verifier.errors import VerifierUnavailable
from teep.verifier.http import SESSION_MEDIA_TYPE, b64url, make_app, unb64url
from teep.verifier.service import EVIDENCE_MEDIA_TYPES, VerifierService

from .conftest import VERIFIER_KEY, Served, _Loopback, endorsement

NONCE = bytes(range(32))
ACCEPT = {"Accept": SESSION_MEDIA_TYPE}
EVIDENCE = {"Content-Type": EVIDENCE_MEDIA_TYPES[0], **ACCEPT}


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, bytes]:
    """One raw HTTP exchange."""
    request = urllib.request.Request(url, body, headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def new_session(served: Served, query: str = f"nonce={b64url(NONCE)}") -> str:
    """Open a session; its absolute URL."""
    url = f"{served.url}/challenge-response/v1/newSession?{query}"
    status, headers, _ = http("POST", url, b"", ACCEPT)
    assert status == 201
    return f"{served.url}/challenge-response/v1/{headers['Location']}"


@pytest.mark.parametrize("mode", list(VerifierMode))
def test_client_appraises_over_loopback(
    served: Served, world: World, mode: VerifierMode
) -> None:
    """Both APIs return an EAR the client verifies: affirming, bound to the Agent."""
    client = VerifierClient(served.url, (VERIFIER_KEY.public,), mode=mode)
    evidence = world.device.evidence(NONCE)
    agent_key = world.device.tee.agent_key.public
    appraisal = client.appraise(
        evidence, nonce=NONCE, cnf_key=agent_key, now=time.time()
    )
    assert appraisal.status is TrustTier.affirming, appraisal.reason
    assert appraisal.cnf_kid == agent_key.thumbprint
    assert (
        appraisal.claims is not None and appraisal.claims.ueid == world.device.tee.ueid
    )


def test_new_session_location_is_relative(served: Served) -> None:
    """newSession answers 201 with a relative Location and the session JSON."""
    url = f"{served.url}/challenge-response/v1/newSession?nonce={b64url(NONCE)}"
    status, headers, body = http("POST", url, b"", ACCEPT)
    assert status == 201
    assert headers["Location"].startswith("session/")
    assert headers["Content-Type"].startswith(SESSION_MEDIA_TYPE)
    session = json.loads(body)
    assert unb64url(session["nonce"]) == NONCE
    assert session["status"] == "waiting"
    assert session["accept"] == list(EVIDENCE_MEDIA_TYPES)


def test_new_session_mints_nonce_of_requested_size(served: Served) -> None:
    """nonceSize asks the Verifier to mint a nonce of that many bytes."""
    status, _, body = http("GET", new_session(served, "nonceSize=16"), None, ACCEPT)
    assert status == 200
    assert len(unb64url(json.loads(body)["nonce"])) == 16


@pytest.mark.parametrize(
    "query",
    [
        f"nonce={b64url(NONCE)}&nonceSize=8",
        "nonceSize=4",
        "nonceSize=7",
        "nonceSize=65",
        "nonceSize=0",
        "nonceSize=-1",
        "nonceSize=99999999999999999999",
        "nonceSize=" + "9" * 5000,
        "nonceSize=x",
        "nonce=AAAA",
        "nonce=%%%",
        "nonce=!!!",
        "nonce=" + "A" * 10,
        "nonceSize=%2032",
        "nonceSize=32%20",
        "nonceSize=32%0A",
        "nonceSize=3_2",
        "nonceSize=%2B32",
        "nonceSize=032",
        "nonceSize=0032",
        "nonceSize=%EF%BC%93%EF%BC%92",  # fullwidth 32
        "nonceSize=%D9%A3%D9%A2",  # Arabic-Indic 32
        "nonceSize=",
        "nonceSize",
        "nonceSize=32.0",
        "nonceSize=0x20",
        "nonceSize=1000",
        "nonceSize=32&nonceSize=-1",
        "nonceSize=32&nonceSize=32",
        f"nonce={b64url(NONCE)}&nonce=%%%",
        f"nonce={b64url(NONCE)}&nonce={b64url(NONCE)}",
    ],
)
def test_new_session_bad_parameters(served: Served, query: str) -> None:
    """Both nonce and nonceSize, a nonce outside 8..64 bytes, a nonceSize
    that is not plain ASCII decimal digits without a leading zero, or a
    parameter given twice, is 400."""
    url = f"{served.url}/challenge-response/v1/newSession?{query}"
    status, headers, body = http("POST", url, b"", ACCEPT)
    assert status == 400
    assert headers["Content-Type"].startswith("application/problem+json")
    assert json.loads(body)["status"] == 400


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("nonceSize=0", "nonceSize is 8 to 64 bytes"),
        ("nonceSize=7", "nonceSize is 8 to 64 bytes"),
        ("nonceSize=65", "nonceSize is 8 to 64 bytes"),
        ("nonceSize=1000", "nonceSize is 8 to 64 bytes"),
        ("nonceSize=" + "9" * 5000, "nonceSize is 8 to 64 bytes"),
        ("nonceSize=-1", "nonceSize is not a number of bytes in plain decimal"),
        ("nonceSize=032", "nonceSize is not a number of bytes in plain decimal"),
        ("nonceSize=00", "nonceSize is not a number of bytes in plain decimal"),
    ],
)
def test_new_session_bad_nonce_size_is_named(
    served: Served, query: str, detail: str
) -> None:
    """A well-formed nonceSize out of range says the range; only a malformed
    one is called not plain decimal."""
    url = f"{served.url}/challenge-response/v1/newSession?{query}"
    status, _, body = http("POST", url, b"", ACCEPT)
    assert status == 400
    assert json.loads(body)["detail"] == detail


@pytest.mark.parametrize("size", [8, 64])
def test_new_session_nonce_size_bounds(served: Served, size: int) -> None:
    """nonceSize 8 and 64, the ends of the range, are minted."""
    session = new_session(served, f"nonceSize={size}")
    status, _, body = http("GET", session, None, ACCEPT)
    assert status == 200
    assert len(unb64url(json.loads(body)["nonce"])) == size


@pytest.mark.parametrize(
    "query",
    [
        "nonce=!!!",
        "nonce=AAAA",
        "nonce=",
        f"nonce={b64url(bytes(65))}",
        "nonce=AAAAA",
        f"nonce={b64url(NONCE)}&nonce=%%%",
    ],
)
def test_direct_appraisal_bad_nonce(served: Served, world: World, query: str) -> None:
    """A nonce that is not base64url, not 8..64 bytes or given twice is 400,
    no EAR."""
    url = f"{served.url}/teep/v1/appraise?{query}"
    status, headers, body = http("POST", url, world.device.evidence(NONCE), EVIDENCE)
    assert status == 400
    assert headers["Content-Type"].startswith("application/problem+json")
    assert "nonce" in json.loads(body)["detail"]


@pytest.mark.parametrize(
    ("text", "data"),
    [("", b""), ("AA", b"\0"), ("AA==", b"\0"), ("-_8", b"\xfb\xff")],
)
def test_unb64url_accepts(text: str, data: bytes) -> None:
    """Unpadded and padded base64url decode."""
    assert unb64url(text) == data


@pytest.mark.parametrize("text", ["!!!", "A", "AA=A", "+/8", "AA===", "A A"])
def test_unb64url_refuses(text: str) -> None:
    """Characters outside the alphabet, or an impossible length, are refused."""
    with pytest.raises(ValueError, match="not base64url"):
        unb64url(text)


def _raw_status(url: str, request: bytes) -> int:
    """Send raw bytes on a fresh connection; the response's status code."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        line = conn.makefile("rb").readline()
    return int(line.split()[1])


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /teep/v1/appraise HTTP/1.1\r\nHost: v\r\nContent-Length: -5\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_request_is_one_log_line(
    served: Served, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    """A request aiohttp cannot parse is 400 and one line (WARNING at most:
    a bad method on a connection's first request is DEBUG), no traceback."""
    with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
        assert _raw_status(served.url, request_bytes) == 400
        time.sleep(0.1)  # the server logs from its own thread
    assert "Traceback" not in caplog.text
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(records) == 1
    assert records[0].levelno <= logging.WARNING
    assert records[0].exc_info is None
    assert records[0].getMessage().startswith("bad HTTP request from 127.0.0.1: ")


def test_new_session_needs_session_media_type(served: Served) -> None:
    """An Accept that excludes the session media type is 406."""
    url = f"{served.url}/challenge-response/v1/newSession"
    status, _, _ = http("POST", url, b"", {"Accept": "text/html"})
    assert status == 406


def test_submit_completes_session_once(served: Served, world: World) -> None:
    """Evidence completes the session with an EAR; a second submission is 409."""
    session_url = new_session(served)
    evidence = world.device.evidence(NONCE)
    status, _, body = http("POST", session_url, evidence, EVIDENCE)
    assert status == 200
    session = json.loads(body)
    assert session["status"] == "complete"
    ear = unb64url(session["result"])
    result = verify_ear(
        ear,
        [VERIFIER_KEY.public],
        now=time.time(),
        nonce=NONCE,
        cnf_key=None,
        max_age=60,
    )
    assert result.affirming
    status, _, _ = http("POST", session_url, evidence, EVIDENCE)
    assert status == 409


def test_submit_unsupported_media_type(served: Served, world: World) -> None:
    """Evidence of a type the Verifier does not appraise is 415 with Accept."""
    headers = {**EVIDENCE, "Content-Type": "application/psa-attestation-token"}
    status, reply, _ = http("POST", new_session(served), b"x", headers)
    assert status == 415
    assert EVIDENCE_MEDIA_TYPES[0] in reply["Accept"]


def test_unknown_and_deleted_sessions_are_404(served: Served) -> None:
    """DELETE answers 204; the session is then gone (404), as is a made-up one."""
    session_url = new_session(served)
    assert http("DELETE", session_url)[0] == 204
    assert http("GET", session_url, None, ACCEPT)[0] == 404
    made_up = f"{served.url}/challenge-response/v1/session/nope"
    assert http("POST", made_up, b"x", EVIDENCE)[0] == 404


def test_expired_session_is_gone(served: Served) -> None:
    """A session past its TTL no longer exists."""
    session = served.service.new_session(now=time.time() - 1000, nonce=NONCE)
    url = f"{served.url}/challenge-response/v1/session/{session.id}"
    assert http("GET", url, None, ACCEPT)[0] == 404


def test_direct_appraisal_returns_ear(served: Served, world: World) -> None:
    """The background-check endpoint returns the EAR itself, with its media type."""
    url = f"{served.url}/teep/v1/appraise?nonce={b64url(NONCE)}"
    status, headers, body = http("POST", url, world.device.evidence(NONCE), EVIDENCE)
    assert status == 200
    assert headers["Content-Type"] == EAR_MEDIA_TYPE
    result = verify_ear(
        body,
        [VERIFIER_KEY.public],
        now=time.time(),
        nonce=NONCE,
        cnf_key=None,
        max_age=60,
    )
    assert result.affirming


def test_discovery_names_ear_key(served: Served) -> None:
    """Discovery publishes the EAR verification key as a JWK and the media types."""
    status, _, body = http("GET", f"{served.url}/.well-known/veraison/verification")
    assert status == 200
    document = json.loads(body)
    jwk = document["ear-verification-key"]
    assert unb64url(jwk["x"]) == VERIFIER_KEY.public.cose_key()[-2]
    assert document["media-types"] == list(EVIDENCE_MEDIA_TYPES)


def test_client_refuses_untrusted_verifier(served: Served, world: World) -> None:
    """An EAR signed by a Verifier the client does not trust is refused as
    no appraisal at all (status none): it says nothing about the device."""
    stranger = PrivateKey.generate(KeyKind.P256).public
    client = VerifierClient(served.url, (stranger,))
    appraisal = client.appraise(
        world.device.evidence(NONCE), nonce=NONCE, cnf_key=None, now=time.time()
    )
    assert appraisal.error is UnknownAttesterError
    assert appraisal.status is TrustTier.none
    assert not appraisal.affirming


def test_client_unreachable_verifier() -> None:
    """A Verifier that does not answer gives status none, not an exception."""
    client = VerifierClient("http://127.0.0.1:9", (VERIFIER_KEY.public,), timeout=2)
    appraisal = client.appraise(b"x", nonce=NONCE, cnf_key=None, now=time.time())
    assert appraisal.status is TrustTier.none
    assert "unavailable" in appraisal.reason
    with pytest.raises(VerifierUnavailable):
        client.attestation_result(b"x", nonce=NONCE)


# bodies cut short or stalled


def _head(path: str, length: int) -> bytes:
    """A request head for a POST of ``length`` bytes of Evidence."""
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: v",
        f"Accept: {SESSION_MEDIA_TYPE}",
        f"Content-Type: {EVIDENCE_MEDIA_TYPES[0]}",
        f"Content-Length: {length}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _cut_short(url: str, path: str) -> None:
    """Send a head declaring 100 bytes, then 2 bytes, then close."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(_head(path, 100) + b"\xd2\x84")
        time.sleep(0.1)  # let the handler start reading the body


@pytest.mark.parametrize(
    "path",
    [
        f"/teep/v1/appraise?nonce={b64url(NONCE)}",
        "/challenge-response/v1/newSession?nonceSize=32",
        "session",
    ],
)
def test_body_cut_short_is_one_log_line(
    served: Served, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """A client that closes its connection mid-body costs one INFO line naming
    it, never an ERROR with a traceback."""
    if path == "session":
        path = new_session(served).split("//")[1].split("/", 1)[1]
        path = "/" + path
    # The teep logger's own level may have been raised by an in-process
    # CLI run earlier in the session: lower it too.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, "teep"):
        _cut_short(served.url, path)
        time.sleep(0.3)  # the server logs from its own thread
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert all(r.exc_info is None for r in caplog.records)
    if "newSession" not in path:
        lines = [
            r.getMessage() for r in caplog.records if r.name == "teep.verifier.http"
        ]
        assert lines == ["client 127.0.0.1 closed the connection mid-request"]


@pytest.fixture
def impatient(world: World) -> Iterator[Served]:
    """A Verifier that gives a request body half a second."""
    service = VerifierService(
        Verifier([endorsement(world.device)], [ReferenceValues()]), VERIFIER_KEY
    )
    loop = _Loopback(make_app(service, read_timeout=0.5))
    url = loop.start()
    try:
        yield Served(url, service)
    finally:
        loop.stop()


@pytest.mark.parametrize(
    "path", [f"/teep/v1/appraise?nonce={b64url(NONCE)}", "session"]
)
def test_stalled_body_times_out(
    impatient: Served, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """A body that stops arriving gets a problem+json 408 after read_timeout,
    marked Connection: close; one WARNING line, no traceback."""
    if path == "session":
        path = "/" + new_session(impatient).split("//")[1].split("/", 1)[1]
    host, port = impatient.url.split("//")[1].split(":")
    # The teep logger's own level may have been raised by an in-process
    # CLI run earlier in the session: lower it too.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, "teep"):
        status, headers, body, elapsed = _exchange(
            host, port, _head(path, 100) + bytes(10), timeout=10
        )
        time.sleep(0.1)
    assert status == 408
    assert 0.4 < elapsed < 5.0
    assert headers["connection"].lower() == "close"
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["status"] == 408
    assert "Traceback" not in caplog.text
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == ["request body from 127.0.0.1 not complete in time"]


@pytest.mark.parametrize(
    "path", [f"/teep/v1/appraise?nonce={b64url(NONCE)}", "session"]
)
def test_declared_oversized_body_refused_at_once(served: Served, path: str) -> None:
    """A Content-Length over the limit is a problem+json 413 from the header
    alone, with the connection closed, not a wait for a body never sent."""
    if path == "session":
        path = "/" + new_session(served).split("//")[1].split("/", 1)[1]
    host, port = served.url.split("//")[1].split(":")
    status, headers, body, elapsed = _exchange(
        host, port, _head(path, 99_999_999_999), timeout=5
    )
    assert status == 413
    assert elapsed < 2.0
    assert headers["connection"].lower() == "close"
    assert json.loads(body)["status"] == 413


def _exchange(
    host: str, port: str, request: bytes, *, timeout: float
) -> tuple[int, dict[str, str], bytes, float]:
    """Send raw request bytes; the status, headers (lower-case names) and
    body of the answer, and the seconds until its status line came."""
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=timeout) as conn:
        conn.sendall(request)
        stream = conn.makefile("rb")
        status = int(stream.readline().split()[1])
        elapsed = time.monotonic() - started
        headers = {}
        while line := stream.readline().strip():
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = stream.read(int(headers["content-length"]))
    return status, headers, body, elapsed
