"""A synthetic catalog: sources, folder trees and photos inserted straight into the tables.

Tests of the read side (and ``benchmarks/catalog_queries.py``) need catalogs of a known shape
and size — a 2,500-photo folder, a million photos, crafted duplicates — without scanning a
million files. ``CatalogBuilder`` migrates a real database with ``Database(url).start()`` and
bulk-inserts rows with SQLAlchemy Core (executemany), assigning ids itself so a test knows
them without reading them back. Folder counters (``photo_count``, ``folder_count``,
``total_count``, ``bytes``) are computed from what was inserted, as the scanner keeps them.

Usage::

    b = await CatalogBuilder.open(url)
    src = await b.source("pics", "/photos")
    trip = await b.folder(src, "2008/trip")
    ids = await b.photos(trip, [synth(i) for i in range(100)])
    await b.finish()           # counters; PostgreSQL sequences past the explicit ids
    await b.close()
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from lightbox.daemon.catalog import paths, tables
from lightbox.daemon.catalog.database import Database

P, F, S = tables.photos, tables.folders, tables.sources
EPOCH = dt.datetime(2010, 1, 1)
NOW = dt.datetime(2026, 1, 1, 12, 0, 0)
CAMERAS = (("Canon", "Canon EOS 5D Mark II"), ("NIKON CORPORATION", "NIKON D750"),
           ("Apple", "iPhone 12"), ("FUJIFILM", "X-T3"), ("SONY", "ILCE-7M3"),
           ("samsung", "SM-G991B"))


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh catalog URL on each engine (import this fixture into a test module)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/catalog.db"
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_scratch_url"))
    return str(request.getfixturevalue("mysql_scratch_url"))


def sha_of(n: int) -> str:
    return hashlib.sha256(f"content-{n}".encode()).hexdigest()


def signed64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def synth(i: int, rng: random.Random | None = None, **over: Any) -> dict[str, Any]:
    """A complete, plausible photo row (without id/folder/source) for number ``i``."""
    r = rng or random.Random(i)
    make, model = CAMERAS[i % len(CAMERAS)]
    taken = EPOCH + dt.timedelta(seconds=r.randrange(0, 15 * 365 * 86400))
    row: dict[str, Any] = {
        "name": f"IMG_{i:07d}.JPG",
        "size": 1_000_000 + r.randrange(0, 9_000_000),
        "mtime_ns": int((taken - dt.datetime(1970, 1, 1)).total_seconds()) * 1_000_000_000
        + 123_000_000,
        "inode": None,
        "status": "ok",
        "error": None,
        "sha256": sha_of(i),
        "mime": "image/jpeg",
        "format": "JPEG",
        "width": 6000,
        "height": 4000,
        "orientation": 1,
        "taken_at": taken,
        "taken_offset": 60,
        "make": make,
        "model": model,
        "lens": None,
        "exposure_time": 1 / 250,
        "f_number": 5.6,
        "iso": 200,
        "focal_length": 35.0,
        "gps_lat": None,
        "gps_lon": None,
        "gps_alt": None,
        "phash": signed64(r.getrandbits(64)),
        "thumbs": 3,
        "first_seen": NOW,
        "indexed_at": NOW,
        "missing_since": None,
    }
    row.update(over)
    return row


@dataclass
class _Folder:
    id: int
    source_id: int
    parent_id: int | None
    path: str
    photos: int = 0  # direct, not missing
    bytes: int = 0
    children: list[int] = field(default_factory=list)


class CatalogBuilder:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.next_source = 1
        self.next_folder = 1
        self.next_photo = 1
        self.folders: dict[int, _Folder] = {}
        self.by_path: dict[tuple[int, str], int] = {}
        self.source_paths: dict[int, str] = {}
        # Columns of the photos table when the catalog stops at an older revision (a bulk
        # load before later migrations add columns that ``tables.photos`` already has).
        self.photo_columns: list[str] | None = None

    @classmethod
    async def open(cls, url: str, revision: str | None = None) -> CatalogBuilder:
        """A builder on a migrated catalog; ``revision`` stops the migrations there (bulk
        loads before the text index, whose migration then indexes every row at once)."""
        db = Database(url)
        if revision is None:
            await db.start()
        else:
            from lightbox.daemon.catalog.database import make_engine

            db._engine = make_engine(url)
            await db.migrate(revision)
            async with db.engine.connect() as conn:
                names = await conn.run_sync(lambda c: [
                    col["name"] for col in sa.inspect(c).get_columns("photos")])
            builder = cls(db)
            builder.photo_columns = names
            return builder
        return cls(db)

    async def upgrade(self) -> None:
        """Migrate to the head revision (after ``open(url, revision)``)."""
        await self.db.migrate("head")
        self.photo_columns = None

    async def close(self) -> None:
        await self.db.stop()

    @property
    def engine(self) -> Any:
        return self.db.engine

    async def source(self, name: str, path: str, online: bool = True,
                     kind: str = "local") -> int:
        """A source and its top folder; returns the source id."""
        sid = self.next_source
        self.next_source += 1
        async with self.engine.begin() as conn:
            await conn.execute(S.insert().values(
                id=sid, kind=kind, name=name, path=path, online=online, created_at=NOW))
        self.source_paths[sid] = path
        await self._folders(sid, [""])
        return sid

    def top(self, source_id: int) -> int:
        return self.by_path[(source_id, "")]

    async def folder(self, source_id: int, rel: str) -> int:
        """The folder at ``rel`` (and its missing ancestors); returns its id."""
        return (await self.folders_at(source_id, [rel]))[0]

    async def folders_at(self, source_id: int, rels: Sequence[str]) -> list[int]:
        await self._folders(source_id, rels)
        return [self.by_path[(source_id, r)] for r in rels]

    async def _folders(self, source_id: int, rels: Iterable[str],
                       missing: bool = False) -> None:
        rows: list[dict[str, Any]] = []
        for rel in rels:
            for p in paths.ancestors(rel):
                if (source_id, p) in self.by_path:
                    continue
                fid = self.next_folder
                self.next_folder += 1
                parent_rel = paths.parent(p)
                parent = None if parent_rel is None else self.by_path[(source_id, parent_rel)]
                self.by_path[(source_id, p)] = fid
                self.folders[fid] = _Folder(fid, source_id, parent, p)
                if parent is not None:
                    self.folders[parent].children.append(fid)
                rows.append({
                    "id": fid, "source_id": source_id, "parent_id": parent, "path": p,
                    "path_hash": paths.path_hash(p),
                    "name": paths.basename(p) if p else "", "depth": paths.depth(p),
                    "first_seen": NOW,
                    "missing_since": NOW if missing and p == rel else None,
                })
        await self._insert(F, rows)

    async def photos(self, folder_id: int, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert photo rows (from ``synth``) into a folder; returns their ids in order."""
        f = self.folders[folder_id]
        out: list[dict[str, Any]] = []
        ids: list[int] = []
        for row in rows:
            pid = self.next_photo
            self.next_photo += 1
            ids.append(pid)
            out.append({**row, "id": pid, "folder_id": folder_id, "source_id": f.source_id})
            if row.get("status", "ok") != "missing":
                f.photos += 1
                f.bytes += row["size"]
        await self._insert(P, out)
        return ids

    async def _insert(self, table: sa.Table, rows: list[dict[str, Any]],
                      chunk: int = 5000) -> None:
        if not rows:
            return
        target: Any = table
        if table is P and self.photo_columns is not None:
            # Only the columns this revision has, and no Python-side defaults for the rest.
            have = set(self.photo_columns)
            target = sa.table("photos", *(sa.column(c) for c in rows[0] if c in have))
            rows = [{k: v for k, v in r.items() if k in have} for r in rows]
        async with self.engine.begin() as conn:
            for start in range(0, len(rows), chunk):
                await conn.execute(target.insert(), rows[start:start + chunk])

    async def finish(self) -> None:
        """Folder counters from what was inserted; sequences past the explicit ids."""
        totals: dict[int, int] = {}

        def total(fid: int) -> int:
            if fid not in totals:
                f = self.folders[fid]
                totals[fid] = f.photos + sum(total(c) for c in f.children)
            return totals[fid]

        for fid in sorted(self.folders, reverse=True):  # children before parents
            total(fid)
        updates = [{"fid": f.id, "pc": f.photos, "fc": len(f.children), "tc": totals[f.id],
                    "by": f.bytes} for f in self.folders.values()]
        async with self.engine.begin() as conn:
            for start in range(0, len(updates), 5000):
                await conn.execute(
                    F.update().where(F.c.id == sa.bindparam("fid")).values(
                        photo_count=sa.bindparam("pc"), folder_count=sa.bindparam("fc"),
                        total_count=sa.bindparam("tc"), bytes=sa.bindparam("by")),
                    updates[start:start + 5000])
            if conn.dialect.name == "postgresql":
                for table in ("sources", "folders", "photos"):
                    await conn.execute(sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT coalesce(max(id), 1) FROM {table}))"))


