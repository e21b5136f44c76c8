"""Running Trusted Components: WebAssembly modules in a wasmtime sandbox.

A Trusted Component in the simulated TEE is a WASI preview1 *command*
module (the contract is in ``docs/components.md``).  It gets exactly what
this module hands it and nothing else:

* its input as stdin and a list of arguments;
* its Personalization Data, if any, as the read-only file ``/config``
  (a preopened read-only directory holding one file);
* a fuel budget (roughly one unit per instruction executed), a wall-clock
  limit (fuel barely counts the time spent in WASI calls, so a loop of
  calls would otherwise run for many seconds) and a cap on its linear
  memory, so a runaway component stops instead of hanging or exhausting
  the device;
* teep's own ``poll_oneoff`` (and ``clock_time_get``), so that waiting on
  a clock cannot outlast the wall-clock limit (the limit otherwise stops
  only WebAssembly code, not a host call in progress);
* no environment variables, no clocks but realtime and monotonic, no
  sockets, no other files.

What it writes on stdout and stderr is collected in memory, up to a limit.
Everything wasmtime can raise is turned into :class:`ComponentError` here.
"""

from __future__ import annotations

import errno
import functools
import math
import struct
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from teep.errors import TeepError

__all__ = [
    "DEFAULT_FUEL",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_OUTPUT_LIMIT",
    "DEFAULT_TIME_LIMIT",
    "WASI_MODULE",
    "ComponentError",
    "ComponentResult",
    "compile_wat",
    "run_component",
    "stopped_mid_run",
    "validate_module",
]

DEFAULT_FUEL = 200_000_000
"""Fuel for one run: enough for real work, small enough to stop a loop in
well under a second or two."""
DEFAULT_MEMORY_LIMIT = 64 * 1024 * 1024
"""Most bytes of linear memory a component may use."""
DEFAULT_OUTPUT_LIMIT = 1024 * 1024
"""Most bytes a component may write to stdout, and separately to stderr."""
DEFAULT_TIME_LIMIT = 2.0
"""Most seconds one run may take, however its fuel is spent."""
_TICK = 0.02
"""Seconds between epoch ticks: the resolution of the time limit."""
WASI_MODULE = "wasi_snapshot_preview1"
"""The only import module a component may use."""
CONFIG_FILE = "config"
"""Name of the Personalization Data file in the guest's root directory."""
PROGRAM_NAME = "component"
"""``argv[0]`` as the component sees it."""
_SUBSCRIPTION = struct.Struct("<Q B 7x I 4x Q Q H 6x")
"""A WASI preview1 ``subscription``: userdata, tag, then for a clock its id,
timeout, precision and flags."""
_EVENT = struct.Struct("<Q H B 5x Q H 6x")
"""A WASI preview1 ``event``: userdata, errno, type, bytes ready, flags."""
_CLOCK, _FD_READ, _FD_WRITE = 0, 1, 2
"""Subscription and event types."""
_REALTIME, _MONOTONIC = 0, 1
"""The clocks a component may read and wait on."""
_ABSTIME = 1
"""``subclockflags``: the timeout is a time on the clock, not a duration."""
_EFAULT, _EINVAL = 21, 28
"""WASI errno values."""
_U32 = 0xFFFFFFFF


class ComponentError(TeepError):
    """A Trusted Component is not a valid module, breaks the contract, or
    failed while running (trap, out of fuel, output over the limit)."""


@dataclass(frozen=True)
class ComponentResult:
    """What a component run produced."""

    exit_code: int
    """0 when ``_start`` returned, else the code given to ``proc_exit``."""
    stdout: bytes
    """Everything written to stdout."""
    stderr: bytes
    """Everything written to stderr."""
    fuel_consumed: int
    """Fuel the run used."""


@functools.cache
def _engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.consume_fuel = True
    # No threads, no shared memory: a component is one sequential program.
    config.wasm_threads = False
    # The time limit: code checks the engine's epoch at function entries
    # and loop back-edges, and a ticker thread advances it during runs.
    config.epoch_interruption = True
    return wasmtime.Engine(config)


