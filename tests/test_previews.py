"""The preview of a large JPEG is made after indexing, by a low-priority pass (issue 13).

The indexing pass decodes a large JPEG at the grid's 1/8 scale only and leaves its preview
(a 1/4 decode) to ``library.previews``; smaller photos and other formats still get both
sizes from one decode. In-process, on a real SQLite catalog: real worker processes and real
files for what the pass makes; a stand-in pool where what is under test is the pass's own
bookkeeping (what it asks for, when it stops, what it writes).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from lightbox.daemon.catalog import tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.control.events import EventBus
from lightbox.daemon.library import previews as previews_mod
from lightbox.daemon.library.changes import ChangeFeed
from lightbox.daemon.library.indexer import Indexer
from lightbox.daemon.media import Analysis, AnalyzeRequest, analyze, decode, samples
from lightbox.daemon.media.confine import CHANGED, Refused
from lightbox.daemon.media.thumbs import ThumbSpec, thumbnail_path
from lightbox.daemon.workers import (
    PRIORITY_BACKGROUND,
    PRIORITY_BULK,
    PRIORITY_INTERACTIVE,
    WorkerPool,
)

P, F, S = tables.photos, tables.folders, tables.sources

GRID = ThumbSpec("grid", 256)
PREVIEW = ThumbSpec("preview", 1280, min_size=960)  # the daemon's defaults
SPECS = (GRID, PREVIEW)
# Generous: the machine may be loaded (two worker processes decode 5 MP JPEGs here).
DEADLINE = 120.0

# 2400x1800 (4.3 MP): the grid drafts it to 1/8 (300x225), the preview to 1/2 (1200x900).
BIG = (2400, 1800)


def big_jpeg(path: Path, seed: int, orientation: int | None = None) -> Path:
    spec = samples.ExifSpec(orientation=orientation) if orientation else None
    return samples.save_jpeg(samples.make_photo(*BIG, seed=seed), path, spec, quality=85)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


# -- the decision, in the worker ----------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "edge"),
    [
        ((4000, 3000), 256),
        ((4000, 3000), 960),
        ((2400, 1800), 960),
        ((3000, 4000), 256),
        ((1200, 900), 960),
        ((5000, 500), 256),
        ((640, 480), 256),
    ],
)
def test_jpeg_reduction_is_the_decoders_own_choice(
    tmp_path: Path, size: tuple[int, int], edge: int
) -> None:
    path = tmp_path / "p.jpg"
    Image.new("RGB", size, (90, 120, 150)).save(path, "JPEG")
    with Image.open(path) as img:
        decode.draft(img, edge)
        img.load()
        drafted = img.size
    factor = decode.jpeg_reduction(size, edge)
    assert drafted == (-(-size[0] // factor), -(-size[1] // factor))


def test_a_large_jpeg_leaves_its_preview_for_later(tmp_path: Path) -> None:
    path = big_jpeg(tmp_path / "big.jpg", seed=1)
    a = analyze(AnalyzeRequest(str(path), str(tmp_path / "t"), (GRID,), later=(PREVIEW,)))
    assert a.ok, a.error
    assert a.deferred == ["preview"]
    assert set(a.thumbs) == {"grid"}
    assert a.sha256 == sha(path) and (a.width, a.height) == BIG and a.phash is not None
    assert size_of(tmp_path / "t" / a.thumbs["grid"]) == (256, 192)
    assert not thumbnail_path(tmp_path / "t", "preview", sha(path)).exists()


def test_grid_and_hash_of_a_deferred_photo_are_those_of_a_grid_only_analysis(
    tmp_path: Path,
) -> None:
    """Deferring changes nothing but the preview: the same decode as a grid-only call."""
    path = big_jpeg(tmp_path / "big.jpg", seed=2)
    later = analyze(AnalyzeRequest(str(path), str(tmp_path / "a"), (GRID,), later=(PREVIEW,)))
    alone = analyze(AnalyzeRequest(str(path), str(tmp_path / "b"), (GRID,)))
    assert later.phash == alone.phash
    assert (tmp_path / "a" / later.thumbs["grid"]).read_bytes() == (
        tmp_path / "b" / alone.thumbs["grid"]
    ).read_bytes()


@pytest.mark.parametrize("kind", ["small jpeg", "large png", "large jpeg, one scale"])
def test_other_photos_get_both_sizes_from_their_one_decode(tmp_path: Path, kind: str) -> None:
    if kind == "small jpeg":
        path = samples.save_jpeg(samples.make_photo(1600, 1200, seed=3), tmp_path / "s.jpg")
    elif kind == "large png":
        path = tmp_path / "big.png"
        samples.make_photo(*BIG, seed=4).save(path, "PNG", compress_level=1)
    else:
        # A panorama of 8000x600: the grid's and the preview's drafts are the same 1/8
        # decode, so there is nothing to save by waiting.
        path = samples.save_jpeg(samples.make_photo(8000, 600, seed=5), tmp_path / "w.jpg")
    a = analyze(AnalyzeRequest(str(path), str(tmp_path / "t"), (GRID,), later=(PREVIEW,)))
    assert a.ok, a.error
    assert a.deferred == []
    assert set(a.thumbs) == {"grid", "preview"}


# -- the pass, with real workers ------------------------------------------------------------
class RecordingPool(WorkerPool):
    """A real pool that also notes what was asked of it, in order."""

    def __init__(self, processes: int) -> None:
        super().__init__(processes, task_timeout=60.0)
        self.calls: list[tuple[str, int]] = []

    async def submit(self, fn: Any, *args: Any, priority: int = PRIORITY_BULK) -> Any:
        self.calls.append((fn.__name__, priority))
        return await super().submit(fn, *args, priority=priority)


async def add_root(
    db: Database, root: Path, rows: list[dict[str, Any]], kind: str = "local"
) -> int:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    async with db.engine.begin() as conn:
        sid = (
            await conn.execute(
                S.insert().values(
                    kind=kind, name=f"r{root.name}", path=str(root), online=True, created_at=now
                )
            )
        ).inserted_primary_key[0]
        fid = (
            await conn.execute(
                F.insert().values(
                    source_id=sid,
                    parent_id=None,
                    path="",
                    path_hash="0" * 40,
                    name="r",
                    depth=0,
                    first_seen=now,
                )
            )
        ).inserted_primary_key[0]
        await conn.execute(
            P.insert(),
            [{"source_id": sid, "folder_id": fid, "first_seen": now, **row} for row in rows],
        )
    return int(sid)


def pending_row(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {
        "name": path.name,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "inode": st.st_ino,
        "status": "pending",
    }


async def photos(db: Database) -> dict[str, Any]:
    async with db.engine.connect() as conn:
        return {r.name: r for r in (await conn.execute(sa.select(P))).all()}


async def until(check: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not await check():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.05)


class Sources:
    """What the indexer asks of ``library.sources`` here: the roots it runs."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def mine(self) -> list[Any]:
        return [type("Src", (), {"id": i})() for i in self.ids]


