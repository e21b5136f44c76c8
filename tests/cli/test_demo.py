"""``teep demo``: an interrupted set-up is refused, not reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from teep.cli import demo as demo_module

from .conftest import Run, assert_one_line_error


def test_folder_without_ready_marker_is_refused(run: Run, tmp_path: Path) -> None:
    """Everything but the marker (set-up cut short) is one line naming the fix."""
    workdir = tmp_path / "demo"
    (workdir / "tam" / "keys").mkdir(parents=True)
    (workdir / "tam" / "tam.json").write_text("{}")
    (workdir / "device" / "tee").mkdir(parents=True)
    (workdir / "signer.pem").write_text("")
    line = assert_one_line_error(run("demo", "--workdir", str(workdir)))
    assert "holds an incomplete demo" in line
    assert "remove it or choose another --workdir" in line


def test_set_up_ends_with_the_marker(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker is written once set-up returns, and only then."""
    workdir = tmp_path / "demo"
    seen: list[bool] = []

    def setup(folder: Path, tam_dir: Path, dev_dir: Path) -> None:
        folder.mkdir(parents=True)
        seen.append((folder / demo_module.READY).exists())

    def stop(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_module, "_setup", setup)
    monkeypatch.setattr(demo_module, "_free_port", stop)
    run("demo", "--workdir", str(workdir))
    assert seen == [False]
    assert (workdir / demo_module.READY).is_file()
    assert not (workdir / f"{demo_module.READY}.partial").exists()


def test_interrupted_set_up_leaves_no_marker(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set-up stopped part way leaves the folder refused by the next run."""
    workdir = tmp_path / "demo"

    def setup(folder: Path, tam_dir: Path, dev_dir: Path) -> None:
        (tam_dir / "keys").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_module, "_setup", setup)
    run("demo", "--workdir", str(workdir))
    assert not (workdir / demo_module.READY).exists()
    monkeypatch.undo()
    line = assert_one_line_error(run("demo", "--workdir", str(workdir)))
    assert "holds an incomplete demo" in line