class _Ticker:
    """Advances the engine's epoch every ``_TICK`` seconds while a run is
    active; each run's store stops after as many ticks as its limit holds.
    One ticker serves concurrent runs, and it stops when none is left."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._stop = threading.Event()

    def __enter__(self) -> None:
        with self._lock:
            self._active += 1
            if self._active == 1:
                self._stop = threading.Event()
                threading.Thread(
                    target=self._run,
                    args=(self._stop,),
                    name="teep-tc-clock",
                    daemon=True,
                ).start()

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0:
                self._stop.set()

    @staticmethod
    def _run(stop: threading.Event) -> None:
        engine = _engine()
        while not stop.wait(_TICK):
            engine.increment_epoch()


_ticker = _Ticker()


def compile_wat(text: str) -> bytes:
    """Assemble WebAssembly text format into a binary module.

    :raises ComponentError: if the text does not assemble.
    """
    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as exc:
        raise ComponentError(f"invalid WebAssembly text: {_first_line(exc)}") from None


def validate_module(wasm: bytes) -> None:
    """Check that ``wasm`` is a module that follows the component contract.

    :raises ComponentError: if it is not valid WebAssembly, or does not
        export ``_start`` and ``memory``, or imports anything but WASI
        preview1 functions.
    """
    _load(wasm)


def run_component(
    wasm: bytes,
    *,
    args: Sequence[str] = (),
    stdin: bytes = b"",
    config: bytes | None = None,
    fuel: int = DEFAULT_FUEL,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> ComponentResult:
    """Run a Trusted Component once, sandboxed, and collect its output.

    :param wasm: the module's bytes.
    :param args: arguments after ``argv[0]`` (which is ``"component"``).
    :param stdin: the component's input.
    :param config: Personalization Data, readable as ``/config``; absent
        when ``None``.
    :param fuel: CPU budget; running out stops the component.
    :param memory_limit: most bytes of linear memory it may hold.
    :param output_limit: most bytes it may write to each of stdout, stderr.
    :param time_limit: most seconds the run may take.
    :raises ComponentError: if the module is invalid or breaks the contract,
        traps, runs out of fuel or time, or writes more than ``output_limit``.
    """
    module = _load(wasm)
    stdout = _Capture(output_limit)
    stderr = _Capture(output_limit)
    with tempfile.TemporaryDirectory(prefix="teep-tc-") as scratch:
        wasi = _wasi_config(Path(scratch), list(args), stdin, config)
        wasi.stdout_custom = stdout.write
        wasi.stderr_custom = stderr.write
        store = wasmtime.Store(_engine())
        store.set_fuel(fuel)
        store.set_limits(memory_size=memory_limit)
        store.set_wasi(wasi)
        store.set_epoch_deadline(max(1, math.ceil(time_limit / _TICK)))
        try:
            with _ticker:
                exit_code = _start(store, module, time_limit)
        except ComponentError:
            # A component that keeps writing past the cap is stopped by its
            # budget; the cap is what it broke first.
            _check_output(stdout, stderr, output_limit)
            raise
        consumed = fuel - store.get_fuel()

    _check_output(stdout, stderr, output_limit)
    return ComponentResult(exit_code, stdout.data(), stderr.data(), consumed)


def _check_output(stdout: _Capture, stderr: _Capture, limit: int) -> None:
    for name, capture in (("stdout", stdout), ("stderr", stderr)):
        if capture.overflow:
            raise ComponentError(f"component wrote more than {limit} bytes to {name}")


def _load(wasm: bytes) -> wasmtime.Module:
    try:
        module = wasmtime.Module(_engine(), wasm)
    except (wasmtime.WasmtimeError, TypeError, ValueError) as exc:
        raise ComponentError(
            f"not a valid WebAssembly module: {_first_line(exc)}"
        ) from None
    _check_contract(module)
    return module


def _check_contract(module: wasmtime.Module) -> None:
    exports = {export.name: export.type for export in module.exports}
    start = exports.get("_start")
    if not isinstance(start, wasmtime.FuncType) or start.params or start.results:
        raise ComponentError("a component must export a function _start: () -> ()")
    if not isinstance(exports.get("memory"), wasmtime.MemoryType):
        raise ComponentError("a component must export its memory as 'memory'")
    for item in module.imports:
        if item.module != WASI_MODULE or not isinstance(item.type, wasmtime.FuncType):
            raise ComponentError(
                f"a component may import only {WASI_MODULE} functions, "
                f"not {item.module}.{item.name}"
            )


def _wasi_config(
    scratch: Path, args: list[str], stdin: bytes, config: bytes | None
) -> wasmtime.WasiConfig:
    wasi = wasmtime.WasiConfig()
    wasi.argv = [PROGRAM_NAME, *args]
    stdin_path = scratch / "stdin"
    stdin_path.write_bytes(stdin)
    wasi.stdin_file = str(stdin_path)

    # The guest's "/" is an otherwise empty read-only directory; it always
    # exists so that a component can tell "no config" (ENOENT) from a
    # broken sandbox.
    root = scratch / "root"
    root.mkdir()
    if config is not None:
        (root / CONFIG_FILE).write_bytes(config)
    wasi.preopen_dir(str(root), "/", fs_mutable=False)
    return wasi


def _start(store: wasmtime.Store, module: wasmtime.Module, time_limit: float) -> int:
    linker = wasmtime.Linker(_engine())
    try:
        linker.define_wasi()
        _define_clocks(linker, time.monotonic() + time_limit)
        instance = linker.instantiate(store, module)
        start = instance.exports(store)["_start"]
        if not isinstance(start, wasmtime.Func):
            raise ComponentError("_start is not a function")
        start(store)
    except wasmtime.ExitTrap as exc:
        return int(exc.code)
    except _OutOfTime:
        # Raised by teep's own poll_oneoff, which has returned: nothing of
        # wasmtime's WASI layer is left mid-call.
        raise ComponentError(f"component trapped: {_out_of_time(time_limit)}") from None
    except wasmtime.Trap as exc:
        _stopped.set()
        raise ComponentError(
            f"component trapped: {_trap_reason(exc, time_limit)}"
        ) from None
    except wasmtime.WasmtimeError as exc:
        _stopped.set()
        raise ComponentError(f"component failed: {_first_line(exc)}") from None
    return 0


class _OutOfTime(Exception):
    """A component asked to wait past the end of its time limit."""


def _define_clocks(linker: wasmtime.Linker, deadline: float) -> None:
    """Put teep's ``poll_oneoff`` and ``clock_time_get`` in place of
    wasmtime's.

    wasmtime's ``poll_oneoff`` sleeps for as long as the component asks,
    and epoch interruption stops only WebAssembly code, so one call could
    hold the device for hours.  teep's sleeps until the first clock
    subscription fires or until ``deadline``, whichever comes first, and in
    the second case stops the run.  A file descriptor subscription is ready
    at once: stdin and ``/config`` are regular files, stdout and stderr are
    collected in memory and there are no sockets.  The other WASI calls a
    component may make do not wait.  ``clock_time_get`` is teep's too, so
    that a wait until a time on the monotonic clock uses the clock the
    component reads.
    """
    origin = time.monotonic_ns()

    def now(clock_id: int) -> int | None:
        if clock_id == _REALTIME:
            return time.time_ns()
        if clock_id == _MONOTONIC:
            return time.monotonic_ns() - origin
        return None

    def clock_time_get(
        caller: wasmtime.Caller, clock_id: int, _precision: int, out: int
    ) -> int:
        memory = _memory(caller)
        value = now(clock_id)
        if value is None:
            return _EINVAL
        if memory is None or not _fits(memory, caller, out, 8):
            return _EFAULT
        memory.write(caller, struct.pack("<Q", value), out & _U32)
        return 0

    def poll_oneoff(
        caller: wasmtime.Caller, subs: int, events: int, count: int, nevents: int
    ) -> int:
        memory = _memory(caller)
        count &= _U32
        if count == 0:
            return _EINVAL
        if memory is None or not (
            _fits(memory, caller, subs, count * _SUBSCRIPTION.size)
            and _fits(memory, caller, events, count * _EVENT.size)
            and _fits(memory, caller, nevents, 4)
        ):
            return _EFAULT
        data = bytes(
            memory.read(caller, subs & _U32, (subs & _U32) + count * _SUBSCRIPTION.size)
        )
        ready: list[bytes] = []
        clocks: list[tuple[int, int]] = []  # (userdata, when on the monotonic clock)
        for offset in range(0, len(data), _SUBSCRIPTION.size):
            userdata, tag, clock_id, timeout, _, flags = _SUBSCRIPTION.unpack_from(
                data, offset
            )
            if tag in (_FD_READ, _FD_WRITE):
                ready.append(_EVENT.pack(userdata, 0, tag, 0, 0))
            elif tag != _CLOCK:
                return _EINVAL
            elif (current := now(clock_id)) is None:
                ready.append(_EVENT.pack(userdata, _EINVAL, tag, 0, 0))
            else:
                wait = max(0, timeout - current) if flags & _ABSTIME else timeout
                clocks.append((userdata, time.monotonic_ns() + wait))
        if not ready:
            first = min(when for _, when in clocks)
            if first / 1e9 > deadline:
                time.sleep(max(0.0, deadline - time.monotonic()))
                raise _OutOfTime
            time.sleep(max(0, first - time.monotonic_ns()) / 1e9)
            fired = time.monotonic_ns()
            ready = [
                _EVENT.pack(userdata, 0, _CLOCK, 0, 0)
                for userdata, when in clocks
                if when <= fired
            ]
        memory.write(caller, b"".join(ready), events & _U32)
        memory.write(caller, struct.pack("<I", len(ready)), nevents & _U32)
        return 0

    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    linker.allow_shadowing = True
    linker.define_func(
        WASI_MODULE,
        "clock_time_get",
        wasmtime.FuncType([i32, i64, i32], [i32]),
        clock_time_get,
        access_caller=True,
    )
    linker.define_func(
        WASI_MODULE,
        "poll_oneoff",
        wasmtime.FuncType([i32, i32, i32, i32], [i32]),
        poll_oneoff,
        access_caller=True,
    )
    linker.allow_shadowing = False


def _memory(caller: wasmtime.Caller) -> wasmtime.Memory | None:
    memory = caller.get("memory")
    return memory if isinstance(memory, wasmtime.Memory) else None


def _fits(memory: wasmtime.Memory, caller: wasmtime.Caller, at: int, size: int) -> bool:
    return (at & _U32) + size <= memory.data_len(caller)


_stopped = threading.Event()


def stopped_mid_run() -> bool:
    """Whether a component was stopped by a trap in this process.

    wasmtime's WASI layer may then leave a worker thread in the middle of a
    host call; when the process exits normally that thread can panic and
    abort the process (seen with wasmtime-py 50 after a component stopped
    while looping on fd_read).  The ``teep`` command ends such a process
    with :func:`os._exit` once its output is flushed.
    """
    return _stopped.is_set()


def _trap_reason(trap: wasmtime.Trap, time_limit: float) -> str:
    code = trap.trap_code
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        return "out of fuel (CPU budget exhausted)"
    if code == wasmtime.TrapCode.INTERRUPT:
        return _out_of_time(time_limit)
    if code is not None:
        return str(code.name).lower().replace("_", " ")
    return _first_line(trap)


def _out_of_time(time_limit: float) -> str:
    return f"out of time (ran longer than {time_limit:g} s)"


def _first_line(exc: Exception) -> str:
    """The line of a wasmtime message that says what went wrong: the first
    line of its cause when it has one (the first line then only says that
    a backtrace follows)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    if "Caused by:" in lines:
        lines = lines[lines.index("Caused by:") + 1 :]
    lines = [line for line in lines if line]
    return lines[0] if lines else type(exc).__name__


class _Capture:
    """Collects a WASI output stream up to a limit."""

    def __init__(self, limit: int) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._limit = limit
        self.overflow = False

    def write(self, data: bytes) -> int:
        if self._size + len(data) > self._limit:
            # The guest sees a failed write; the run is reported as an error.
            self.overflow = True
            return -errno.EFBIG
        self._parts.append(bytes(data))
        self._size += len(data)
        return len(data)

    def data(self) -> bytes:
        return b"".join(self._parts)
