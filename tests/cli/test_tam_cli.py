"""``teep tam component``: Trusted Components and their Personalization Data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from teep import components
from teep.device.components import demo_component_wasm
from teep.keys import PrivateKey
from teep.suit.builder import build_envelope
from teep.tam.home import TAMHome
from teep.tam.models import TA
from teep.tam.store import Delivery, TAMStore

from .conftest import Run, assert_one_line_error

KID = "ab" * 32


@pytest.fixture
def home(run: Run, tmp_path: Path) -> Path:
    """A TAM folder that accepts ``signer.pem``'s components."""
    folder = tmp_path / "tam"
    assert run("tam", "init", "--dir", str(folder)).exit_code == 0
    signer = PrivateKey.generate()
    signer.save(tmp_path / "signer.pem")
    (tmp_path / "signer.pub.pem").write_bytes(signer.public.to_pem())
    added = run(
        "tam", "signer", "add", "--dir", str(folder), str(tmp_path / "signer.pub.pem")
    )
    assert added.exit_code == 0, added.stderr
    return folder


def envelope(
    home: Path,
    manifest_id: tuple[bytes, ...],
    component_id: tuple[bytes, ...],
    sequence: int = 1,
) -> Path:
    """A signed envelope file beside the TAM folder."""
    payload = demo_component_wasm() if component_id[-1] == b"ta" else b"colour=blue"
    data = build_envelope(
        manifest_component_id=manifest_id,
        component_id=component_id,
        payload=payload,
        sequence_number=sequence,
        signer=PrivateKey.load(home.parent / "signer.pem"),
    )
    path = (
        home.parent / f"{components.display(manifest_id).replace('/', '_')}-{sequence}"
    )
    path.write_bytes(data)
    return path


def ta(home: Path, name: str = "hello", sequence: int = 1) -> str:
    """The path of a Trusted Component envelope for ``name``."""
    ids = (components.manifest_id(name), components.component_id(name))
    return str(envelope(home, *ids, sequence))


def config(home: Path, name: str = "hello", sequence: int = 1) -> str:
    """The path of a Personalization Data envelope for ``name``."""
    ids = (components.config_manifest_id(name), components.config_id(name))
    return str(envelope(home, *ids, sequence))


def catalogue(run: Run, home: Path) -> list[list[str]]:
    """The rows ``component list`` prints (header left out)."""
    result = run("tam", "component", "list", "--dir", str(home))
    assert result.exit_code == 0, result.stderr
    return [line.split() for line in result.stdout.splitlines()[1:]]


def test_add_lists_kind_and_device(run: Run, home: Path) -> None:
    """A component and its data for every device and for one are catalogued
    by their manifest ids and listed with kind and device."""
    added = run("tam", "component", "add", "--dir", str(home), "hello", ta(home))
    assert "component hello sequence 1 added" in added.stdout
    general = run("tam", "component", "add", "--dir", str(home), "hello", config(home))
    assert "Personalization Data of hello for every device" in general.stdout
    one = run(
        "tam", "component", "add", "--dir", str(home), "hello", config(home, sequence=2),
        "--device", KID.upper(),
    )  # fmt: skip
    assert one.exit_code == 0, one.stderr
    assert f"for {KID} sequence 2 added" in one.stdout
    rows = [row[:4] for row in catalogue(run, home)]
    assert rows == [
        ["hello", "ta", "*", "1"],
        ["hello", "config", "*", "1"],
        ["hello", "config", KID, "2"],
    ]


@pytest.mark.parametrize(
    ("which", "device", "message"),
    [
        ("other", "*", "not component 'hello' or its Personalization Data"),
        ("ta", KID, "only its Personalization Data can be for one"),
        ("config", "hwmodel:00", "bad device"),
    ],
)
def test_add_refusals(
    run: Run, home: Path, which: str, device: str, message: str
) -> None:
    """Another component's manifest, a component for one device and a model
    selector are refused with one line."""
    path = {"other": ta(home, "other"), "ta": ta(home), "config": config(home)}[which]
    if which == "config":
        run("tam", "component", "add", "--dir", str(home), "hello", ta(home))
    result = run(
        "tam", "component", "add", "--dir", str(home), "hello", path, "--device", device
    )
    assert message in assert_one_line_error(result)


