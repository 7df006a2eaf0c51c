"""Duplicate photos: exact (same sha256) and near (perceptual hashes a few bits apart).

Semantics (what ``photos.duplicates`` and ``photos.get`` promise):

- Only photos with status ``ok`` take part; a file's content is its sha256.
- **exact**: the photos sharing one sha256, when there are at least two. Largest groups
  first, then by sha256; the group key is the sha256.
- **near**: first the photos are collapsed to distinct contents (one per sha256, so a file
  and its byte-identical copies count once). Two contents are *neighbours* when the Hamming
  distance of their 64-bit dHashes is at most ``threshold``; a near group is a connected
  component of that graph (single linkage, computed with union-find) with at least two
  distinct contents, and lists every photo of those contents. A chain A~B~C is one group even
  when A and C are further apart than the threshold: people review such runs (bursts, edits
  of edits) together, and each photo carries its ``distance`` to the group's first photo so
  a UI can show how far it drifted. A set of byte-identical copies alone is an exact group,
  never a near one. The group key is ``near-<lowest photo id>``.
- ``photos.get``'s ``near`` is the number of other photos (of a different content) within
  the default threshold of that photo itself: its direct neighbours, not its whole chain.

Finding neighbours without comparing every pair: multi-index hashing. Split the 64 bits into
``m`` bands; two hashes within ``r`` bits of each other differ in at most ``r`` bands, so they
agree exactly on at least ``m - r`` of them (pigeonhole). One hash table per choice of
``m - r`` bands, keyed by those bits, brings every such pair together in some bucket; only
pairs within a bucket are compared. ``m = r + 1`` is the classic one-band-in-common scheme;
a larger library wants wider keys (fewer collisions) at the price of more tables, so ``plan``
picks ``m`` from a cost model, and refuses a threshold whose cost would be unreasonable for
the library's size instead of running for an hour. Each table is the hashes themselves with
the key's bands moved to the top bits, sorted (numpy), and vector compares of neighbours in
that order, not a Python loop; moving bits changes no distance, so no index rides along and
no candidate is gathered, and the tables are walked so that each is the one before with one
band swapped (``nearwork``: at a million distinct hashes, about a second of CPU).

The grouping is cached, keyed on a catalog fingerprint (ok photos, from the folders' counts
less the few pending and erroneous photos; newest ``indexed_at``; highest id). Catalog and
source events in this daemon bump a generation that forces the fingerprint to be re-read;
without events it is re-read at most every ``RECHECK`` seconds, which is what another
daemon sharing the database costs us in staleness. When the catalog changed by additions
only (the ok photos are the old ones plus those indexed since), the grouping is *updated*:
the new photos' contents are looked up in per-band tables kept from the grouping (one band
of ``threshold + 1`` in common suffices for a single lookup) and joined to the components;
exact groups get the new counts of the contents photos were added to. Anything else (a
photo removed, a content changed) regroups from scratch, and a regrouping that took T
seconds is not redone within 4T (a scan changes the catalog constantly), so replies carry
``computed_at``. Exact groups are not grouped at all: ``photos_shas`` (migration
``0025_sha_counts``) counts the ok photos of every content, kept by triggers in the same
transaction as the photo rows, and the groups are its rows with ``n >= 2``, read through an
index holding only those (a few ms at 1,000,000 photos); an exact grouping is that read,
redone whenever the catalog may have changed (no fingerprint, no update). The near grouping
reads the ok photos once, in id order; on a large SQLite catalog that read happens in the
grouping's own process with the stdlib driver: the ids and dHashes of the counted photos as
two texts SQLite joins itself, and the contents with copies from ``photos_shas`` (no sha256
read for a photo that is its own content). The CPU work runs off the event loop: in a
thread for small libraries, in a short-lived, niced process for large ones (the GIL would
otherwise stretch every other request's latency, and the process hands its memory back to
the system when it exits), ``python -P nearwork.py``, which imports numpy and nothing of
the daemon's.
"""

from __future__ import annotations

import asyncio
import bisect
import pickle
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lightbox.common import logs
from lightbox.common.errors import InvalidParams, Unavailable
from lightbox.daemon.catalog import nearwork, present, queries
from lightbox.daemon.catalog.nearwork import UnionFind, components, plan
from lightbox.daemon.catalog.tables import folders, photos

log = logs.get("dupes")

