"""Duplicate grouping: the multi-index-hashing plan, near components against brute force,
the documented semantics (chains, exact copies), the cache and the page shape."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import sqlalchemy as sa
from catalog_fixtures import CatalogBuilder, db_url, sha_of, signed64, standard, synth
from hypothesis import given, settings
from hypothesis import strategies as st

from lightbox.common.api import METHODS
from lightbox.common.errors import InvalidParams
from lightbox.daemon.catalog import dupes, nearwork, tables
from lightbox.daemon.media import phash as media_phash

U64 = (1 << 64) - 1
__all__ = ["db_url"]  # the engine-parametrised fixture


def flip(h: int, *bits: int) -> int:
    for b in bits:
        h ^= 1 << b
    return h


def brute(hashes: list[int], threshold: int) -> list[list[int]]:
    parent = list(range(len(hashes)))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for i in range(len(hashes)):
        for j in range(i + 1, len(hashes)):
            if dupes.distance(hashes[i], hashes[j]) <= threshold:
                parent[find(j)] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(hashes)):
        groups.setdefault(find(i), []).append(i)
    return sorted(g for g in groups.values() if len(g) > 1)


def test_default_threshold_is_the_specs_and_the_hashers() -> None:
    spec = {p.name: p for p in METHODS["photos.duplicates"].params}
    assert spec["threshold"].default == dupes.DEFAULT_THRESHOLD
    assert media_phash.NEAR_DUPLICATE_DISTANCE == dupes.DEFAULT_THRESHOLD


@pytest.mark.parametrize("m", [1, 2, 3, 7, 9, 17, 64])
def test_bands_cover_64_bits_disjointly(m: int) -> None:
    masks = dupes.band_masks(m)
    assert len(masks) == m
    total = 0
    for mask in masks:
        assert mask and total & mask == 0
        total |= mask
    assert total == U64
    widths = {mask.bit_count() for mask in masks}
    assert max(widths) - min(widths) <= 1


@pytest.mark.parametrize("n", [10, 10_000, 1_000_000])
@pytest.mark.parametrize("threshold", [1, 3, 6, 10])
def test_plan_guarantees_a_shared_key(n: int, threshold: int) -> None:
    """Pigeonhole: any two hashes within the threshold agree on some table's key."""
    p = dupes.plan(n, threshold)
    assert p.keep == p.bands - threshold >= 1
    masks = list(p.masks())
    assert len(masks) == p.tables
    rng = random.Random(threshold * 1000 + n)
    for _ in range(300):
        h = rng.getrandbits(64)
        g = flip(h, *rng.sample(range(64), rng.randint(0, threshold)))
        assert any(h & m == g & m for m in masks)


def test_plan_widens_keys_for_large_libraries() -> None:
    small, large = dupes.plan(1_000, 6), dupes.plan(1_000_000, 6)
    assert dupes.plan(1_000, 6).tables <= 28
    assert large.keep > small.keep  # more bands in common: wider keys, fewer collisions


@settings(max_examples=60, deadline=None)
@given(st.integers(0, U64), st.integers(0, 10), st.data())
def test_distance_up_to_threshold_is_in_and_one_more_is_out(h: int, threshold: int,
                                                          data: st.DataObject) -> None:
    bits = data.draw(st.permutations(range(64)))
    inside = flip(h, *bits[:threshold])
    outside = flip(h, *bits[:threshold + 1])
    assert dupes.components([h, inside], threshold) == [[0, 1]]
    assert dupes.components([h, outside], threshold) == []


def test_exact_hash_matches_group_at_threshold_zero() -> None:
    h = 0xDEADBEEF
    assert dupes.components([h, h, flip(h, 0), h], 0) == [[0, 1, 3]]


def test_chains_are_one_group_single_linkage() -> None:
    """A~B and B~C put A, B, C in one group although A and C are 6 bits apart."""
    a = 0x0F0F_0F0F_0F0F_0F0F
    b = flip(a, 1, 2, 3)
    c = flip(b, 40, 41, 42)
    far = flip(c, 10, 11, 12, 13, 14, 15, 16)
    assert dupes.distance(a, c) == 6
    assert dupes.components([a, c, far, b], 3) == [[0, 1, 3]]