@pytest.fixture
async def real(tmp_path: Path) -> AsyncIterator[tuple[Database, Indexer, RecordingPool, Sources]]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/c.db")
    await db.start()
    pool = RecordingPool(2)
    await pool.start()
    sources = Sources()
    idx = Indexer(db, pool, ChangeFeed(EventBus()), tmp_path / "thumbs", SPECS, sources)  # type: ignore[arg-type]
    try:
        yield db, idx, pool, sources
    finally:
        await idx.stop()
        await pool.stop()
        await db.stop()


async def test_indexing_comes_first_and_previews_follow_at_the_lowest_priority(
    real: Any, tmp_path: Path
) -> None:
    db, idx, pool, sources = real
    root = tmp_path / "photos"
    files = [big_jpeg(root / f"b{i}.jpg", seed=10 + i) for i in range(3)]
    files.append(big_jpeg(root / "turned.jpg", seed=20, orientation=6))
    files.append(samples.save_jpeg(samples.make_photo(640, 480, seed=21), root / "small.jpg"))
    sources.ids.append(await add_root(db, root, [pending_row(f) for f in files]))
    await idx.start()

    async def all_previews() -> bool:
        return all(r.thumbs == 3 for r in (await photos(db)).values())

    await until(all_previews, "previews not made")
    rows = await photos(db)
    assert all(r.status == "ok" for r in rows.values())
    thumbs = tmp_path / "thumbs"
    for f in files:
        assert thumbnail_path(thumbs, "grid", sha(f)).is_file()
        assert thumbnail_path(thumbs, "preview", sha(f)).is_file()
    # The preview of a 2400x1800 JPEG is its 1/2 decode, oriented like the grid.
    assert size_of(thumbnail_path(thumbs, "preview", sha(files[0]))) == (1200, 900)
    assert size_of(thumbnail_path(thumbs, "preview", sha(files[3]))) == (900, 1200)
    assert size_of(thumbnail_path(thumbs, "grid", sha(files[3]))) == (192, 256)
    # Every photo was analysed before the first preview was asked for, and the four large
    # ones (not the small one, which got both sizes at once) at the background priority.
    names = [name for name, _ in pool.calls]
    assert names.count("analyze") == 5
    assert names.index("make_thumbnails") > max(i for i, n in enumerate(names) if n == "analyze")
    assert [p for n, p in pool.calls if n == "make_thumbnails"] == [PRIORITY_BACKGROUND] * 4
    assert idx.status()["previews"]["made"] == 4


