"""The text index stays current through every write the daemon makes, on SQLite, PostgreSQL
and MariaDB: files added, indexed (camera and lens from EXIF), renamed, moved with their
folder, and deleted, each seen by ``photos.search`` through the real daemon; and the index
itself holds exactly the rows of its tables afterwards (no stale entry left by a delete)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from catalog_fixtures import db_url
from lbtest import DaemonProcess
from sqlalchemy.ext.asyncio import create_async_engine

from lightbox.common.protocol import Encoded
from lightbox.daemon.catalog import textindex
from lightbox.daemon.media.samples import ExifSpec, make_photo, save_jpeg

__all__ = ["db_url"]
SCAN_ONLY = {"watch": False, "reconcile_interval": 0}


def scan(d: DaemonProcess, root: int) -> None:
    job = d.call("library.scan", {"root": root})["job"]
    done = d.call("jobs.wait", {"id": job, "timeout": 120}, timeout=130)
    assert done["state"] == "succeeded", done


def found(d: DaemonProcess, **params: Any) -> list[str]:
    doc = d.call("photos.search", {"limit": 2000, "status": "any", **params})
    return sorted(p["name"] for p in doc["photos"] if p["status"] != "missing")


def wait_indexed(d: DaemonProcess) -> None:
    import time

    deadline = time.monotonic() + 60
    while d.call("photos.search", {"status": "pending", "limit": 1})["photos"]:
        assert time.monotonic() < deadline, "photos still pending after 60 s"
        time.sleep(0.1)


async def index_consistent(url: str) -> None:
    """The index has one entry per row and nothing else (SQLite's own integrity check
    compares every entry with the table's text)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            name = conn.dialect.name
            assert await textindex.available(conn)
            if name == "sqlite":
                for fts in ("photos_text", "folders_text"):
                    await conn.execute(sa.text(
                        f"INSERT INTO {fts}({fts}, rank) VALUES ('integrity-check', 1)"))
            elif name in ("mysql", "mariadb"):
                # Every distinct trigram of each row's lower-cased text, and nothing else
                # (the names here are ASCII: Python's lower() is the server's).
                for table, col in (("photos", "name"), ("folders", "path")):
                    want = {(int(i), g.encode()) for i, text in await conn.execute(
                        sa.text(f"SELECT id, {col} FROM {table}"))
                        for g in {text.lower()[k:k + 3] for k in range(len(text) - 2)}}
                    have = {(int(i), bytes(g)) for i, g in await conn.execute(
                        sa.text(f"SELECT id, gram FROM {table}_grams"))}
                    assert have == want, (table, sorted(have ^ want)[:10])
    finally:
        await engine.dispose()


def test_search_follows_adds_renames_moves_and_deletes(
        make_daemon: Any, db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("sqlite"):
        (tmp_path / "db").mkdir()
        db_url = f"sqlite+aiosqlite:///{tmp_path}/db/catalog.db"
    root = tmp_path / "photos"
    cams = [("Canon", "Canon EOS 5D Mark II", "EF24-70mm f/2.8L USM"),
            ("NIKON CORPORATION", "NIKON D750", "AF-S NIKKOR 50mm f/1.8G")]
    for i in range(4):
        make, model, lens = cams[i % 2]
        save_jpeg(make_photo(64, 48, seed=i), root / "2019" / "lisbon trip" / f"DSC{i:05d}.JPG",
                  ExifSpec(make=make, model=model, lens=lens))
    save_jpeg(make_photo(64, 48, seed=9), root / "misc" / "IMG_0042.JPG")
    d: DaemonProcess = make_daemon(config={"database": {"url": db_url}, "library": SCAN_ONLY})
    rid = d.call("roots.add", {"path": str(root), "scan": False})["root"]["id"]
    scan(d, rid)
    wait_indexed(d)

    every = ["DSC00000.JPG", "DSC00001.JPG", "DSC00002.JPG", "DSC00003.JPG", "IMG_0042.JPG"]
    assert found(d, text="jpg") == every
    assert found(d, text="0042") == ["IMG_0042.JPG"]  # inside a name
    assert found(d, text="LISBON") == every[:4]  # the folder path
    assert found(d, text="nikkor") == ["DSC00001.JPG", "DSC00003.JPG"]  # the lens
    assert found(d, text="eos 24-70") == ["DSC00000.JPG", "DSC00002.JPG"]  # model and lens
    assert found(d, camera="nikon") == ["DSC00001.JPG", "DSC00003.JPG"]
    assert found(d, camera="nikkor") == []  # camera is make and model, not the lens

    # A rename (same file, new name: the row is updated and keeps its id).
    old = root / "2019" / "lisbon trip" / "DSC00002.JPG"
    os.rename(old, old.with_name("zebra crossing.jpg"))
    scan(d, rid)
    assert found(d, text="zebra") == ["zebra crossing.jpg"]
    assert found(d, text="00002") == []
    # A folder renamed: every photo in it is found under the new path, none under the old.
    os.rename(root / "2019" / "lisbon trip", root / "2019" / "porto weekend")
    scan(d, rid)
    assert found(d, text="porto") == ["DSC00000.JPG", "DSC00001.JPG", "DSC00003.JPG",
                                      "zebra crossing.jpg"]
    assert found(d, text="lisbon") == []
    # Deletes: missing after one pass, removed after the next; the index lets go of them.
    os.unlink(root / "misc" / "IMG_0042.JPG")
    shutil.rmtree(root / "2019" / "porto weekend")
    (root / "2019" / "porto weekend").mkdir()
    save_jpeg(make_photo(64, 48, seed=20), root / "2019" / "porto weekend" / "new.jpg",
              ExifSpec(make="FUJIFILM", model="X-T3", lens="XF35mmF1.4 R"))
    scan(d, rid)
    scan(d, rid)
    wait_indexed(d)
    assert found(d, text="jpg") == ["new.jpg"]
    assert found(d, text="xf35") == ["new.jpg"]  # a new photo's EXIF, written when indexed
    assert found(d, text="0042") == [] and found(d, text="nikkor") == []
    d.stop()
    asyncio.run(index_consistent(db_url))
    asyncio.run(rebuilt(db_url))


async def rebuilt(url: str) -> None:
    """textindex.rebuild (for bulk loads) leaves the same, consistent index."""
    from lightbox.daemon.catalog import queries

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await textindex.rebuild(conn)
        async with engine.connect() as conn:
            doc = await queries.search(conn, text="xf35", status="any")
            assert [p["name"] for p in doc["photos"]] == ["new.jpg"]
        async with engine.connect() as conn:
            for text in ("new", "porto weekend", "xf35", "NEW.JPG"):
                doc = await queries.search(conn, text=text, status="any")
                assert [p["name"] for p in doc["photos"]] == ["new.jpg"], text
    finally:
        await engine.dispose()
    await index_consistent(url)


@pytest.mark.parametrize(("word", "grams"), [
    ("abc", ["616263"]),
    ("ÉTÉ", ["C3A974C3A9"]),  # lower-cased as the LIKE pattern is, as UTF-8 bytes
    ("aaaaa", ["616161"]),  # distinct trigrams only
    ("dsc_53", ["647363", "73635F", "635F35", "5F3533"]),
    ("abcdefghijklmnop", None),
])
def test_mysql_grams_are_the_distinct_trigrams_or_a_spread_of_them(
        word: str, grams: list[str] | None) -> None:
    got = textindex.mysql_grams(word)
    if grams is not None:
        assert got == grams
    else:
        assert len(got) == 8 and got[0] == "616263" and got[-1] == "6E6F70"


QUERIES = [{"text": "DAY2"}, {"text": "trip day"}, {"text": "2008 canon"},
           {"text": "2008 apple", "camera": "iphone"}, {"text": "d_1 jpg"},
           {"camera": "canon eos"},
           # Camera and lens values (streams by value, merged), a value and a folder word,
           # words only in paths (folders narrowed by both), a word in names and paths.
           {"text": "canon"}, {"text": "nikon"}, {"text": "apple trip"}, {"text": "2008 trip"},
           {"text": "trip"}, {"camera": "nikon", "text": "jpg"}, {"text": "zzz"},
           # A folder word with one also in names: the folders narrowed by both, plus the
           # second word's own name stream (a walk of the first's folders without it).
           {"text": "day jpg"}, {"text": "trip jpg"}, {"text": "2008 b.jpg"}]


@pytest.mark.parametrize("dense", [0, 1_000_000])
async def test_every_plan_gives_the_same_photos(db_url: str, dense: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether a word counts as common (walk the order: dense=0 makes every word common,
    and several common words start from the least common one's candidates) or rare (start
    from its candidates), the photos and their pages are those of the LIKE conditions
    alone (the index switched off), and the first page's count is theirs."""
    from catalog_fixtures import standard

    from lightbox.daemon.catalog import queries

    b, _ = await standard(db_url)

    async def pages(sort: str, **kw: Any) -> list[str]:
        sort, _, order = sort.partition(" ")
        seen: list[str] = []
        cursor = None
        counted = None
        async with b.engine.connect() as conn:
            while True:
                doc = await queries.search(conn, sort=sort, order=order or "asc", limit=3,
                                           cursor=cursor, count=cursor is None, **kw)
                counted = doc.get("count", counted)
                seen += [p["name"] for p in doc["photos"]]
                cursor = doc["next_cursor"]
                if cursor is None:
                    # The count (from one word's candidates on SQLite) is the pages' photos.
                    assert counted == len(seen), (kw, sort, counted, seen)
                    return seen

    try:
        async def off(conn: Any) -> bool:
            return False

        with monkeypatch.context() as m:
            m.setattr(textindex, "available", off)
            expected = {(i, sort): await pages(sort, **q) for i, q in enumerate(QUERIES)
                        for sort in ("name", "name desc", "taken")}
        assert expected[(0, "name")] == ["day2-0.jpg", "day2-1.jpg", "day2-2.jpg"]
        assert len(expected[(QUERIES.index({"text": "canon"}), "name")]) > 3  # several pages
        assert expected[(QUERIES.index({"text": "zzz"}), "name")] == []
        monkeypatch.setattr(textindex, "DENSE", dense)
        for (i, sort), want in expected.items():
            assert await pages(sort, **QUERIES[i]) == want, (QUERIES[i], sort)
    finally:
        await b.close()


PATH_QUERIES = [{"text": "zürich"}, {"text": "ZÜRICH"}, {"text": "Zürich"},
                {"text": "fête zürich"}, {"text": "FÊTE ZURICH"}, {"text": "zurich fete"},
                {"text": "2011 fête"}, {"text": "zürich jpg"}, {"text": "lake"}]


@pytest.mark.parametrize("dense", [0, 1_000_000])
async def test_folder_streams_answer_what_the_like_conditions_do(
        db_url: str, dense: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Words found in folder paths: a folder stream takes its folders' photos without
    testing the words again (the folders' own LIKE decides, SQLite's covering indexes of
    0045 serve the stream), sorted (rare) or walked in name order (``dense=0``). Its
    photos and pages are those of the LIKE conditions alone, with the cases the index and
    the LIKE see differently: non-ASCII letters in another case (LIKE folds ASCII only,
    FTS5 and PostgreSQL's ILIKE fold more), accents against none, photos that are not
    ok in a matching folder, and a word in names and paths together."""
    from catalog_fixtures import CatalogBuilder, synth

    from lightbox.daemon.catalog import queries

    b = await CatalogBuilder.open(db_url)
    try:
        src = await b.source("main", "/nonexistent/lb-paths")
        # Every engine alike: accents count (MariaDB's own collation ignores them; its
        # LIKE compares bytes, as its trigrams do).
        queries_here = PATH_QUERIES
        spots = await b.folders_at(src, [
            "2011/Zürich fête", "2011/ZÜRICH lake", "2012/zurich fete", "2012/zürich",
            "2013/Genève lake", "2013/other"])
        n = 0
        for k, folder in enumerate(spots):
            rows = []
            for j in range(7):
                n += 1
                status = ("ok", "ok", "ok", "missing", "ok", "error", "ok")[j]
                word = "zurich"
                rows.append(synth(n, name=f"{word if j == 2 else 'p'}{k}-{j}.jpg",
                                  status=status))
            await b.photos(folder, rows)
        await b.finish()

        async def pages(sort: str, **kw: Any) -> list[str]:
            sort, _, order = sort.partition(" ")
            seen: list[str] = []
            cursor = None
            counted = None
            async with b.engine.connect() as conn:
                while True:
                    doc = await queries.search(conn, sort=sort, order=order or "asc",
                                               limit=4, cursor=cursor,
                                               count=cursor is None, **kw)
                    counted = doc.get("count", counted)
                    seen += [p["name"] for p in doc["photos"]]
                    cursor = doc["next_cursor"]
                    if cursor is None:
                        assert counted == len(seen), (kw, sort, counted, seen)
                        return seen

        async def off(conn: Any) -> bool:
            return False

        with monkeypatch.context() as m:
            m.setattr(textindex, "available", off)
            expected = {(i, sort): await pages(sort, **q) for i, q in enumerate(queries_here)
                        for sort in ("name", "name desc")}
        # The catalog holds what the comparison needs: a word matched in two folders, and
        # photos that are not ok left out.
        assert len(expected[(queries_here.index({"text": "lake"}), "name")]) == 10
        assert expected[(queries_here.index({"text": "fête zürich"}), "name")]
        monkeypatch.setattr(textindex, "DENSE", dense)
        for (i, sort), want in expected.items():
            assert await pages(sort, **queries_here[i]) == want, (queries_here[i], sort)
    finally:
        await b.close()



async def test_lens_values_alike_but_for_accents_are_told_apart(db_url: str,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """A lens spelled with and without an accent: a search finds the spelling it was given,
    on every engine, whether the index's candidates or the plain conditions answer.
    MariaDB's columns ignore accents (and group such values as one), so its value lookup
    offers both and the search's condition, bytes once lower-cased, decides."""
    from catalog_fixtures import CatalogBuilder, synth

    from lightbox.daemon.catalog import queries

    b = await CatalogBuilder.open(db_url)
    try:
        src = await b.source("main", "/nonexistent/lb-lens")
        (folder,) = await b.folders_at(src, ["2014/trip"])
        rows = [synth(i, name=f"p{i}.jpg",
                      lens=("Tele Café 90", "Tele Cafe 90", "TELE CAFE 90", "Other")[i % 4])
                for i in range(1, 41)]
        await b.photos(folder, rows)
        await b.finish()

        async def names(text: str) -> list[str]:
            async with b.engine.connect() as conn:
                doc = await queries.search(conn, text=text, sort="name", limit=100,
                                           count=True)
            assert doc["count"] == len(doc["photos"]), doc["count"]
            return sorted(p["name"] for p in doc["photos"])

        got = {w: await names(w) for w in ("café", "cafe", "tele")}

        async def off(conn: Any) -> bool:
            return False

        with monkeypatch.context() as m:
            m.setattr(textindex, "available", off)
            plain = {w: await names(w) for w in got}
        assert got == plain
        # ``café`` is one of the four spellings, ``cafe`` the two others in either case:
        # accents count everywhere (case is folded for ASCII letters everywhere, and for
        # others not on SQLite, whose LIKE folds ASCII only).
        assert len(got["café"]) == 10 and len(got["cafe"]) == 20 and len(got["tele"]) == 30
    finally:
        await b.close()


@pytest.mark.mysql
async def test_mysql_grams_migration_indexes_existing_rows_and_goes_back(
        mysql_scratch_url: str) -> None:
    """0042_mysql_grams on a catalog with rows: the FULLTEXT side tables and their
    triggers give way to trigram tables filled from every row (accented, upper-case and
    repeating names, a long path), searches find the same photos, and a downgrade brings
    the FULLTEXT tables back filled."""
    from alembic import command
    from catalog_fixtures import CatalogBuilder, synth

    from lightbox.daemon.catalog import queries
    from lightbox.daemon.catalog.database import alembic_config

    url = mysql_scratch_url
    b = await CatalogBuilder.open(url, revision="0032_backup_clean_mark")
    try:
        src = await b.source("main", "/nonexistent/lb-grams")
        deep = "2019/" + "/".join(f"level{i:03d}" for i in range(40)) + "/Ærøskøbing walk"
        trip, far = await b.folders_at(src, ["2019/lisbon trip", deep])
        await b.photos(trip, [synth(1, name="ÉTÉ 2019.JPG"), synth(2, name="aaaaaa.jpg"),
                              synth(3, name="DSC_5305.JPG")])
        await b.photos(far, [synth(4, name="x.jpg")])
        await b.finish()
        async with b.engine.connect() as conn:
            assert await conn.scalar(sa.text("SELECT count(*) FROM photos_terms")) == 4
        await b.upgrade()
        async with b.engine.connect() as conn:
            names = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
            assert "photos_terms" not in names and "folders_terms" not in names
            triggers = {t for (t,) in await conn.execute(sa.text(
                "SELECT trigger_name FROM information_schema.triggers "
                "WHERE trigger_schema = DATABASE()"))}
            assert not any("_terms_" in t for t in triggers), triggers
            for text, want in [("été", ["ÉTÉ 2019.JPG"]), ("aaaa", ["aaaaaa.jpg"]),
                               ("5305", ["DSC_5305.JPG"]), ("lisbon", ["aaaaaa.jpg",
                                "DSC_5305.JPG", "ÉTÉ 2019.JPG"]),
                               ("skøbing", ["x.jpg"]), ("level039", ["x.jpg"]),
                               ("zzz", [])]:
                doc = await queries.search(conn, text=text)
                assert sorted(p["name"] for p in doc["photos"]) == sorted(want), text
        async with b.engine.connect() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c),
                                                            "0032_backup_clean_mark"))
            await conn.commit()
            for table in ("photos", "folders"):
                missing = await conn.scalar(sa.text(
                    f"SELECT count(*) FROM {table} x LEFT JOIN {table}_terms t "
                    "ON x.id = t.id WHERE t.id IS NULL"))
                assert missing == 0, table
            names = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
            assert not any("_grams" in n for n in names), names
        await b.upgrade()
    finally:
        await b.close()
    textindex._available.clear()
    await index_consistent(url)


@pytest.mark.mysql
async def test_mysql_searches_go_through_asyncmy_and_answer_what_aiomysql_does(
        mysql_scratch_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``mysql+aiomysql`` URL gets asyncmy (``database.mysql_driver``: its Cython rows
    cost the daemon a sixth of the CPU), and every search's reply, every field of every
    photo (timestamps, floats, 64-bit hashes, NULLs, accents), is the one aiomysql gives."""
    from catalog_fixtures import standard

    from lightbox.daemon.catalog import database, queries

    b, _ = await standard(mysql_scratch_url)
    assert b.engine.dialect.driver == "asyncmy"
    monkeypatch.setattr(database, "mysql_driver", lambda name: name)
    plain = database.make_engine(mysql_scratch_url)
    assert plain.dialect.driver == "aiomysql"
    try:
        for q in [*QUERIES, {}]:
            for sort in ("name", "taken", "size"):
                replies = []
                for engine in (b.engine, plain):
                    async with engine.connect() as conn:
                        replies.append(await queries.search(conn, sort=sort, limit=50,
                                                            status="any", **q))
                assert replies[0] == replies[1], (q, sort)
                if not q:
                    assert len(replies[0]["photos"]) > 10
    finally:
        await plain.dispose()
        await b.close()


@pytest.mark.mysql
async def test_mysql_few_folders_and_rare_names_are_read_by_id_and_answer_the_same(
        mysql_scratch_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """MariaDB: the folders of a few-folder stream (``2008 trip``: narrowed by both words;
    ``trip``: one word) are named by id in the stream's statement, which then reads one
    table through ``ix_photos_folder_cover``; a rare word's name candidates (``day2``)
    are read by id, not grouped from the trigram lists again. A folder list the server
    cuts short (``group_concat_max_len``) falls back to the subquery. A statement whose
    one stream is such a sorted folder stream plans its ranges from the index statistics
    (``SET STATEMENT eq_range_index_dive_limit=1``: no index dive per folder), compiled
    once per shape like any other; others are left as they are. Either way each page is
    the one the LIKE conditions alone give (the index switched off)."""
    from catalog_fixtures import standard

    from lightbox.daemon.catalog import queries

    b, _ = await standard(mysql_scratch_url)
    seen: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    async def page(text: str, short: bool = False) -> list[str]:
        async with b.engine.connect() as conn:
            if short:
                await conn.execute(sa.text("SET SESSION group_concat_max_len = 4"))
            try:
                doc = await queries.search(conn, text=text, limit=50, status="any")
            finally:
                if short:
                    await conn.execute(sa.text("SET SESSION group_concat_max_len = DEFAULT"))
        return [p["name"] for p in doc["photos"]]

    async def off(conn: Any) -> bool:
        return False

    words = ["2008 trip", "trip", "day2", "trip_b", "2008 trip_b"]
    try:
        with monkeypatch.context() as m:
            m.setattr(textindex, "available", off)
            want = {w: await page(w) for w in words}
        assert want["2008 trip"] and want["day2"] and want["trip_b"]
        sa.event.listen(b.engine.sync_engine, "before_cursor_execute", listener)
        for w in words:
            seen.clear()
            assert await page(w) == want[w], w
            streams = [s for s in seen if "AS sort_key" in s]
            assert len(streams) == 1, (w, seen)
            dives = streams[0].startswith("SET STATEMENT eq_range_index_dive_limit=1 FOR ")
            if w == "day2":
                assert "photos_grams" not in streams[0]  # the names by id
                assert not dives
            else:
                assert "FORCE INDEX (ix_photos_folder_cover)" in streams[0], w
                assert "folders" not in streams[0], w  # one table: the folders by id
                assert dives == b.engine.dialect.is_mariadb, (w, streams[0])
            seen.clear()
            assert await page(w, short=True) == want[w], w
            if w in ("2008 trip", "trip"):  # several folders: "3,4" is cut at 4 bytes
                streams = [s for s in seen if "AS sort_key" in s]
                assert "ix_photos_folder_cover" not in streams[0], w
                assert "folders_grams" in streams[0], w
                assert not streams[0].startswith("SET STATEMENT"), w
        # The daemon searches through ``Database.reader``: sessions that refuse writes,
        # in autocommit. SET STATEMENT of a session variable is accepted there.
        from lightbox.daemon.catalog.database import make_engine

        reader = make_engine(mysql_scratch_url, read_only=True)
        sa.event.listen(reader.sync_engine, "before_cursor_execute", listener)
        try:
            seen.clear()
            async with reader.connect() as conn:
                doc = await queries.search(conn, text="2008 trip", limit=50, status="any")
            assert [p["name"] for p in doc["photos"]] == want["2008 trip"]
            assert any(s.startswith("SET STATEMENT") for s in seen) == \
                reader.dialect.is_mariadb
        finally:
            await reader.dispose()
        # Cached per shape (the folder ids are an expanding parameter), not per list.
        one = textindex.SetStatement("eq_range_index_dive_limit=1", sa.select(
            textindex.photos.c.id).where(textindex.photos.c.folder_id.in_([1, 2])))
        two = textindex.SetStatement("eq_range_index_dive_limit=1", sa.select(
            textindex.photos.c.id).where(textindex.photos.c.folder_id.in_([3, 4])))
        key_one = one._generate_cache_key()
        assert key_one is not None and key_one == two._generate_cache_key()
        other = textindex.SetStatement("eq_range_index_dive_limit=2", two.select)
        assert other._generate_cache_key() != key_one
    finally:
        sa.event.remove(b.engine.sync_engine, "before_cursor_execute", listener)
        await b.close()


@pytest.mark.mysql
async def test_mysql_prepares_and_measures_every_word_in_one_statement_each(
        mysql_scratch_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """MariaDB: the trigram counts are one statement that reads no row (an ``EXPLAIN``:
    the server's index dives), and the words' measures, their camera and lens values and
    the folders of the words found in paths one more, whatever the number of words (each
    statement costs the daemon a few ms of CPU on this engine, issue 13): a search of two
    words by name is four statements (counts, measure, the streams, the page's rows with
    their folders' paths) where it was nine, then five; the photos are those the LIKE
    conditions alone give (the index switched off), and a word's values are those
    ``values_containing`` finds alone."""
    from catalog_fixtures import standard

    from lightbox.daemon.catalog import queries

    b, _ = await standard(mysql_scratch_url)
    seen: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    async def page(text: str) -> list[str]:
        async with b.engine.connect() as conn:
            doc = await queries.search(conn, text=text, limit=50, status="any")
        return [p["name"] for p in doc["photos"]]

    async def off(conn: Any) -> bool:
        return False

    words = {"2008 trip": 4, "canon": 4, "nikon jpg": 4, "day2": 4}
    try:
        with monkeypatch.context() as m:
            m.setattr(textindex, "available", off)
            want = {w: await page(w) for w in words}
        assert want["2008 trip"] and want["canon"] and want["day2"]
        await page("warm-up")  # the once-per-engine look-up of the index
        sa.event.listen(b.engine.sync_engine, "before_cursor_execute", listener)
        for w, statements in words.items():
            seen.clear()
            assert await page(w) == want[w], w
            assert len(seen) <= statements, (w, len(seen), seen)
            assert sum("GROUP BY make" in s for s in seen) == 1, (w, seen)
        async with b.engine.connect() as conn:
            got = await textindex.prepare(conn, [
                textindex.Word(t, textindex.PHOTO_COLUMNS, True) for t in ("canon", "nik")])
            assert all(w.photo_counts and w.folder_counts for w in got)
            await textindex.measure_all(conn, got)
            for w in got:
                assert w.values == await textindex.values_containing(conn, w), w.text
                assert w.photo_counts and w.folder_counts is not None
            assert got[0].values and got[1].values
            # The page's paths came with its rows (no path book statement): the same as
            # the path book's, for full pages and for pages of chosen fields.
            for fields in (None, ["id", "path"]):
                doc = await queries.search(conn, text="trip", limit=50, status="any",
                                           fields=fields)
                assert doc["photos"]
                ids = [p["id"] for p in doc["photos"]]
                rows = (await conn.execute(sa.select(
                    textindex.photos.c.id, textindex.photos.c.folder_id,
                    textindex.photos.c.name).where(textindex.photos.c.id.in_(ids)))).all()
                book = await queries.path_book(conn, {r.folder_id for r in rows})
                want_paths = {r.id: book.photo(r.folder_id, r.name) for r in rows}
                assert all(want_paths[p["id"]] for p in doc["photos"])
                assert {p["id"]: p["path"] for p in doc["photos"]} == want_paths
                # As the daemon replies (``encoded``: the page written as JSON from the
                # same rows, the paths' columns among them): the same photos.
                enc = await queries.search(conn, text="trip", limit=50, status="any",
                                           fields=fields, encoded=True)
                assert isinstance(enc["photos"], Encoded)
                assert orjson.loads(enc["photos"].json) == doc["photos"]
    finally:
        sa.event.remove(b.engine.sync_engine, "before_cursor_execute", listener)
        await b.close()


@pytest.mark.mysql
async def test_mysql_counts_are_index_dives_and_a_cut_folder_measure_answers_the_same(
        mysql_scratch_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """MariaDB: a search's trigram counts are the server's index dives (an ``EXPLAIN``
    that reads no row: each list of a few pages counted exactly, an empty one as 1, which
    InnoDB reports for nothing), not capped ``count(*)``s of each list. With several words
    in paths each word's folders' photos are summed over FOLDER_CAP folders at most; cut
    there, the word counts as common, a plan by candidates (date order) sums all of them,
    and every page is still the one the LIKE conditions alone give (the index switched
    off), also with some words common and others not, and with every trigram common. The
    folders of all the words found in paths come with the measures: no separate statement
    for them."""
    from catalog_fixtures import standard

    from lightbox.daemon.catalog import queries

    b, _ = await standard(mysql_scratch_url)
    seen: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    async def pages(text: str, sort: str) -> list[str]:
        out: list[str] = []
        cursor = None
        async with b.engine.connect() as conn:
            while True:
                doc = await queries.search(conn, text=text, sort=sort, limit=2,
                                           cursor=cursor, status="any")
                out += [p["name"] for p in doc["photos"]]
                cursor = doc["next_cursor"]
                if cursor is None:
                    return out

    async def off(conn: Any) -> bool:
        return False

    texts = ["2008 trip", "trip 2008", "trip day", "2008 canon", "trip jpg", "trip"]
    try:
        with monkeypatch.context() as m:
            m.setattr(textindex, "available", off)
            want = {(t, s): await pages(t, s) for t in texts for s in ("name", "taken")}
        assert want[("2008 trip", "name")] and want[("trip day", "name")]
        async with b.engine.connect() as conn:
            words = [textindex.Word(t, textindex.PHOTO_COLUMNS, True)
                     for t in ("trip", "2008", "zzzq", "jpg")]
            sa.event.listen(b.engine.sync_engine, "before_cursor_execute", listener)
            got = await textindex.prepare(conn, words)
            sa.event.remove(b.engine.sync_engine, "before_cursor_execute", listener)
            seen[:] = [x for x in seen if "information_schema" not in x]  # available()
            assert len(seen) == 1 and seen[0].startswith("EXPLAIN "), seen
            for w in got:
                for table, counts in (("photos_grams", w.photo_counts),
                                      ("folders_grams", w.folder_counts)):
                    assert counts is not None
                    for g, n in zip(w.grams, counts, strict=True):
                        exact = int(await conn.scalar(sa.text(
                            f"SELECT count(*) FROM {table} WHERE gram = unhex(:g)"),
                            {"g": g}) or 0)
                        assert n == max(exact, 1), (w.text, table, g, n, exact)
            # Every folder of "trip" counted: its photos, exactly as the folders hold them.
            await textindex.measure_all(conn, got[:1])
            assert not got[0].folders_capped
            exact_trip = await textindex.folder_photos(conn, [got[0]])
            assert got[0].folder_photos <= exact_trip  # the exact set's, by the LIKE
        monkeypatch.setattr(textindex, "FOLDER_CAP", 1)
        async with b.engine.connect() as conn:
            words = await textindex.prepare(conn, [
                textindex.Word(t, textindex.PHOTO_COLUMNS, True) for t in ("trip", "2008")])
            await textindex.measure_all(conn, words)
            assert all(w.folders_capped and w.folder_photos > textindex.DENSE
                       for w in words)
            assert words[0].folder_set is not None
            assert words[0].folder_set[0] == frozenset({"trip", "2008"})
            assert await textindex.mysql_folder_set(conn, words) == \
                words[0].folder_set[1:]
            await textindex.estimate(conn, words[0])  # a plan by candidates: the sum
            assert not words[0].folders_capped
            assert words[0].folder_photos == await textindex.folder_photos(
                conn, [words[0]])
        for (t, s), expected in want.items():
            assert await pages(t, s) == expected, (t, s)
        # Some words common and others not (a path word left out of the narrowing: its
        # folder set is looked up on its own), and every trigram common (each word's
        # lists joined, the folder set by each word's lookup): the same pages.
        alone: list[int] = []
        made = textindex._mysql_folder_set_stmt

        def counted(dialect: str, words: list[Any], lead: bool = False) -> Any:
            alone.append(0 if lead else 1)
            return made(dialect, words, lead)

        monkeypatch.setattr(textindex, "_mysql_folder_set_stmt", counted)
        for setting, value in (("DENSE", 3), ("GRAM_CAP", 1)):
            alone.clear()
            with monkeypatch.context() as m:
                m.setattr(textindex, setting, value)
                for (t, s), expected in want.items():
                    assert await pages(t, s) == expected, (setting, t, s)
            if setting == "DENSE":  # the narrowing differed from the measure's set
                assert any(alone), "no folder set looked up on its own"
    finally:
        await b.close()
