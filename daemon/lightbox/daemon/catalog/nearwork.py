"""The near grouping's arithmetic, in a module that imports only numpy and the standard
library: it is also the grouping's worker process (``python -P nearwork.py``, a job pickled
on stdin, the answer pickled on stdout), which then starts in a fifth of a second instead of
the second the daemon's modules (SQLAlchemy, the catalog, the daemon's main module that a
multiprocessing 'spawn' child imports again) cost it. ``dupes`` holds the semantics and the
catalog side; see its module doc for what a near group is and how the tables find pairs.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import pickle
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BITS = 64
_U64 = (1 << BITS) - 1


@dataclass(frozen=True)
class Plan:
    threshold: int
    bands: int  # m
    keep: int  # bands per table key: m - threshold
    tables: int
    cost: float

    @property
    def width(self) -> int:
        """Bits per band: the bands are equal (a table moves them by swapping), from the
        top bit down; the ``64 % m`` lowest bits are in no key."""
        return BITS // self.bands

    def combos(self) -> list[tuple[int, ...]]:
        """The tables' bands, in an order where each differs from the one before by one
        band (what ``close_pairs`` walks)."""
        return revolving_door(self.bands, self.keep)

    def masks(self) -> Iterable[int]:
        """The key bits of each table (band ``b`` is ``width`` bits ending ``b * width``
        bits below the top)."""
        w = self.width
        for combo in self.combos():
            mask = 0
            for b in combo:
                mask |= ((1 << w) - 1) << (BITS - (b + 1) * w)
            yield mask


def revolving_door(n: int, k: int) -> list[tuple[int, ...]]:
    """Every ``k``-subset of ``range(n)`` once, each one element swapped from the one
    before (the revolving-door order): the next table is the last one's words with one
    band exchanged, not a new layout of every band."""
    if k <= 0:
        return [()]
    if k >= n:
        return [tuple(range(n))]
    return revolving_door(n - 1, k) + [(*c, n - 1)
                                       for c in reversed(revolving_door(n - 1, k - 1))]


# Relative costs (numpy): a hash passing through a table (a band swapped into its key, the
# words sorted, neighbours compared), a candidate pair compared. Sorting dominates, so wide
# keys (more tables) win only until buckets hold about one hash each.
_SCAN, _SHARED, _PAIR = 1.0, 0.0, 2.0


def plan(n: int, threshold: int) -> Plan:
    """The cheapest band layout for ``n`` distinct hashes (cost model: uniform hashes)."""
    if threshold <= 0:
        return Plan(0, 1, 1, 1, float(n))
    best: Plan | None = None
    for keep in range(1, 9):
        m = threshold + keep
        if m > BITS:
            break
        tables = math.comb(m, keep)
        buckets = 2.0 ** (BITS // m * keep)
        shared = n * -math.expm1(-(n - 1) / buckets)
        pairs = n * (n - 1) / 2 / buckets
        cost = tables * (_SCAN * n + _SHARED * shared + _PAIR * pairs)
        if best is None or cost < best.cost:
            best = Plan(threshold, m, keep, tables, cost)
    assert best is not None
    return best


def _as_u64(hashes: Sequence[int] | Any) -> Any:
    """The hashes as a numpy uint64 array (signed int64 from the catalog, unsigned, or an
    ``array('Q')``)."""
    if isinstance(hashes, array):
        if hashes.typecode == "Q":
            return np.frombuffer(hashes, dtype=np.uint64)
        return np.frombuffer(hashes, dtype=np.int64).view(np.uint64)
    if isinstance(hashes, np.ndarray):
        return hashes.astype(np.int64, copy=False).view(np.uint64) \
            if hashes.dtype.kind == "i" else hashes.astype(np.uint64, copy=False)
    return np.fromiter((h & _U64 for h in hashes), dtype=np.uint64, count=len(hashes))


_LONG_RUN = 32  # bucket size above which pairs are compared block by block


THREADS_ABOVE = 200_000  # distinct hashes: above, the tables are shared among threads


class _Words:
    """The hashes of a table walk with their bands moved about: slot ``s`` (``width`` bits,
    ``s * width`` below the top) holds band ``band_at[s]``, and the first ``keep`` slots
    are the table's key, so a plain sort of the words groups the hashes by key. Moving
    bits changes no distance: two words differ in as many bits as their hashes."""

    def __init__(self, hashes: Any, p: Plan) -> None:
        self.words = np.array(hashes, dtype=np.uint64)
        self.spare = np.empty_like(self.words)  # scratch (no fresh pages per operation)
        self.width, self.keep = p.width, p.keep
        self.band_at = list(range(p.bands))
        self.slot_of = list(range(p.bands))

    def _lo(self, slot: int) -> int:
        return BITS - (slot + 1) * self.width

    def swap(self, s: int, q: int) -> None:
        """Exchange slots ``s`` and ``q`` in every word (a delta swap, in place)."""
        if s == q:
            return
        s, q = min(s, q), max(s, q)
        delta = np.uint64(self._lo(s) - self._lo(q))
        field = np.uint64(((1 << self.width) - 1) << self._lo(q))
        w, t = self.words, self.spare
        np.right_shift(w, delta, out=t)
        t ^= w
        t &= field
        w ^= t
        t <<= delta
        w ^= t
        bs, bq = self.band_at[s], self.band_at[q]
        self.band_at[s], self.band_at[q] = bq, bs
        self.slot_of[bq], self.slot_of[bs] = s, q

    def key_on(self, combo: tuple[int, ...]) -> None:
        """Bring the bands of ``combo`` into the key slots (one swap per band outside)."""
        free = [s for s in range(self.keep) if self.band_at[s] not in combo]
        for b in combo:
            if self.slot_of[b] >= self.keep:
                self.swap(free.pop(), self.slot_of[b])

    def hashes(self, words: Any) -> Any:
        """The hashes of some words (every band back in its own slot)."""
        out = words & np.uint64((1 << (BITS - len(self.band_at) * self.width)) - 1)
        band = np.uint64((1 << self.width) - 1)
        for b, s in enumerate(self.slot_of):
            out |= ((words >> np.uint64(self._lo(s))) & band) << np.uint64(self._lo(b))
        return out


def _walk(uniq: Any, p: Plan, combos: Sequence[tuple[int, ...]]) -> list[Any]:
    """The hashes (pairs of arrays) within the threshold that share a key of ``combos``."""
    t = np.uint8(p.threshold)
    lim = np.uint64(1 << (BITS - p.keep * p.width))  # a xor below it: the same key
    words = _Words(uniq, p)
    n = len(uniq)
    x, small, yes = words.spare, np.empty(n, dtype=np.uint8), np.empty(n, dtype=bool)
    found: list[Any] = []
    for combo in combos:
        words.key_on(combo)
        w = words.words
        w.sort()
        near_a: list[Any] = []
        near_b: list[Any] = []
        for d in range(1, n):
            xd, sd, yd = x[:n - d], small[:n - d], yes[:n - d]
            np.bitwise_xor(w[d:], w[:-d], out=xd)
            if not np.less(xd, lim, out=yd).any():
                break  # no run of one key is longer than d
            if d == _LONG_RUN:
                # A cluster: the rest of its long runs' pairs, block by block.
                key = w >> np.uint64(BITS - p.keep * p.width)
                starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
                lengths = np.diff(np.r_[starts, n])
                for r in np.flatnonzero(lengths > _LONG_RUN).tolist():
                    run = w[int(starts[r]):int(starts[r] + lengths[r])]
                    for x0 in range(0, len(run), 1024):
                        block = run[x0:x0 + 1024]
                        ia, ib = np.nonzero(np.bitwise_count(block[:, None] ^ run[None, :]) <= t)
                        keep = x0 + ia < ib
                        near_a.append(block[ia[keep]])
                        near_b.append(run[ib[keep]])
                break
            np.bitwise_count(xd, out=sd)
            close = np.flatnonzero(np.less_equal(sd, t, out=yd))
            if len(close):
                near_a.append(w[close])
                near_b.append(w[close + d])
        if near_a:
            found.append(words.hashes(np.concatenate(near_a)))
            found.append(words.hashes(np.concatenate(near_b)))
    return found


def close_pairs(uniq: Any, p: Plan, threads: int | None = None) -> tuple[Any, Any]:
    """Index pairs (i < j) of the sorted, distinct ``uniq`` hashes within ``p.threshold``
    bits that share the key of some table of ``p``, each pair once or more. Vectorised and
    without an index per hash: each table is the hashes with the key's bands moved to the
    top bits (the table before it with one band swapped), sorted, and neighbours ``d``
    apart in that order compared (d = 1, 2, ... while some run of equal keys is that
    long; the rare long run, a cluster of similar pictures, block by block). The pairs
    found are mapped back to hashes and looked up in ``uniq``. A large library's tables
    are split among one thread per CPU: numpy sorts and compares without holding the GIL
    (the caller is a niced process of its own)."""
    combos = p.combos()
    if threads is None:
        threads = min(len(combos), os.cpu_count() or 1, 4) if len(uniq) > THREADS_ABOVE else 1
    if threads > 1:
        cut = [len(combos) * k // threads for k in range(threads + 1)]
        parts = [combos[cut[k]:cut[k + 1]] for k in range(threads)]
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            done = [f for part in pool.map(lambda part: _walk(uniq, p, part), parts)
                    for f in part]
    else:
        done = _walk(uniq, p, combos)
    if not done:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    a = np.searchsorted(uniq, np.concatenate(done[0::2]))
    b = np.searchsorted(uniq, np.concatenate(done[1::2]))
    return np.minimum(a, b), np.maximum(a, b)


class UnionFind:
    """Components over ``n`` items, in a numpy array (a million items: 8 MB)."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=np.int64)

    def grow(self, n: int) -> None:
        old = len(self.parent)
        if n > old:
            self.parent = np.concatenate([self.parent, np.arange(old, n, dtype=np.int64)])

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = int(parent[root])
        while parent[x] != root:
            parent[x], x = root, int(parent[x])
        return root

    def union_pairs(self, a: Any, b: Any) -> None:
        find, parent = self.find, self.parent
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            rx, ry = find(x), find(y)
            if rx != ry:
                parent[max(rx, ry)] = min(rx, ry)

    def roots(self) -> Any:
        """The root of every item (vectorised pointer jumping)."""
        p = self.parent
        while True:
            q = p[p]
            if np.array_equal(q, p):
                return p
            p = q