def test_signed_and_unsigned_hashes_are_the_same_hash() -> None:
    h = (1 << 63) | 5
    assert dupes.components([signed64(h), h], 0) == [[0, 1]]


@pytest.mark.parametrize("threshold", [0, 1, 2, 4, 6, 8, 12])
def test_components_match_brute_force_on_clustered_hashes(threshold: int) -> None:
    rng = random.Random(threshold)
    hashes = []
    for _ in range(60):  # clusters: a centre and copies a few bits away
        centre = rng.getrandbits(64)
        hashes.append(centre)
        for _ in range(rng.randint(0, 5)):
            hashes.append(flip(centre, *rng.sample(range(64), rng.randint(0, 9))))
    hashes += [rng.getrandbits(64) for _ in range(150)]
    rng.shuffle(hashes)
    assert sorted(dupes.components(hashes, threshold)) == brute(hashes, threshold)


def brute_np(hashes: list[int], threshold: int) -> list[list[int]]:
    """``brute`` for a few thousand hashes: every pair compared, one numpy row at a time."""
    import numpy as np

    h = np.array([x & U64 for x in hashes], dtype=np.uint64)
    parent = list(range(len(h)))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for i in range(len(h) - 1):
        for j in (np.flatnonzero(np.bitwise_count(h[i + 1:] ^ h[i]) <= threshold) + i + 1):
            ri, rj = find(i), find(int(j))
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = {}
    for i in range(len(h)):
        groups.setdefault(find(i), []).append(i)
    return sorted(g for g in groups.values() if len(g) > 1)


@pytest.mark.parametrize(("m", "k"), [(7, 1), (8, 2), (9, 3), (10, 4), (12, 6), (5, 5)])
def test_the_tables_are_walked_one_band_swap_at_a_time(m: int, k: int) -> None:
    """Every table once, each differing from the one before by one band (what lets
    close_pairs make the next table with one swap)."""
    import itertools

    walk = nearwork.revolving_door(m, k)
    assert sorted(walk) == sorted(itertools.combinations(range(m), k))
    for before, after in itertools.pairwise(walk):
        assert len(set(before) - set(after)) == 1


@pytest.mark.parametrize("threshold", [2, 6, 8])
@pytest.mark.parametrize("threads", [1, 2])
def test_close_pairs_find_every_planted_copy_and_nothing_further(threshold: int,
                                                                threads: int) -> None:
    """A few thousand random hashes, copies planted at every distance 0..threshold + 1
    from some of them, and a cluster (a hundred hashes a bit or two from one centre: runs
    of one key longer than the neighbour passes go, compared block by block): the same
    components as comparing every pair, with the tables split among threads or not."""
    rng = random.Random(threshold * 10 + threads)
    hashes = list({rng.getrandbits(64) for _ in range(3000)})
    for i in range(300):
        hashes.append(flip(hashes[i], *rng.sample(range(64), i % (threshold + 2))))
    centre = rng.getrandbits(64)
    hashes += [centre, *{flip(centre, *rng.sample(range(64), rng.randint(1, 2)))
                         for _ in range(120)}]
    rng.shuffle(hashes)
    import numpy as np

    uniq, owner = np.unique(np.array(hashes, dtype=np.uint64), return_inverse=True)
    p = dupes.plan(len(uniq), threshold)
    a, b = nearwork.close_pairs(uniq, p, threads)
    assert (a < b).all() and (np.bitwise_count(uniq[a] ^ uniq[b]) <= threshold).all()
    # Every pair within the threshold shares some table's key (pigeonhole): all are found.
    every = {(i, j) for i in range(len(uniq) - 1) for j in
             (np.flatnonzero(np.bitwise_count(uniq[i + 1:] ^ uniq[i]) <= threshold) + i + 1
              ).tolist()}
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == every
    uf = dupes.UnionFind(len(uniq))
    uf.union_pairs(a, b)
    root = uf.roots()[owner.reshape(-1)]
    got: dict[int, list[int]] = {}
    for i, r in enumerate(root.tolist()):
        got.setdefault(r, []).append(i)
    want = brute_np(hashes, threshold)
    assert sorted(g for g in got.values() if len(g) > 1) == want
    assert sorted(dupes.components(hashes, threshold)) == want
    assert any(len(g) > 80 for g in want)  # the cluster is one group


