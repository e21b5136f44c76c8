"""Running Trusted Components in the wasmtime sandbox."""

from __future__ import annotations

import time

import pytest

from teep.device.components import (
    DEMO_COMPONENT,
    demo_component_source,
    demo_component_wasm,
)
from teep.device.wasm import (
    ComponentError,
    compile_wat,
    run_component,
    validate_module,
)

GREETING = b"Hello from a Trusted Component inside the simulated TEE!\n"

WASI_WRITE = """
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
"""


def _module(body: str, imports: str = "") -> bytes:
    return compile_wat(f'(module {imports} (memory (export "memory") 1) {body})')


@pytest.fixture(scope="module")
def hello() -> bytes:
    return demo_component_wasm()


def test_demo_source_is_text() -> None:
    """The demo component ships as WAT source, not a binary."""
    assert DEMO_COMPONENT == "hello"
    assert demo_component_source().lstrip().startswith(";;")


def test_hello_greets(hello: bytes) -> None:
    """With no input the demo component writes only its greeting."""
    result = run_component(hello)
    assert result.exit_code == 0
    assert result.stdout == GREETING
    assert result.stderr == b""
    assert result.fuel_consumed > 0


def test_hello_echoes_stdin_and_config(hello: bytes) -> None:
    """The demo component echoes stdin and its Personalization Data."""
    result = run_component(hello, stdin=b"ping", config=b"colour=blue")
    assert result.stdout == GREETING + b"stdin: ping\nconfig: colour=blue\n"


def test_hello_large_stdin(hello: bytes) -> None:
    """Input larger than the component's read buffer is echoed whole."""
    data = bytes(range(256)) * 1000
    result = run_component(hello, stdin=data)
    assert result.stdout == GREETING + b"stdin: " + data + b"\n"


def test_exit_code_reported() -> None:
    """proc_exit's code becomes the result's exit code, not an error."""
    wasm = _module(
        '(func (export "_start") (call $exit (i32.const 7)))',
        '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))',
    )
    assert run_component(wasm).exit_code == 7


def test_infinite_loop_runs_out_of_fuel() -> None:
    """A component that never stops is halted by its fuel budget."""
    wasm = _module('(func (export "_start") (loop $l (br $l)))')
    with pytest.raises(ComponentError, match="out of fuel"):
        run_component(wasm, fuel=100_000)


def test_trap_is_component_error() -> None:
    """A trap (here: unreachable) is a ComponentError, not a wasmtime error."""
    wasm = _module('(func (export "_start") unreachable)')
    with pytest.raises(ComponentError, match="trapped"):
        run_component(wasm)


def test_memory_limit() -> None:
    """memory.grow fails beyond the limit; an oversized initial memory
    cannot even start."""
    grow = _module(
        '(func (export "_start")'
        " (if (i32.ne (memory.grow (i32.const 100)) (i32.const -1))"
        "   (then unreachable)))"
    )
    assert run_component(grow, memory_limit=2 * 65536).exit_code == 0
    big = compile_wat('(module (memory (export "memory") 64) (func (export "_start")))')
    with pytest.raises(ComponentError):
        run_component(big, memory_limit=65536)


def test_output_limit() -> None:
    """Writing more than the output limit is an error."""
    with pytest.raises(ComponentError, match="more than"):
        run_component(demo_component_wasm(), stdin=b"x" * 5000, output_limit=1000)


def test_calls_in_a_loop_run_out_of_time() -> None:
    """A loop of WASI calls spends little fuel per pass; the time limit
    stops it."""
    wasm = _module(
        '(func (export "_start") (loop $l'
        " (drop (call $clock (i32.const 0) (i64.const 0) (i32.const 16))) (br $l)))",
        '(import "wasi_snapshot_preview1" "clock_time_get"'
        " (func $clock (param i32 i64 i32) (result i32)))",
    )
    started = time.monotonic()
    with pytest.raises(ComponentError, match=r"out of time \(ran longer than 0.2 s\)"):
        run_component(wasm, fuel=10**12, time_limit=0.2)
    assert time.monotonic() - started < 5
    # The limit is per run: the next run has its whole budget again.
    assert run_component(demo_component_wasm(), time_limit=0.2).exit_code == 0


