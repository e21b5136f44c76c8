"""TEEP message costs beside the raw signature cost, measured in one run.

For each of the five messages and each MTI suite (ESP256, Ed25519), prints:

* sign+encode: ops/s of ``teep.protocol.signing.sign_message`` (encode the
  message, build the Sig_structure, sign, for ESP256 turn the DER signature
  into COSE's ``r || s``, encode the COSE_Sign1);
* decode+verify: ops/s of ``peek`` + ``open_signed`` (parse the COSE
  structure, verify, decode the TEEP message strictly);
* raw: ops/s of the bare ``cryptography`` sign or verify of the same payload;
* ratio: raw ops/s / teep ops/s (the goal is <= 1.5).

Run by hand: ``python bench/bench_protocol.py [seconds-per-measure]``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from teep.keys import KeyKind, PrivateKey
from teep.protocol.messages import (
    Error,
    Message,
    QueryRequest,
    QueryResponse,
    Success,
    Update,
)
from teep.protocol.registry import FINAL, ErrCode
from teep.protocol.signing import open_signed, peek, sign_message

TOKEN = os.urandom(16)
MESSAGES: dict[str, Message] = {
    "QueryRequest": QueryRequest(challenge=os.urandom(32)),
    "QueryResponse": QueryResponse(
        attestation_payload=os.urandom(300),
        tc_list=({0: [b"TEEP-Device", b"SecureFS", b"hello", b"ta"], 3: bytes(36)},),
    ),
    "Update": Update(token=TOKEN, manifest_list=(os.urandom(2000),)),
    "Success": Success(token=TOKEN, suit_reports=(os.urandom(120),)),
    "Error": Error(
        err_code=ErrCode.ERR_MANIFEST_PROCESSING_FAILED,
        token=TOKEN,
        err_msg="the manifest could not be processed",
    ),
}


def rate(op: Callable[[], object], seconds: float) -> float:
    """Operations per second of ``op`` over about ``seconds``."""
    op()
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            op()
        count += 20
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


ROUNDS = 10
"""Interleaved rounds per measure: short rounds let each side find a quiet
moment on a busy machine."""


def best_rates(
    ours: Callable[[], object], bare: Callable[[], object], seconds: float
) -> tuple[float, float]:
    """The best of ``ROUNDS`` interleaved rounds of each, so that load from
    other processes weighs on both sides alike."""
    teep_best = raw_best = 0.0
    for _ in range(ROUNDS):
        teep_best = max(teep_best, rate(ours, seconds / ROUNDS))
        raw_best = max(raw_best, rate(bare, seconds / ROUNDS))
    return teep_best, raw_best


def raw_ops(key: PrivateKey, data: bytes) -> tuple[Callable[[], object], ...]:
    """Bare cryptography sign and verify of ``data`` with ``key``."""
    private = key.key  # the cryptography key behind teep's wrapper
    if isinstance(private, ec.EllipticCurvePrivateKey):
        algorithm = ec.ECDSA(hashes.SHA256())
        signature = private.sign(data, algorithm)
        public = private.public_key()
        return (
            lambda: private.sign(data, algorithm),
            lambda: public.verify(signature, data, algorithm),
        )
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    signature = private.sign(data)
    public_ed = private.public_key()
    return (lambda: private.sign(data), lambda: public_ed.verify(signature, data))


def main(seconds: float) -> None:
    print(f"{'message':14} {'suite':8} {'op':14} {'teep/s':>9} {'raw/s':>9} ratio")
    worst = 0.0
    for kind in (KeyKind.P256, KeyKind.ED25519):
        key = PrivateKey.generate(kind)
        for name, message in MESSAGES.items():
            signed = sign_message(message, [key])
            payload = peek(signed).cose.payload or b""
            raw_sign, raw_verify = raw_ops(key, payload)
            pairs = (
                (
                    "sign+encode",
                    lambda m=message, k=key: sign_message(m, [k]),
                    raw_sign,
                ),
                (
                    "decode+verify",
                    lambda s=signed, k=key.public: open_signed(
                        peek(s), [k], dialect=FINAL
                    ),
                    raw_verify,
                ),
            )
            for label, teep_op, raw_op in pairs:
                ours, bare = best_rates(teep_op, raw_op, seconds)
                ratio = bare / ours
                worst = max(worst, ratio)
                print(
                    f"{name:14} {kind.value:8} {label:14} {ours:9.0f} {bare:9.0f}"
                    f" {ratio:5.2f}"
                )
    print(f"worst ratio {worst:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