def test_packed_form_for_the_worker_process_gives_the_same_answer() -> None:
    from array import array

    rng = random.Random(3)
    hashes = [rng.getrandbits(64) for _ in range(200)]
    hashes += [flip(h, 5) for h in hashes[:20]]
    packed = array("Q", hashes).tobytes()
    assert nearwork._components_packed(packed, 2) == dupes.components(hashes, 2)


async def test_large_grouping_runs_in_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from array import array

    monkeypatch.setattr(dupes, "PROCESS_ABOVE", 10)
    rng = random.Random(4)
    hashes = [rng.getrandbits(64) for _ in range(100)]
    hashes += [flip(h, 1, 2) for h in hashes[:5]]
    got = await dupes.components_off_loop(array("Q", hashes), 3)
    assert sorted(got) == brute(hashes, 3)


def test_a_threshold_too_costly_for_the_library_is_refused_with_the_maximum() -> None:
    dupes.check_budget(10_000_000, dupes.DEFAULT_THRESHOLD)  # the default is always served
    with pytest.raises(InvalidParams) as info:
        dupes.check_budget(1_000_000, 16)
    best = info.value.data["max_threshold"]
    assert dupes.DEFAULT_THRESHOLD <= best < 16
    assert "threshold" in info.value.data["errors"]
    dupes.check_budget(1_000, 16)  # small libraries may ask for anything


# -- against a catalog --------------------------------------------------------------------
async def _near_catalog(url: str) -> tuple[CatalogBuilder, dict[str, int]]:
    b, w = await standard(url)
    h = 0x0123_4567_89AB_CDEF
    ids = await b.photos(w["2009"], [
        synth(60, name="n1.jpg", phash=signed64(h), width=4000, height=3000),
        synth(61, name="n2.jpg", phash=signed64(flip(h, 0, 1, 2)), width=800, height=600),
        synth(62, name="n3.jpg", phash=signed64(flip(h, 0, 1, 2, 3, 4, 5, 6, 7, 8)),
              width=1000, height=750),
        synth(63, name="n3 copy.jpg", sha256=sha_of(62), width=1000, height=750,
              phash=signed64(flip(h, 0, 1, 2, 3, 4, 5, 6, 7, 8))),
        synth(64, name="lonely copy.jpg", sha256=sha_of(70), phash=signed64(~h)),
        synth(65, name="lonely.jpg", sha256=sha_of(70), phash=signed64(~h)),
        synth(66, name="gone.jpg", status="missing", phash=signed64(flip(h, 9))),
    ])
    await b.finish()
    return b, dict(zip(["n1", "n2", "n3", "n3c", "l1", "l2", "gone"], ids, strict=True))


async def test_near_groups_collapse_exact_copies_and_list_every_photo(db_url: str) -> None:
    b, ids = await _near_catalog(db_url)
    try:
        cache = dupes.DupeCache(b.engine)
        page = await dupes.duplicates(cache, kind="near", fields=["name"])
        keys = [g["key"] for g in page["groups"]]
        # n3 is 6 bits from n2 (within 6) and 9 from n1: one chain n1~n2~n3 (+ its copy).
        chain = next(g for g in page["groups"] if g["key"] == f"near-{ids['n1']}")
        assert chain["count"] == 4 and chain["contents"] == 3
        names = [p["name"] for p in chain["photos"]]
        assert names[0] == "n1.jpg"  # most pixels first
        assert set(names) == {"n1.jpg", "n2.jpg", "n3.jpg", "n3 copy.jpg"}
        dist = {p["name"]: p["distance"] for p in chain["photos"]}
        assert dist == {"n1.jpg": 0, "n2.jpg": 3, "n3.jpg": 9, "n3 copy.jpg": 9}
        # Byte-identical copies alone (lonely*) and a.jpg + its copy are exact groups only;
        # missing photos take no part.
        assert all("lonely" not in p["name"] and p["name"] != "gone.jpg"
                   for g in page["groups"] for p in g["photos"])
        assert page["total_groups"] == len(keys)
        exact = await dupes.duplicates(cache, kind="exact", fields=["name"])
        by_key = {g["key"]: sorted(p["name"] for p in g["photos"]) for g in exact["groups"]}
        assert by_key[sha_of(70)] == ["lonely copy.jpg", "lonely.jpg"]
        assert by_key[sha_of(62)] == ["n3 copy.jpg", "n3.jpg"]
        assert by_key[sha_of(1)] == ["a.jpg", "copy of a.jpg"]
        # Direct neighbours only: n1 has n2 (3 bits); n3's copy is its own content.
        grouping = await cache.near(dupes.DEFAULT_THRESHOLD)
        assert grouping.neighbours(ids["n1"], signed64(0x0123_4567_89AB_CDEF)) == 1
        assert grouping.neighbours(ids["n2"], signed64(flip(0x0123_4567_89AB_CDEF, 0, 1, 2))) \
            == 3  # n1 + n3 + n3 copy
    finally:
        await b.close()


