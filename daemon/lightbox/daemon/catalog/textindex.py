"""Text search through each engine's own substring index (migration ``0008_text_index``).

What a search word means is fixed by ``queries``: a case-insensitive substring (``LIKE
'%word%'``) of a photo's name, make, model or lens, or of its folder's path. That
condition is always applied; an index only narrows the rows it is tested on, so every
engine answers exactly the same photos. The indexes find rows containing a word of three
characters or more:

- SQLite: FTS5 tables ``photos_text`` (name, make, model, lens) and ``folders_text``
  (path) with the trigram tokenizer and external content (the text stays in the tables;
  the index holds trigrams and positions). A quoted trigram phrase is an exact substring
  match, answered from the index alone. Triggers keep them current.
- PostgreSQL: pg_trgm GIN indexes on the columns, which serve ``ILIKE '%word%'`` directly
  (ordinary indexes: current by construction). Without the extension there are none.
- MariaDB/MySQL: ``photos_terms`` and ``folders_terms``: the trigrams of the lower-cased
  text as FULLTEXT words (``x`` + hex of the three characters, so no trigram is too short
  or a stop word); a boolean query asking for every trigram of a word finds a superset of
  the rows that contain it. Triggers keep them current.

Triggers, not code in the writer: the index stays current whatever writes the rows (the
scanner, the indexer, a copy from another engine, a test's bulk insert), and a copy that
only knows the tables of ``tables.metadata`` rebuilds it as it inserts.

When an index is used: a word found in many photos is cheapest to find by walking the
requested order and testing each row (the first page fills after a few hundred rows, when
the matches are spread over that order); a rare one by fetching its few rows through the
index and sorting them. ``plan`` counts the candidates of each word, capped at ``DENSE``
photos, and starts from the first rare one; several common words start from the least
common (their combination is usually rare); one common word alone walks the order. Known
slow case: one common word whose photos sit together far down the requested order (a
camera whose file names all start alike, sorted by name): the walk crosses the photos
before them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from lightbox.daemon.catalog.tables import folders, photos

MIN_WORD = 3  # characters: trigram indexes cannot find shorter words
# Candidates (photos) above which a word counts as common: walking the requested order finds
# a page of them sooner than fetching and sorting them all would.
DENSE = 20_000
PHOTO_COLUMNS = ("name", "make", "model", "lens")
CAMERA_COLUMNS = ("make", "model")
_MYSQL_TERMS = 8  # trigrams per FULLTEXT query: enough to be selective, few to merge

_available: dict[Any, bool] = {}
# What the migration creates outside ``tables.metadata`` (FTS5 also makes shadow tables
# named after its tables): schema comparisons leave these out, copies between engines need
# not carry them (the target's own migration and triggers rebuild them).
OBJECTS = ("photos_text", "folders_text", "photos_terms", "folders_terms",
           "ix_photos_text_trgm", "ix_folders_path_trgm")


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
                "DATABASE() AND table_name = 'photos_terms'")))
        _available[key] = found
    return found


def indexable(word: str) -> bool:
    return len(word) >= MIN_WORD


def _fts_phrase(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def mysql_query(lowered: str) -> str:
    """A boolean FULLTEXT query for rows holding the trigrams of ``lowered`` (the word as
    the server lower-cases it): at most _MYSQL_TERMS of them, spread over the word."""
    grams = [lowered[i:i + 3] for i in range(len(lowered) - 2)]
    if len(grams) > _MYSQL_TERMS:
        step = (len(grams) - 1) / (_MYSQL_TERMS - 1)
        grams = [grams[round(k * step)] for k in range(_MYSQL_TERMS)]
    return " ".join(f"+x{g.encode('utf-8').hex().upper()}" for g in dict.fromkeys(grams))


@dataclass
class Word:
    """One search word and where it may appear."""

    text: str
    columns: tuple[str, ...]  # photo columns
    paths: bool  # also the folder path
    query: str = ""  # the engine's index query (SQLite, MariaDB)

    def photo_ids(self, dialect: str, table: Any = photos) -> Any:
        """A condition true for (at least) the photos whose columns contain the word."""
        if dialect == "sqlite":
            cols = " ".join(self.columns)
            fts = sa.table("photos_text", sa.column("rowid"), sa.column("photos_text"))
            return table.c.id.in_(sa.select(fts.c.rowid).where(
                fts.c.photos_text.match(f"{{{cols}}} : {self.query}")))
        if dialect == "postgresql":
            pattern = _like(self.text)
            return sa.or_(*(table.c[c].ilike(pattern, escape="!") for c in self.columns))
        terms = sa.table("photos_terms", sa.column("id"), sa.column("terms"))
        return table.c.id.in_(sa.select(terms.c.id).where(terms.c.terms.match(self.query)))

    def folder_ids(self, dialect: str) -> Any:
        """A condition on folders: (at least) those whose path contains the word."""
        if dialect == "sqlite":
            fts = sa.table("folders_text", sa.column("rowid"), sa.column("folders_text"))
            return folders.c.id.in_(sa.select(fts.c.rowid).where(
                fts.c.folders_text.match(self.query)))
        if dialect == "postgresql":
            return folders.c.path.ilike(_like(self.text), escape="!")
        terms = sa.table("folders_terms", sa.column("id"), sa.column("terms"))
        return folders.c.id.in_(sa.select(terms.c.id).where(terms.c.terms.match(self.query)))

    def candidates(self, dialect: str) -> Any:
        """Photos that may contain the word (the index's superset), as ids from a union:
        an OR of the two lookups in the WHERE clause defeats PostgreSQL's planner (a scan
        of every row: 6 s instead of 20 ms at 1,000,000 photos)."""
        p = photos.alias("candidate")  # not correlated with the outer query's photos
        cand: Any = sa.select(p.c.id).where(self.photo_ids(dialect, p))
        if self.paths:
            cand = sa.union(cand, sa.select(p.c.id).where(p.c.folder_id.in_(
                sa.select(folders.c.id).where(self.folder_ids(dialect)))))
        return photos.c.id.in_(cand)


def _like(word: str) -> str:
    from lightbox.daemon.catalog.queries import like_pattern
    return like_pattern(word)


async def prepare(conn: AsyncConnection, words: list[Word]) -> list[Word]:
    """The words the index can look up, with their engine queries filled in."""
    usable = [w for w in words if indexable(w.text)]
    if not usable or not await available(conn):
        return []
    dialect = conn.dialect.name
    if dialect == "sqlite":
        for w in usable:
            w.query = _fts_phrase(w.text)
    elif dialect in ("mysql", "mariadb"):
        # The server's own lower-casing, so the trigrams are those its triggers wrote.
        lowered = (await conn.execute(sa.select(*(
            sa.func.lower(sa.text(f"CONVERT(:w{i} USING utf8mb4)").bindparams(
                sa.bindparam(f"w{i}", w.text, sa.String)))
            for i, w in enumerate(usable))))).one()
        for w, low in zip(usable, lowered, strict=True):
            w.query = mysql_query(str(low))
    return usable


async def estimate(conn: AsyncConnection, word: Word) -> int:
    """Photos the index offers for ``word``, counted up to DENSE + 1."""
    dialect = conn.dialect.name
    capped = sa.select(photos.c.id).where(word.photo_ids(dialect)).limit(DENSE + 1).subquery()
    n = int(await conn.scalar(sa.select(sa.func.count()).select_from(capped)) or 0)
    if word.paths and n <= DENSE:
        n += int(await conn.scalar(sa.select(sa.func.coalesce(
            sa.func.sum(folders.c.photo_count), 0)).where(word.folder_ids(dialect))) or 0)
    return n


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
