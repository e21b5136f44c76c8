"""SUIT install throughput and memory with a large fetched payload.

Run by hand: ``python bench/bench_suit.py [--mb 100] [--rounds 5]``.  Each
case runs in its own child process so that its peak resident memory
(ru_maxrss) is its own; the baseline line is a child that only imports
teep.  The payload is fetched through the processor's fetch callable in
1 MiB chunks from a file, hashed while written, and checked by
image-match.  Ratios compare with hashlib SHA-256 over the same bytes read
the same way, in the same run.  The cases take turns, round after round,
so that a burst of load elsewhere on the machine hits them alike; each
line shows the best and the median round.  The ``store`` line writes the
same bytes straight into the sealed store, sealed and flushed but neither
hashed nor checked: the sealed install does that work and more.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from teep.device.sealed_store import SealedComponentStore

CHUNK = 1 << 20


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _maxrss_mb() -> float:
    # Linux reports kilobytes.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _case(name: str, payload: Path, work: Path) -> tuple[float, float]:
    """Run one case in this process; return (seconds, peak MB)."""
    from teep.keys import PrivateKey
    from teep.suit.builder import build_envelope
    from teep.suit.processor import SuitProcessor
    from teep.suit.store import MemoryComponentStore

    if name == "baseline":
        return 0.0, _maxrss_mb()
    if name == "hashlib":
        start = time.perf_counter()
        digest = hashlib.sha256()
        for chunk in _chunks(payload):
            digest.update(chunk)
        return time.perf_counter() - start, _maxrss_mb()
    if name == "store":
        sealed = _sealed_store(work)
        start = time.perf_counter()
        with sealed.transaction() as txn:
            txn.write((b"big",), _chunks(payload))
        return time.perf_counter() - start, _maxrss_mb()

    # the manifest needs the payload's digest: computed by streaming too
    signer = PrivateKey.generate()
    envelope = _envelope(build_envelope, signer, payload)
    store = _sealed_store(work) if name == "sealed" else MemoryComponentStore()
    proc = SuitProcessor(
        store,
        [signer.public],
        lambda _uri: _chunks(payload),
        max_component_size=1 << 40,
    )
    start = time.perf_counter()
    proc.install(envelope)
    return time.perf_counter() - start, _maxrss_mb()


def _sealed_store(work: Path) -> SealedComponentStore:
    from teep.device.sealed_store import SealedComponentStore
    from teep.device.sealing import Sealer

    return SealedComponentStore(work / "store", Sealer(os.urandom(32)))


def _envelope(build: object, signer: object, payload: Path) -> bytes:
    # build_envelope hashes the payload it is given; a large payload is
    # described by a stand-in of the same digest and size instead.
    from teep import cbor
    from teep.suit.builder import encode_sequence, envelope_of
    from teep.suit.envelope import SuitDigest
    from teep.suit.registry import SuitCommand, SuitParameter

    digest = hashlib.sha256()
    size = 0
    for chunk in _chunks(payload):
        digest.update(chunk)
        size += len(chunk)
    params = {
        int(SuitParameter.image_digest): SuitDigest(-16, digest.digest()).encode(),
        int(SuitParameter.image_size): size,
    }
    common = {
        2: [[b"big"]],
        4: encode_sequence((SuitCommand.directive_override_parameters, params)),
    }
    install = encode_sequence(
        (SuitCommand.directive_override_parameters, {21: "https://example/big.bin"}),
        (SuitCommand.directive_fetch, 2),
        (SuitCommand.condition_image_match, 15),
    )
    manifest = {1: 1, 2: 1, 3: cbor.det_dumps(common), 5: [b"big.suit"], 20: install}
    return envelope_of(cbor.det_dumps(manifest), signer)  # type: ignore[arg-type]


CASES = ("baseline", "hashlib", "memory", "sealed", "store")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--payload", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        seconds, peak = _case(args.case, Path(args.payload), Path(args.work))
        print(f"{seconds} {peak}")
        return
    results: dict[str, list[tuple[float, float]]] = {case: [] for case in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        payload = Path(tmp) / "payload.bin"
        _write_payload(payload, args.mb)
        for round_ in range(args.rounds):
            for case in CASES:
                work = Path(tmp) / f"{case}-{round_}"
                work.mkdir()
                results[case].append(_child(case, payload, work))
                shutil.rmtree(work)
    _report(args.mb, args.rounds, results)


def _write_payload(payload: Path, mb: int) -> None:
    with open(payload, "wb") as handle:
        for _ in range(mb):
            handle.write(os.urandom(CHUNK))
        # On disk before any case runs: the sealed store's fsync would
        # otherwise flush this file too (ext4 commits dirty data of all
        # files with its journal) and be charged for it.
        handle.flush()
        os.fsync(handle.fileno())


def _child(case: str, payload: Path, work: Path) -> tuple[float, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--case",
            case,
            "--payload",
            str(payload),
            "--work",
            str(work),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


def _report(
    mb: int, rounds: int, results: dict[str, list[tuple[float, float]]]
) -> None:
    base = max(peak for _, peak in results["baseline"])
    hashlib_best, hashlib_median = _times(results["hashlib"])
    print(
        f"payload {mb} MB, fetched in {CHUNK >> 10} KiB chunks; best and median "
        f"of {rounds} rounds; baseline process {base:.0f} MB"
    )
    for case in CASES[1:]:
        best, median = _times(results[case])
        peak = max(peak for _, peak in results[case])
        print(
            f"{case:8s} best {best:5.2f} s {mb / best:7.1f} MB/s "
            f"{hashlib_best / best:5.0%} of hashlib; "
            f"median {median:5.2f} s {hashlib_median / median:5.0%}; "
            f"peak {peak:4.0f} MB (+{peak - base:.0f} MB over baseline)"
        )


def _times(runs: list[tuple[float, float]]) -> tuple[float, float]:
    seconds = [run[0] for run in runs]
    return min(seconds), statistics.median(seconds)


if __name__ == "__main__":
    main()
