"""Text search through each engine's own indexes (migrations ``0008_text_index``, ``0016_perf``).

What a search word means is fixed by ``queries``: a case-insensitive substring (``LIKE
'%word%'``) of a photo's name, make, model or lens, or of its folder's path. That
condition is always applied; the indexes only decide which rows it is tested on, so every
engine answers exactly the same photos. Where a word can be found:

- **names**: each engine's substring index over the photo name, for words of three
  characters or more. SQLite: an FTS5 table ``photos_text`` (trigram tokenizer, external
  content: the index holds trigrams and positions, the text stays in ``photos``); a quoted
  trigram phrase is an exact substring match answered from the index alone. PostgreSQL: a
  pg_trgm GIN index on the column, which serves ``ILIKE '%word%'`` directly (none without
  the extension). MariaDB/MySQL: ``photos_grams``, one B-tree row (id, trigram) per
  distinct trigram of the lower-cased name (``0042_mysql_grams``; FULLTEXT before it read
  every term's whole document list); a join of a word's trigram lists, driven by the
  rarest, finds a superset of the rows that contain it. Triggers keep SQLite's and
  MariaDB's current.
- **camera and lens** (make, model, lens): few distinct values in any library, read by a
  skip scan of the ``(column, name_key)`` indexes (one index seek per distinct value) and
  matched in SQL; the photos of one value come in name order from the same index.
- **folder paths**: ``folders_text`` / pg_trgm / ``folders_grams`` over the path, then the
  photos of those folders.

Triggers, not code in the writer: the index stays current whatever writes the rows (the
scanner, the indexer, a copy from another engine, a test's bulk insert), and a copy that
only knows the tables of ``tables.metadata`` rebuilds it as it inserts.

How a page sorted by name is found (``arms``): one word's matches are the union of a few
streams, each in name order or small enough to sort: its names (when at most ``DENSE``
photos), each camera or lens value containing it, and its folders' photos (sorted when
few; otherwise the name order walked, testing only the folder, which fills a page after a
few thousand rows because a place's folders are spread over the library). Each stream's
first page is fetched with every condition of the search and the pages are merged, so a
word in a sixth of the library (``canon``) costs what a few short pages cost, wherever its
photos sit in the order. The streams' pages carry ids and sort keys only (the page's rows
are read by id after the merge), and a stream whose condition implies a word's (on
PostgreSQL a folder stream: its ILIKE is the word's own) does not test that word again, so
a place's 25,000 photos come from an index-only scan of ``(folder_id, name_key) INCLUDE
(id, status)`` (``0026_pg_cover``). PostgreSQL connections use custom plans only
(``database.make_engine``): a generic plan of a prepared search is made for no pattern.
On MariaDB a folder stream names its folders by id (``mysql_folder_set``: the folders whose
path holds the words by the LIKE, and their exact photo count, which decides sorted or
walked), so a month's page is one table read from ``ix_photos_folder_cover`` and sorted,
not a join copied into a temporary table (its ranges planned from the index's statistics,
not one index dive per folder: ``sorted_folder_stream``); a rare word's name candidates
come by id from ``measure`` as on PostgreSQL. Each statement costs a MariaDB search a round trip and
some of the daemon's CPU, so there a search's trigram counts are one statement
(``_mysql_prepare``: an ``EXPLAIN``, the server's index dives, which read no row: the counts
only choose which lists a lookup reads), and its words' measures, their camera and lens
values and the folders whose paths hold every word found in paths one more
(``measure_all``), and the page's rows come with their folders' paths
(``queries.merged_page``): a word of a place or a month is four statements, not seven, an
event's two words four, not nine. On SQLite a folder stream's folders are those of the FTS5
query (one for all its words) whose path holds each word by the LIKE, so the stream tests
only the folder and the status: a month's or an event's photos sorted from
``ix_photos_folder_cover`` (folder_id, name_key, status), a place's walk of
``ix_photos_name_cover`` (name_key, id, folder_id, status), no table row read for a photo
not on the page (``0045_sqlite_covers``; ``bruges beach`` 23 -> 3 ms of SQL). A count on
SQLite and MariaDB tests one word's candidates (``count_start``), not every photo
(PostgreSQL's trigram index serves the count's conditions itself).
Of several words, the one with the cheapest streams goes first;
words found only in folder paths narrow its folders (``berlin trip``: the folders holding
both). Other orders (date, size) and date ranges count each word's candidates, capped at
``DENSE``, start from the first rare one, and walk their order when every word is common.
Known slow case left: a substring common to many *names* whose photos sit together far down
the requested order (``IMG_`` when another prefix sorts first): the walk crosses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable
from sqlalchemy.sql.visitors import InternalTraversal

from lightbox.daemon.catalog.tables import folders, photos

MIN_WORD = 3  # characters: trigram indexes cannot find shorter words
FEW_IDS = 1_000  # PostgreSQL: name candidates ``measure`` returns the ids of (``name_hits``)
# Candidates (photos) above which a word counts as common: walking the requested order finds
# a page of them sooner than fetching and sorting them all would.
DENSE = 20_000
PHOTO_COLUMNS = ("name", "make", "model", "lens")
CAMERA_COLUMNS = ("make", "model")
VALUE_COLUMNS = ("make", "model", "lens")  # few distinct values: looked up by value
NAME_COVER = "ix_photos_name_cover"  # MariaDB: (name_key, id, folder_id, status), 0043
FOLDER_COVER = "ix_photos_folder_cover"  # MariaDB: (folder_id, status, name_key), 0027
MAX_VALUE_ARMS = 32  # values of one word served as streams; more, and the word is not used
PAGE_COST = 200  # rows a stream of one value reads for a page (the planner's unit)
# MariaDB: a trigram list estimated under this many rows (a few index pages) is read whole
# (``grams_ids``); when every list of a word is longer, they are joined.
GRAM_CAP = 5_000
# MariaDB: the folders whose photos ``measure`` sums, per word, when a search has several
# words in paths (past that, the word is common: ``Word.folders_capped``).
FOLDER_CAP = 200
_MYSQL_TERMS = 8  # trigram lists joined per word: enough to be selective, few to dive into

_available: dict[Any, bool] = {}
# What the migration creates outside ``tables.metadata`` (FTS5 also makes shadow tables
# named after its tables): schema comparisons leave these out, copies between engines need
# not carry them (the target's own migration and triggers rebuild them).
OBJECTS = ("photos_text", "folders_text", "photos_grams", "folders_grams",
           "ix_photos_grams", "ix_folders_grams",  # MariaDB (0042; photos_grams_seq too)
           "ix_photos_text_trgm", "ix_folders_path_trgm",
           "ix_photos_folder_cover",  # MariaDB: folder streams from the index (0027)
           "ix_photos_name_cover")  # MariaDB: a place's walk of the name order (0043)


def owns(name: str | None) -> bool:
    """Whether a table or index of that name belongs to the text index."""
    return name is not None and any(name == o or name.startswith(o + "_") for o in OBJECTS)


async def available(conn: AsyncConnection) -> bool:
    """Whether this database has the text index (on PostgreSQL it needs pg_trgm)."""
    key = conn.engine.sync_engine
    found = _available.get(key)
    if found is None:
        name = conn.dialect.name
        if name == "postgresql":
            found = bool(await conn.scalar(sa.text(
                "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_photos_text_trgm'")))
        elif name == "sqlite":
            found = bool(await conn.scalar(sa.text(
                "SELECT count(*) FROM sqlite_master WHERE name = 'photos_text'")))
        else:
            found = bool(await conn.scalar(sa.text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = "
                "DATABASE() AND table_name = 'photos_grams'")))
        _available[key] = found
    return found


def indexable(word: str) -> bool:
    return len(word) >= MIN_WORD


def _fts_phrase(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def mysql_grams(word: str) -> list[str]:
    """The trigrams of ``word`` the MariaDB/MySQL index is asked for, as hex of their UTF-8
    bytes (``photos_grams.gram``): the word lower-cased as the search's LIKE pattern is
    (``queries.like_pattern``), so every photo the LIKE accepts holds each of them; its
    distinct trigrams, at most _MYSQL_TERMS spread over the word (more would add index
    dives, not selectivity)."""
    low = word.lower()
    grams = list(dict.fromkeys(low[i:i + 3] for i in range(len(low) - 2)))
    if len(grams) > _MYSQL_TERMS:
        step = (len(grams) - 1) / (_MYSQL_TERMS - 1)
        grams = [grams[round(k * step)] for k in range(_MYSQL_TERMS)]
    return [g.encode("utf-8").hex().upper() for g in grams]


def _unhex(hexed: str) -> Any:
    """A trigram as ``UNHEX`` of hex text: the driver would mangle bytes parameters, and
    the optimizer folds the constant before its index dives; a parameter, so compiled
    statements are cached per shape, not per word."""
    return sa.func.unhex(sa.bindparam(None, hexed, sa.String))


def grams_ids(table: str, grams: list[str], counts: list[int] | None = None) -> Any:
    """The ids of ``table``'s rows (``photos_grams`` / ``folders_grams``, migration
    ``0042_mysql_grams``) holding every trigram of ``grams`` (at least: the LIKE decides).

    ``counts`` (``_mysql_prepare``: each trigram's rows as the index dives estimate them):
    when one is under GRAM_CAP, the two rarest lists are read whole, each a contiguous
    range of the ``(gram, id)`` index, and intersected by a GROUP BY (``9028``: 4,000
    index entries in a few pages); none at all when a trigram is known to be in no row.
    Otherwise (every trigram
    common) a join of every list on the id, which the optimizer drives from the rarest by
    its index dives, probing the others for the rows left; its probes are random lookups
    of the primary key, about 13 us each on a catalog larger than the buffer pool (26 ms
    for ``9028`` that way), hence the ranges when the counts allow."""
    t = sa.table(table, sa.column("id"), sa.column("gram"))
    if counts is not None and min(counts) < GRAM_CAP:
        if min(counts) == 0:
            return sa.select(t.c.id).where(sa.false())
        rarest = [g for _, g in sorted(zip(counts, grams, strict=True))[:2]]
        if len(rarest) == 1:
            return sa.select(t.c.id).where(t.c.gram == _unhex(rarest[0]))
        return sa.select(t.c.id).where(t.c.gram.in_([_unhex(g) for g in rarest])) \
            .group_by(t.c.id).having(sa.func.count() == len(rarest))
    lists = [t.alias() for _ in grams]
    first = lists[0]
    joined: Any = first
    for g, hexed in zip(lists[1:], grams[1:], strict=True):
        joined = joined.join(g, sa.and_(g.c.id == first.c.id, g.c.gram == _unhex(hexed)))
    return sa.select(first.c.id).select_from(joined) \
        .where(first.c.gram == _unhex(grams[0])).correlate(None)


@dataclass
class Word:
    """One search word and where it may appear."""

    text: str
    columns: tuple[str, ...]  # photo columns
    paths: bool  # also the folder path
    query: str = ""  # the engine's index query (SQLite)
    grams: list[str] = field(default_factory=list)  # MariaDB's trigrams (``mysql_grams``)
    photo_counts: list[int] | None = None  # their rows, estimated (``_mysql_prepare``)
    folder_counts: list[int] | None = None
    # Filled by ``prepare``: the distinct values of make, model and lens containing the word.
    values: dict[str, list[str]] = field(default_factory=dict)
    # Filled by ``measure``: name candidates (capped at DENSE + 1), photos in its folders.
    names: int = 0
    folder_photos: int = 0
    measured: bool = False
    # MariaDB/MySQL (``_mysql_measure``): ``folder_photos`` summed over FOLDER_CAP folders
    # only, and so taken as more than DENSE; and the folders whose paths hold every word
    # of the search found in paths (those words, their photos, their ids or None), which
    # ``mysql_folder_set`` need then not look up again.
    folders_capped: bool = False
    folder_set: tuple[frozenset[str], int, list[int] | None] | None = None
    # PostgreSQL and MariaDB: the ids of those name candidates when at most FEW_IDS
    # (``measure``), so that the page's stream reads them by id instead of scanning the
    # trigram index (PostgreSQL) or grouping the trigram lists (MariaDB) again.
    name_hits: list[int] | None = None

    @property
    def in_names(self) -> bool:
        return "name" in self.columns

    @property
    def value_count(self) -> int:
        return sum(len(v) for v in self.values.values())

    @property
    def only_paths(self) -> bool:
        """Found in no name and no camera or lens value: its photos are its folders'."""
        return self.paths and self.names == 0 and self.value_count == 0

    def name_ids(self, dialect: str, table: Any = photos) -> Any:
        """A condition true for (at least) the photos whose name contains the word."""
        if dialect == "sqlite":
            fts = sa.table("photos_text", sa.column("rowid"), sa.column("photos_text"))
            return table.c.id.in_(sa.select(fts.c.rowid).where(
                fts.c.photos_text.match(self.query)))
        if dialect == "postgresql":
            if self.name_hits is not None:
                # Exactly the photos whose name matched when ``measure`` ran, one statement
                # before (the search's conditions still test every row).
                return table.c.id == sa.any_(sa.bindparam(
                    None, self.name_hits, type_=postgresql.ARRAY(sa.BigInteger)))
            return table.c.name.ilike(_like(self.text), escape="!")
        if self.name_hits is not None:
            # The trigrams' candidates as ``measure`` found them, one statement before (a
            # superset of the LIKE's: the search's conditions test every row).
            return table.c.id.in_(self.name_hits)
        return table.c.id.in_(grams_ids("photos_grams", self.grams, self.photo_counts))

    def photo_ids(self, dialect: str, table: Any = photos) -> Any:
        """A condition true for (at least) the photos whose columns contain the word."""
        parts = [table.c[col].in_(vals) for col, vals in self.values.items() if vals]
        if self.in_names:
            parts.insert(0, self.name_ids(dialect, table))
        return sa.or_(*parts) if parts else sa.false()

    def folder_ids(self, dialect: str) -> Any:
        """A condition on folders: (at least) those whose path contains the word."""
        if dialect == "sqlite":
            fts = sa.table("folders_text", sa.column("rowid"), sa.column("folders_text"))
            return folders.c.id.in_(sa.select(fts.c.rowid).where(
                fts.c.folders_text.match(self.query)))
        if dialect == "postgresql":
            return folders.c.path.ilike(_like(self.text), escape="!")
        return folders.c.id.in_(grams_ids("folders_grams", self.grams, self.folder_counts))

    def candidates(self, dialect: str) -> Any:
        """Photos that may contain the word (the index's superset), as ids from a union:
        an OR of the two lookups in the WHERE clause defeats PostgreSQL's planner (a scan
        of every row: 6 s instead of 20 ms at 1,000,000 photos)."""
        p = photos.alias("candidate")  # not correlated with the outer query's photos
        cand: Any = sa.select(p.c.id).where(self.photo_ids(dialect, p))
        if self.paths:
            cand = sa.union(cand, sa.select(p.c.id).where(p.c.folder_id.in_(
                sa.select(folders.c.id).where(self.folder_ids(dialect)))))
        return id_in(cand, dialect)


def id_in(ids: Any, dialect: str) -> Any:
    """``photos.id IN (ids)`` for a union of id lists. MariaDB/MySQL cannot materialize a
    UNION as a semi-join: they ran it as a dependent subquery for each of a million rows
    (22 s for ``9028``); wrapped in a derived table it is materialized once (0.3 s)."""
    if dialect in ("mysql", "mariadb"):
        u = ids.subquery("ids")
        return photos.c.id.in_(sa.select(u.c.id))
    return photos.c.id.in_(ids)


def _like(word: str) -> str:
    from lightbox.daemon.catalog.queries import like_pattern
    return like_pattern(word)


def _contains(col: Any, word: str, dialect: str) -> Any:
    from lightbox.daemon.catalog.queries import contains
    return contains(col, word, dialect)


_VALUES_SQL: dict[tuple[str, tuple[str, ...]], Any] = {}


def _values_sql(dialect: str, columns: tuple[str, ...]) -> Any:
    """The statement behind ``values_containing`` (text, made once per engine kind and
    set of columns: built with SQLAlchemy's CTE constructs it cost 7 ms a search)."""
    key = (dialect, columns)
    stmt = _VALUES_SQL.get(key)
    if stmt is None:
        if dialect == "sqlite":
            match = "v LIKE :pattern ESCAPE '!'"
        elif dialect == "postgresql":
            match = "v ILIKE :pattern ESCAPE '!'"
        else:
            # The columns' own collation, which ignores accents too, unlike the search's
            # condition (``queries.contains``): these values only offer candidates, and a
            # group of values alike but for accents shows one of them, so the looser match
            # keeps the offer a superset (the condition tests every row).
            match = "lower(v) LIKE :pattern ESCAPE '!'"
        if dialect in ("mysql", "mariadb"):
            # GROUP BY ... HAVING: the server's own skip scan ("Using index for group-by");
            # a DISTINCT in a derived table read every index entry (40 ms a column at
            # 100,000 photos).
            sql = " UNION ALL ".join(
                f"(SELECT '{c}' AS col, {c} AS v FROM photos WHERE {c} IS NOT NULL "
                f"GROUP BY {c} HAVING {match})" for c in columns)
        else:
            ctes = ", ".join(
                f"vals_{c}(v) AS (SELECT min({c}) FROM photos UNION ALL SELECT (SELECT "
                f"min({c}) FROM photos WHERE {c} > vals_{c}.v) FROM vals_{c} WHERE "
                f"vals_{c}.v IS NOT NULL)" for c in columns)
            sql = f"WITH RECURSIVE {ctes} " + " UNION ALL ".join(
                f"SELECT '{c}' AS col, v FROM vals_{c} WHERE v IS NOT NULL AND {match}"
                for c in columns)
        stmt = _VALUES_SQL[key] = sa.text(sql)
    return stmt


async def values_containing(conn: AsyncConnection, word: Word) -> dict[str, list[str]]:
    """The distinct values of make, model and lens (those ``word`` is looked for in) that
    contain it, by the same LIKE as the search's condition, by column. SQLite and
    PostgreSQL: a skip scan of each ``(column, name_key)`` index written as a recursive
    query (each step seeks the next value: a few hundred seeks, not a million rows);
    MariaDB/MySQL make that skip scan of a DISTINCT over an index prefix themselves."""
    cols = tuple(c for c in VALUE_COLUMNS if c in word.columns)
    if not cols:
        return {}
    dialect = conn.dialect.name
    pattern = _like(word.text)
    out: dict[str, list[str]] = {}
    for col, value in (await conn.execute(_values_sql(dialect, cols),
                                          {"pattern": pattern})).all():
        out.setdefault(str(col), []).append(str(value))
    return out


async def prepare(conn: AsyncConnection, words: list[Word]) -> list[Word]:
    """The words the index can look up, with their engine queries and the camera and
    lens values containing them filled in."""
    usable = [w for w in words if indexable(w.text)]
    if not usable or not await available(conn):
        return []
    dialect = conn.dialect.name
    if dialect == "sqlite":
        for w in usable:
            w.query = _fts_phrase(w.text)
    elif dialect in ("mysql", "mariadb"):
        for w in usable:
            w.grams = mysql_grams(w.text)
        await _mysql_prepare(conn, usable)
        return usable
    for w in usable:
        w.values = await values_containing(conn, w)
    return usable


_MYSQL_COUNTS: dict[int, Any] = {}


def _mysql_counts_stmt(n: int) -> Any:
    """``_mysql_prepare``'s statement for ``n`` trigrams (parameters ``g0``...): an
    ``EXPLAIN`` of one lookup per trigram in ``photos_grams`` then ``folders_grams``,
    built once per ``n``. Its plan's ``rows`` are the server's index dives into the
    ``(gram, id)`` index: two descents of the B-tree a trigram, the pages between them
    counted exactly for a list of up to about ten pages (a few thousand rows), estimated
    beyond. A ``count(*)`` of each list capped at GRAM_CAP read up to 5,000 index entries
    instead: 1-1.6 ms a common trigram, 7 ms of a month's 22 at 1,000,000 photos
    (docs/benchmarks.md, "mysearch5")."""
    stmt = _MYSQL_COUNTS.get(n)
    if stmt is None:
        parts = [f"SELECT 1 FROM {t} WHERE gram = unhex(:g{i})"
                 for t in ("photos_grams", "folders_grams") for i in range(n)]
        stmt = _MYSQL_COUNTS[n] = sa.text("EXPLAIN " + " UNION ALL ".join(parts))
    return stmt


async def _mysql_prepare(conn: AsyncConnection, words: list[Word]) -> None:
    """MariaDB/MySQL: fill each word's ``photo_counts`` and ``folder_counts`` (its
    trigrams' rows as the server's index dives estimate them, ``_mysql_counts_stmt``) in
    one statement that reads no row. They only choose which trigram lists a lookup reads
    (``grams_ids``): any choice offers every photo that holds the word, and the search's
    LIKE decides, so an estimate costs a slower plan at worst, never a wrong page. InnoDB
    reports an empty list as one row (it never estimates 0): the list is then read, and is
    empty. The words' camera and lens values come with their measures
    (``_mysql_measure``): each statement a search runs costs the daemon a few ms of CPU on
    this engine (issue 13)."""
    grams = list(dict.fromkeys(g for w in words for g in w.grams))
    for w in words:
        w.values = {}
    if not grams:
        for w in words:
            w.photo_counts, w.folder_counts = [], []
        return
    rows = (await conn.execute(_mysql_counts_stmt(len(grams)),
                               {f"g{i}": g for i, g in enumerate(grams)})).all()
    got = [GRAM_CAP] * (2 * len(grams))
    for r in rows:
        part, n = r._mapping["id"], r._mapping["rows"]
        if part is not None and 1 <= int(part) <= len(got):
            # NULL: the optimizer found the lookup impossible (no such row).
            got[int(part) - 1] = int(n) if n is not None else 0
    photo = dict(zip(grams, got[:len(grams)], strict=True))
    folder = dict(zip(grams, got[len(grams):], strict=True))
    for w in words:
        w.photo_counts = [photo[g] for g in w.grams]
        w.folder_counts = [folder[g] for g in w.grams]


async def measure(conn: AsyncConnection, word: Word) -> None:
    """Fill ``word.names`` (name candidates, counted up to DENSE + 1) and
    ``word.folder_photos`` (photos in the folders whose path has the word): one
    statement."""
    dialect = conn.dialect.name
    if dialect == "postgresql" and (word.in_names or word.paths):
        got = list((await conn.execute(_pg_measure(word.in_names, word.paths), {
            "pattern": _like(word.text), "cap": DENSE + 1, "few": FEW_IDS})).one())
        if word.in_names:
            word.names = int(got[0] or 0)
            # Only a whole list: one cut at the cap (a count of DENSE + 1) is not all of them.
            word.name_hits = None if got[1] is None or word.names > DENSE \
                else [int(i) for i in got[1]]
        word.folder_photos = int(got[-1] or 0) if word.paths else 0
        word.measured = True
        return
    if dialect in ("mysql", "mariadb"):
        await _mysql_measure(conn, [word])
        return
    if dialect == "sqlite" and (word.in_names or word.paths):
        got = list((await conn.execute(_sqlite_measure(word.in_names, word.paths), {
            "query": word.query, "cap": DENSE + 1})).one())
        word.names = int(got.pop(0) or 0) if word.in_names else 0
        word.folder_photos = int(got.pop(0) or 0) if word.paths else 0
        word.measured = True
        return
    parts: list[Any] = []
    if word.in_names:
        if dialect == "sqlite":
            # Straight from the index: an IN (...) would collect every candidate first.
            fts = sa.table("photos_text", sa.column("rowid"), sa.column("photos_text"))
            capped = sa.select(fts.c.rowid).where(fts.c.photos_text.match(word.query)) \
                .limit(DENSE + 1).subquery()
        else:
            capped = sa.select(photos.c.id).where(word.name_ids(dialect)) \
                .limit(DENSE + 1).subquery()
        parts.append(sa.select(sa.func.count()).select_from(capped).scalar_subquery())
    if word.paths:
        parts.append(_folder_photos(dialect, [word]).scalar_subquery())
    got = list((await conn.execute(sa.select(*parts))).one()) if parts else []
    word.names = int(got.pop(0) or 0) if word.in_names else 0
    word.folder_photos = int(got.pop(0) or 0) if word.paths else 0
    word.measured = True


_SQLITE_MEASURE: dict[tuple[bool, bool], Any] = {}


def _sqlite_measure(in_names: bool, paths: bool) -> Any:
    """``measure``'s statement on SQLite, built once per shape with the FTS5 query and
    the cap as parameters (``query``, ``cap``), as ``_pg_measure``: each search built it
    anew, with its subqueries and cache key. The name candidates straight from the index
    (an ``IN (...)`` would collect every candidate first), counted up to ``cap``; the
    photos of the folders the index offers (a superset: it only decides few or many)."""
    key = (in_names, paths)
    stmt = _SQLITE_MEASURE.get(key)
    if stmt is None:
        query = sa.bindparam("query", type_=sa.String)
        parts: list[Any] = []
        if in_names:
            fts = sa.table("photos_text", sa.column("rowid"), sa.column("photos_text"))
            capped = sa.select(fts.c.rowid).where(fts.c.photos_text.match(query)) \
                .limit(sa.bindparam("cap", type_=sa.Integer)).subquery()
            parts.append(sa.select(sa.func.count()).select_from(capped).scalar_subquery())
        if paths:
            fts = sa.table("folders_text", sa.column("rowid"), sa.column("folders_text"))
            parts.append(sa.select(sa.func.coalesce(sa.func.sum(folders.c.photo_count), 0))
                         .where(folders.c.id.in_(sa.select(fts.c.rowid).where(
                             fts.c.folders_text.match(query)))).scalar_subquery())
        stmt = _SQLITE_MEASURE[key] = sa.select(*parts)
    return stmt


def _id_list(text: str | bytes | int | None, n: int) -> list[int] | None:
    """The ids of a ``GROUP_CONCAT``, or None unless it holds all ``n`` of them (NULL: more
    than the statement would list; cut short at ``group_concat_max_len``)."""
    if n == 0:
        return []
    if text is None:
        return None
    raw = text.decode() if isinstance(text, bytes) else str(text)
    ids = [int(i) for i in raw.split(",") if i]
    return ids if len(ids) == n else None


def _mysql_folder_hits(words: list[Word]) -> list[str] | None:
    """MariaDB: the trigrams whose lists offer the folders of ``words`` (their paths hold
    each word at least): the two rarest of each word by ``folder_counts``, read in one
    grouped pass of those lists (``_mysql_folder_set_stmt``), or None when a word's
    trigrams are all common (then each word's ``folder_ids``). ``bruges beach``: its
    words' four lists, 4,330 index entries, then 166 folders by primary key, where a
    condition per word read bruges' 500 folders before testing them against beach's
    1,665 (3.9 ms at 1,000,000 photos). (A third list for a word alone, to offer fewer of
    a month's folders than its two rarest lists' 1,336, cost more than it saved.)"""
    chosen: list[str] = []
    for w in words:
        if not w.folder_counts or min(w.folder_counts) >= GRAM_CAP:
            return None
        chosen += [g for _, g in sorted(zip(w.folder_counts, w.grams, strict=True))[:2]]
    return list(dict.fromkeys(chosen))


_MYSQL_FOLDER_SET: dict[tuple[int, int, bool], Any] = {}


def _mysql_folder_set_stmt(dialect: str, words: list[Word], lead: bool = False
                           ) -> tuple[Any, dict[str, Any]]:
    """``mysql_folder_set``'s select (after a ``part`` column of -1 when ``lead``, for
    ``_mysql_measure``) and its parameters: the photos, the count and the ids of the
    folders whose path holds each of ``words`` by the search's own LIKE
    (``queries.contains``), of those the trigrams offer for every one
    (``_mysql_folder_hits``, then the folders by primary key). Built once per shape, its
    trigrams and patterns named parameters (``fh0``..., ``fp0``...): built each search it
    cost the daemon 0.9 ms of CPU."""
    grams = _mysql_folder_hits(words)
    cols: list[Any] = [sa.literal_column("-1").label("part")] if lead else []
    if grams is None:  # a word's trigrams all common: each word's lookup, built anew
        exact = sa.and_(*(_contains(folders.c.path, w.text, dialect) for w in words))
        return sa.select(*cols, *_folder_set_columns(exact)).where(
            *(w.folder_ids(dialect) for w in words)), {}
    key = (len(grams), len(words), lead)
    stmt = _MYSQL_FOLDER_SET.get(key)
    if stmt is None:
        from lightbox.daemon.catalog.queries import LIKE_ESCAPE, MYSQL_MATCH

        path = sa.func.lower(folders.c.path).collate(MYSQL_MATCH)
        exact = sa.and_(*(path.like(sa.bindparam(f"fp{k}", type_=sa.String),
                                    escape=LIKE_ESCAPE) for k in range(len(words))))
        t = sa.table("folders_grams", sa.column("id"), sa.column("gram"))
        hits: Any = sa.select(t.c.id).where(t.c.gram.in_([
            sa.func.unhex(sa.bindparam(f"fh{k}", type_=sa.String))
            for k in range(len(grams))])).group_by(t.c.id)
        if len(grams) > 1:
            hits = hits.having(sa.func.count() == len(grams))
        hits = hits.subquery("hits")
        stmt = _MYSQL_FOLDER_SET[key] = sa.select(*cols, *_folder_set_columns(exact)) \
            .select_from(hits.join(folders, folders.c.id == hits.c.id))
    params = {f"fh{k}": g for k, g in enumerate(grams)}
    params.update({f"fp{k}": _like(w.text) for k, w in enumerate(words)})
    return stmt, params


def _folder_set_columns(exact: Any) -> list[Any]:
    return [sa.func.coalesce(sa.func.sum(sa.case((exact, folders.c.photo_count))), 0),
            sa.func.count(sa.case((exact, 1))),
            sa.func.group_concat(sa.case((exact, folders.c.id)), type_=sa.Text)]


async def mysql_folder_set(conn: AsyncConnection, words: list[Word]
                           ) -> tuple[int, list[int] | None]:
    """MariaDB: of the folders the trigrams offer for every one of ``words``, those whose
    path holds each word by the search's own LIKE: their photos and their ids (None if the
    server cut the list short, ``group_concat_max_len``), in one statement. The count is
    the exact one: two trigrams of a month (``6-0`` and ``16-`` of ``2016-02``) offer
    every folder of ``2016-0``, 50,000 photos, which made its stream a walk of the name
    order (80-150 ms) where sorting its 5,650 photos takes 10. Those ids,
    written into a folder stream's statement, make it one table read through
    ``ix_photos_folder_cover`` and sorted; the same folders as a subquery made MariaDB
    join the folders to the photos, copy a month's 5,700 photos into a temporary table and
    sort that (28 against 14 ms at 1,000,000 photos, load 3.5). ``measure_all`` finds
    the set of every word found in paths with the words' measures (``Word.folder_set``);
    this statement is for the other sets ``arms`` narrows by."""
    pre = words[0].folder_set
    if pre is not None and pre[0] == frozenset(w.text for w in words):
        return pre[1], pre[2]
    stmt, params = _mysql_folder_set_stmt(conn.dialect.name, words)
    n, k, ids = (await conn.execute(stmt, params)).one()
    return int(n or 0), _id_list(ids, int(k or 0))


async def measure_all(conn: AsyncConnection, words: list[Word]) -> None:
    """``measure`` each of ``words`` not measured yet; on MariaDB/MySQL all of them in
    one statement (``_mysql_measure``): an event's two words were two statements."""
    todo = [w for w in words if not w.measured]
    if todo and conn.dialect.name in ("mysql", "mariadb"):
        await _mysql_measure(conn, todo)
        return
    for w in todo:
        await measure(conn, w)


_MYSQL_VALUES: dict[tuple[int, str], Any] = {}


def _mysql_values_part(part: int, col: str) -> Any:
    """``_mysql_measure``'s part for one word's values of ``col``: ``values_containing``'s
    GROUP BY skip scan and loose match (pattern ``vp<part>``), as text made once per part
    and column: built as a select each search it cost the daemon 0.7 ms of CPU."""
    stmt = _MYSQL_VALUES.get((part, col))
    if stmt is None:
        stmt = _MYSQL_VALUES[(part, col)] = sa.text(
            f"SELECT {part} AS part, NULL AS n, NULL AS k, {col} AS v FROM photos WHERE "
            f"{col} IS NOT NULL GROUP BY {col} HAVING lower(v) LIKE :vp{part} ESCAPE '!'"
        ).columns(sa.column("part"), sa.column("n"), sa.column("k"), sa.column("v"))
    return stmt


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _mysql_measure(conn: AsyncConnection, words: list[Word]) -> None:
    """``measure`` on MariaDB/MySQL for ``words``, one statement, a row per part, tagged
    ``(part, n, k, text)``:

    - each word's name candidates from the trigram lists alone (each of their ids is a
      photo's: foreign key), counted up to DENSE + 1, with their ids when at most FEW_IDS
      (``name_hits``: the page's stream then reads them by primary key instead of grouping
      the trigram lists again);
    - each word's camera and lens values (``values_containing``'s GROUP BY skip scans and
      loose match), a row each;
    - the folders whose path holds every word found in paths, exactly (the select of
      ``mysql_folder_set``, kept as ``Word.folder_set`` for ``arms``): for one word its
      photos are the word's ``folder_photos``, and an event's two words are narrowed by
      that set;
    - with several such words, each one's folders' photos for ``arms`` to choose the word
      to start from, capped: summed over at most FOLDER_CAP of its folders (each a primary
      key lookup, 5 us: an event's common word, 1,665 folders, was 8.7 ms of its 10.7 at
      1,000,000 photos). Cut there it counts as common (``folders_capped``; ``estimate``
      sums them all when a plan by candidates needs the figure)."""
    dialect = conn.dialect.name
    pathed = [w for w in words if w.paths]
    parts: list[Any] = []

    def row(part: int, n: Any = None, k: Any = None, text: Any = None) -> Any:
        return sa.select(sa.literal_column(str(part)).label("part"),
                         sa.null() if n is None else n, sa.null() if k is None else k,
                         sa.null() if text is None else text)

    for i, word in enumerate(words):
        if word.in_names:
            capped = grams_ids("photos_grams", word.grams, word.photo_counts) \
                .limit(DENSE + 1).subquery()
            n = sa.func.count()
            parts.append(row(8 * i, n, None, sa.case((n <= FEW_IDS, sa.func.group_concat(
                capped.c.id, type_=sa.Text)), else_=sa.null())).select_from(capped))
        if word.paths and len(pathed) > 1 and word.folder_counts:
            # The folders of its rarest trigram, in index order: a read of at most
            # FOLDER_CAP index entries and folders (the two rarest lists grouped were read
            # whole before the cap: 1.6 ms for beach's 3,330 entries).
            g = sa.table("folders_grams", sa.column("id"), sa.column("gram")).alias()
            rarest = min(zip(word.folder_counts, word.grams, strict=True))[1]
            few = sa.select(folders.c.photo_count).select_from(
                g.join(folders, folders.c.id == g.c.id)).where(g.c.gram == _unhex(rarest)) \
                .limit(FOLDER_CAP).subquery()
            parts.append(row(8 * i + 1, sa.func.coalesce(sa.func.sum(few.c.photo_count), 0),
                             sa.func.count()).select_from(few))
        for c, col in enumerate(VALUE_COLUMNS):
            if col in word.columns:
                parts.append(_mysql_values_part(8 * i + 2 + c, col).bindparams(
                    sa.bindparam(f"vp{8 * i + 2 + c}", _like(word.text), sa.String)))
    params: dict[str, Any] = {}
    if pathed:
        joint, params = _mysql_folder_set_stmt(dialect, pathed, lead=True)
        parts.append(joint)
    got: dict[int, tuple[Any, Any, Any]] = {}
    values: dict[int, list[str]] = {}
    if parts:
        # A row per part, each one table (a join of one-row tables on true made
        # SQLAlchemy warn of a cartesian product).
        stmt: Any = parts[0] if len(parts) == 1 else sa.union_all(*parts)
        for r in (await conn.execute(stmt, params)).all():
            part = int(r[0])
            if part >= 0 and part % 8 >= 2:
                values.setdefault(part, []).append(_text(r[3]))
            else:
                got[part] = (r[1], r[2], r[3])
    shared: tuple[frozenset[str], int, list[int] | None] | None = None
    if pathed:
        n, k, ids = got[-1]
        shared = (frozenset(w.text for w in pathed), int(n or 0),
                  _id_list(None if ids is None else _text(ids), int(k or 0)))
    for i, word in enumerate(words):
        word.values = {col: values[8 * i + 2 + c] for c, col in enumerate(VALUE_COLUMNS)
                       if 8 * i + 2 + c in values}
        if word.in_names:
            word.names = int(got[8 * i][0] or 0)
            # Only a whole list: one cut at the cap (a count of DENSE + 1) is not all.
            word.name_hits = _id_list(got[8 * i][2], word.names) \
                if word.names <= min(FEW_IDS, DENSE) else None
        word.folder_photos, word.folders_capped = 0, False
        if word.paths:
            word.folder_set = shared
            if len(pathed) == 1:
                word.folder_photos = shared[1] if shared is not None else 0
            else:
                total, seen = (int(x or 0) for x in got.get(8 * i + 1, (0, 0, None))[:2])
                word.folders_capped = seen >= FOLDER_CAP
                word.folder_photos = max(total, DENSE + 1) if word.folders_capped else total
        word.measured = True


_PG_MEASURE: dict[tuple[bool, bool], Any] = {}


def _pg_measure(in_names: bool, paths: bool) -> Any:
    """``measure``'s statement on PostgreSQL, built once per shape with the pattern and
    the caps as parameters (``pattern``, ``cap``, ``few``): built anew it cost the daemon
    0.3 ms of CPU a search (issue 13). The name candidates are counted (up to ``cap``)
    and, when at most ``few``, their ids returned as well: the trigram index scan of a
    rare word (``DSC_4242``: 3-4 ms, its common trigrams' long lists) is then done once,
    not again for the page's stream (``Word.name_ids``)."""
    key = (in_names, paths)
    stmt = _PG_MEASURE.get(key)
    if stmt is None:
        pattern = sa.bindparam("pattern", type_=sa.String)
        cols: list[Any] = []
        if in_names:
            capped = sa.select(photos.c.id).where(photos.c.name.ilike(pattern, escape="!")) \
                .limit(sa.bindparam("cap", type_=sa.Integer)).subquery()
            n = sa.func.count()
            found = sa.select(n.label("n"), sa.case(
                (n <= sa.bindparam("few", type_=sa.Integer), sa.func.array_agg(capped.c.id)),
                else_=sa.null()).label("ids")).select_from(capped).subquery("names")
            cols += [found.c.n, found.c.ids]
        parts: list[Any] = []
        if paths:
            parts.append(sa.select(sa.func.coalesce(sa.func.sum(folders.c.photo_count), 0))
                         .where(folders.c.path.ilike(pattern, escape="!")).scalar_subquery())
        stmt = sa.select(*cols, *parts)
        if in_names:
            stmt = stmt.select_from(found)
        _PG_MEASURE[key] = stmt
    return stmt


def folder_match(dialect: str, words: list[Word]) -> list[Any]:
    """Conditions on folders: (at least) those whose path holds every one of ``words``.
    On SQLite one FTS5 query of them all (``"bruges" AND "beach"``: the index intersects
    its own lists, 0.3 ms, where an ``IN`` per word built two lists of 500 and 1,665
    folders and probed them, 1.2 ms)."""
    if dialect == "sqlite" and len(words) > 1:
        fts = sa.table("folders_text", sa.column("rowid"), sa.column("folders_text"))
        return [folders.c.id.in_(sa.select(fts.c.rowid).where(
            fts.c.folders_text.match(" AND ".join(w.query for w in words))))]
    return [w.folder_ids(dialect) for w in words]


def _folder_photos(dialect: str, words: list[Word]) -> Any:
    return sa.select(sa.func.coalesce(sa.func.sum(folders.c.photo_count), 0)).where(
        *folder_match(dialect, words))


async def folder_photos(conn: AsyncConnection, words: list[Word]) -> int:
    """Photos in the folders whose path holds every one of ``words`` (their counts)."""
    return int(await conn.scalar(_folder_photos(conn.dialect.name, words)) or 0)


async def estimate(conn: AsyncConnection, word: Word) -> int:
    """Photos the index offers for ``word``, counted up to about DENSE + 1."""
    if not word.measured:
        await measure(conn, word)
    if word.folders_capped:
        # A plan by candidates needs the figure itself (MariaDB's measure of several
        # words cut it short: ``_mysql_measure``).
        word.folder_photos = await folder_photos(conn, [word])
        word.folders_capped = False
    n = word.names
    if word.values and n <= DENSE:
        capped = sa.select(photos.c.id).where(sa.or_(*(
            photos.c[col].in_(vals) for col, vals in word.values.items()))) \
            .limit(DENSE + 1).subquery()
        n += int(await conn.scalar(sa.select(sa.func.count()).select_from(capped)) or 0)
    return n + word.folder_photos


async def plan(conn: AsyncConnection, usable: list[Word]) -> Word | None:
    """The word (of those ``prepare`` returned) whose index candidates a search should
    start from, or None when every word is common (or none can be looked up): then the
    search walks its order."""
    # Longer words are rarer: try them first, and stop at the first rare one.
    seen: list[tuple[int, Word]] = []
    for word in sorted(usable, key=lambda w: -len(w.text)):
        n = await estimate(conn, word)
        if n <= DENSE:
            return word
        seen.append((n, word))
    if len(seen) > 1:
        # Several common words: together they are usually rare ("bruges beach"), and a
        # walk would test most of the library before it filled a page; the least common
        # one's candidates are the bounded way.
        return min(seen, key=lambda nw: nw[0])[1]
    return None


async def count_start(conn: AsyncConnection, usable: list[Word]) -> Word | None:
    """The word whose index candidates a count should test (the fewest), or None when
    every word is a substring of more than DENSE names or camera and lens values' photos:
    then its candidates are most of the library or near it (a camera's 170,000 photos:
    their ids gathered and each row read by id took longer than the scan, 480-570 against
    370 ms), and the count scans. Unlike ``plan`` a common place is taken: its 25,000
    candidates are far fewer rows to test than 1,000,000 (77 against 410 ms)."""
    best: tuple[int, Word] | None = None
    for word in usable:
        n = await estimate(conn, word)
        by_value = n - word.names - word.folder_photos  # capped at DENSE + 1
        if word.names <= DENSE and by_value <= DENSE and (best is None or n < best[0]):
            best = (n, word)
    return None if best is None else best[1]


class SetStatement(Executable, ClauseElement):
    """MariaDB's ``SET STATEMENT settings FOR select``: server variables for one
    statement only. Cached like the select it wraps (its cache key is the select's and
    the settings'), so a search's compiled statement is reused as before."""

    inherit_cache = True
    _traverse_internals = [("settings", InternalTraversal.dp_string),
                           ("select", InternalTraversal.dp_clauseelement)]

    is_select = True  # its rows are the select's, typed and named by its columns

    def __init__(self, settings: str, select: Any) -> None:
        self.settings = settings
        self.select = select

    @property
    def _all_selected_columns(self) -> Any:
        return self.select._all_selected_columns


@compiles(SetStatement)
def _set_statement(element: SetStatement, compiler: SQLCompiler, **kw: Any) -> str:
    return f"SET STATEMENT {element.settings} FOR {compiler.process(element.select, **kw)}"


# MariaDB: a sorted folder stream's statement plans its ``folder_id IN (...)`` ranges of
# ``ix_photos_folder_cover`` from the index's statistics, not one index dive per folder
# (``eq_range_index_dive_limit``, 200 by default): the index is forced and the rows are
# all read anyway, so the dives only cost: 2.7 of 11 ms for ``bruges beach``'s 166
# folders (0.3 with the statistics; docs/benchmarks.md, "mysearch4").
FOLDER_STREAM_SETTINGS = "eq_range_index_dive_limit=1"


def sorted_folder_stream(conn: AsyncConnection, arms: list[Any], stmt: Any) -> Any:
    """``stmt`` (the page's streams) with ``FOLDER_STREAM_SETTINGS`` on MariaDB when its
    one stream is a folder stream sorted from ``ix_photos_folder_cover`` (a month's, an
    event's): there no other range in the statement that a plan could be chosen by.
    Elsewhere (several streams: a camera value's walk is chosen by its dives; MySQL,
    whose syntax for it is an optimizer hint) ``stmt`` as it is."""
    if len(arms) == 1 and arms[0].walk_index == FOLDER_COVER and arms[0].few \
            and getattr(conn.dialect, "is_mariadb", False):
        return SetStatement(FOLDER_STREAM_SETTINGS, stmt)
    return stmt


@dataclass
class Arm:
    """One stream of a page: an extra condition, and whether its rows are few enough to
    fetch and sort (``few``) or are walked in the order an index gives them."""

    condition: Any
    few: bool
    # Words whose whole condition this stream's condition implies: the page of this stream
    # need not test them again (PostgreSQL's folder streams: then a place's photos come
    # from an index-only scan, with no LIKE on any photo column).
    implies: frozenset[str] = frozenset()
    # MariaDB/MySQL: the index a folder stream must use: for a walk the name order (its
    # optimizer would rather sort all of a place's photos, ``0043_mysql_name_cover``), for
    # a sort of a few folders' photos ``(folder_id, status, name_key)`` (``arms``).
    walk_index: str | None = None
    # MariaDB/MySQL: the stream's ids as a statement (a word's name candidates, a union),
    # joined first, then the photos by primary key (``STRAIGHT_JOIN``): misjudging a union
    # of grouped trigram lists at 160,000 rows, MariaDB read all 1,000,000 photos instead
    # (``2028``: 25 s). ``condition`` says the same, for the other engines' plans.
    ids: Any = None


async def arms(conn: AsyncConnection, usable: list[Word]) -> list[Arm] | None:
    """The streams whose merged first pages make a page sorted by name (see the module
    docstring), or None when no word can be served that way (then ``plan``)."""
    if not usable:
        return None
    dialect = conn.dialect.name
    await measure_all(conn, usable)
    best: tuple[int, Word] | None = None
    for w in usable:
        if w.names > DENSE or w.value_count > MAX_VALUE_ARMS:
            continue  # a substring of many names, or of too many values: not this word
        cost = w.names + w.folder_photos + PAGE_COST * w.value_count
        if best is None or cost < best[0]:
            best = (cost, w)
    if best is None:
        return None
    word = best[1]
    out = _column_arms(word, dialect)
    if word.folder_photos:
        # Other words found in paths narrow the folders: a photo of the word's folders
        # matching them all is in a folder whose path holds every one, or matches one of
        # them by its own columns (a name, a camera or lens value): those photos come from
        # that word's own column streams, when they are few enough to be streams. Without
        # them a word that also names a file (``trip`` in ``strip.tif``) could not narrow,
        # and a walk of the word's folders testing it crossed the whole library when no
        # photo matches both (``denver trip`` after a scan: 0.8-2.4 s, issue 13).
        narrowing = [word, *(w for w in usable if w is not word and w.paths and (
            w.only_paths or (w.names <= DENSE and w.value_count <= MAX_VALUE_ARMS)))]
        for w in narrowing[1:]:
            if not w.only_paths:
                out += _column_arms(w, dialect)
        mysql = dialect in ("mysql", "mariadb")
        n = word.folder_photos if len(narrowing) == 1 else None
        # MariaDB: the folders whose paths hold every narrowing word, by id, and their
        # photos, exactly (None: cut short).
        hits: list[int] | None = None
        if mysql:
            n, hits = await mysql_folder_set(conn, narrowing)
        elif n is None:
            n = await folder_photos(conn, narrowing)
        if n and n <= DENSE and hits is not None:
            # A stream sorted from the photos of those folders, named by id: one table,
            # read from ``(folder_id, status, name_key)`` (FORCE INDEX: without it MariaDB
            # takes ``(folder_id, name_key)`` and reads each row for its status) and sorted
            # (``_mysql_folders``). No folder holds them all: no stream.
            if hits:
                out.append(Arm(photos.c.folder_id.in_(hits), few=True,
                               implies=frozenset(w.text for w in narrowing),
                               walk_index=FOLDER_COVER))
            n = 0
        if n:
            few = n <= DENSE
            folder: Any = photos.c.folder_id
            if not few and dialect == "sqlite":
                # Walk the name order testing the folder: SQLite would rather fetch every
                # photo of those folders through the folder index and sort them (3-6x
                # slower for a place in 500 folders).
                folder = folder + 0
            # The folders whose paths hold each narrowing word, exactly: then a photo of
            # them matches each of those words, and the stream need not test their
            # conditions (on PostgreSQL ``folder_ids`` is that very ILIKE; SQLite's and
            # MariaDB's index queries are supersets, so the path's LIKE is added). The
            # stream then tests only the folder and the status, which SQLite's
            # ``ix_photos_folder_cover`` (a sort) and ``ix_photos_name_cover`` (a walk)
            # hold (``0045_sqlite_covers``): no table row read for a photo not on the
            # page (``bruges beach``: 8,350 rows, 17-23 ms of the statement before).
            exact = True
            # PostgreSQL, a common place (``not few``): its folders' ids as an array. The
            # planner cannot estimate ``path ILIKE '%word%'`` (2 folders guessed for a
            # place's 500: so 100 photos, fetched through the folder index and sorted:
            # 25,000 of them, 35-95 ms); given the ids in a custom plan it counts their
            # photos (25,000 of 1,000,000) and walks ``name_key INCLUDE (id, folder_id,
            # status)`` testing them (8,000 index entries for a page: 6 ms, no heap).
            wheres = folder_match(dialect, narrowing)
            if exact and dialect != "postgresql":
                wheres += [_contains(folders.c.path, w.text, dialect) for w in narrowing]
            implied = frozenset(w.text for w in narrowing) if exact else frozenset()
            chosen: Any = sa.select(folders.c.id).where(*wheres)
            condition = folder.in_(chosen)
            walk = NAME_COVER if not few and dialect in ("mysql", "mariadb") else None
            if not few and dialect == "postgresql":
                condition = photos.c.folder_id == sa.any_(sa.bindparam(
                    "walk_folders", list(await conn.scalars(chosen)),
                    type_=postgresql.ARRAY(sa.BigInteger)))
            elif walk is not None and hits is not None:
                # By id, as ``mysql_folder_set`` found them: the walk tests each photo's
                # folder against a sorted list (and the folders' LIKE is not run again).
                condition = photos.c.folder_id.in_(hits)
            elif walk is not None:
                # Materialized once (a grouped derived table is never merged): pulled into
                # the join, the folders' LIKE ran again for each of the 8,000 photos walked.
                sub = chosen.group_by(folders.c.id).subquery("walked")
                condition = folder.in_(sa.select(sub.c.id))
            out.append(Arm(condition, few=few, implies=implied, walk_index=walk))
    return _few_together(out, dialect)


def _column_arms(word: Word, dialect: str) -> list[Arm]:
    """The streams of the photos whose own columns hold ``word``: its name candidates (few,
    sorted) and one per camera or lens value containing it (walked in name order)."""
    out: list[Arm] = []
    mysql = dialect in ("mysql", "mariadb")
    if word.names:
        # MariaDB: the trigrams' candidates first (``Arm.ids``), unless ``measure`` had
        # them by id (then ``name_ids`` is a primary-key lookup of those).
        out.append(Arm(word.name_ids(dialect), few=True, ids=grams_ids(
            "photos_grams", word.grams, word.photo_counts)
            if mysql and word.name_hits is None else None))
    # A value stream implies the word: its value contains it by the search's own ILIKE
    # (``values_containing``). On PostgreSQL the stream then tests only the status, which
    # ``(column, name_key) INCLUDE (id, status)`` holds: an index-only walk
    # (``0044_pg_name_cover``); the other engines' plans are left as they are.
    by_value = frozenset((word.text,)) if dialect == "postgresql" and word.paths \
        else frozenset()
    for col, vals in word.values.items():
        out += [Arm(photos.c[col] == v, few=False, implies=by_value) for v in vals]
    return out


def _few_together(arms: list[Arm], dialect: str) -> list[Arm]:
    """The streams to sort, as one: their ids in a union (one statement and one sort of
    a few rows instead of a page per stream; an OR of the lookups would defeat
    PostgreSQL's planner, see ``Word.candidates``)."""
    few = [a for a in arms if a.few]
    if len(few) < 2:
        return arms
    ids = sa.union(*(sa.select(photos.c.id).where(a.condition).correlate(None) for a in few))
    # The union implies only what every part of it implies.
    implied = frozenset.intersection(*(a.implies for a in few))
    mysql = dialect in ("mysql", "mariadb")
    return [Arm(id_in(ids, dialect), few=True, implies=implied, ids=ids if mysql else None),
            *(a for a in arms if not a.few)]


async def rebuild(conn: AsyncConnection) -> None:
    """Index every row again from the tables (after a bulk load that bypassed or
    disabled the triggers; a copy between engines that inserts rows normally need not).
    PostgreSQL's indexes are ordinary ones and always current."""
    name = conn.dialect.name
    if not await available(conn):
        return
    if name == "sqlite":
        for fts in ("photos_text", "folders_text"):
            await conn.execute(sa.text(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')"))
    elif name in ("mysql", "mariadb"):
        await conn.execute(sa.text("SET @lightbox_text_rebuild = 1"))
        try:
            await conn.execute(sa.text("UPDATE photos SET name = name"))
            await conn.execute(sa.text("UPDATE folders SET path = path"))
        finally:
            await conn.execute(sa.text("SET @lightbox_text_rebuild = NULL"))