async def test_grouping_is_cached_until_the_catalog_changes(db_url: str) -> None:
    b, _ids = await _near_catalog(db_url)
    try:
        cache = dupes.DupeCache(b.engine)
        first = await cache.near(6)
        assert await cache.near(6) is first  # same generation, recently checked
        cache.invalidate()
        assert await cache.near(6) is first  # fingerprint unchanged: kept
        h = 0x0123_4567_89AB_CDEF
        await b.photos(b.by_path[(1, "2009")], [synth(80, name="n4.jpg",
                                                      phash=signed64(flip(h, 60)))])
        cache.invalidate()  # what a catalog event does
        # photos.get's way: what is held now, at once, while a refresh runs behind it.
        assert cache.peek_near(6) is first
        second = await cache.near(6)
        assert second is not first and cache.peek_near(6) is second
        assert second.groups[0].photos == first.groups[0].photos + 1
        assert cache.peek_near(3) is None  # nothing held for another threshold
    finally:
        await b.close()


async def test_pages_of_groups_follow_the_cursor(db_url: str) -> None:
    b = await CatalogBuilder.open(db_url)
    try:
        src = await b.source("s", "/nowhere")
        rows = []
        for g in range(25):  # 25 exact groups of 2..4 copies
            for k in range(2 + g % 3):
                rows.append(synth(1000 + g * 10 + k, name=f"g{g}-{k}.jpg", sha256=sha_of(g)))
        await b.photos(b.top(src), rows)
        await b.finish()
        cache = dupes.DupeCache(b.engine)
        seen, cursor, pages = [], None, 0
        while True:
            page = await dupes.duplicates(cache, limit=7, cursor=cursor, fields=["name"])
            pages += 1
            seen += [(g["count"], g["key"]) for g in page["groups"]]
            assert page["total_groups"] == 25
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 4
        assert seen == sorted(seen, key=lambda g: (-g[0], g[1]))
        assert len(set(seen)) == 25
        with pytest.raises(InvalidParams, match="cursor"):
            await dupes.duplicates(cache, kind="near", cursor=page_cursor(cache))
    finally:
        await b.close()


def page_cursor(cache: dupes.DupeCache) -> str:
    from lightbox.daemon.catalog import present

    scope = present.scope("photos.duplicates", "exact", None)
    return present.encode_cursor(scope, "groups", "asc", present.Position((3, "x"), 0))


def _children() -> list[int]:
    """Live (not zombie) child processes of this one, from /proc."""
    import os

    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            out.append(int(entry.name))
    return out