async def test_a_start_finds_previews_a_stopped_daemon_did_not_make(
    real: Any, tmp_path: Path
) -> None:
    """Indexed rows with the grid only (a daemon stopped before its pass ended) get their
    preview from the sweep at start; rows that have it, and bucket rows, are left alone."""
    db, idx, pool, sources = real
    root = tmp_path / "photos"
    a, b = big_jpeg(root / "a.jpg", seed=30), big_jpeg(root / "b.jpg", seed=31)
    grid_only = {**pending_row(a), "status": "ok", "sha256": sha(a), "thumbs": 1}
    both = {**pending_row(b), "status": "ok", "sha256": sha(b), "thumbs": 3}
    sources.ids.append(await add_root(db, root, [grid_only, both]))
    bucket = {
        "name": "k.jpg",
        "size": 10,
        "mtime_ns": 1,
        "status": "ok",
        "sha256": "cd" * 32,
        "thumbs": 1,
    }
    await add_root(db, tmp_path / "bucket", [bucket], kind="s3")
    await idx.start()

    async def made() -> bool:
        return (await photos(db))["a.jpg"].thumbs == 3

    await until(made, "the sweep did not make the missing preview")
    await until(lambda: _true(not idx.previews.pending()), "the sweep did not end")
    assert thumbnail_path(tmp_path / "thumbs", "preview", sha(a)).is_file()
    assert not thumbnail_path(tmp_path / "thumbs", "preview", sha(b)).exists()
    assert (await photos(db))["k.jpg"].thumbs == 1
    assert [n for n, _ in pool.calls] == ["make_thumbnails"]


async def test_a_photo_opened_before_its_preview_exists_gets_it_on_demand(
    real: Any, tmp_path: Path
) -> None:
    """The photo view asks for the preview (``photos.thumbnail``): made then, at the
    interactive priority, whether or not the pass has come to it."""
    db, idx, pool, sources = real
    root = tmp_path / "photos"
    a = big_jpeg(root / "a.jpg", seed=40, orientation=8)
    row = {**pending_row(a), "status": "ok", "sha256": sha(a), "thumbs": 1}
    sources.ids.append(await add_root(db, root, [row]))

    async def no_pass() -> None:  # the pass has not come to it yet
        return None

    idx.previews.start = no_pass  # type: ignore[method-assign]
    await idx.start()
    pid = (await photos(db))["a.jpg"].id
    made = await asyncio.wait_for(idx.ensure_thumbnail(pid, "preview"), DEADLINE)
    assert made == thumbnail_path(tmp_path / "thumbs", "preview", sha(a))
    assert size_of(made) == (900, 1200)  # oriented
    assert (await photos(db))["a.jpg"].thumbs == 3
    assert pool.calls == [("make_thumbnails", PRIORITY_INTERACTIVE)]


async def _true(value: bool) -> bool:
    return value


# -- the pass's bookkeeping, with a stand-in pool --------------------------------------------
class StandInPool:
    """Answers make_thumbnails as told (one outcome per photo name), and analyses (a large
    JPEG whose preview is left for later) when ``analysing`` lets them through."""

    def __init__(self) -> None:
        self.outcomes: dict[str, BaseException | None] = {}
        self.asked: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.analysing = asyncio.Event()
        self.analysing.set()
        self.analysed: list[str] = []

    def status(self) -> dict[str, Any]:
        return {"processes": 2}

    async def submit(self, fn: Any, *args: Any, priority: int = 0) -> Any:
        if fn.__name__ == "analyze":
            loc = args[0].locator
            await self.analysing.wait()
            self.analysed.append(loc.name)
            return Analysis(
                path=loc.path,
                ok=True,
                size=loc.size,
                mtime_ns=loc.mtime_ns,
                inode=loc.inode,
                sha256="ee" * 32,
                format="jpeg",
                thumbs={"grid": "x"},
                deferred=["preview"],
            )
        loc, _sha256, specs, _thumbs_dir, verify = args
        assert fn.__name__ == "make_thumbnails" and priority == PRIORITY_BACKGROUND
        assert verify is False  # the fingerprint is checked on open, not the hash again
        self.asked.append(loc.name)
        await self.gate.wait()
        outcome = self.outcomes.pop(loc.name, None)  # once: a second try succeeds
        if outcome is not None:
            raise outcome
        return {s.name: "x" for s in specs}


