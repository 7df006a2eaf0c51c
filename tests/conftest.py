"""Fixtures shared by every test module; the helpers behind them live in ``lbtest``.

Nothing is mocked: see ``lbtest`` for the real daemon in a subprocess, and for how absent
services are skipped locally but fail under ``LIGHTBOX_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lbtest import CORPUS, MYSQL_URL, POSTGRES_URL, DaemonProcess, need, port_open, short_tmpdir


@pytest.fixture
def data_dir() -> Iterator[Path]:
    d = short_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_daemon() -> Iterator[Any]:
    """Factory: ``make_daemon(config=..., env=...)`` -> a started DaemonProcess, cleaned up."""
    made: list[DaemonProcess] = []
    dirs: list[Path] = []

    def factory(config: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                start: bool = True, data_dir: Path | None = None,
                args: list[str] | None = None) -> DaemonProcess:
        if data_dir is None:
            data_dir = short_tmpdir()
            dirs.append(data_dir)
        d = DaemonProcess(data_dir, config, env, args)
        made.append(d)
        if start:
            d.start()
        return d

    yield factory
    for d in made:
        d.close()
    for p in dirs:
        shutil.rmtree(p, ignore_errors=True)


@pytest.fixture
def daemon(make_daemon: Any) -> DaemonProcess:
    d: DaemonProcess = make_daemon()
    return d


@pytest.fixture(scope="module")
def shared_daemon() -> Iterator[DaemonProcess]:
    """One daemon for a whole module of tests that do not change its state."""
    d = DaemonProcess(short_tmpdir())
    d.start()
    yield d
    d.close()
    shutil.rmtree(d.data_dir, ignore_errors=True)


@pytest.fixture
def postgres_url() -> str:
    need(port_open("127.0.0.1", 5432), "PostgreSQL on 127.0.0.1:5432",
         "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`")
    return POSTGRES_URL


@pytest.fixture
def mysql_url() -> str:
    need(port_open("127.0.0.1", 3306), "MariaDB on 127.0.0.1:3306",
         "start it with `start-stop-daemon --start --oknodo --background "
         "--exec /usr/sbin/mariadbd`")
    return MYSQL_URL


@pytest.fixture
def corpus() -> Path:
    need((CORPUS / "MANIFEST.tsv").is_file(), f"the image corpus at {CORPUS}",
         "check out ../shared beside the project or set LIGHTBOX_CORPUS")
    return CORPUS