def test_writing_past_the_cap_is_the_error_named() -> None:
    """A component that keeps writing after its writes fail is stopped by
    its budget, and the error names the output cap it broke."""
    wasm = _module(
        '(data (i32.const 0) "\\10\\00\\00\\00\\00\\01\\00\\00")'
        ' (func (export "_start") (loop $l'
        " (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1)"
        " (i32.const 8))) (br $l)))",
        WASI_WRITE,
    )
    with pytest.raises(ComponentError, match="more than 1000 bytes to stdout"):
        run_component(wasm, output_limit=1000, time_limit=0.2)


def test_exit_status_out_of_range_is_named() -> None:
    """proc_exit with a status WASI refuses gives wasmtime's reason, not
    the first line of its backtrace."""
    wasm = _module(
        '(func (export "_start") (call $exit (i32.const 256)))',
        '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))',
    )
    with pytest.raises(ComponentError, match="invalid exit status") as info:
        run_component(wasm)
    assert "backtrace" not in str(info.value)


def test_config_is_read_only(tmp_path: object) -> None:
    """The component cannot create files next to /config."""
    wasm = _module(
        '(data (i32.const 16) "new")'
        ' (func (export "_start")'
        "  (call $exit (call $open (i32.const 3) (i32.const 0) (i32.const 16)"
        "    (i32.const 3) (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0)"
        "    (i32.const 32))))",
        '(import "wasi_snapshot_preview1" "path_open"'
        " (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"
        '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))',
    )
    # O_CREAT (oflags 1) with fd_write rights must fail with a non-zero errno.
    assert run_component(wasm, config=b"x").exit_code != 0


@pytest.mark.parametrize(
    "wasm",
    [b"", b"garbage", b"\x00asm\x01\x00\x00\x00\xff", b"\x00asm\x0d\x00\x01\x00"],
    ids=["empty", "garbage", "bad-section", "component-model"],
)
def test_garbage_is_component_error(wasm: bytes) -> None:
    """Bytes that are not a module are refused by validate and run."""
    with pytest.raises(ComponentError):
        validate_module(wasm)
    with pytest.raises(ComponentError):
        run_component(wasm)


@pytest.mark.parametrize(
    ("wat", "reason"),
    [
        ('(module (memory (export "memory") 1))', "_start"),
        ('(module (func (export "_start")))', "memory"),
        (
            '(module (memory (export "memory") 1)'
            ' (func (export "_start") (param i32)))',
            "_start",
        ),
        (
            '(module (import "env" "f" (func)) (memory (export "memory") 1)'
            ' (func (export "_start")))',
            "env.f",
        ),
    ],
    ids=["no-start", "no-memory", "start-with-params", "foreign-import"],
)
def test_contract_violations(wat: str, reason: str) -> None:
    """Modules that break the component contract are refused with a reason."""
    with pytest.raises(ComponentError, match=reason):
        validate_module(compile_wat(wat))


def test_unknown_wasi_function() -> None:
    """A WASI import wasmtime does not provide fails cleanly at start."""
    wasm = compile_wat(
        '(module (import "wasi_snapshot_preview1" "no_such_call" (func))'
        ' (memory (export "memory") 1) (func (export "_start")))'
    )
    with pytest.raises(ComponentError):
        run_component(wasm)


def test_bad_wat() -> None:
    """Text that does not assemble is a ComponentError."""
    with pytest.raises(ComponentError):
        compile_wat("(module")