def components(hashes: Sequence[int] | Any, threshold: int) -> list[list[int]]:
    """Indices of ``hashes`` grouped into connected components (size >= 2) of the graph
    "Hamming distance <= threshold"; each component sorted, components by first index."""
    h = _as_u64(hashes)
    n = len(h)
    if n < 2:
        return []
    uniq, owner = np.unique(h, return_inverse=True)
    owner = owner.reshape(-1)
    u = len(uniq)
    uf = UnionFind(u)
    if threshold > 0 and u > 1:
        a, b = close_pairs(uniq, plan(u, threshold))
        # Each pair once (a cluster's pairs turn up in many tables) before the Python loop.
        pairs = np.unique(a.astype(np.uint64) * np.uint64(u) + b.astype(np.uint64))
        uf.union_pairs(pairs // np.uint64(u), pairs % np.uint64(u))
    root = uf.roots()[owner]  # per input index
    # Only the inputs in a component of two or more (few, in a large library: no Python
    # loop over a million singletons), in input order within each component.
    member = np.flatnonzero(np.bincount(root, minlength=u)[root] > 1)
    if not len(member):
        return []
    order = member[np.argsort(root[member], kind="stable")]
    rs = root[order]
    cuts = np.flatnonzero(rs[1:] != rs[:-1]) + 1
    groups = [g.tolist() for g in np.split(order, cuts)]
    groups.sort(key=lambda g: g[0])
    return groups


def _components_packed(packed: bytes, threshold: int, nice: int = 0) -> list[list[int]]:
    """``components`` over an ``array('Q')`` in bytes (cheap to send to another process)."""
    if nice:
        os.nice(nice)  # in the grouping's own process: the daemon's work goes first
    hashes = array("Q")
    hashes.frombytes(packed)
    return components(hashes, threshold)


_READ_CHUNK = 250_000  # rows per read of the catalog file (a few MB of text each)


def _numbers(text: str | None, count: int) -> Any:
    """``count`` comma-separated integers (SQLite's ``group_concat``) as int64."""
    if not count:
        return np.zeros(0, dtype=np.int64)
    out = np.fromstring(text or "", sep=",", dtype=np.int64)
    if len(out) != count:
        raise ValueError(f"read {len(out)} of {count} numbers from the catalog")
    return out


def _read_file(path: str) -> tuple[Any, Any, Any, Any, dict[int, str]] | None:
    """The contents that take part in a near grouping, read from a SQLite catalog with the
    stdlib driver in this (the grouping's) process: (lowest photo id, dHash, has a dHash:
    all true, photos, sha256 of the contents with copies), in id order.

    Two reads in one snapshot. The counted photos with a dHash, as two texts SQLite joins
    itself (``group_concat`` of the ids and of the hashes, parsed by numpy): a million rows
    as Python tuples cost more than the scan. And the contents with copies, from the
    maintained counts (``photos_shas``, ``n >= 2``) and an index-only walk of the sha256
    index for their photos: every other counted photo is a content of its own, so no
    sha256 is read for them at all. A copy's photo there that is not among the counted
    ones with a dHash is either not ok (left out) or ok without a dHash (which makes the
    content hashless when it is the lowest id): the rare content with such a photo gets
    its statuses read. None when the two reads disagree (the caller then reads every row
    through its own driver)."""
    import sqlite3

    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN")  # one snapshot for both reads
        id_parts, hash_parts = [], []
        last = None
        while True:
            after = "" if last is None else f"AND id > {last} "
            count, ids_text, hashes_text = conn.execute(
                "SELECT count(*), group_concat(id), group_concat(phash) FROM (SELECT id, "
                "phash FROM photos WHERE status = 'ok' AND sha256 IS NOT NULL AND phash IS "
                f"NOT NULL {after}ORDER BY id LIMIT {_READ_CHUNK})").fetchone()
            if not count:
                break
            id_parts.append(_numbers(ids_text, count))
            hash_parts.append(_numbers(hashes_text, count))
            last = int(id_parts[-1].max())
            if count < _READ_CHUNK:
                break
        ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int64)
        raw = np.concatenate(hash_parts) if hash_parts else np.zeros(0, dtype=np.int64)
        if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():
            # SQLite aggregates the rows in the subquery's order in practice; not promised.
            order = np.argsort(ids)
            ids, raw = ids[order], raw[order]
        counts = np.ones(len(ids), dtype=np.int64)
        keep = np.ones(len(ids), dtype=bool)
        shas: dict[int, str] = {}
        # Contents with copies: their photos of any status, by the sha256 index alone.
        by_sha: dict[str, tuple[int, list[int]]] = {}
        for sha, n, pid in conn.execute(
                "SELECT s.sha256, s.n, p.id FROM photos_shas s JOIN photos p "
                "ON p.sha256 = s.sha256 WHERE s.n >= 2"):
            by_sha.setdefault(sha, (int(n), []))[1].append(int(pid))
        if by_sha:
            flat = np.array([pid for _, pids in by_sha.values() for pid in pids],
                            dtype=np.int64)
            at = np.searchsorted(ids, flat)
            hit = at < len(ids)
            hit[hit] = ids[at[hit]] == flat[hit]
            # Not counted with a dHash: not ok (left out), or ok without a dHash.
            others = flat[~hit].tolist()
            bare: set[int] = set()
            for k in range(0, len(others), 5000):
                part = others[k:k + 5000]
                bare.update(r[0] for r in conn.execute(
                    f"SELECT id FROM photos WHERE id IN ({','.join('?' * len(part))}) "
                    "AND status = 'ok' AND sha256 IS NOT NULL", part))
            at_l, hit_l = at.tolist(), hit.tolist()
            drop: list[int] = []
            firsts: dict[int, tuple[int, str]] = {}
            pos = 0
            for sha, (n, pids) in by_sha.items():
                rows = [at_l[j] for j in range(pos, pos + len(pids)) if hit_l[j]]
                hashless = [pid for j, pid in enumerate(pids, pos)
                            if not hit_l[j] and pid in bare]
                pos += len(pids)
                if len(rows) + len(hashless) != n:
                    return None  # the counts and the photos disagree: read every row
                drop += rows
                if rows and (not hashless or min(hashless) > ids[min(rows)]):
                    firsts[min(rows)] = (n, sha)  # else: its lowest id has no dHash
            keep[drop] = False
            for row, (n, _sha) in firsts.items():
                keep[row] = True
                counts[row] = n
        sel = np.flatnonzero(keep)
        if by_sha:
            shas = {int(np.searchsorted(sel, row)): sha for row, (_, sha) in firsts.items()}
        return (ids[sel], raw.view(np.uint64)[sel], np.ones(len(sel), dtype=bool),
                counts[sel], shas)
    finally:
        conn.close()


def _near_from_file(path: str, threshold: int, nice: int = 0) -> Any:
    """Read the contents of the catalog file and group them, in one worker process."""
    if nice:
        os.nice(nice)
    got = _read_file(path)
    if got is None:
        return None
    reps, hashes, has_hash, counts, shas = got
    sel = np.flatnonzero(has_hash)
    comps = components(hashes[sel], threshold) if len(sel) > 1 else []
    return reps, hashes, has_hash, counts, shas, comps


def main() -> None:
    """The worker: one job from stdin, ``("file", path, threshold, nice)`` (read the
    catalog file and group it) or ``("packed", hashes as array('Q') bytes, threshold,
    nice)``, its answer pickled to stdout."""
    kind, what, threshold, nice = pickle.load(sys.stdin.buffer)
    if kind == "file":
        out = _near_from_file(what, threshold, nice)
    else:
        out = _components_packed(what, threshold, nice)
    sys.stdout.buffer.write(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