async def standard(url: str, root: str = "/nonexistent/lb-photos") -> tuple[CatalogBuilder,
                                                                            dict[str, Any]]:
    """The catalog most query tests share; returns the builder and what is where.

    - source "main" at ``root``: ``2008/trip`` (12 photos: 3 undated, 2 with equal dates,
      1 error, 1 pending, 1 missing, 2 with GPS, names with ``%``/``_``/upper case),
      ``2008/trip/day 2`` (3 photos), ``2008/Trip_b`` (2 photos), ``2009`` (1 photo),
      ``big`` (empty: see ``big_folder``); traps for subtree filters, one photo each:
      ``2008/TripXb/sub`` ('_' is a LIKE wildcard) and ``2008/TRIP/deep`` (case);
    - source "other" at ``root + "-other"``: ``x`` with 2 photos, one a byte-identical copy of
      a photo in ``2008/trip``.
    """
    b = await CatalogBuilder.open(url)
    main = await b.source("main", root)
    other = await b.source("other", root + "-other", online=False)
    trip, day2, trip_b, y2009, big = await b.folders_at(
        main, ["2008/trip", "2008/trip/day 2", "2008/Trip_b", "2009", "big"])
    x = await b.folder(other, "x")
    # LIKE traps for subtree filters: '_' is a wildcard, MariaDB compares case-insensitively.
    trap_x, trap_case = await b.folders_at(main, ["2008/TripXb/sub", "2008/TRIP/deep"])
    t = dt.datetime(2008, 5, 30, 15, 56, 1)
    trip_rows = [
        synth(1, name="a.jpg", taken_at=t, size=500),
        synth(2, name="B.jpg", taken_at=t, size=700, make="Canon",  # same taken_at as a.jpg
              model="Canon EOS 5D Mark II"),
        synth(3, name="c 100%.jpg", taken_at=t + dt.timedelta(hours=1), size=300),
        synth(4, name="d_1.jpg", taken_at=None, size=900),
        synth(5, name="e.jpg", taken_at=None, size=100),
        synth(6, name="f.jpg", taken_at=dt.datetime(2008, 5, 31, 23, 59, 59), size=800,
              gps_lat=48.85, gps_lon=2.35, gps_alt=35.0),
        synth(7, name="g.jpg", taken_at=dt.datetime(2008, 6, 1, 0, 0, 0), size=800,
              gps_lat=-33.9, gps_lon=151.2, make="Apple", model="iPhone 12"),
        synth(8, name="h-error.jpg", status="error", error="truncated JPEG", sha256=None,
              phash=None, taken_at=None, width=None, height=None, thumbs=0),
        synth(9, name="i-pending.jpg", status="pending", sha256=None, phash=None,
              taken_at=None, thumbs=0, indexed_at=None),
        synth(10, name="j-missing.jpg", status="missing", missing_since=NOW),
        synth(11, name="k.jpg", taken_at=None, size=100),
        synth(12, name="l.jpg", taken_at=dt.datetime(2008, 5, 30, 0, 0, 0), size=100),
    ]
    ids = {"trip": await b.photos(trip, trip_rows)}
    ids["day2"] = await b.photos(day2, [synth(20 + i, name=f"day2-{i}.jpg") for i in range(3)])
    ids["trip_b"] = await b.photos(trip_b, [synth(30 + i, name=f"tb-{i}.jpg")
                                            for i in range(2)])
    ids["2009"] = await b.photos(y2009, [synth(40, name="only.jpg",
                                               taken_at=dt.datetime(2009, 1, 1))])
    ids["x"] = await b.photos(x, [synth(50, name="copy of a.jpg", sha256=sha_of(1),
                                        phash=synth(1)["phash"]),
                                  synth(51, name="z.jpg")])
    ids["traps"] = [*await b.photos(trap_x, [synth(45, name="trap-x.jpg")]),
                    *await b.photos(trap_case, [synth(46, name="trap-case.jpg")])]
    await b.finish()
    where = {"main": main, "other": other, "trip": trip, "day2": day2, "trip_b": trip_b,
             "2009": y2009, "big": big, "x": x, "ids": ids, "root": root}
    return b, where