async def test_a_cancelled_grouping_kills_its_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon stopping mid-grouping must not wait for the worker to finish."""
    import asyncio
    import time
    from array import array

    monkeypatch.setattr(dupes, "PROCESS_ABOVE", 10)
    rng = random.Random(5)
    hashes = array("Q", (rng.getrandbits(64) for _ in range(300_000)))
    before = set(_children())
    task = asyncio.create_task(dupes.components_off_loop(hashes, 12))  # minutes of work
    for _ in range(400):
        if set(_children()) - before:
            break
        await asyncio.sleep(0.05)
    assert set(_children()) - before, "the grouping did not start a process"
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2
    for _ in range(100):
        if not set(_children()) - before:
            break
        await asyncio.sleep(0.05)
    assert set(_children()) - before == set()


async def test_a_failing_worker_process_says_why() -> None:
    with pytest.raises(RuntimeError, match="exit 1"):
        await dupes._in_process(("file", "/nonexistent/lb-dir/catalog.db", 6, 0))


def test_a_slow_grouping_is_not_redone_at_once() -> None:
    now = 1000.0
    quick = dupes._Entry(None, (), 0, now, now, 0.2)
    slow = dupes._Entry(None, (), 0, now, now, 30.0)
    assert not quick.cooling(now + 0.1)
    assert slow.cooling(now + 100) and not slow.cooling(now + 121)


async def test_a_page_of_many_large_groups_stays_under_the_parameter_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightbox.daemon.catalog import queries

    monkeypatch.setattr(queries, "IN_CHUNK", 10)  # as if the page were a thousand times larger
    b = await CatalogBuilder.open(f"sqlite+aiosqlite:///{tmp_path}/c.db")
    try:
        src = await b.source("s", "/nowhere")
        folders = await b.folders_at(src, [f"f{i}" for i in range(30)])
        h = 0x1234_5678_9ABC_DEF0
        for g in range(12):  # 12 near groups of 3 contents, 2 copies each, in many folders
            for k in range(3):
                for c in range(2):
                    await b.photos(folders[(g * 6 + k * 2 + c) % 30], [synth(
                        10_000 + g * 100 + k * 10 + c, name=f"g{g}-{k}-{c}.jpg",
                        sha256=sha_of(g * 10 + k), phash=signed64((h * (g + 1)) ^ (1 << k)))])
        await b.finish()
        cache = dupes.DupeCache(b.engine)
        near = await dupes.duplicates(cache, kind="near", limit=1000, fields=["name", "path"])
        assert near["total_groups"] == 12
        assert all(g["count"] == 6 and g["contents"] == 3 and len(g["photos"]) == 6
                   and all(p["path"] for p in g["photos"]) for g in near["groups"])
        exact = await dupes.duplicates(cache, limit=1000, fields=["name"])
        assert exact["total_groups"] == 36
    finally:
        await b.close()


async def test_photos_indexed_later_update_the_groupings_without_regrouping(
        db_url: str) -> None:
    """New photos (new contents near old ones, a new copy of an old content, a photo of no
    group) are followed incrementally, and the result is what grouping from scratch
    gives; a removal is not something an update follows: then it regroups."""
    import datetime as dt

    b, _ids = await _near_catalog(db_url)
    try:
        cache = dupes.DupeCache(b.engine)
        await cache.near(6)
        await cache.exact()
        built = {k: e.built for k, e in cache._entries.items()}
        h = 0x0123_4567_89AB_CDEF
        later = dt.datetime(2026, 6, 1)
        await b.photos(b.by_path[(1, "2009")], [
            synth(90, name="n5.jpg", phash=signed64(flip(h, 9, 10, 11, 12, 13)),
                  indexed_at=later),  # near n3 (9 bits from n1): joins the chain
            synth(91, name="n1 copy.jpg", sha256=sha_of(60), phash=signed64(h),
                  indexed_at=later),  # a copy of n1's content
            synth(92, name="far.jpg", phash=signed64(0x5555_5555_5555_5555),
                  indexed_at=later),
            synth(93, name="far2.jpg", phash=signed64(flip(0x5555_5555_5555_5555, 1)),
                  indexed_at=later),  # a new group of two new contents
        ])
        await b.finish()
        cache.invalidate()
        near, exact = await cache.near(6), await cache.exact()
        # The near grouping was updated, not rebuilt; exact groups are always read afresh
        # from the maintained counts.
        assert cache._entries[("near", 6)].built == built[("near", 6)]
        scratch = dupes.DupeCache(b.engine)
        again_near, again_exact = await scratch.near(6), await scratch.exact()
        assert [(g.reps, g.counts) for g in near.groups] == \
            [(g.reps, g.counts) for g in again_near.groups]
        assert exact.groups == again_exact.groups
        assert any(sha_of(60) == sha for _, sha in exact.groups)
        # A removal: regrouped from scratch.
        async with b.engine.begin() as conn:
            await conn.execute(tables_photos().delete().where(
                tables_photos().c.name == "far2.jpg"))
        await b.finish()
        cache.invalidate()
        after = await cache.near(6)
        assert cache._entries[("near", 6)].built != built[("near", 6)]
        assert len(after.groups) == len(near.groups) - 1
    finally:
        await b.close()


def tables_photos() -> sa.Table:
    return tables.photos


async def test_a_large_sqlite_catalog_is_read_and_grouped_in_the_workers_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first near grouping of a large SQLite catalog reads the file in its own process
    (stdlib driver, sha256 prefixes): the same groups, exact-copy counts and keys as
    reading every row through the daemon's driver."""
    b, ids = await _near_catalog(f"sqlite+aiosqlite:///{tmp_path}/catalog.db")
    try:
        async with b.engine.connect() as conn:
            assert dupes.sqlite_file(conn) == str(tmp_path / "catalog.db")
            monkeypatch.setattr(dupes, "PROCESS_ABOVE", 1)
            assert await dupes._big(conn)
            via_file, state = await dupes.build_near(conn, 6)
            monkeypatch.setattr(dupes, "sqlite_file", lambda conn: None)
            via_driver, state2 = await dupes.build_near(conn, 6)
        assert [(g.reps, g.counts, g.key) for g in via_file.groups] == \
            [(g.reps, g.counts, g.key) for g in via_driver.groups]
        assert via_file.groups and via_file.contents == via_driver.contents
        assert sorted(state.reps.tolist()) == sorted(state2.reps.tolist())
        assert f"near-{ids['n1']}" in {g.key for g in via_file.groups}
    finally:
        await b.close()


