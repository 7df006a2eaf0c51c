"""The catalog read side in process, on SQLite, PostgreSQL and MariaDB: folder listings,
keyset pages in every order, search filters, references by path, and no N+1 queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from catalog_fixtures import CatalogBuilder, big_folder, db_url, standard, synth

from lightbox.common import protocol
from lightbox.common.errors import InvalidParams, NotFound
from lightbox.daemon.catalog import queries, tables
from lightbox.daemon.catalog.present import PHOTO_FIELDS
from lightbox.daemon.catalog.types import natural_key

ROOT = "/nonexistent/lb-photos"
__all__ = ["db_url"]  # the engine-parametrised fixture


@pytest.fixture
async def cat(db_url: str) -> AsyncIterator[tuple[CatalogBuilder, dict[str, Any]]]:
    b, where = await standard(db_url, ROOT)
    try:
        yield b, where
    finally:
        await b.close()


async def run(b: CatalogBuilder, fn: Any, **kw: Any) -> Any:
    async with b.engine.connect() as conn:
        return await fn(conn, **kw)


def names(doc: dict[str, Any]) -> list[str]:
    return [p["name"] for p in doc["photos"]]


# -- folders.list -------------------------------------------------------------------------
async def test_top_level_is_one_folder_per_root(cat: Any) -> None:
    b, w = cat
    doc = await run(b, queries.list_folder)
    assert doc["folder"] is None and doc["photos"] == [] and doc["next_cursor"] is None
    tops = {f["name"]: f for f in doc["folders"]}
    assert list(tops) == ["main", "other"]
    main = tops["main"]
    assert main["id"] == b.top(w["main"]) and main["path"] == ROOT and main["online"] is True
    assert main["total_count"] == 11 + 3 + 2 + 1 + 2  # every non-missing photo below
    assert main["folder_count"] == 3  # 2008, 2009, big
    assert tops["other"]["online"] is False and tops["other"]["path"] == ROOT + "-other"
    with pytest.raises(InvalidParams, match="cursor"):
        await run(b, queries.list_folder, cursor="abc")


async def test_folder_by_id_and_by_path_with_breadcrumbs(cat: Any) -> None:
    b, w = cat
    by_id = await run(b, queries.list_folder, folder=w["trip"])
    by_path = await run(b, queries.list_folder, path=ROOT + "/2008/trip/")
    by_path2 = await run(b, queries.list_folder, path=ROOT + "/2008/x/../trip")
    assert by_id == by_path == by_path2
    f = by_id["folder"]
    assert (f["id"], f["name"], f["path"]) == (w["trip"], "trip", ROOT + "/2008/trip")
    assert (f["photo_count"], f["folder_count"], f["total_count"]) == (11, 1, 14)
    assert [c["name"] for c in by_id["breadcrumbs"]] == ["main", "2008", "trip"]
    assert by_id["breadcrumbs"][-1]["id"] == w["trip"]
    assert [(s["name"], s["photo_count"], s["path"]) for s in by_id["folders"]] == \
        [("day 2", 3, ROOT + "/2008/trip/day 2")]
    # Everything but missing, errors and pending included; by name (any case).
    assert names(by_id) == ["a.jpg", "B.jpg", "c 100%.jpg", "d_1.jpg", "e.jpg", "f.jpg",
                            "g.jpg", "h-error.jpg", "i-pending.jpg", "k.jpg", "l.jpg"]
    err = next(p for p in by_id["photos"] if p["name"] == "h-error.jpg")
    assert (err["status"], err["error"]) == ("error", "truncated JPEG")
    top = await run(b, queries.list_folder, path=ROOT)
    assert top["folder"]["name"] == "main" and top["breadcrumbs"] == [
        {"id": b.top(w["main"]), "name": "main"}]
    assert [s["name"] for s in top["folders"]] == ["2008", "2009", "big"]


async def test_first_pages_reuse_statements_bound_to_each_folder(cat: Any) -> None:
    """A first page's statements are built once per shape (sort, order, limit, fields) and
    reused with the folder as a bound value: each folder still gets its own photos, in
    each order, and a later page (built per request) carries on from it."""
    b, w = cat
    for sort in ("name", "taken", "size"):
        for order in ("asc", "desc"):
            first = {}
            for key in ("trip", "day2", "trip", "trip_b"):
                doc = await run(b, queries.list_folder, folder=w[key], sort=sort,
                                order=order, limit=4, fields=["path", "taken_at"])
                prefix = doc["folder"]["path"] + "/"
                assert all(p["path"].startswith(prefix) and "/" not in
                           p["path"][len(prefix):] for p in doc["photos"]), (key, sort)
                if key in first:
                    assert doc == first[key]
                first[key] = doc
            trip = first["trip"]
            assert trip["next_cursor"] is not None
            rest = await run(b, queries.list_folder, folder=w["trip"], sort=sort, order=order,
                             limit=100, fields=["path", "taken_at"],
                             cursor=trip["next_cursor"])
            whole = await run(b, queries.list_folder, folder=w["trip"], sort=sort,
                              order=order, limit=100, fields=["path", "taken_at"])
            assert trip["photos"] + rest["photos"] == whole["photos"]


async def test_pages_written_as_json_are_the_bytes_of_the_photo_dicts(db_url: str) -> None:
    """What folders.list and photos.search send (``encoded``: the page written column by
    column, present.photos_json) is byte for byte the reply made of the photo dicts, on
    every engine (text timestamps from SQLite, datetimes from the servers): names with
    what JSON escapes, commas, quotes and non-ASCII, in a folder whose path has them too,
    NULLs, errors, pending and undated photos, fractions of seconds, -0.0, pages of one
    folder and search pages across folders, every field and some."""
    b = await CatalogBuilder.open(db_url)
    try:
        main = await b.source("main", '/nonexistent/ü "q", x\\y')
        odd, plain = await b.folders_at(main, ["日本, \"a\"", "plain"])
        frac = dt.datetime(2011, 2, 3, 4, 5, 6, 789000)
        rows = [
            synth(1, name='a, "b".jpg'), synth(2, name="日本\u2028.jpg", taken_at=frac),
            synth(3, name="c\\d.jpg", status="error", error='bad, "very"', sha256=None,
                  phash=None, width=None, height=None, thumbs=0, taken_at=None),
            synth(4, name='","', status="pending", indexed_at=None, thumbs=1,
                  gps_lat=-33.9, gps_lon=151.2, gps_alt=-0.0, lens="EF 24-70mm f/2.8L"),
            synth(5, name="e.jpg", exposure_time=1.0, f_number=2.0, iso=None,
                  first_seen=frac, indexed_at=dt.datetime(2026, 1, 1, 12, 0, 0, 5)),
            *(synth(10 + i, name=f"IMG_{i:04d}.JPG") for i in range(30)),
        ]
        await b.photos(odd, rows)
        await b.photos(plain, [synth(100 + i, make="Canon", model="EOS") for i in range(40)])
        await b.finish()
        grid = ["name", "thumbs", "taken_at", "width", "height", "orientation", "status"]
        calls: list[tuple[Any, dict[str, Any]]] = []
        for fields in (None, grid, ["path", "mtime", "phash", "gps_alt", "indexed_at"]):
            for sort in ("name", "taken", "size"):
                for folder in (odd, plain):
                    calls.append((queries.list_folder, {"folder": folder, "sort": sort,
                                                        "fields": fields, "limit": 500}))
                calls.append((queries.list_folder, {"folder": odd, "sort": sort,
                                                    "fields": fields, "limit": 7}))
                calls.append((queries.search, {"sort": sort, "fields": fields,
                                               "status": "any"}))
            calls.append((queries.search, {"date_from": "2010", "date_to": "2030",
                                           "fields": fields, "sort": "taken"}))
        for fn, kw in calls:
            plain_reply = protocol.dumps(await run(b, fn, **kw))
            written = await run(b, fn, encoded=True, **kw)
            assert isinstance(written["photos"], protocol.Encoded), kw
            assert protocol.dumps(written) == plain_reply, kw
    finally:
        await b.close()


async def test_photo_json_shape(cat: Any) -> None:
    b, w = cat
    doc = await run(b, queries.list_folder, folder=w["trip"])
    f = next(p for p in doc["photos"] if p["name"] == "f.jpg")
    assert list(f) == list(PHOTO_FIELDS)
    assert f["path"] == ROOT + "/2008/trip/f.jpg"
    assert f["taken_at"] == "2008-05-31T23:59:59"
    assert f["taken_offset"] == 60
    assert f["mtime"].endswith(".123Z") and f["mtime"].startswith("20")
    assert len(f["phash"]) == 16 and int(f["phash"], 16) >= 0
    assert f["thumbs"] == ["grid", "preview"]
    assert (f["gps_lat"], f["gps_lon"], f["gps_alt"]) == (48.85, 2.35, 35.0)
    assert f["first_seen"] == "2026-01-01T12:00:00.000Z"
    assert f["folder_id"] == w["trip"] and f["source_id"] == w["main"]


async def test_fields_trim_photos_and_id_is_always_kept(cat: Any) -> None:
    b, w = cat
    doc = await run(b, queries.list_folder, folder=w["trip"], fields=["name", "taken_at"])
    assert all(list(p) == ["id", "name", "taken_at"] for p in doc["photos"])
    with pytest.raises(InvalidParams) as info:
        await run(b, queries.list_folder, folder=w["trip"], fields=["name", "colour"])
    assert "colour" in info.value.message and "fields" in info.value.data["errors"]
    doc = await run(b, queries.list_folder, folder=w["trip"], photos_=False)
    assert doc["photos"] == [] and doc["next_cursor"] is None and doc["folders"]


async def test_not_found_and_bad_references(cat: Any) -> None:
    b, w = cat
    with pytest.raises(NotFound, match="no folder with id 999"):
        await run(b, queries.list_folder, folder=999)
    with pytest.raises(NotFound, match="not inside any root"):
        await run(b, queries.list_folder, path="/etc")
    with pytest.raises(NotFound, match="no folder"):
        await run(b, queries.list_folder, path=ROOT + "/2008/nope")
    with pytest.raises(InvalidParams, match="absolute"):
        await run(b, queries.list_folder, path="2008/trip")
    with pytest.raises(InvalidParams):
        await run(b, queries.list_folder, folder=w["trip"], path=ROOT)


# -- keyset pagination --------------------------------------------------------------------
def expected_order(rows: list[Any], sort: str, desc: bool) -> list[int]:
    if sort == "taken":
        dated = sorted((r for r in rows if r.taken_at is not None),
                       key=lambda r: (r.taken_at, r.id), reverse=desc)
        undated = sorted((r for r in rows if r.taken_at is None), key=lambda r: r.id,
                         reverse=desc)
        return [r.id for r in dated + undated]  # undated last in both directions
    key = (lambda r: (natural_key(r.name), r.id)) if sort == "name" else \
        (lambda r: (r.size, r.id))
    return [r.id for r in sorted(rows, key=key, reverse=desc)]


@pytest.mark.parametrize("sort", ["name", "taken", "size"])
async def test_pages_through_a_large_folder_in_every_order(db_url: str, sort: str) -> None:
    b = await CatalogBuilder.open(db_url)
    try:
        src = await b.source("s", ROOT)
        fid = await b.folder(src, "big")
        await big_folder(b, fid, 2500)
        await b.finish()
        async with b.engine.connect() as conn:
            rows = (await conn.execute(sa.select(
                tables.photos.c.id, tables.photos.c.name, tables.photos.c.size,
                tables.photos.c.taken_at).where(tables.photos.c.folder_id == fid))).all()
        for order in ("asc", "desc"):
            got: list[int] = []
            cursor = None
            pages = 0
            while True:
                doc = await run(b, queries.list_folder, folder=fid, sort=sort, order=order,
                                limit=333, cursor=cursor, fields=["name"])
                pages += 1
                assert len(doc["photos"]) <= 333
                got += [p["id"] for p in doc["photos"]]
                cursor = doc["next_cursor"]
                if cursor is None:
                    break
            assert pages == 8
            assert len(got) == len(set(got)) == 2500  # no duplicates, no gaps
            assert got == expected_order(rows, sort, order == "desc")
    finally:
        await b.close()


async def test_page_around_a_photo_count_and_batch_get(db_url: str) -> None:
    """What a client scrolling a large folder uses: ``around`` opens the listing at a photo
    with its index (``offset``), in every order, also among ties and undated photos (in the
    middle of the ``taken`` order's two phases); ``count`` sizes a search; ``photos_by_id``
    brings rows back in the order asked."""
    b = await CatalogBuilder.open(db_url)
    try:
        src = await b.source("s", ROOT)
        fid = await b.folder(src, "big")
        await big_folder(b, fid, 600)
        await b.finish()
        async with b.engine.connect() as conn:
            rows = (await conn.execute(sa.select(
                tables.photos.c.id, tables.photos.c.name, tables.photos.c.size,
                tables.photos.c.taken_at).where(tables.photos.c.folder_id == fid))).all()
        for sort in ("name", "taken", "size"):
            for order in ("asc", "desc"):
                full = expected_order(rows, sort, order == "desc")
                for index in (0, 1, 17, 299, 540, 599):  # 540+: undated, for taken asc
                    doc = await run(b, queries.list_folder, folder=fid, sort=sort,
                                    order=order, limit=60, around=full[index],
                                    fields=["name"])
                    got = [p["id"] for p in doc["photos"]]
                    start = doc["offset"]
                    assert start == max(0, index - 20), (sort, order, index)
                    assert got == full[start:start + 60], (sort, order, index)
                    if doc["next_cursor"]:  # and the pages after it join on
                        more = await run(b, queries.list_folder, folder=fid, sort=sort,
                                         order=order, limit=600, cursor=doc["next_cursor"],
                                         fields=["name"])
                        assert got + [p["id"] for p in more["photos"]] == full[start:]
        # A photo that is not in the folder: the first page.
        doc = await run(b, queries.list_folder, folder=fid, limit=5, around=10**9)
        assert doc["offset"] == 0 and len(doc["photos"]) == 5
        with pytest.raises(InvalidParams, match="around"):
            await run(b, queries.list_folder, folder=fid, around=full[3],
                      cursor=doc["next_cursor"])
        found = await run(b, queries.search, folder=fid, text="p0010", limit=3, count=True)
        assert found["count"] == 10 and len(found["photos"]) == 3  # p00100 .. p00109
        assert "count" not in await run(b, queries.search, folder=fid, limit=1)
        ids = [full[5], 10**9, full[2], full[5], -1]
        batch = await run(b, queries.photos_by_id, ids=ids, fields=["name", "path"])
        assert [p["id"] for p in batch] == [full[5], full[2]]
        assert batch[0]["path"].startswith(ROOT + "/big/") and set(batch[0]) == \
            {"id", "name", "path"}
    finally:
        await b.close()


async def test_names_sort_naturally_and_ignoring_case_on_every_engine(db_url: str) -> None:
    """"IMG_2" before "IMG_10", "img_3" between them whatever its case, accents and
    punctuation in the same order on SQLite, PostgreSQL and MariaDB (byte order of the key),
    pages joining up across ties; subfolders in the same order."""
    names = ["IMG_10.jpg", "img_3.JPG", "IMG_2.jpg", "IMG_02.jpg", "b.jpg", "A.jpg",
             "Été 2.jpg", "ete 10.jpg", "z-1.jpg", "z_1.jpg", "x9y10.jpg", "x9y9.jpg",
             "2024-06-01 10.jpg", "2024-06-01 9.jpg", "100.jpg", "99.jpg"]
    b = await CatalogBuilder.open(db_url)
    try:
        src = await b.source("s", ROOT)
        fid = await b.folder(src, "n")
        for sub in ("Trip 10", "trip 9", "Trip 1"):
            await b.folder(src, f"n/{sub}")
        ids = await b.photos(fid, [synth(i, name=n) for i, n in enumerate(names)])
        await b.finish()
        assert len(ids) == len(names)
        # Ties ("IMG_2", "IMG_02") by id; accented letters after z (byte order of UTF-8).
        want = ["99.jpg", "100.jpg", "2024-06-01 9.jpg", "2024-06-01 10.jpg", "A.jpg",
                "b.jpg", "ete 10.jpg", "IMG_2.jpg", "IMG_02.jpg", "img_3.JPG", "IMG_10.jpg",
                "x9y9.jpg", "x9y10.jpg", "z-1.jpg", "z_1.jpg", "Été 2.jpg"]
        for order in ("asc", "desc"):
            got: list[str] = []
            cursor = None
            while True:
                doc = await run(b, queries.list_folder, folder=fid, order=order, limit=3,
                                cursor=cursor, fields=["name"])
                got += names_of(doc)
                cursor = doc["next_cursor"]
                if cursor is None:
                    break
            assert got == (want if order == "asc" else want[::-1]), order
        doc = await run(b, queries.list_folder, folder=fid, limit=1)
        assert [f["name"] for f in doc["folders"]] == ["Trip 1", "trip 9", "Trip 10"]
        found = await run(b, queries.search, folder=fid, text="img", limit=10)
        assert names_of(found) == ["IMG_2.jpg", "IMG_02.jpg", "img_3.JPG", "IMG_10.jpg"]
    finally:
        await b.close()


def names_of(doc: dict[str, Any]) -> list[str]:
    return [p["name"] for p in doc["photos"]]


async def test_cursor_belongs_to_its_query(cat: Any) -> None:
    b, w = cat
    doc = await run(b, queries.list_folder, folder=w["trip"], limit=3)
    cur = doc["next_cursor"]
    assert cur
    for kw in ({"folder": w["day2"]}, {"folder": w["trip"], "sort": "size"},
               {"folder": w["trip"], "order": "desc"}):
        with pytest.raises(InvalidParams, match="another query"):
            await run(b, queries.list_folder, limit=3, cursor=cur, **kw)
    for bad in ("garbage!", "W10", "eyJhIjoxfQ", cur[:-4]):
        with pytest.raises(InvalidParams) as info:
            await run(b, queries.list_folder, folder=w["trip"], limit=3, cursor=bad)
        assert "cursor" in info.value.data["errors"]


async def test_a_photo_added_between_pages_is_neither_repeated_nor_skipped(cat: Any) -> None:
    b, w = cat
    first = await run(b, queries.list_folder, folder=w["trip"], limit=4)
    await b.photos(w["trip"], [synth(99, name="0-first.jpg"), synth(98, name="zz-last.jpg")])
    rest: list[str] = []
    cursor = first["next_cursor"]
    while cursor:
        doc = await run(b, queries.list_folder, folder=w["trip"], limit=4, cursor=cursor)
        rest += names(doc)
        cursor = doc["next_cursor"]
    assert not set(names(first)) & set(rest)
    assert rest[-1] == "zz-last.jpg" and "0-first.jpg" not in rest


# -- no N+1 ---------------------------------------------------------------------------------
async def test_statement_count_does_not_grow_with_the_folder(tmp_path: Path) -> None:
    b = await CatalogBuilder.open(f"sqlite+aiosqlite:///{tmp_path}/c.db")
    try:
        src = await b.source("s", ROOT)
        small = await b.folder(src, "small")
        large = await b.folder(src, "large")
        await b.folders_at(src, ["small/sub"] + [f"large/sub{i:02d}" for i in range(60)])
        await b.photos(small, [synth(i, name=f"s{i}.jpg") for i in range(3)])
        await b.photos(large, [synth(i, name=f"l{i:04d}.jpg",
                                     taken_at=None if i % 10 == 0 else dt.datetime(2020, 1, 1))
                               for i in range(1500)])
        await b.finish()
        count = 0

        def listener(*_: Any) -> None:
            nonlocal count
            count += 1

        sa.event.listen(b.engine.sync_engine, "before_cursor_execute", listener)

        async def statements(**kw: Any) -> int:
            nonlocal count
            count = 0
            await run(b, queries.list_folder, **kw)
            return count

        for sort in ("name", "taken", "size"):
            s = await statements(folder=small, sort=sort, limit=2000)
            big = await statements(folder=large, sort=sort, limit=2000)
            by_path = await statements(path=ROOT + "/large", sort=sort, limit=2000)
            # folder, breadcrumbs, subfolders, the page (+ undated phase for taken),
            # (+ roots for a path)
            assert s == big <= 5, (sort, s, big)
            assert by_path == big + 1
        assert await statements() == 1  # the top level

        count = 0
        async with b.engine.connect() as conn:
            await queries.search(conn, text="l0", limit=2000)
        assert count <= 3  # the page (+ undated phase) + folder paths
    finally:
        await b.close()


# -- photos.search --------------------------------------------------------------------------
async def search(b: CatalogBuilder, **kw: Any) -> list[str]:
    kw.setdefault("limit", 2000)
    doc = await run(b, queries.search, **kw)
    return sorted(p["name"] for p in doc["photos"])


async def test_text_every_word_in_name_or_folder_path(cat: Any) -> None:
    b, _ = cat
    assert await search(b, text="DAY2") == ["day2-0.jpg", "day2-1.jpg", "day2-2.jpg"]
    assert await search(b, text="day 2") == ["day2-0.jpg", "day2-1.jpg", "day2-2.jpg"]
    assert await search(b, text="trip b.jpg") == ["B.jpg"]
    assert await search(b, text="2009") == ["only.jpg"]
    # Wildcards are literal: '%' and '_' only match themselves.
    assert await search(b, text="100%") == ["c 100%.jpg"]
    assert await search(b, text="d_1") == ["d_1.jpg"]
    assert await search(b, text="_") == ["d_1.jpg", "tb-0.jpg", "tb-1.jpg"]  # via Trip_b
    assert await search(b, text="nothing-like-this") == []


async def test_dates_whole_days_months_and_date_times(cat: Any) -> None:
    b, _ = cat
    day = ["B.jpg", "a.jpg", "c 100%.jpg", "l.jpg"]
    assert await search(b, date_from="2008-05-30", date_to="2008-05-30") == day
    assert await search(b, date_from="2008-05-31", date_to="2008-05-31") == ["f.jpg"]
    assert await search(b, date_from="2008-05", date_to="2008-05") == sorted([*day, "f.jpg"])
    assert await search(b, date_from="2008-06-01", date_to="2009") == ["g.jpg", "only.jpg"]
    assert await search(b, date_from="2008-05-30T15:56:01", date_to="2008-05-30T16:00") == \
        ["B.jpg", "a.jpg"]
    assert await search(b, date_from="2008-05-30 16:00:00+02:00", date_to="2008-05-31") == \
        ["c 100%.jpg", "f.jpg"]  # a zone is dropped: taken_at is the camera's wall clock
    for field, value in (("date_from", "2008-13-01"), ("date_to", "yesterday"),
                         ("date_from", "2008-02-30")):
        with pytest.raises(InvalidParams) as info:
            await run(b, queries.search, **{field: value})
        assert field in info.value.data["errors"] and value in info.value.message
    with pytest.raises(InvalidParams, match="date_to"):
        await run(b, queries.search, date_from="2009-01-01", date_to="2008-01-01")


async def test_camera_gps_status_and_subtrees(cat: Any) -> None:
    b, w = cat
    assert await search(b, camera="iphone", path=ROOT + "/2008/trip", recursive=False) == \
        ["g.jpg"]
    assert "g.jpg" in await search(b, camera="APPLE 12")  # words across make and model
    assert await search(b, has_gps=True) == ["f.jpg", "g.jpg"]
    assert "f.jpg" not in await search(b, has_gps=False)
    assert await search(b, status="error") == ["h-error.jpg"]
    assert await search(b, status="missing") == ["j-missing.jpg"]
    assert "i-pending.jpg" in await search(b, status="any")
    assert "i-pending.jpg" not in await search(b)  # default: ok only
    trip = await search(b, folder=w["trip"])
    assert "day2-0.jpg" in trip and "a.jpg" in trip
    assert "tb-0.jpg" not in trip and "trap-case.jpg" not in trip  # TRIP/deep is not trip/
    assert await search(b, path=ROOT + "/2008/Trip_b") == ["tb-0.jpg", "tb-1.jpg"]  # no TripXb
    assert "day2-0.jpg" not in await search(b, folder=w["trip"], recursive=False)
    whole = await search(b, path=ROOT)
    assert len(whole) == 9 + 3 + 2 + 1 + 2 and "z.jpg" not in whole  # ok photos only
    assert await search(b, path=ROOT + "-other") == ["copy of a.jpg", "z.jpg"]
    with pytest.raises(NotFound):
        await run(b, queries.search, path="/somewhere/else")


async def test_search_pages_and_sorts(cat: Any) -> None:
    b, _ = cat
    got, cursor = [], None
    while True:
        doc = await run(b, queries.search, sort="taken", order="desc", limit=4, cursor=cursor,
                        fields=["taken_at"], path=ROOT + "/2008/trip")
        got += doc["photos"]
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    dates = [p["taken_at"] for p in got]
    dated = [d for d in dates if d is not None]
    assert dated == sorted(dated, reverse=True) and dates[len(dated):] == [None] * 3
    assert len({p["id"] for p in got}) == len(got) == 12
    with pytest.raises(InvalidParams, match="another query"):
        await run(b, queries.search, sort="taken", order="desc", limit=4, cursor=cursor or
                  (await run(b, queries.search, limit=1))["next_cursor"])


# -- photo references -----------------------------------------------------------------------
async def test_photo_by_id_and_by_path(cat: Any) -> None:
    b, w = cat
    pid = w["ids"]["trip"][2]
    rec = await run(b, queries.photo_record, photo_id=pid)
    assert rec.abs_path == ROOT + "/2008/trip/c 100%.jpg"
    same = await run(b, queries.photo_record, path=ROOT + "/2008/trip/c 100%.jpg")
    assert same.id == pid
    with pytest.raises(NotFound, match="no photo"):
        await run(b, queries.photo_record, path=ROOT + "/2008/trip/nope.jpg")
    with pytest.raises(NotFound, match="root"):
        await run(b, queries.photo_record, path=ROOT)
    with pytest.raises(NotFound, match="no photo with id"):
        await run(b, queries.photo_record, photo_id=12345)
    async with b.engine.connect() as conn:
        assert await queries.exact_copies(conn, rec) == 0
        a = await queries.photo_record(conn, photo_id=w["ids"]["trip"][0])
        assert await queries.exact_copies(conn, a) == 1  # "copy of a.jpg" in the other root


async def test_trimmed_photos_are_the_full_ones_trimmed(cat: Any) -> None:
    """The fields fast path computes exactly what the full form holds."""
    b, w = cat
    full = await run(b, queries.list_folder, folder=w["trip"])
    for fields in ([f] for f in PHOTO_FIELDS):
        doc = await run(b, queries.list_folder, folder=w["trip"], fields=fields)
        assert doc["photos"] == [{k: p[k] for k in ("id", *fields)} for p in full["photos"]]
    every = await run(b, queries.list_folder, folder=w["trip"], fields=list(PHOTO_FIELDS))
    assert every["photos"] == full["photos"]
    # The same through a search (its pages merged from streams when sorted by name), whose
    # rows hold only the columns the fields are made from.
    grid = ("id", "name", "thumbs", "taken_at", "width", "height", "orientation", "status")
    assert len(queries.photo_columns(grid)) < len(queries.PHOTO_COLUMNS) / 2
    for sort in ("name", "taken"):
        found = await run(b, queries.search, text="trip", sort=sort, status="any")
        assert len(found["photos"]) > 3
        for fields in ([f] for f in PHOTO_FIELDS):
            doc = await run(b, queries.search, text="trip", sort=sort, status="any",
                            fields=fields)
            assert doc["photos"] == [{k: p[k] for k in ("id", *fields)}
                                     for p in found["photos"]], (sort, fields)