def test_stale_data_version_refused(run: Run, home: Path) -> None:
    """Data not newer than the catalogued version for the same device is
    refused with one line."""
    run("tam", "component", "add", "--dir", str(home), "hello", ta(home))
    path = config(home, sequence=2)
    assert (
        run("tam", "component", "add", "--dir", str(home), "hello", path).exit_code == 0
    )
    again = run("tam", "component", "add", "--dir", str(home), "hello", path)
    assert "would be a rollback" in assert_one_line_error(again)


def test_remove_data_only(run: Run, home: Path) -> None:
    """--device removes one device's data, --config all of it; the component
    stays until it is removed with whatever data is left."""
    base = ("tam", "component")
    run(*base, "add", "--dir", str(home), "hello", ta(home))
    run(*base, "add", "--dir", str(home), "hello", config(home))
    run(*base, "add", "--dir", str(home), "hello", config(home), "--device", KID)
    removed = run(*base, "remove", "--dir", str(home), "hello", "--device", KID)
    assert f"Personalization Data of hello for {KID} removed" in removed.stdout
    assert [row[2] for row in catalogue(run, home)] == ["*", "*"]
    missing = run(*base, "remove", "--dir", str(home), "hello", "--device", KID)
    assert "for " + KID in assert_one_line_error(missing)
    assert run(*base, "remove", "--dir", str(home), "hello", "--config").exit_code == 0
    assert [row[1] for row in catalogue(run, home)] == ["ta"]
    run(*base, "add", "--dir", str(home), "hello", config(home, sequence=2))
    assert run(*base, "remove", "--dir", str(home), "hello").exit_code == 0
    assert catalogue(run, home) == []


def test_device_release(run: Run, home: Path) -> None:
    """``tam device release`` lifts a quarantine and refuses anything else."""
    url = TAMHome.open(home).database_url
    with TAMStore.open(url) as store:
        store.upsert_device(bytes.fromhex(KID), cose_key=b"\xa0", now=1.0)
        store.set_device_status(bytes.fromhex(KID), "quarantined", "bad", now=1.0)
    released = run("tam", "device", "release", "--dir", str(home), KID)
    assert released.exit_code == 0, released.stderr
    assert "released" in released.stdout
    with TAMStore.open(url) as store:
        device = store.get_device(bytes.fromhex(KID))
        assert device is not None and device.status == "released"
        assert [e.kind for e in store.list_events(device.kid)] == [
            "quarantine-released"
        ]
    again = run("tam", "device", "release", "--dir", str(home), KID)
    assert "not quarantined" in assert_one_line_error(again)
    unknown = run("tam", "device", "release", "--dir", str(home), "cd" * 32)
    assert "no device matches" in assert_one_line_error(unknown)


