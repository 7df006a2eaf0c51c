"""The exact duplicates' maintained counts (``photos_shas``, migration ``0025_sha_counts``):
on every engine they equal a GROUP BY of the ok photos after any mix of writes (inserts,
deletions, moves, status changes, content changes, rolled-back transactions), the migration
backfills them, and a real daemon keeps them through scans, churn on disk and SIGKILLs in
the middle of a rescan."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from catalog_fixtures import CatalogBuilder, db_url, sha_of, synth
from lbtest import DaemonProcess
from test_kill_consistency import kill, settle
from test_library_scan import consistent, rows

from lightbox.daemon.catalog import dupes, tables
from lightbox.daemon.media.samples import make_photo, save_jpeg

__all__ = ["db_url"]  # the engine-parametrised fixture
P = tables.photos
STATUSES = ("ok", "ok", "ok", "pending", "error", "missing")


async def _check(engine: Any, when: str) -> None:
    async with engine.connect() as conn:
        truth = await dupes.count_by_group(conn)
        held = await dupes.counted(conn)
        groups = (await dupes.load_exact(conn)).groups
    assert held == truth, f"{when}: counts differ: " + str(
        {k: (held.get(k), truth.get(k)) for k in set(held) | set(truth)
         if held.get(k) != truth.get(k)})
    assert groups == sorted(((n, s) for s, n in truth.items() if n >= 2),
                            key=lambda g: (-g[0], g[1])), when


async def test_counts_equal_a_group_by_after_a_random_mix_of_writes(db_url: str) -> None:
    rng = random.Random(13)
    b = await CatalogBuilder.open(db_url)
    try:
        src = await b.source("pics", "/nonexistent/lb-dupes")
        folders = [await b.folder(src, f"f{i}") for i in range(4)]
        pool = 12  # few contents: copies everywhere
        seed = 0

        def row(**over: Any) -> dict[str, Any]:
            nonlocal seed
            seed += 1
            return synth(seed, name=f"p{seed}.jpg", sha256=sha_of(rng.randrange(pool)),
                         status=rng.choice(STATUSES), **over)

        for fid in folders:
            await b.photos(fid, [row() for _ in range(15)])
        await b.finish()
        await _check(b.engine, "after the bulk load")
        next_id = b.next_photo
        for step in range(120):
            rollback = rng.random() < 0.1
            conn = await b.engine.connect()
            tx = await conn.begin()
            try:
                ids = [r[0] for r in await conn.execute(sa.select(P.c.id))]
                for _ in range(rng.randrange(1, 6)):
                    op = rng.choice(("add", "add", "delete", "move", "status", "content",
                                     "repend", "many", "null"))
                    pick = rng.choice(ids) if ids else None
                    if op == "add" or pick is None:
                        new = [dict(row(), id=next_id + i, folder_id=rng.choice(folders),
                                    source_id=src) for i in range(rng.randrange(1, 4))]
                        next_id += len(new)
                        await conn.execute(P.insert(), new)
                        ids += [r["id"] for r in new]
                    elif op == "delete":
                        await conn.execute(P.delete().where(P.c.id == pick))
                        ids.remove(pick)
                    elif op == "move":  # the writer's move: folder, name and status
                        await conn.execute(P.update().where(P.c.id == pick).values(
                            folder_id=rng.choice(folders), name=f"moved{step}-{pick}.jpg",
                            status=rng.choice(("ok", "pending"))))
                    elif op == "status":
                        await conn.execute(P.update().where(P.c.id == pick).values(
                            status=rng.choice(STATUSES)))
                    elif op == "content":  # the indexer's result: ok with a (new) content
                        await conn.execute(P.update().where(P.c.id == pick).values(
                            status="ok", sha256=sha_of(rng.randrange(pool))))
                    elif op == "repend":  # a rescan saw the file change
                        await conn.execute(P.update().where(P.c.id == pick).values(
                            status="pending", size=rng.randrange(1, 10**6)))
                    elif op == "null":
                        await conn.execute(P.update().where(P.c.id == pick).values(
                            sha256=None))
                    else:  # one statement over many rows (mark_missing's shape)
                        some = rng.sample(ids, min(len(ids), rng.randrange(2, 12)))
                        await conn.execute(P.update().where(P.c.id.in_(some)).values(
                            status=rng.choice(("missing", "ok"))))
                if rollback:
                    await tx.rollback()
                else:
                    await tx.commit()
            finally:
                await conn.close()
            await _check(b.engine, f"step {step}{' (rolled back)' if rollback else ''}")
        # A whole source forgotten (writer.delete_source_rows' shape).
        async with b.engine.begin() as conn:
            await conn.execute(P.delete().where(P.c.source_id == src))
        await _check(b.engine, "after deleting the source's photos")
        async with b.engine.connect() as conn:
            assert await dupes.counted(conn) == {}
    finally:
        await b.close()


async def test_the_migration_backfills_the_counts(db_url: str) -> None:
    from alembic.script import ScriptDirectory

    from lightbox.daemon.catalog.database import alembic_config

    before = ScriptDirectory.from_config(alembic_config()).get_revision(
        "0025_sha_counts").down_revision
    b = await CatalogBuilder.open(db_url, revision=str(before))
    try:
        src = await b.source("pics", "/nonexistent/lb-dupes")
        fid = await b.folder(src, "f")
        await b.photos(fid, [
            *(synth(i, name=f"a{i}.jpg", sha256=sha_of(i % 7)) for i in range(40)),
            synth(100, name="gone.jpg", sha256=sha_of(1), status="missing"),
            synth(101, name="failed.jpg", sha256=sha_of(2), status="error"),
            synth(102, name="alone.jpg", sha256=sha_of(99)),
            synth(103, name="unread.jpg", sha256=None, status="pending"),
        ])
        await b.finish()
        await b.upgrade()
        await _check(b.engine, "after the upgrade")
        async with b.engine.connect() as conn:
            held = await dupes.counted(conn)
            groups = (await dupes.load_exact(conn)).groups
        assert held[sha_of(99)] == 1 and held[sha_of(1)] == 6  # missing ones not counted
        assert len(groups) == 7
    finally:
        await b.close()


# -- a real daemon: scans, churn on disk, SIGKILL in a rescan ---------------------------------
CONFIG = {"library": {"watch": False, "reconcile_interval": 0},
          "workers": {"processes": 1}}


class Files:
    """Photos on disk with many byte-identical copies."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root, self.rng, self.seed = root, rng, 0

    def new(self, path: Path) -> None:
        self.seed += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        save_jpeg(make_photo(40 + self.seed % 13, 30, seed=self.seed), path)

    def all(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*.jpg") if p.is_file())

    def churn(self) -> None:
        """Some of everything: copies (new duplicates), deletions, moves, files rewritten
        with new content and with another file's content."""
        files = self.all()
        self.rng.shuffle(files)
        for i, p in enumerate(files[:3]):
            shutil.copyfile(p, self.root / f"d{self.rng.randrange(3)}" /
                            f"copy{self.seed}-{i}.jpg")
        for p in files[3:5]:
            p.unlink()
        for p in files[5:7]:
            dest = self.root / f"d{self.rng.randrange(3)}" / f"moved{self.seed}-{p.name}"
            if not dest.exists():
                p.rename(dest)
        if len(files) > 8:
            self.new(files[7])  # new content in place
            shutil.copyfile(files[8], files[7].with_name(f"same{self.seed}.jpg"))
            files[8].write_bytes(files[7].read_bytes())  # another file's content
        self.new(self.root / f"d{self.rng.randrange(3)}" / f"n{self.seed}.jpg")


def daemon_check(d: DaemonProcess, when: str) -> None:
    truth = {r[0]: r[1] for r in rows(
        d, "SELECT sha256, count(*) FROM photos WHERE status = 'ok' AND sha256 IS NOT NULL "
           "GROUP BY sha256")}
    held = {r[0]: r[1] for r in rows(d, "SELECT sha256, n FROM photos_shas")}
    assert held == truth, f"{when}: " + str(
        {k: (held.get(k), truth.get(k)) for k in set(held) | set(truth)
         if held.get(k) != truth.get(k)})
    want = {s: n for s, n in truth.items() if n >= 2}
    got: dict[str, int] = {}
    cursor = None
    while True:
        page = d.call("photos.duplicates", {"kind": "exact", "limit": 50, "cursor": cursor},
                      timeout=60)
        got.update((g["key"], g["count"]) for g in page["groups"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert got == want, when
    consistent(d)


def test_a_daemon_keeps_the_counts_through_churn_and_kills(make_daemon: Any,
                                                           tmp_path: Path) -> None:
    rng = random.Random(5)
    root = tmp_path / "photos"
    files = Files(root, rng)
    for i in range(18):
        files.new(root / f"d{i % 3}" / f"p{i}.jpg")
    for p in files.all()[:6]:
        shutil.copyfile(p, p.with_name("c-" + p.name))
    d: DaemonProcess = make_daemon(config=CONFIG)
    d.call("roots.add", {"path": str(root)})
    settle_running(d)
    daemon_check(d, "after the first index")
    assert rows(d, "SELECT count(*) FROM photos_shas WHERE n >= 2")[0][0] >= 6
    for rnd in range(3):  # churn, then a rescan killed part way, restart, settle
        files.churn()
        d.call("library.scan", {"full": rnd == 1})
        time.sleep(rng.uniform(0.05, 0.5))
        kill(d)
        settle(d)
        daemon_check(d, f"after kill {rnd + 1}")
    files.churn()
    job = d.call("library.scan", {})["job"]
    assert d.call("jobs.wait", {"id": job, "timeout": 120}, timeout=130)["state"] == \
        "succeeded"
    settle_pending(d)
    daemon_check(d, "after a clean rescan")


def settle_running(d: DaemonProcess) -> None:
    """Scans of a running daemon done, nothing pending."""
    for _ in range(2):
        job = d.call("library.scan", {})["job"]
        done = d.call("jobs.wait", {"id": job, "timeout": 120}, timeout=130)
        assert done["state"] == "succeeded", done
    settle_pending(d)


def settle_pending(d: DaemonProcess) -> None:
    deadline = time.monotonic() + 90
    while rows(d, "SELECT count(*) FROM photos WHERE status = 'pending'")[0][0]:
        assert time.monotonic() < deadline, "photos left pending:\n" + d.log()[-3000:]
        time.sleep(0.2)
