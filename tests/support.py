"""Helpers several test folders share: a served TAM process, PostgreSQL schemas."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url

from teep.tam.store import normalise_url


def teep(*args: str) -> list[str]:
    """The command line running ``teep`` with this interpreter."""
    return [sys.executable, "-m", "teep", *args]


class ServedTAM:
    """A ``teep tam serve --port 0`` child process, read until it listens."""

    def __init__(
        self, folder: Path, *args: str, env: Mapping[str, str] | None = None
    ) -> None:
        self.lines: list[str] = []
        environment = dict(env or {**os.environ, "PYTHONUNBUFFERED": "1"})
        self.process = subprocess.Popen(
            teep("tam", "serve", "--dir", str(folder), "--port", "0", *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
        )
        self.url = self._listening()

    def _listening(self) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if "listening on" in line and line.rstrip().endswith("/tam"):
                # Keep reading so the child never blocks on a full pipe.
                threading.Thread(target=self._drain, daemon=True).start()
                return line.split("listening on", 1)[1].strip()
        self.stop()
        pytest.fail("teep tam serve did not start:\n" + "".join(self.lines))

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """End the process (if it still runs) and reap it."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def postgres_schema(base: str, prefix: str) -> Iterator[str]:
    """Create a uniquely named schema, yield a URL that uses it, drop it."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(base))
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
