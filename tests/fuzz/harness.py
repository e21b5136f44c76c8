"""What every fuzz harness shares: budgets, input strategies, valid seeds.

Each harness feeds a decoder three kinds of input: arbitrary bytes, CBOR
encodings of arbitrary CBOR values, and valid messages mutated byte by byte
(flips, overwrites, deletions, insertions, truncations, splices).  The rule
checked is always the same: the decoder returns, or raises a
:class:`~teep.errors.TeepError`; nothing else escapes.

``TEEP_FUZZ_EXAMPLES`` sets how many inputs each harness tries (default 100,
a few seconds each); docs/operations.md records long runs.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from teep import cbor, components
from teep.attestation.ear import make_ear
from teep.attestation.verifier import Endorsement, ReferenceValues, Verifier
from teep.device.components import demo_component_wasm
from teep.device.runtime import Device
from teep.keys import KeyKind, PrivateKey
from teep.protocol.tam import TAM, TAMConfig
from teep.suit.builder import build_envelope
from teep.tam.catalogue import add_component
from teep.tam.service import TAMService
from teep.tam.store import TAMStore

EXAMPLES = int(os.environ.get("TEEP_FUZZ_EXAMPLES", "100"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
"""Hypothesis settings for every harness."""

# CBOR values of every major type, nested a little.
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats()
    | st.binary(max_size=48)
    | st.text(max_size=12)
)
cbor_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.integers(-30, 300) | st.text(max_size=4), inner, max_size=5
        )
        | st.builds(cbor2.CBORTag, st.sampled_from([16, 18, 96, 98, 107, 1, 24]), inner)
    ),
    max_leaves=16,
)


def _mutate(seed: bytes, ops: list[tuple[int, int, int, bytes]]) -> bytes:
    data = bytearray(seed)
    for kind, where, size, extra in ops:
        at = where % (len(data) + 1)
        if kind == 0 and data:  # flip one bit
            at %= len(data)
            data[at] ^= 1 << (size % 8)
        elif kind == 1 and data:  # overwrite a byte
            data[at % len(data)] = size % 256
        elif kind == 2:  # delete a range
            del data[at : at + size % 16 + 1]
        elif kind == 3:  # insert bytes
            data[at:at] = extra
        elif kind == 4:  # truncate
            del data[at:]
        elif kind == 5:  # duplicate a slice (grows lengths, repeats maps)
            data[at:at] = data[at : at + size % 64 + 1]
    return bytes(data)


_op = st.tuples(
    st.integers(0, 5), st.integers(0, 2**20), st.integers(0, 255), st.binary(max_size=8)
)


def inputs(seeds: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """Bytes for a decoder: arbitrary, CBOR values, or mutated seeds."""
    mutated = st.builds(
        _mutate, st.sampled_from(list(seeds)), st.lists(_op, max_size=6)
    )
    encoded = cbor_values.map(lambda v: cbor2.dumps(v))
    return st.one_of(mutated, mutated, encoded, st.binary(max_size=512))


def expect_teep_error(decoder: Any, data: bytes) -> None:
    """Call ``decoder(data)``; only a TeepError may come out of it."""
    from teep.errors import TeepError

    try:
        decoder(data)
    except TeepError:
        pass


# valid seeds


@dataclass(frozen=True)
class Seeds:
    """Valid messages of every kind, and what checks them."""

    tam: TAM
    """A TAM engine over an in-memory store, with the device enrolled."""
    tam_keys: tuple[PrivateKey, ...]
    """The TAM's keys."""
    signer: PrivateKey
    """The Trusted Component signer."""
    device: Device
    """An enrolled device holding the component."""
    query_request: bytes
    query_response: bytes
    update: bytes
    success: bytes
    envelope: bytes
    evidence: bytes
    ear: bytes
    verifier: Verifier
    verifier_key: PrivateKey
    now: float
    challenge: bytes

    @property
    def teep(self) -> list[bytes]:
        """The four TEEP messages."""
        return [self.query_request, self.query_response, self.update, self.success]


@functools.cache
def seeds() -> Seeds:
    """Build the seeds once per test session (a real session, in memory)."""
    folder = Path(tempfile.mkdtemp(prefix="teep-fuzz-"))
    store = TAMStore.open("sqlite://")
    tam_keys = (PrivateKey.generate(KeyKind.P256), PrivateKey.generate(KeyKind.ED25519))
    signer = PrivateKey.generate(KeyKind.P256)
    store.add_signer_key(
        cose_key=cbor.det_dumps(signer.public.cose_key()),
        kid=signer.public.thumbprint,
        label="signer",
        now=time.time(),
    )
    env = build_envelope(
        manifest_component_id=components.manifest_id("hello"),
        component_id=components.component_id("hello"),
        payload=demo_component_wasm(),
        sequence_number=1,
        signer=signer,
    )
    add_component(store, "hello", env, now=time.time())
    store.add_policy("hello")
    device = Device.init(folder / "device")
    for key in tam_keys:
        device.tee.add_tam_key(key.public)
    device.tee.add_signer_key(signer.public)
    attester = device.tee.attestation_key.public
    store.add_attestation_key(
        cose_key=cbor.det_dumps(attester.cose_key()),
        kid=attester.thumbprint,
        hwmodel=b"teep-sim",
        oemid=b"\x00\x00\x00",
        label="fuzz TEE",
        now=time.time(),
    )
    tam = TAM(TAMConfig(keys=tam_keys), TAMService(store))
    return _session(tam, tam_keys, signer, device, env)


def _session(
    tam: TAM,
    tam_keys: tuple[PrivateKey, ...],
    signer: PrivateKey,
    device: Device,
    env: bytes,
) -> Seeds:
    uri = "http://tam.fuzz/tam"
    request = tam.connect().reply
    assert request is not None
    response = device.agent.process(request, uri).reply
    assert response is not None
    update = tam.process(response).reply
    assert update is not None
    success = device.agent.process(update, uri).reply
    assert success is not None
    tam.process(success)

    now = time.time()
    challenge = bytes(range(32))
    evidence = device.evidence(challenge)
    endorsement = Endorsement(
        key=device.tee.attestation_key.public,
        oemid=b"\x00\x00\x00",
        hwmodel=b"teep-sim",
        name="fuzz TEE",
    )
    verifier = Verifier([endorsement], [ReferenceValues()])
    appraisal = verifier.appraise(
        evidence, nonce=challenge, cnf_key=device.tee.agent_key.public, now=now
    )
    verifier_key = PrivateKey.generate(KeyKind.P256)
    ear = make_ear(appraisal, verifier_key, now=now)
    return Seeds(
        tam, tam_keys, signer, device, request, response, update, success, env,
        evidence, ear, verifier, verifier_key, now, challenge,
    )  # fmt: skip
