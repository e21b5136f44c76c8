"""``teep tam init``: a failing init leaves the folder as it was; and
``teep tam verifier``'s checks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from teep.keys import PrivateKey

from .conftest import Run, assert_one_line_error


def listing(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with a file's content (None for a folder)."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
    }


def assert_init_works(run: Run, folder: Path) -> None:
    """A plain init of ``folder`` succeeds and creates the TAM."""
    done = run("tam", "init", "--dir", str(folder))
    assert done.exit_code == 0, done.stderr
    assert (folder / "tam.json").is_file()
    assert (folder / "keys" / "tam-p256.pem").is_file()
    assert (folder / "keys" / "tam-attestation.pem").is_file()


@pytest.mark.parametrize("exists", [False, True], ids=["new-folder", "empty-folder"])
def test_unsupported_database_leaves_nothing(
    run: Run, tmp_path: Path, exists: bool
) -> None:
    """An unsupported URL writes no key and no tam.json; a corrected init works."""
    folder = tmp_path / "d1"
    if exists:
        folder.mkdir()
    line = assert_one_line_error(
        run("tam", "init", "--dir", str(folder), "--database", "bogus://x")
    )
    assert "unsupported database 'bogus'" in line
    assert folder.exists() == exists
    assert listing(folder) == {}
    assert_init_works(run, folder)


def test_missing_postgres_driver_leaves_nothing(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL URL without its driver fails before anything is written."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    folder = tmp_path / "d1"
    url = "postgresql://teep@127.0.0.1:1/teep"
    line = assert_one_line_error(
        run("tam", "init", "--dir", str(folder), "--database", url)
    )
    assert "psycopg" in line
    assert not folder.exists()
    monkeypatch.undo()
    assert_init_works(run, folder)


def test_garbage_database_file_is_kept(run: Run, tmp_path: Path) -> None:
    """A tam.db that is not a database stays as it was, alone in its folder."""
    folder = tmp_path / "d1"
    folder.mkdir()
    (folder / "tam.db").write_bytes(b"not a database, but the user's file" * 100)
    (folder / "notes.txt").write_text("mine")
    before = listing(folder)
    line = assert_one_line_error(run("tam", "init", "--dir", str(folder)))
    assert "file is not a database" in line
    assert listing(folder) == before
    (folder / "tam.db").unlink()
    assert_init_works(run, folder)
    assert (folder / "notes.txt").read_text() == "mine"


def test_keys_written_before_a_failure_are_removed(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the keys were written removes them and the database."""
    from teep.tam import home as home_module

    folder = tmp_path / "d1"
    folder.mkdir()
    (folder / "keys").mkdir()
    (folder / "keys" / "other.pem").write_text("kept")
    real = home_module.PrivateKey.generate
    calls: list[object] = []

    def generate(*args: object, **kwargs: object) -> object:
        calls.append(args)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(home_module.PrivateKey, "generate", generate)
    assert run("tam", "init", "--dir", str(folder)).exit_code != 0
    assert listing(folder) == {"keys": None, "keys/other.pem": b"kept"}
    monkeypatch.undo()
    assert_init_works(run, folder)


def test_unreadable_settings_name_the_reason(run: Run, tmp_path: Path) -> None:
    """A tam.json that cannot be read gives the plain reason, no errno."""
    folder = tmp_path / "d1"
    (folder / "tam.json").mkdir(parents=True)
    line = assert_one_line_error(run("tam", "component", "list", "--dir", str(folder)))
    assert line.endswith(f"cannot read {folder / 'tam.json'}: Is a directory")


def test_verifier_options(run: Run, tmp_path: Path) -> None:
    """--key is a FILE; --mode with builtin and a malformed URL are usage
    errors that change nothing."""
    folder = tmp_path / "tam"
    assert_init_works(run, folder)
    shown = run("tam", "verifier", "--help").stdout
    assert "--key FILE" in shown
    before = (folder / "tam.json").read_text()
    line = assert_one_line_error(
        run("tam", "verifier", "--dir", str(folder), "builtin", "--mode", "veraison"),
        code=2,
    )
    assert "--mode is for a remote Verifier, not with builtin" in line
    bad = run("tam", "verifier", "--dir", str(folder), "http://127.0.0.1:99999/v")
    assert "invalid port" in assert_one_line_error(bad, code=2)
    assert (folder / "tam.json").read_text() == before
    done = run("tam", "verifier", "--dir", str(folder), "builtin")
    assert done.exit_code == 0, done.stderr
    settings = json.loads((folder / "tam.json").read_text())["attestation"]
    assert settings["verifier"] == "builtin"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_database_refused(run: Run, tmp_path: Path, url: str) -> None:
    """An in-memory database would lose every change: refused, nothing written."""
    folder = tmp_path / "d1"
    line = assert_one_line_error(
        run("tam", "init", "--dir", str(folder), "--database", url)
    )
    assert "in-memory" in line
    assert listing(folder) == {}


def test_verifier_bad_key_names_the_argument(run: Run, tmp_path: Path) -> None:
    """A --key file that is no key, or missing, is named as the argument it
    is, not as tam.json's; tam.json is left as it was."""
    folder = tmp_path / "tam"
    assert_init_works(run, folder)
    before = (folder / "tam.json").read_text()
    wat = tmp_path / "hello.wat"
    wat.write_text("(module)\n")
    for key, why in [
        (wat, "not a PEM, DER or COSE_Key public key"),
        (tmp_path / "missing.pem", "No such file or directory"),
    ]:
        result = run(
            "tam", "verifier", "--dir", str(folder), "http://127.0.0.1:8444/v",
            "--key", str(key),
        )  # fmt: skip
        line = assert_one_line_error(result)
        assert line == f"teep: error: cannot read --key {key}: {why}"
    assert (folder / "tam.json").read_text() == before


def test_verifier_omitted_mode_is_kept(run: Run, tmp_path: Path) -> None:
    """Like the other options, a --mode left out keeps the current one."""
    folder = tmp_path / "tam"
    assert_init_works(run, folder)
    key = folder / "verifier.pub.pem"
    key.write_bytes(PrivateKey.generate().public.to_pem())
    where = ("tam", "verifier", "--dir", str(folder))
    done = run(
        *where, "http://127.0.0.1:8444/v", "--key", str(key), "--mode", "veraison"
    )
    assert done.exit_code == 0, done.stderr
    moved = run(*where, "http://127.0.0.1:8555/v")
    assert moved.exit_code == 0, moved.stderr
    settings = json.loads((folder / "tam.json").read_text())["attestation"]
    assert settings["verifier"] == "http://127.0.0.1:8555/v"
    assert settings["verifier_mode"] == "veraison"
    assert settings["verifier_keys"] == [str(key.resolve())]
    back = run(*where, "http://127.0.0.1:8555/v", "--mode", "teep")
    assert back.exit_code == 0, back.stderr
    settings = json.loads((folder / "tam.json").read_text())["attestation"]
    assert settings["verifier_mode"] == "teep"