async def big_folder(b: CatalogBuilder, folder_id: int, n: int, seed: int = 7,
                     first: int = 100_000) -> list[int]:
    """``n`` photos with many ties: 50 distinct dates (a tenth undated), 40 sizes."""
    rng = random.Random(seed)
    base = dt.datetime(2015, 3, 1, 12)
    rows = []
    for i in range(n):
        k = first + i
        undated = rng.random() < 0.1
        rows.append(synth(k, rng, name=f"p{i:05d}.jpg",
                          taken_at=None if undated
                          else base + dt.timedelta(minutes=rng.randrange(50)),
                          size=1000 * (1 + rng.randrange(40))))
    return await b.photos(folder_id, rows)


# -- real files -----------------------------------------------------------------------------
def make_jpeg(path: Any, size: tuple[int, int], seed: int, noise: bool = False,
              quality: int = 90) -> None:
    """A JPEG of ``size``: smooth gradients, or random noise (large, incompressible)."""
    import os

    from PIL import Image

    w, h = size
    if noise:
        img = Image.frombytes("RGB", size, random.Random(seed).randbytes(w * h * 3))
    else:
        img = Image.linear_gradient("L").resize(size).convert("RGB")
        img = Image.merge("RGB", [img.getchannel(0).point(lambda v, k=k: (v * (k + seed)) % 256)
                                  for k in range(3)])
    img.save(path, "JPEG", quality=quality)
    os.utime(path, ns=(1_600_000_000_000_000_000 + seed, 1_600_000_000_000_000_000 + seed))


