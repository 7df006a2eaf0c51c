"""A whole catalog read in one thread hop, for SQLite (``Database.read``).

Through aiosqlite every statement is four trips to its connection's thread and back
(cursor, execute, fetch, close), and a ``folders.list`` page is three statements plus the
connection's reset: 13 thread wake-ups a request. On a virtual machine with two vCPUs a
wake-up of an idle vCPU is a tenth of a millisecond or more, and they made most of the
difference between the page in-process and over the socket (issue 13).

Here the query function itself, the same ``async def`` the daemon awaits elsewhere, runs in
a thread on a plain (synchronous) SQLAlchemy connection, wrapped so that its ``await
conn.execute(...)`` completes at once: nothing in it ever suspends, so the coroutine is
driven to its end by one ``send``. A function that awaited anything else would suspend;
that is refused loudly rather than half run.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")
ReadFunction = Callable[[AsyncConnection], Coroutine[Any, Any, T]]


class InlineConnection:
    """The part of ``AsyncConnection`` that the catalog's read functions use, over a
    synchronous connection: each awaitable completes without suspending."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.engine = EngineView(conn.engine)

    @property
    def dialect(self) -> sa.Dialect:
        return self._conn.dialect

    async def execute(self, statement: Any, parameters: Any = None, **kw: Any) -> Any:
        return self._conn.execute(statement, parameters, **kw)

    async def scalar(self, statement: Any, parameters: Any = None, **kw: Any) -> Any:
        return self._conn.scalar(statement, parameters, **kw)


class EngineView:
    """What the read functions ask of ``conn.engine``: the engine their caches are keyed on
    (``sync_engine``, as on an ``AsyncEngine``) and its URL."""

    def __init__(self, engine: Engine) -> None:
        self.sync_engine = engine
        self.url = engine.url
        self.dialect = engine.dialect


class SuspendedRead(RuntimeError):
    """A read function awaited something other than its connection."""


def run(engine: Engine, fn: ReadFunction[T]) -> T:
    """``fn(conn)`` to its end on a connection of ``engine``, in the calling thread."""
    with engine.connect() as conn:
        coro = fn(cast(AsyncConnection, InlineConnection(conn)))
        try:
            coro.send(None)
        except StopIteration as done:
            return cast(T, done.value)
        coro.close()
        raise SuspendedRead(f"{getattr(fn, '__qualname__', fn)} awaited something other "
                            "than the catalog connection")


def read_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """A connection that can only read (``query_only``), waiting as the daemon's do."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.execute("PRAGMA query_only=ON")
    cur.close()


def make_engine(url: sa.URL) -> Engine:
    """A small synchronous pool on the SQLite file of ``url`` (its async driver's URL)."""
    engine = sa.create_engine(url.set(drivername="sqlite"), pool_size=2, max_overflow=4,
                              connect_args={"timeout": 30, "check_same_thread": False})
    sa.event.listen(engine, "connect", read_pragmas)
    return engine