BITS = 64
_U64 = (1 << BITS) - 1
DEFAULT_THRESHOLD = 6  # = photos.duplicates' default = media.phash.NEAR_DUPLICATE_DISTANCE
# Work units (see ``plan``) we accept for one grouping; a threshold costing more is refused.
# Measured here: ~80 ns a unit on a loaded 2-core machine (numpy), so 1,000,000 distinct,
# uniformly random hashes (the worst case) at the default threshold cost ~1.2e8 units, about
# 9 s; the budget is a couple of minutes of one core.
BUDGET = 1.5e9
PROCESS_ABOVE = 50_000  # contents; fewer are grouped in a thread (no process start-up cost)
RECHECK = 2.0  # seconds an unchanged generation is trusted without asking the database
REBUILD_FACTOR = 4.0  # see _Entry.cooling
COOL_ABOVE = 1.0  # seconds: groupings quicker than this are always redone at once
MAX_GROUP_PHOTOS = 100  # photos listed per group (``count`` says how many there are)


# -- the pure part ---------------------------------------------------------------------------
def distance(a: int, b: int) -> int:
    return ((a ^ b) & _U64).bit_count()


def band_masks(m: int) -> list[int]:
    """``m`` disjoint bit masks covering the 64 bits, as even in width as possible."""
    out, start = [], 0
    for i in range(m):
        width = BITS // m + (1 if i < BITS % m else 0)
        out.append(((1 << width) - 1) << start)
        start += width
    return out


def max_threshold(n: int, budget: float = BUDGET) -> int:
    """The largest threshold ``plan`` can serve for ``n`` hashes within ``budget`` (never
    less than the default)."""
    t = DEFAULT_THRESHOLD
    while t < 16 and plan(n, t + 1).cost <= budget:
        t += 1
    return t


def _bands_of(mask: int) -> list[tuple[int, int]]:
    """(start bit, width) of each run of set bits of ``mask``."""
    out, bit = [], 0
    while mask >> bit:
        if mask >> bit & 1:
            width = 0
            while mask >> (bit + width) & 1:
                width += 1
            out.append((bit, width))
            bit += width
        else:
            bit += 1
    return out


def _key(uniq: Any, mask: int) -> tuple[Any, int]:
    """The bits of ``mask`` packed together (a key of ``mask.bit_count()`` bits)."""
    key = np.zeros(len(uniq), dtype=np.uint64)
    shift = 0
    for start, width in _bands_of(mask):
        part = (uniq >> np.uint64(start)) & np.uint64((1 << width) - 1)
        key |= part << np.uint64(shift) if shift else part
        shift += width
    return key, shift


async def _in_process(job: tuple[str, Any, int, int]) -> Any:
    """A ``nearwork`` job in a short-lived process of its own: ``python -P nearwork.py``
    (not a multiprocessing 'spawn' child, which imports the daemon's main module and this
    one again: a second of CPU before any work), the job pickled on its stdin, the answer
    on its stdout. It is niced by the job itself (the daemon's work goes first) and hands
    its memory back when it exits; cancelled (the daemon stopping) or failed, it is killed
    rather than waited for."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-P", nearwork.__file__, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await proc.communicate(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
    except BaseException:
        if proc.returncode is None:
            proc.kill()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"the near grouping's process failed (exit {proc.returncode}): "
                           + err.decode(errors="replace")[-2000:])
    return pickle.loads(out)


def sqlite_file(conn: AsyncConnection) -> str | None:
    """The catalog's file when it is a SQLite file another process can open."""
    url = conn.engine.url
    if conn.dialect.name != "sqlite" or not url.database or url.database == ":memory:" \
            or url.database.startswith("file:"):
        return None
    return url.database


async def components_off_loop(hashes: array[int], threshold: int) -> list[list[int]]:
    if len(hashes) <= PROCESS_ABOVE:
        return await asyncio.to_thread(components, hashes, threshold)
    out: list[list[int]] = await _in_process(("packed", hashes.tobytes(), threshold, 10))
    return out


# -- groupings --------------------------------------------------------------------------------
@dataclass
class ExactGroups:
    """(photo count, sha256) of every exact group, in page order."""

    groups: list[tuple[int, str]]
    computed: float = field(default_factory=time.time)

    def order_key(self, count: int, key: str) -> tuple[int, str]:
        return (-count, key)


@dataclass
class NearGroup:
    reps: list[int]  # lowest photo id of each content, heaviest content first
    hashes: list[int]  # unsigned dHash of each content
    counts: list[int]  # photos of each content

    @property
    def photos(self) -> int:
        return sum(self.counts)

    @property
    def key(self) -> str:
        return f"near-{min(self.reps)}"