@pytest.mark.parametrize("chunk", [3, 250_000])
async def test_the_file_reader_gets_the_contents_the_driver_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """The worker's reader takes the contents with copies from the maintained counts and
    reads no sha256 for the others: the same contents (lowest id, dHash, photos) as
    collapsing every row through the daemon's driver, whatever the statuses of a
    content's photos and which of them lack a dHash; in chunks of rows or in one."""
    import numpy as np

    monkeypatch.setattr(nearwork, "_READ_CHUNK", chunk)
    b, w = await standard(f"sqlite+aiosqlite:///{tmp_path}/catalog.db")
    try:
        ids = dict(zip(["bare", "bare copy", "gone", "kept", "kept copy", "first",
                        "first copy", "no hash", "pending", "error copy"],
                       await b.photos(w["2009"], [
            synth(100, name="bare.jpg", phash=None),  # the lowest id has no dHash ...
            synth(101, name="bare copy.jpg", sha256=sha_of(100)),  # ... so no near content
            synth(102, name="gone.jpg", status="missing", sha256=sha_of(103)),
            synth(103, name="kept.jpg"),
            synth(104, name="kept copy.jpg", sha256=sha_of(103)),
            synth(105, name="first.jpg"),
            synth(106, name="first copy.jpg", sha256=sha_of(105), phash=None),
            synth(107, name="no hash.jpg", phash=None),
            synth(108, name="pending.jpg", status="pending", sha256=None),
            synth(109, name="error copy.jpg", status="error", sha256=sha_of(105)),
        ]), strict=True))
        await b.finish()
        got = nearwork._read_file(str(tmp_path / "catalog.db"))
        assert got is not None
        reps, hashes, has_hash, counts, shas = got
        async with b.engine.connect() as conn:
            want = await dupes.load(conn)
        sel = np.flatnonzero(want.has_hash)
        assert has_hash.all() and (np.diff(reps) > 0).all()
        assert list(zip(reps.tolist(), hashes.tolist(), counts.tolist(), strict=True)) == \
            sorted(zip(want.reps[sel].tolist(), want.hashes[sel].tolist(),
                       want.counts[sel].tolist(), strict=True))
        assert {int(reps[k]): v for k, v in shas.items()} == \
            {int(want.reps[k]): v for k, v in want.shas.items() if want.has_hash[k]}
        count_of = dict(zip(reps.tolist(), counts.tolist(), strict=True))
        assert ids["bare"] not in count_of and ids["bare copy"] not in count_of
        assert count_of[ids["kept"]] == 2 and count_of[ids["first"]] == 2
        assert ids["gone"] not in count_of and ids["no hash"] not in count_of
    finally:
        await b.close()
