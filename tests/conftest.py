"""Fixtures shared by every test module; the helpers behind them live in ``lbtest``.

Nothing is mocked: see ``lbtest`` for the real daemon in a subprocess, and for how absent
services are skipped locally but fail under ``LIGHTBOX_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lbtest import (
    CORPUS,
    MADE_DIRS,
    MYSQL_URL,
    POSTGRES_URL,
    DaemonProcess,
    need,
    port_open,
    short_tmpdir,
)
from s3env import MotoServer, S3Env, moto_server_binary, s3_env

# The TUI tests share fixed paths under /tmp (they appear in snapshots) and take a lock on
# them for the life of their process: under pytest-xdist they must all run in one worker.
_FIXED_PATH_MODULES = ("test_tui_",)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A passing session leaves no data dirs of its daemons under /tmp (each test process,
    xdist workers included, removes its own); a failing one keeps them for their logs."""
    if exitstatus == 0:
        for path in MADE_DIRS:
            shutil.rmtree(path, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups in the worker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup`` (the README's test command), a module's tests
    stay together in one worker (module-scoped daemons are made once, and tests that follow
    each other in a module keep their order), and every TUI module in the same one."""
    for item in items:
        module = item.path.stem
        group = "tui" if module.startswith(_FIXED_PATH_MODULES) else module
        item.add_marker(pytest.mark.xdist_group(group))


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


async def _admin_exec(url: str, statement: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


@pytest.fixture
async def pg_scratch_url(postgres_url: str) -> Any:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import uuid

    name = f"lbtest_{uuid.uuid4().hex[:10]}"
    await _admin_exec(postgres_url, f"CREATE DATABASE {name}")
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    await _admin_exec(postgres_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def mysql_scratch_url(mysql_url: str) -> Any:
    """A fresh, empty MariaDB database for one test, dropped afterwards."""
    import uuid

    name = f"lbtest_{uuid.uuid4().hex[:10]}"
    await _admin_exec(mysql_url, f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    yield mysql_url.rsplit("/", 1)[0] + f"/{name}"
    await _mysql_drop(mysql_url, name)


async def _mysql_drop(url: str, name: str) -> None:
    """DROP DATABASE waits for every metadata lock on it: a connection a daemon still holds
    (this fixture is torn down before ``make_daemon`` when a test names it later) would
    hold the drop until the test's timeout. End those connections first, as PostgreSQL's
    ``WITH (FORCE)`` does."""
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            ids = (await conn.execute(sa.text(
                "SELECT id FROM information_schema.processlist WHERE db = :db "
                "AND id != CONNECTION_ID()"), {"db": name})).scalars().all()
            for conn_id in ids:
                with contextlib.suppress(Exception):     # it may have ended meanwhile
                    await conn.execute(sa.text(f"KILL {int(conn_id)}"))
            await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    finally:
        await engine.dispose()


def _moto(max_keys: int | None) -> Iterator[MotoServer]:
    need(moto_server_binary() is not None, "moto_server (the S3 endpoint the tests use)",
         "install the dev extra: make test (pip install -e '.[dev]')")
    server = MotoServer(max_keys=max_keys).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto S3 server for the whole run (tests use their own buckets)."""
    yield from _moto(None)


@pytest.fixture(scope="session")
def moto_small_pages() -> Iterator[MotoServer]:
    """A moto server that lists 7 keys a page unless asked otherwise (many pages, few objects)."""
    yield from _moto(7)


@pytest.fixture
def s3(moto_server: MotoServer) -> Iterator[S3Env]:
    """A fault-injecting proxy in front of moto, and buckets removed after the test."""
    with s3_env(moto_server) as env:
        yield env


@pytest.fixture
def s3_small_pages(moto_small_pages: MotoServer) -> Iterator[S3Env]:
    with s3_env(moto_small_pages) as env:
        yield env