@dataclass
class NearGroups:
    threshold: int
    groups: list[NearGroup]  # page order: most photos first, then lowest id
    contents: int  # distinct contents considered
    computed: float = field(default_factory=time.time)
    by_rep: dict[int, int] = field(default_factory=dict)  # content rep -> group index

    def __post_init__(self) -> None:
        self.by_rep = {rep: i for i, g in enumerate(self.groups) for rep in g.reps}

    def neighbours(self, rep: int | None, phash: int | None) -> int:
        """Photos of other contents within ``threshold`` of the content ``rep``."""
        if rep is None or phash is None:
            return 0
        gi = self.by_rep.get(rep)
        if gi is None:
            return 0
        g = self.groups[gi]
        h = phash & _U64
        return sum(c for r, hh, c in zip(g.reps, g.hashes, g.counts, strict=True)
                   if r != rep and distance(h, hh) <= self.threshold)


# -- the catalog side -------------------------------------------------------------------------
_OK = photos.c.status == "ok"
INCREMENTAL_MAX = 50_000  # new photos an update takes; more, and the grouping is redone
INCREMENTAL_THRESHOLD = 8  # above: one band table per bit pair would be needed; redone


async def fingerprint(conn: AsyncConnection) -> tuple[Any, ...]:
    """(ok photos, newest indexed_at, highest id), cheaply: the ok count is the folders'
    photo counts (every photo but missing ones, kept by the writer) less the pending and
    erroneous photos (few; an index range), not a count of a million rows."""
    listed = await conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(folders.c.photo_count),
                                                          0)))
    not_ok = await conn.scalar(sa.select(sa.func.count()).select_from(photos).where(
        photos.c.status.in_(("pending", "error"))))
    newest = (await conn.execute(sa.select(
        sa.select(sa.func.max(photos.c.indexed_at)).where(_OK).scalar_subquery(),
        sa.select(sa.func.max(photos.c.id)).scalar_subquery()))).one()
    return (int(listed or 0) - int(not_ok or 0), *newest)


@dataclass
class Contents:
    """Every ok photo with a sha256, collapsed to distinct contents (numpy columns)."""

    reps: Any  # int64: lowest photo id of each content
    hashes: Any  # uint64: its dHash (0 where none: see has_hash)
    has_hash: Any  # bool
    counts: Any  # int64: photos of each content
    shas: dict[int, str]  # sha256 of the contents with copies


def collapse(ids: Any, shas: list[str], hashes: Any, has_hash: Any) -> Contents:
    """Rows (in id order) to contents: grouped by the first 64 bits of the sha256 (numpy
    sorts integers, not strings), checked against the whole sha256 (a collision of the
    first 64 bits regroups by the full text)."""
    n = len(shas)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Contents(empty, np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=bool), empty,
                        {})
    prefix = np.fromiter((int(x[:16], 16) for x in shas), dtype=np.uint64, count=n)
    _, first, inverse, counts = np.unique(prefix, return_index=True, return_inverse=True,
                                          return_counts=True)
    inverse = inverse.reshape(-1)
    full = np.array(shas, dtype="S64")
    if not np.array_equal(full, full[first][inverse]):
        _, first, inverse, counts = np.unique(full, return_index=True, return_inverse=True,
                                              return_counts=True)
    many = np.flatnonzero(counts > 1)
    return Contents(ids[first], hashes[first], has_hash[first], counts.astype(np.int64),
                    dict(zip(many.tolist(), (shas[i] for i in first[many].tolist()),
                             strict=True)))


async def load(conn: AsyncConnection) -> Contents:
    """One pass over the ok photos, in id order (a sequential read, not a GROUP BY that
    visits the sha256 index and then every row)."""
    ids: list[int] = []
    shas: list[str] = []
    hs: list[int | None] = []
    stmt = (sa.select(photos.c.id, photos.c.sha256, photos.c.phash)
            .where(_OK, photos.c.sha256.is_not(None)).order_by(photos.c.id))
    result = await conn.stream(stmt)
    async for part in result.partitions(50_000):
        for pid, sha, h in part:
            ids.append(pid)
            shas.append(sha)
            hs.append(h)
    has = np.fromiter((h is not None for h in hs), dtype=bool, count=len(hs))
    raw = np.fromiter((0 if h is None else h for h in hs), dtype=np.int64, count=len(hs))
    return await asyncio.to_thread(collapse, np.array(ids, dtype=np.int64), shas,
                                   raw.view(np.uint64), has)