def test_device_named_by_prefix_becomes_its_kid(run: Run, home: Path) -> None:
    """A kid prefix of a device the TAM has met selects it by its full kid;
    an unknown short id is refused rather than never matching."""
    with TAMStore.open(TAMHome.open(home).database_url) as store:
        store.upsert_device(bytes.fromhex(KID), cose_key=b"\xa0", now=1.0)
    run("tam", "component", "add", "--dir", str(home), "hello", ta(home))
    added = run(
        "tam", "component", "add", "--dir", str(home), "hello", config(home),
        "--device", KID[:16],
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assert f"for {KID} sequence 1 added" in added.stdout
    policy = run(
        "tam", "policy", "add", "--dir", str(home), "hello", "--device", KID[:8]
    )
    assert policy.exit_code == 0, policy.stderr
    assert f"required on {KID}" in policy.stdout
    for short in ("00", "cd" * 8 + "0"):
        refused = run(
            "tam", "component", "add", "--dir", str(home), "hello",
            config(home, sequence=2), "--device", short,
        )  # fmt: skip
        assert "no device has kid prefix" in assert_one_line_error(refused)


def test_unknown_device_needs_an_explicit_form(run: Run, home: Path) -> None:
    """A value that matches no device is refused unless it is ``ueid:HEX`` or
    a full kid; a mistyped 16-digit kid prefix is not taken for a ueid."""
    with TAMStore.open(TAMHome.open(home).database_url) as store:
        store.upsert_device(bytes.fromhex(KID), cose_key=b"\xa0", now=1.0)
    run("tam", "component", "add", "--dir", str(home), "hello", ta(home))
    typo = "ba0be99e763d4efc"
    for command in (
        ("component", "add", "--dir", str(home), "hello", config(home)),
        ("policy", "add", "--dir", str(home), "hello"),
    ):
        line = assert_one_line_error(run("tam", *command, "--device", typo))
        assert (
            f"no device has kid prefix {typo}; to name a device not yet met use "
            "ueid:HEX"
        ) in line
        named = assert_one_line_error(run("tam", *command, "--device", "lab"))
        assert "no device has label or kid lab" in named
    assert catalogue(run, home)[1:] == []
    ueid = "01" + "77" * 32
    added = run(
        "tam", "component", "add", "--dir", str(home), "hello", config(home),
        "--device", f"ueid:{ueid.upper()}",
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assert "has been met yet" in added.stdout
    assert f"for {ueid} sequence 1 added" in added.stdout
    kid = "ef" * 32
    required = run("tam", "policy", "add", "--dir", str(home), "hello", "--device", kid)
    assert required.exit_code == 0, required.stderr
    assert f"required on {kid}" in required.stdout
    again = run("tam", "policy", "add", "--dir", str(home), "hello", "--device", kid)
    assert "already has policy" in assert_one_line_error(again)
    assert "met yet" not in again.stdout
    short = run(
        "tam", "policy", "add", "--dir", str(home), "hello", "--device", "ueid:0102"
    )
    assert "bad ueid '0102'" in assert_one_line_error(short)
    known = run(
        "tam", "policy", "add", "--dir", str(home), "hello", "--device", KID[:16]
    )
    assert f"required on {KID}" in known.stdout and "met yet" not in known.stdout
    removed = run(
        "tam", "component", "remove", "--dir", str(home), "hello",
        "--device", f"ueid:{ueid}",
    )  # fmt: skip
    assert removed.exit_code == 0, removed.stderr


def test_data_for_an_uncatalogued_component_refused(run: Run, home: Path) -> None:
    """Personalization Data needs its component in the catalogue first."""
    refused = run("tam", "component", "add", "--dir", str(home), "hello", config(home))
    assert "add the component first" in assert_one_line_error(refused)


def test_bad_threads_setting_is_one_line(run: Run, home: Path) -> None:
    """A malformed tam.json value is refused with one line, not a traceback."""
    settings = home / "tam.json"
    data = json.loads(settings.read_text())
    data["threads"] = "yes"
    settings.write_text(json.dumps(data))
    result = run("tam", "component", "list", "--dir", str(home))
    assert "threads must be true, false or null" in assert_one_line_error(result)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("read_timeout", "10", "read_timeout must be a number"),
        ("idle_timeout", 0, "idle_timeout must be more than 0, not 0"),
        ("max_body", 1.5, "max_body must be a whole number"),
        ("connect_burst", 0, "connect_burst must be at least 1, not 0"),
        ("connect_rate", True, "connect_rate must be a number"),
        ("port", 70000, "port must be at most 65535, not 70000"),
    ],
)
def test_bad_limit_setting_is_one_line(
    run: Run, home: Path, name: str, value: object, says: str
) -> None:
    """A limit in tam.json of the wrong type or range is named with its value
    when the TAM folder is opened, not when a server first needs it."""
    settings = home / "tam.json"
    data = json.loads(settings.read_text())
    data[name] = value
    settings.write_text(json.dumps(data))
    result = run("tam", "component", "list", "--dir", str(home))
    assert assert_one_line_error(result).endswith(says)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("database", 5, "database must be a string"),
        ("host", ["127.0.0.1"], "host must be a string"),
        ("freshness", None, "freshness must be a string"),
        ("endpoints", ["/tam"], "endpoints must be an object of URL paths"),
        ("endpoints", {"/tam": 1}, "endpoints must be an object of URL paths"),
        ("workers", "2", "workers must be a whole number"),
        ("attestation", "builtin", "attestation must be an object"),
        ("attestation", {"verifier": 1}, "attestation.verifier must be a string"),
        (
            "attestation",
            {"verifier_keys": "v.pem"},
            "attestation.verifier_keys must be a list of files",
        ),
        (
            "attestation",
            {"encrypted_evidence": "yes"},
            "attestation.encrypted_evidence must be true or false",
        ),
        (
            "attestation",
            {"warning_installs": 1},
            "attestation.warning_installs must be true or false",
        ),
        ("colour", "blue", "unknown setting 'colour'"),
    ],
)
def test_wrong_type_setting_is_one_line(
    run: Run, home: Path, name: str, value: object, says: str
) -> None:
    """Every tam.json setting is checked by type when the folder is opened:
    one line naming the file and the setting, never an internal error."""
    settings = home / "tam.json"
    data = json.loads(settings.read_text())
    data[name] = value
    settings.write_text(json.dumps(data))
    result = run("tam", "device", "list", "--dir", str(home))
    line = assert_one_line_error(result)
    assert line.startswith(f"teep: error: cannot read {settings}: {says}")


