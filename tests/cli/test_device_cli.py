"""``teep device``: exporting the payload key, TAM attestation settings, and
how a sent QueryResponse is described."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from teep import cbor
from teep.attestation.ear import EAR_MEDIA_TYPE
from teep.cli import device as device_cli
from teep.device import tam_trust
from teep.device.broker import SessionOutcome
from teep.device.runtime import Device
from teep.device.tee import SimulatedTEE
from teep.errors import ConfigError
from teep.keys import KeyKind, PrivateKey, PublicKey
from teep.protocol.messages import QueryResponse

from .conftest import Run, assert_one_line_error


@pytest.fixture
def folder(run: Run, tmp_path: Path) -> Path:
    """A device made with ``teep device init``."""
    path = tmp_path / "dev"
    result = run("device", "init", "--dir", str(path))
    assert result.exit_code == 0, result.stderr
    return path


def _tee(folder: Path) -> SimulatedTEE:
    return SimulatedTEE.open(folder / "tee")


def test_kek_printed_and_written(run: Run, folder: Path, tmp_path: Path) -> None:
    """kek prints the TEE's P-256 payload key as PEM, or writes it with -o;
    both are the same key, the one the TEE decrypts with."""
    printed = run("device", "kek", "--dir", str(folder))
    assert printed.exit_code == 0, printed.stderr
    target = tmp_path / "device-kek.pem"
    written = run("device", "kek", "--dir", str(folder), "-o", str(target))
    assert written.exit_code == 0, written.stderr
    assert target.read_bytes() == printed.stdout.encode()
    key = PublicKey.load(target)
    assert key.kind is KeyKind.P256
    assert key.thumbprint == _tee(folder).kek.public.thumbprint


def test_kek_unwritable_output(run: Run, folder: Path, tmp_path: Path) -> None:
    """An output path that cannot be written is one error line."""
    target = tmp_path / "missing" / "kek.pem"
    assert_one_line_error(run("device", "kek", "--dir", str(folder), "-o", str(target)))


def test_require_tam_attestation_on_and_off(run: Run, folder: Path) -> None:
    """require-tam-attestation sets the TEE setting; --off clears it."""
    assert run("device", "require-tam-attestation", "--dir", str(folder)).exit_code == 0
    assert _tee(folder).get_setting(tam_trust.REQUIRE_SETTING) is True
    off = run("device", "require-tam-attestation", "--dir", str(folder), "--off")
    assert off.exit_code == 0
    assert _tee(folder).get_setting(tam_trust.REQUIRE_SETTING) is None


def test_trust_tam_attestation(run: Run, folder: Path, tmp_path: Path) -> None:
    """trust-tam-attestation endorses the key for the TAM class (default
    teep-tam) and the given manufacturer."""
    key = PrivateKey.generate().public
    keyfile = tmp_path / "tam-attest.pub.pem"
    keyfile.write_bytes(key.to_pem())
    args = ["device", "trust-tam-attestation", "--dir", str(folder), str(keyfile)]
    assert run(*args).exit_code == 0
    assert run(*args, "--hwmodel", "other", "--oemid", "0a0b0c").exit_code == 0
    found = tam_trust.tam_endorsements(_tee(folder))
    assert len(found) == 1  # the same key again replaces its entry
    assert found[0].key.thumbprint == key.thumbprint
    assert (found[0].hwmodel, found[0].oemid) == (b"other", b"\x0a\x0b\x0c")


def test_trust_tam_attestation_bad_input(
    run: Run, folder: Path, tmp_path: Path
) -> None:
    """A non-hex oemid or an unreadable key file is one error line."""
    keyfile = tmp_path / "k.pem"
    keyfile.write_bytes(PrivateKey.generate().public.to_pem())
    base = ["device", "trust-tam-attestation", "--dir", str(folder)]
    assert_one_line_error(run(*base, str(keyfile), "--oemid", "xyz"))
    assert_one_line_error(run(*base, str(tmp_path / "absent.pem")))


def test_sending_names_the_attestation_kind() -> None:
    """A sent QueryResponse is described as carrying Evidence or an
    Attestation Result, and whether it is encrypted."""
    evidence = QueryResponse(attestation_payload=b"\xd2\x84")
    result = QueryResponse(
        attestation_payload=b"\xd2\x84", attestation_payload_format=EAR_MEDIA_TYPE
    )
    sealed = cbor.dumps(cbor.CBORTag(96, [b"", {}, None, []]))
    encrypted = QueryResponse(
        attestation_payload=sealed, attestation_payload_format=EAR_MEDIA_TYPE
    )
    assert "with attestation Evidence (EAT)," in device_cli._sending(evidence)
    assert "with an Attestation Result (EAR)," in device_cli._sending(result)
    assert "(EAR) (encrypted)," in device_cli._sending(encrypted)
    assert "with" not in device_cli._sending(QueryResponse())


@pytest.fixture
def silent_tam() -> Iterator[str]:
    """A loopback server that accepts connections and never answers; its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/tam"
    finally:
        done.set()
        thread.join(timeout=5)
        listener.close()
        for conn in held:
            conn.close()