# The maintained counts (migration 0025_sha_counts); beside ``tables.metadata``, like the
# text index's objects: schema comparisons leave them out, copies never carry them.
OBJECTS = ("photos_shas", "ix_photos_shas_dupes")
_SHAS = sa.table("photos_shas", sa.column("sha256", sa.String), sa.column("n", sa.Integer))


def owns(name: str | None) -> bool:
    """Whether a table or index of that name is the maintained counts'."""
    return name in OBJECTS


async def load_exact(conn: AsyncConnection) -> ExactGroups:
    """Exact groups from the maintained counts: the contents two or more ok photos have.
    ``n >= 2`` is written as a literal, as the partial index is (SQLite and PostgreSQL
    use a partial index only for a condition that implies its own; a parameter does not)."""
    rows = await conn.execute(sa.select(_SHAS.c.n, _SHAS.c.sha256)
                              .where(_SHAS.c.n >= sa.literal_column("2")))
    counts = [(int(c), str(sha)) for c, sha in rows]
    counts.sort(key=lambda g: (-g[0], g[1]))
    return ExactGroups(counts)


async def count_by_group(conn: AsyncConnection) -> dict[str, int]:
    """sha256 -> ok photos, grouped from the photos themselves: what ``photos_shas`` must
    always equal (its invariant; tests compare the two)."""
    rows = await conn.execute(sa.select(photos.c.sha256, sa.func.count())
                              .where(_OK, photos.c.sha256.is_not(None))
                              .group_by(photos.c.sha256))
    return {str(sha): int(c) for sha, c in rows}


async def counted(conn: AsyncConnection) -> dict[str, int]:
    """sha256 -> n, as ``photos_shas`` holds it."""
    return {str(sha): int(n) for sha, n in await conn.execute(
        sa.select(_SHAS.c.sha256, _SHAS.c.n))}


@dataclass
class NearState:
    """What an incremental update of a near grouping starts from: the contents that take
    part (with a dHash), their components, the photos counted."""

    threshold: int
    reps: Any
    hashes: Any
    counts: Any
    uf: UnionFind
    bands: BandTables | None = None  # made at the first update


async def _big(conn: AsyncConnection) -> bool:
    """More photos than a thread groups quickly (PROCESS_ABOVE): the folders' counts."""
    listed = await conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(folders.c.photo_count),
                                                          0)))
    return int(listed or 0) > PROCESS_ABOVE


def _near_groups(state: NearState) -> NearGroups:
    """The groups (components of two contents or more) in page order."""
    roots = state.uf.roots()
    joined = np.flatnonzero(roots != np.arange(len(roots)))
    members = np.union1d(joined, roots[joined])
    by_root: dict[int, list[int]] = {}
    for i, r in zip(members.tolist(), roots[members].tolist(), strict=True):
        by_root.setdefault(r, []).append(i)
    reps, hashes, counts = state.reps, state.hashes, state.counts
    groups = []
    for comp in by_root.values():
        comp.sort(key=lambda i: (-int(counts[i]), int(reps[i])))
        groups.append(NearGroup([int(reps[i]) for i in comp], [int(hashes[i]) for i in comp],
                                [int(counts[i]) for i in comp]))
    groups.sort(key=lambda g: (-g.photos, min(g.reps)))
    return NearGroups(state.threshold, groups, len(reps))


async def build_near(conn: AsyncConnection, threshold: int, contents: Contents | None = None
                     ) -> tuple[NearGroups, NearState]:
    started = time.perf_counter()
    comps: list[list[int]] | None = None
    path = sqlite_file(conn) if contents is None else None
    if path is not None and await _big(conn):
        # A large SQLite catalog: read and group in one worker process with the stdlib
        # driver (the async driver's rows cost about half of a first grouping at 1M).
        got = await _in_process(("file", path, threshold, 10))
        if got is not None:
            reps, hashes, has_hash, counts, shas, comps = got
            contents = Contents(reps, hashes, has_hash, counts, shas)
    if contents is None:
        contents = await load(conn)
    sel = np.flatnonzero(contents.has_hash)
    reps, hashes, counts = contents.reps[sel], contents.hashes[sel], contents.counts[sel]
    check_budget(len(hashes), threshold)
    loaded = time.perf_counter()
    if comps is None:
        comps = await components_off_loop(array("Q", hashes.tobytes()), threshold)
    uf = UnionFind(len(hashes))
    for comp in comps:
        uf.parent[comp] = comp[0]  # sorted: the first is the lowest
    state = NearState(threshold, reps, hashes, counts, uf)
    if threshold <= INCREMENTAL_THRESHOLD:  # ready for updates (7 sorts of 16-bit keys)
        state.bands = await asyncio.to_thread(BandTables, hashes, threshold)
    grouping = await asyncio.to_thread(_near_groups, state)
    log.info("near duplicates grouped", contents=len(hashes), threshold=threshold,
             groups=len(grouping.groups), load_ms=round((loaded - started) * 1000),
             group_ms=round((time.perf_counter() - loaded) * 1000))
    return grouping, state