def test_args_reach_component() -> None:
    """Arguments are passed after argv[0]; args_sizes_get reports them."""
    wasm = _module(
        '(func (export "_start")'
        " (drop (call $sizes (i32.const 0) (i32.const 4)))"
        " (call $exit (i32.load (i32.const 0))))",
        '(import "wasi_snapshot_preview1" "args_sizes_get"'
        " (func $sizes (param i32 i32) (result i32)))"
        '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))',
    )
    assert run_component(wasm, args=["a", "b"]).exit_code == 3


SPIN_ON_READ = """
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 16))
    (loop $again
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 32)))
      (br $again))))
"""


def test_command_exits_cleanly_after_a_component_was_stopped() -> None:
    """A component stopped while looping on fd_read can leave wasmtime unable
    to shut down; the ``teep`` command still ends with its own status and
    no runtime panic on stderr."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from teep.device.wasm import ComponentError, compile_wat, run_component\n"
        "from teep.cli.main import main\n"
        f"wasm = compile_wat({SPIN_ON_READ!r})\n"
        "try:\n"
        "    run_component(wasm, time_limit=0.2)\n"
        "except ComponentError as exc:\n"
        "    print(exc)\n"
        "main(['--version'])\n"
    )
    # The fault shows in some runs only: four processes side by side.
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for process in runs:
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        assert "out of time" in stdout
        assert "teep" in stdout.splitlines()[-1]
        assert "panicked" not in stderr


def _sleeper(nanoseconds: int, flags: int = 0, clock: int = 1) -> bytes:
    """A component that waits once on a clock with poll_oneoff and exits with
    the errno, the number of events and the event's type (0 for a clock)
    written as ``errno * 100 + events * 10 + type``."""
    return _module(
        '(func (export "_start")'
        f" (i32.store (i32.const 16) (i32.const {clock}))"
        f" (i64.store (i32.const 24) (i64.const {nanoseconds}))"
        f" (i32.store16 (i32.const 40) (i32.const {flags}))"
        " (i32.store8 (i32.const 74) (i32.const 9))"
        " (call $exit (i32.add"
        "  (i32.mul (i32.const 100) (call $poll (i32.const 0) (i32.const 64)"
        "   (i32.const 1) (i32.const 128)))"
        "  (i32.add (i32.mul (i32.const 10) (i32.load (i32.const 128)))"
        "   (i32.load8_u (i32.const 74))))))",
        '(import "wasi_snapshot_preview1" "poll_oneoff"'
        " (func $poll (param i32 i32 i32 i32) (result i32)))"
        '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))',
    )


def test_a_long_sleep_runs_out_of_time() -> None:
    """Waiting in poll_oneoff does not outlast the time limit: the run ends
    at the limit with the time-limit error, and the next run is unharmed."""
    started = time.monotonic()
    with pytest.raises(ComponentError, match=r"out of time \(ran longer than 0.5 s\)"):
        run_component(_sleeper(100 * 10**9), time_limit=0.5)
    assert time.monotonic() - started < 3
    assert run_component(demo_component_wasm(), time_limit=0.5).exit_code == 0


@pytest.mark.parametrize("clock", [0, 1])
def test_a_long_wait_until_a_time_runs_out_of_time(clock: int) -> None:
    """A wait until a far time on either clock stops at the limit too."""
    started = time.monotonic()
    with pytest.raises(ComponentError, match="out of time"):
        run_component(_sleeper(2**63, flags=1, clock=clock), time_limit=0.5)
    assert time.monotonic() - started < 3


def test_a_short_sleep_within_the_limit_works() -> None:
    """A wait that ends in time is WASI's own: it sleeps, then reports one
    clock event."""
    started = time.monotonic()
    assert run_component(_sleeper(100_000_000), time_limit=2).exit_code == 10
    assert time.monotonic() - started >= 0.1
    # A time already past on the realtime clock returns at once.
    assert run_component(_sleeper(1, flags=1, clock=0)).exit_code == 10