def test_run_gives_up_on_a_silent_tam(run: Run, folder: Path, silent_tam: str) -> None:
    """A TAM that accepts the connection and says nothing is given up on
    after --timeout seconds: one error line naming it, non-zero exit."""
    started = time.monotonic()
    result = run(
        "device",
        "run",
        "--dir",
        str(folder),
        "--tam-uri",
        silent_tam,
        "--timeout",
        "0.5",
    )
    assert time.monotonic() - started < 10
    line = assert_one_line_error(result)
    assert line == f"teep: error: the TAM at {silent_tam} did not answer within 0.5 s"


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_run_refuses_a_bad_timeout(run: Run, folder: Path, value: str) -> None:
    """--timeout must be a positive number of seconds."""
    result = run("device", "run", "--dir", str(folder), "--timeout", value)
    assert result.exit_code == 2
    assert "--timeout" in result.stderr


def test_run_refuses_a_bad_tam_uri(run: Run, folder: Path) -> None:
    """A --tam-uri given to run is checked as init checks it."""
    line = assert_one_line_error(
        run("device", "run", "--dir", str(folder), "--tam-uri", "http://")
    )
    assert "has no host" in line


@pytest.mark.parametrize(
    ("uri", "reason"), [("", "http:// or https://"), ("  ", "spaces")]
)
def test_run_refuses_an_empty_tam_uri(
    run: Run, tmp_path: Path, uri: str, reason: str
) -> None:
    """An empty or blank --tam-uri is refused, not replaced by the device's
    stored TAM URI."""
    path = tmp_path / "dev"
    stored = "http://127.0.0.1:1/tam"
    assert run("device", "init", "--dir", str(path), "--tam-uri", stored).exit_code == 0
    line = assert_one_line_error(
        run("device", "run", "--dir", str(path), "--tam-uri", uri)
    )
    assert "the TAM URI" in line and reason in line
    assert stored not in line


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"tam_uri": 5}, "tam_uri must be a string or null"),
        ({"verifier_url": ["http://v"]}, "verifier_url must be a string or null"),
        ({"verifier_mode": 1}, "verifier_mode must be 'teep' or 'veraison'"),
        ({"verifier_mode": "rats"}, "verifier_mode must be 'teep' or 'veraison'"),
        ([], "it must hold a JSON object"),
    ],
)
def test_wrong_type_setting_is_one_line(
    run: Run, folder: Path, data: object, says: str
) -> None:
    """Every device.json setting is checked by type when the device is
    opened: one line naming the file and the setting, no internal error."""
    settings = folder / "device.json"
    settings.write_text(json.dumps(data))
    line = assert_one_line_error(run("device", "run", "--dir", str(folder)))
    assert line == f"teep: error: cannot read {settings}: {says}"


def test_trust_tam_notes_a_key_of_another_suite(
    run: Run, folder: Path, tmp_path: Path
) -> None:
    """Trusting only a TAM key of a kind the Agent does not sign with is
    taken, with a note that sessions need a key of the Agent's suite."""
    ed25519 = tmp_path / "tam-ed25519.pub.pem"
    ed25519.write_bytes(PrivateKey.generate(KeyKind.ED25519).public.to_pem())
    p256 = tmp_path / "tam-p256.pub.pem"
    p256.write_bytes(PrivateKey.generate(KeyKind.P256).public.to_pem())
    alone = run("device", "trust-tam", "--dir", str(folder), str(ed25519))
    assert alone.exit_code == 0, alone.stderr
    assert "note: this Agent signs with ESP256" in alone.stdout
    both = run("device", "trust-tam", "--dir", str(folder), str(p256))
    assert both.exit_code == 0 and "note:" not in both.stdout


def test_unrequest_withdraws_a_pending_request(run: Run, folder: Path) -> None:
    """unrequest of a component requested and not installed withdraws the
    request; of one neither installed nor requested, it is refused."""
    assert run("device", "request", "--dir", str(folder), "extra").exit_code == 0
    withdrawn = run("device", "unrequest", "--dir", str(folder), "extra")
    assert withdrawn.exit_code == 0, withdrawn.stderr
    assert withdrawn.stdout.strip() == "request for extra withdrawn"
    again = assert_one_line_error(
        run("device", "unrequest", "--dir", str(folder), "extra")
    )
    assert again == "teep: error: component 'extra' is neither installed nor requested"