class BandTables:
    """For each of ``threshold + 1`` bands, the contents sorted by that band's bits (two
    hashes that close agree on a whole band): a new hash finds its candidate neighbours
    by binary search. Built once, then contents added since are kept aside (compared
    directly) until there are enough of them to sort in."""

    MERGE_AT = 20_000

    def __init__(self, hashes: Any, threshold: int) -> None:
        self.threshold = threshold
        self.masks = band_masks(threshold + 1)
        self.tables = []
        for mask in self.masks:
            key = _key(hashes, mask)[0].astype(np.uint16)
            order = np.argsort(key, kind="stable").astype(np.int32)  # radix, 16-bit keys
            self.tables.append((key[order], order))
        self.indexed = len(hashes)  # contents in the tables; later ones are "recent"

    def pairs(self, hashes: Any, new: Any) -> tuple[Any, Any]:
        """(new content, other content) pairs within the threshold."""
        t = np.uint8(self.threshold)
        found_a: list[Any] = []
        found_b: list[Any] = []
        for mask, (sk, order) in zip(self.masks, self.tables, strict=True):
            q = _key(hashes[new], mask)[0].astype(np.uint16)
            lo = np.searchsorted(sk, q, "left")
            lens = np.searchsorted(sk, q, "right") - lo
            total = int(lens.sum())
            if total == 0:
                continue
            which = np.repeat(np.arange(len(new)), lens)
            offs = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
            cand = order[np.repeat(lo, lens) + offs].astype(np.int64)
            qi = new[which]
            close = (np.bitwise_count(hashes[cand] ^ hashes[qi]) <= t) & (cand != qi)
            found_a.append(qi[close])
            found_b.append(cand[close])
        recent = np.arange(self.indexed, len(hashes))  # the new ones among them
        for x in range(0, len(new), 1024):
            block = new[x:x + 1024]
            near = np.bitwise_count(hashes[block][:, None] ^ hashes[recent][None, :]) <= t
            ia, ib = np.nonzero(near)
            keep = block[ia] != recent[ib]
            found_a.append(block[ia][keep])
            found_b.append(recent[ib][keep])
        return np.concatenate(found_a), np.concatenate(found_b)


def _ok_by_sha(conn: AsyncConnection) -> Any:
    """status = 'ok', for lookups by sha256: SQLite, given a list of hashes, would rather
    walk every ok photo on the status index (2 s instead of 30 ms for 1,000 at 1M)."""
    status: Any = photos.c.status
    return (status + "" if conn.dialect.name == "sqlite" else status) == "ok"