def test_unknown_attestation_key_refused_on_open(run: Run, home: Path) -> None:
    """An unknown key of the attestation object is refused by any command
    that opens the folder, not only by the server."""
    settings = home / "tam.json"
    data = json.loads(settings.read_text())
    data["attestation"] = {"verifier": "builtin", "verifer_keys": []}
    settings.write_text(json.dumps(data))
    result = run("tam", "device", "list", "--dir", str(home))
    assert "unknown attestation keys ['verifer_keys']" in assert_one_line_error(result)


def test_settings_not_an_object_is_one_line(run: Run, home: Path) -> None:
    """A tam.json that holds no JSON object is named as such."""
    settings = home / "tam.json"
    settings.write_text("[1, 2]")
    result = run("tam", "device", "list", "--dir", str(home))
    assert assert_one_line_error(result).endswith("it must hold a JSON object")


def test_delivery_limit_setting(run: Run, home: Path) -> None:
    """``tam policy delivery`` shows the limit (3 by default) and sets it in
    the database; 0 means never hold back."""
    shown = run("tam", "policy", "delivery", "--dir", str(home))
    assert shown.exit_code == 0, shown.stderr
    assert "after 3 failed deliveries" in shown.stdout
    base = ("tam", "policy", "delivery", "--dir", str(home))
    assert run(*base, "--max-failed-deliveries", "0").exit_code == 0
    assert "never held back" in run(*base).stdout
    assert run(*base, "--max-failed-deliveries", "5").exit_code == 0
    with TAMStore.open(TAMHome.open(home).database_url) as store:
        assert store.max_failed_deliveries() == 5
    refused = run(*base, "--max-failed-deliveries", "-1")
    assert refused.exit_code == 2 and "Traceback" not in refused.stderr
    assert "--max-failed-deliveries" in run(*base, "--help").stdout


def _held(home: Path, *names: str) -> None:
    """A device that failed three times to install each of ``names``."""
    with TAMStore.open(TAMHome.open(home).database_url) as store:
        store.upsert_device(bytes.fromhex(KID), cose_key=b"\xa0", now=1.0)
        versions = [Delivery(n, TA, n.encode().ljust(32, b"\0"), 1) for n in names]
        for at in (1.0, 2.0, 3.0):
            store.count_failed_deliveries(
                bytes.fromhex(KID), versions, err_code=11, err_msg="no trust", now=at
            )


def test_device_show_lists_held_deliveries(run: Run, home: Path) -> None:
    """``tam device show`` lists what is held back, with the last error."""
    _held(home, "hello")
    shown = run("tam", "device", "show", "--dir", str(home), KID[:16])
    assert shown.exit_code == 0, shown.stderr
    assert "held deliveries" in shown.stdout
    (row,) = [line for line in shown.stdout.splitlines() if "no trust" in line]
    assert row.split()[:4] == ["hello", "1", "3", "ERR_MANIFEST_PROCESSING_FAILED:"]


def test_device_retry(run: Run, home: Path) -> None:
    """``tam device retry`` releases one component's held versions or all of
    them, in one line; an unknown device or component is a one-line error."""
    run("tam", "component", "add", "--dir", str(home), "hello", ta(home))
    _held(home, "hello", "world")
    base = ("tam", "device", "retry", "--dir", str(home))
    one = run(*base, KID, "hello")
    assert one.exit_code == 0, one.stderr
    assert one.stdout.splitlines() == [
        f"device {KID[:16]}: hello released (1 version(s)); sent again next session"
    ]
    with TAMStore.open(TAMHome.open(home).database_url) as store:
        assert [f.name for f in store.failed_deliveries(bytes.fromhex(KID))] == [
            "world"
        ]
        events = store.list_events(bytes.fromhex(KID))
        assert [e.kind for e in events] == ["delivery-retry"]
    again = run(*base, KID, "hello")
    assert again.exit_code == 0 and "nothing failed or held back" in again.stdout
    every = run(*base, KID[:16])
    assert every.exit_code == 0 and "every component released" in every.stdout
    unknown = run(*base, KID, "absent")
    assert "no component named 'absent'" in assert_one_line_error(unknown)
    nobody = run(*base, "cd" * 32)
    assert "no device matches" in assert_one_line_error(nobody)