@pytest.fixture
async def standin(
    tmp_path: Path,
) -> AsyncIterator[tuple[Database, Indexer, StandInPool, list[int]]]:
    """Six indexed photos with the grid only; no sweep at start (no roots are this
    daemon's), so what the pass makes is what it is handed."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/c.db")
    await db.start()
    pool = StandInPool()
    idx = Indexer(db, pool, ChangeFeed(EventBus()), tmp_path / "thumbs", SPECS, None)  # type: ignore[arg-type]
    rows = [
        {
            "name": f"p{i}.jpg",
            "size": 10,
            "mtime_ns": 1,
            "inode": i + 1,
            "status": "ok",
            "sha256": f"{i:02x}" * 32,
            "thumbs": 1,
        }
        for i in range(6)
    ]
    sid = await add_root(db, tmp_path, rows)
    async with db.engine.connect() as conn:
        ids = list((await conn.execute(sa.select(P.c.id).order_by(P.c.id))).scalars())
    idx.source_id = sid  # type: ignore[attr-defined]
    try:
        yield db, idx, pool, ids
    finally:
        await idx.stop()
        await db.stop()


async def test_what_cannot_be_made_is_dropped_and_a_changed_file_is_read_again(
    standin: Any,
) -> None:
    db, idx, pool, ids = standin
    pool.outcomes = {
        "p1.jpg": Refused(CHANGED, "not the file that was listed"),
        "p2.jpg": FileNotFoundError(2, "gone"),
        "p3.jpg": decode.MediaError("corrupt", "truncated"),
    }
    await idx.start()
    idx.previews.due(ids)

    async def settled() -> bool:
        return not idx.previews.pending() and len(pool.asked) == 7

    await until(settled, f"pass did not settle: {idx.previews.status()} {pool.asked}")
    rows = await photos(db)
    # p1 was indexed again (its preview left for later once more) and then made.
    assert pool.analysed == ["p1.jpg"] and pool.asked.count("p1.jpg") == 2
    assert {n: (r.thumbs, r.status) for n, r in rows.items()} == {
        "p0.jpg": (3, "ok"),
        "p1.jpg": (3, "ok"),
        "p2.jpg": (1, "ok"),
        "p3.jpg": (1, "ok"),
        "p4.jpg": (3, "ok"),
        "p5.jpg": (3, "ok"),
    }
    assert idx.previews.status()["failed"] == 3 and idx.previews.status()["made"] == 4


async def test_the_pass_yields_to_indexing_and_then_makes_the_new_photos_preview_too(
    standin: Any, tmp_path: Path
) -> None:
    """At most one preview per worker is in flight; once the indexer has work again, no
    other is asked for until it is idle. The photo it indexed meanwhile, its preview left
    for later, is made by the same pass."""
    db, idx, pool, ids = standin
    await idx.start()
    await asyncio.wait_for(idx.wait_quiet(), DEADLINE)
    pool.gate.clear()
    idx.previews.due(ids)
    await until(lambda: _true(len(pool.asked) == 2), "the first two were not asked for")
    assert idx.previews.status()["in_flight"] == 2
    # A new photo to index, held in its analysis: the indexer is busy.
    pool.analysing.clear()
    async with db.engine.begin() as conn:
        fid = await conn.scalar(sa.select(F.c.id))
        await conn.execute(
            P.insert().values(
                source_id=idx.source_id,
                folder_id=fid,
                name="new.jpg",
                size=10,
                mtime_ns=1,
                inode=99,
                status="pending",
                first_seen=dt.datetime(2026, 1, 1),
            )
        )
    idx.wake()
    pool.gate.set()
    await until(lambda: _true(idx.previews.status()["in_flight"] == 0), "still in flight")
    await asyncio.sleep(0.3)
    assert len(pool.asked) == 2, pool.asked
    pool.analysing.set()
    await until(
        lambda: _true(len(pool.asked) == 7 and not idx.previews.pending()),
        f"the pass did not resume: {pool.asked}",
    )
    assert pool.asked[-1] == "new.jpg"
    assert all(r.thumbs == 3 and r.status == "ok" for r in (await photos(db)).values())


async def test_too_many_due_become_one_sweep(standin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    db, idx, pool, ids = standin
    monkeypatch.setattr(previews_mod, "DUE_MAX", 3)
    idx.previews.local_sources = lambda: [idx.source_id]
    await idx.start()
    await asyncio.wait_for(idx.wait_quiet(), DEADLINE)
    await until(lambda: _true(not idx.previews.pending()), "the start's sweep did not end")
    assert pool.asked == [f"p{i}.jpg" for i in range(6)]  # (the start's sweep)
    async with db.engine.begin() as conn:  # as if indexed again, the preview still due
        await conn.execute(P.update().values(thumbs=1))
    pool.asked.clear()
    idx.previews.due(ids[:2])
    assert idx.previews.status()["due"] == 2
    idx.previews.due(ids[2:4])  # 4 > DUE_MAX: from the lowest id up, by a sweep
    assert idx.previews.status()["due"] == 0 and idx.previews.status()["sweeping"]
    await until(lambda: _true(not idx.previews.pending()), "the sweep did not end")
    assert pool.asked == [f"p{i}.jpg" for i in range(6)]
    assert all(r.thumbs == 3 for r in (await photos(db)).values())