async def added_since(conn: AsyncConnection, old: tuple[Any, ...], new: tuple[Any, ...]
                      ) -> list[tuple[str, int, int, int | None, int | None]] | None:
    """The contents that photos indexed since fingerprint ``old`` belong to, as (sha256,
    lowest id, photos, lowest id already there at ``old``, dHash); None unless the
    catalog changed by additions only (ok photos: the old ones plus the newly indexed),
    which is what an update can follow; anything else is regrouped from scratch."""
    old_ok, old_at, _ = old
    new_ok = new[0]
    if old_at is None or new_ok < old_ok or new_ok - old_ok > INCREMENTAL_MAX:
        return None
    fresh = (await conn.execute(sa.select(photos.c.id, photos.c.sha256).where(
        _OK, photos.c.indexed_at > old_at).limit(INCREMENTAL_MAX + 1))).all()
    if old_ok + len(fresh) != new_ok or not fresh:
        return None  # (nothing newly indexed, yet the fingerprint moved: something else)
    shas = sorted({r.sha256 for r in fresh if r.sha256 is not None})
    out: list[tuple[str, int, int, int | None, int | None]] = []
    before = sa.case((photos.c.indexed_at <= old_at, photos.c.id))
    ok = _ok_by_sha(conn)
    for part in queries.chunks(shas, queries.IN_CHUNK // 2):
        rows = await conn.execute(sa.select(
            photos.c.sha256, sa.func.min(photos.c.id), sa.func.count(),
            sa.func.min(before), sa.func.min(photos.c.phash))
            .where(ok, photos.c.sha256.in_(part)).group_by(photos.c.sha256))
        out += [(r[0], int(r[1]), int(r[2]), None if r[3] is None else int(r[3]),
                 None if r[4] is None else int(r[4]) & _U64) for r in rows]
    return out


def extend_near(state: NearState, added: list[tuple[str, int, int, int | None, int | None]]
                ) -> NearGroups | None:
    """The grouping after ``added`` (see ``added_since``), updated in place; None when an
    addition is not one it can follow."""
    known = [a[3] for a in added if a[3] is not None and a[4] is not None]
    # Where the contents photos were copied to are: a search for a few, a sort for many.
    index_of: dict[int, int] = {}
    if len(known) > 64:
        order = np.argsort(state.reps)
        at = np.searchsorted(state.reps[order], known)
        for rep, i in zip(known, at.tolist(), strict=True):
            if i < len(order) and state.reps[order[i]] == rep:
                index_of[rep] = int(order[i])
    else:
        for rep in known:
            hit = np.flatnonzero(state.reps == rep)
            if len(hit):
                index_of[rep] = int(hit[0])
    new_reps: list[int] = []
    new_hashes: list[int] = []
    new_counts: list[int] = []
    for _sha, rep, count, old_rep, h in added:
        if h is None:
            continue
        if old_rep is not None:
            i = index_of.get(old_rep, -1)
            if i < 0:
                return None  # a content we did not hold: regroup
            state.reps[i], state.counts[i] = rep, count
        else:
            new_reps.append(rep)
            new_hashes.append(h)
            new_counts.append(count)
    if new_reps:
        first = len(state.reps)
        state.reps = np.concatenate([state.reps, np.array(new_reps, dtype=np.int64)])
        state.hashes = np.concatenate([state.hashes, np.array(new_hashes, dtype=np.uint64)])
        state.counts = np.concatenate([state.counts, np.array(new_counts, dtype=np.int64)])
        state.uf.grow(len(state.reps))
        new = np.arange(first, len(state.reps))
        if state.bands is None or len(state.reps) - state.bands.indexed > BandTables.MERGE_AT:
            state.bands = BandTables(state.hashes[:first], state.threshold)
        a, b = state.bands.pairs(state.hashes, new)
        state.uf.union_pairs(a, b)
    return _near_groups(state)


def check_budget(n: int, threshold: int) -> None:
    """Refuse a threshold above the default that would cost more than BUDGET; the default
    itself is always served, however long it takes on a huge library."""
    if threshold > DEFAULT_THRESHOLD and plan(n, threshold).cost > BUDGET:
        best = max_threshold(n)
        why = (f"too costly for {n:,} distinct photos (at most {best} here); near "
               f"duplicates are usually within {DEFAULT_THRESHOLD}")
        raise InvalidParams(f"threshold: {why}", {"errors": {"threshold": why},
                                                   "max_threshold": best})


@dataclass
class _Entry:
    value: Any
    fingerprint: tuple[Any, ...]
    generation: int
    checked: float  # monotonic time the fingerprint was last compared
    built: float  # monotonic time the value was computed
    seconds: float  # how long computing it took
    state: Any = None  # what an incremental update needs (NearState)

    def cooling(self, now: float) -> bool:
        """Too soon to rebuild: a grouping that took T seconds (T >= COOL_ABOVE) is rebuilt
        at most every REBUILD_FACTOR * T, so a scan changing the catalog all the time does
        not keep a core busy regrouping a large library; small ones regroup at once."""
        return self.seconds >= COOL_ABOVE and now - self.built < REBUILD_FACTOR * self.seconds


class DupeCache:
    """Groupings of one catalog, rebuilt when the catalog changes (see the module doc)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.generation = 0
        self.heavy = asyncio.Lock()  # one near grouping at a time: each can take minutes
        self._entries: dict[Any, _Entry] = {}
        self._tasks: dict[Any, asyncio.Task[Any]] = {}

    def invalidate(self) -> None:
        """The catalog changed (an event from this daemon): re-read the fingerprint."""
        self.generation += 1

    def on_event(self, event: Any) -> None:
        if getattr(event, "topic", None) in ("catalog", "source"):
            self.invalidate()

    async def exact(self, wait: float | None = None) -> ExactGroups:
        """The exact groups: read from the maintained counts (one indexed read), again
        whenever the catalog may have changed; ``wait`` is accepted for symmetry with
        ``near`` (the read never takes long)."""
        entry = self._entries.get("exact")
        if entry is not None and self._fresh(entry):
            return entry.value  # type: ignore[no-any-return]
        generation, started = self.generation, time.monotonic()
        async with self.engine.connect() as conn:
            value = await load_exact(conn)
        now = time.monotonic()
        self._entries["exact"] = _Entry(value, (), generation, now, now, now - started)
        return value

    async def near(self, threshold: int, wait: float | None = None) -> NearGroups:
        value: NearGroups = await self._get(("near", threshold), self._near_builder(threshold),
                                            wait)
        return value

    def peek_near(self, threshold: int) -> NearGroups | None:
        """The grouping held now, possibly stale, without waiting; a refresh is started in
        the background when one is due (photos.get must not wait for the catalog
        fingerprint, a full scan of a large photos table)."""
        key = ("near", threshold)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if not self._fresh(entry):
            self._task(key, self._near_builder(threshold), entry)
        return entry.value  # type: ignore[no-any-return]

    def _near_builder(self, threshold: int) -> Any:
        async def build(conn: AsyncConnection, fp: tuple[Any, ...]) -> tuple[NearGroups, Any]:
            async with self.heavy:
                grouping, state = await build_near(conn, threshold)
            return grouping, state if threshold <= INCREMENTAL_THRESHOLD else None
        return build

    def _fresh(self, entry: _Entry) -> bool:
        now = time.monotonic()
        return entry.generation == self.generation and now - entry.checked < RECHECK

    def _task(self, key: Any, build: Any, entry: _Entry | None) -> asyncio.Task[Any]:
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.create_task(self._refresh(key, build, entry))
            self._tasks[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
        return task

    async def _get(self, key: Any, build: Any, wait: float | None) -> Any:
        entry = self._entries.get(key)
        if entry is not None and self._fresh(entry):
            return entry.value
        task = self._task(key, build, entry)
        try:
            return await asyncio.wait_for(asyncio.shield(task), wait)
        except TimeoutError:
            raise Unavailable(
                "still grouping duplicates; try again in a few seconds",
                {"retry_after": 5}) from None

    def _done(self, key: Any, task: asyncio.Task[Any]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, InvalidParams):
                log.error("duplicate grouping failed", key=str(key), error=repr(exc))

    async def _refresh(self, key: Any, build: Any, entry: _Entry | None) -> Any:
        generation = self.generation
        async with self.engine.connect() as conn:
            fp = await fingerprint(conn)
            if entry is not None and entry.fingerprint == fp:
                entry.generation, entry.checked = generation, time.monotonic()
                return entry.value
            if entry is not None and entry.state is not None:
                # Photos indexed since: follow them instead of regrouping everything.
                started = time.monotonic()
                added = await added_since(conn, entry.fingerprint, fp)
                value = None
                if added is not None:
                    value = await asyncio.to_thread(extend_near, entry.state, added)
                if value is not None:
                    log.info("duplicates updated", key=str(key), contents=len(added or ()),
                             ms=round((time.monotonic() - started) * 1000))
                    entry.value, entry.fingerprint = value, fp
                    entry.generation, entry.checked = generation, time.monotonic()
                    return value
            if entry is not None and entry.cooling(time.monotonic()):
                entry.generation, entry.checked = generation, time.monotonic()
                return entry.value  # regrouped a moment ago; again once it has cooled
            started = time.monotonic()
            value, state = await build(conn, fp)
        now = time.monotonic()
        self._entries[key] = _Entry(value, fp, generation, now, now, now - started, state)
        return value

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()


# -- pages ------------------------------------------------------------------------------------
def _after(order: Sequence[tuple[int, Any]], pos: tuple[int, str] | None,
           near: bool) -> int:
    if pos is None:
        return 0
    count, key = pos
    sort: Any = key
    if near:
        try:
            sort = int(key.removeprefix("near-"))
        except ValueError:
            raise InvalidParams("cursor: malformed", {"errors": {"cursor": "malformed"}}) \
                from None
    return bisect.bisect_right(order, (-count, sort))


async def _photos_by_content(conn: AsyncConnection, shas: Sequence[str],
                             per_group: int) -> dict[str, list[Any]]:
    """Rows of the ok photos of each sha256 (at most ``per_group`` each, lowest ids)."""
    out: dict[str, list[Any]] = {}
    rn = sa.func.row_number().over(partition_by=photos.c.sha256,
                                   order_by=photos.c.id).label("rn")
    for part in queries.chunks(list(shas), queries.IN_CHUNK // 2):
        inner = (sa.select(*queries.PHOTO_COLUMNS, rn)
                 .where(_ok_by_sha(conn), photos.c.sha256.in_(part)).subquery())
        rows = await conn.execute(
            sa.select(*[inner.c[c.name] for c in queries.PHOTO_COLUMNS])
            .where(inner.c.rn <= per_group).order_by(inner.c.id))
        for r in rows:
            out.setdefault(r.sha256, []).append(r)
    return out


async def duplicates(cache: DupeCache, *, kind: str = "exact",
                     threshold: int = DEFAULT_THRESHOLD, limit: int = 100,
                     cursor: str | None = None, fields: Sequence[str] | None = None,
                     wait: float | None = None) -> dict[str, Any]:
    """The reply of ``photos.duplicates``."""
    wanted = present.check_fields(fields)
    near = kind == "near"
    scope = present.scope("photos.duplicates", kind, threshold if near else None)
    pos = present.decode_cursor(cursor, scope, "groups", "asc")
    after = None if pos is None else pos.value
    groups_out: list[dict[str, Any]] = []
    next_pos: tuple[int, str] | None = None
    if not near:
        exact = await cache.exact(wait)
        order: list[tuple[int, Any]] = [(-c, s) for c, s in exact.groups]
        start = _after(order, after, near=False)
        page = exact.groups[start:start + limit]
        if start + limit < len(exact.groups) and page:
            next_pos = page[-1]
        total, computed = len(exact.groups), exact.computed
        async with cache.engine.connect() as conn:
            rows = await _photos_by_content(conn, [s for _, s in page], MAX_GROUP_PHOTOS)
            book = await queries.path_book(conn, {r.folder_id for rs in rows.values()
                                                  for r in rs})
        for count, sha in page:
            groups_out.append({"key": sha, "count": count,
                               "photos": present.photos(rows.get(sha, []), book, wanted)})
    else:
        grouping = await cache.near(threshold, wait)
        order = [(-g.photos, min(g.reps)) for g in grouping.groups]
        start = _after(order, after, near=True)
        npage = grouping.groups[start:start + limit]
        if start + limit < len(grouping.groups) and npage:
            next_pos = (npage[-1].photos, npage[-1].key)
        total, computed = len(grouping.groups), grouping.computed
        reps = [r for g in npage for r in g.reps[:MAX_GROUP_PHOTOS]]
        async with cache.engine.connect() as conn:
            sha_of: dict[int, str] = {}
            for part in queries.chunks(reps):
                sha_of.update((r.id, r.sha256) for r in await conn.execute(
                    sa.select(photos.c.id, photos.c.sha256).where(photos.c.id.in_(part))))
            rows = await _photos_by_content(conn, sorted(set(sha_of.values())),
                                            MAX_GROUP_PHOTOS)
            book = await queries.path_book(conn, {r.folder_id for rs in rows.values()
                                                  for r in rs})
        for g in npage:
            members: list[Any] = []
            for rep in g.reps:
                members += rows.get(sha_of.get(rep, ""), [])
            # Best copy first: most pixels, then largest file, then oldest in the catalog.
            members.sort(key=lambda r: (-(r.width or 0) * (r.height or 0), -r.size, r.id))
            members = members[:MAX_GROUP_PHOTOS]
            ref = members[0].phash if members else None
            listed = []
            for r in members:
                doc = present.trim(present.photo(r, book.photo(r.folder_id, r.name)), wanted)
                doc["distance"] = None if ref is None or r.phash is None \
                    else distance(ref, r.phash)
                listed.append(doc)
            groups_out.append({"key": g.key, "count": g.photos, "contents": len(g.reps),
                               "photos": listed})
    return {
        "groups": groups_out,
        "next_cursor": None if next_pos is None else present.encode_cursor(
            scope, "groups", "asc", present.Position(next_pos, 0)),
        "total_groups": total,
        "computed_at": present.mtime_iso(int(computed * 1e9)),
    }