class _QuietBroker:
    """A Broker stand-in: a session of one round trip that changes nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    async def policy_check(self, tam_uri: str) -> SessionOutcome:
        return SessionOutcome(round_trips=1)


def test_run_names_components_given_up_and_kept(
    run: Run, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a session, components marked unneeded and still installed
    (the TAM's policy keeps them) are named, with how to take them back."""
    monkeypatch.setattr(device_cli, "Broker", _QuietBroker)
    monkeypatch.setattr(Device, "kept_unneeded", lambda self: ["hello"])
    done = run("device", "run", "--dir", str(folder), "--tam-uri", "http://t/tam")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.splitlines()[-1] == (
        "given up and kept by the TAM: hello (its policy requires it; "
        "'teep device request' takes it back)"
    )


def test_run_refuses_while_another_session_holds_the_device(
    run: Run, folder: Path
) -> None:
    """A second session of the same device fails at once, in one line."""
    with Device.open(folder).session():
        held = run("device", "run", "--dir", str(folder), "--tam-uri", "http://t/tam")
    line = assert_one_line_error(held)
    assert line == "teep: error: another session of this device is running"


def test_two_sessions_of_one_device_at_once(
    run: Run, folder: Path, silent_tam: str
) -> None:
    """While one ``device run`` waits on a slow TAM, another on the same
    folder fails at once; the first goes on to its own end."""
    first = subprocess.Popen(
        [sys.executable, "-m", "teep", "device", "run", "--dir", str(folder),
         "--tam-uri", silent_tam, "--timeout", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while _free(folder):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        second = run("device", "run", "--dir", str(folder), "--tam-uri", silent_tam)
        assert time.monotonic() - started < 2
        line = assert_one_line_error(second)
        assert line == "teep: error: another session of this device is running"
        _, stderr = first.communicate(timeout=60)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 1
    assert "did not answer within 3 s" in stderr
    assert _free(folder)


def _free(folder: Path) -> bool:
    """Whether no session holds the device in ``folder``."""
    try:
        with Device.open(folder).session():
            return True
    except ConfigError:
        return False


def _install_component(folder: Path, name: str, wat: str) -> None:
    from teep import components
    from teep.device.wasm import compile_wat

    with _tee(folder).components.transaction() as txn:
        txn.write(components.component_id(name), [compile_wat(wat)])


ARGS_AND_EXIT = """
(module
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "out\\n")
  (data (i32.const 200) "err")
  (func (export "_start")
    (i32.store (i32.const 16) (i32.const 100))
    (i32.store (i32.const 20) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
    (i32.store (i32.const 16) (i32.const 200))
    (i32.store (i32.const 20) (i32.const 3))
    (drop (call $fd_write (i32.const 2) (i32.const 16) (i32.const 1) (i32.const 24)))
    ;; exit with argc: argv[0] and what the caller passed
    (drop (call $sizes (i32.const 0) (i32.const 4)))
    (call $exit (i32.load (i32.const 0)))))
"""


def test_invoke_exits_with_the_component_status(run: Run, folder: Path) -> None:
    """A non-zero exit code is the component's result: its output is
    printed, one plain line names the status, and teep exits with it."""
    _install_component(folder, "exit3", ARGS_AND_EXIT)
    result = run("device", "invoke", "--dir", str(folder), "exit3", "a", "b")
    assert result.exit_code == 3, result.stderr
    assert result.stdout == "out\n"
    assert result.stderr == "err\ncomponent exit3 exited with status 3\n"
    assert "teep: error" not in result.stderr


def test_invoke_passes_arguments(run: Run, folder: Path) -> None:
    """Arguments after NAME, also ones that look like options after --,
    reach the component after argv[0]; none gives argc 1."""
    _install_component(folder, "argc", ARGS_AND_EXIT)
    plain = run("device", "invoke", "--dir", str(folder), "argc")
    assert plain.exit_code == 1
    assert plain.stderr.endswith("component argc exited with status 1\n")
    dashed = run(
        "device", "invoke", "--dir", str(folder), "--input", "x", "argc",
        "--", "-v", "--input", "z",
    )  # fmt: skip
    assert dashed.exit_code == 4, dashed.stderr
    assert dashed.stdout == "out\n"


def test_invoke_stops_a_component_that_sleeps(run: Run, folder: Path) -> None:
    """A component waiting 100 s in poll_oneoff is stopped at the time limit
    with a one-line error instead of holding the command."""
    _install_component(
        folder,
        "sleeper",
        """
(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 100000000000))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))
""",
    )
    started = time.monotonic()
    result = run("device", "invoke", "--dir", str(folder), "sleeper")
    assert time.monotonic() - started < 10
    assert "out of time" in assert_one_line_error(result)