def real_photo(path: Any, **over: Any) -> dict[str, Any]:
    """A catalog row matching the file at ``path`` as the scanner would see it (same size,
    mtime and inode: a rescan leaves it alone), with its real sha256, size and dHash."""
    import os

    from PIL import Image

    from lightbox.daemon.media.phash import phash

    st = os.stat(path)
    data = open(path, "rb").read()  # noqa: SIM115 - test helper
    with Image.open(path) as img:
        width, height = img.size
        ph = phash(img)
    return synth(st.st_ino % 1_000_000, name=os.path.basename(path), size=st.st_size,
                 mtime_ns=st.st_mtime_ns, inode=st.st_ino,
                 sha256=hashlib.sha256(data).hexdigest(), width=width, height=height,
                 phash=ph, thumbs=0, **over)


def write_thumbnails(thumbs_dir: Any, source: Any, sha256: str) -> dict[str, tuple[int, int]]:
    """Grid and preview thumbnails of ``source`` where the daemon looks for them."""
    from PIL import Image

    from lightbox.daemon.media.thumbs import thumbnail_path

    out = {}
    for name, edge in (("grid", 256), ("preview", 1280)):
        target = thumbnail_path(thumbs_dir, name, sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(source) as img:
            img.thumbnail((edge, edge))
            img.convert("RGB").save(target, "JPEG", quality=80)
            out[name] = img.size
    return out
