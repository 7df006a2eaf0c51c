"""``library.import``: photos from a card or folder into a root, laid out by a template.

Phases: **walk** the source (a thread; links and dot-files are skipped), **probe** each file
in the worker pool (sniffed kind, EXIF date and camera: the header only), **copy** in
threads into the job's stage dir below the root (``.lightbox-import/<owner>!<job>/``, hidden,
so never scanned): each file read once and hashed on the way, a batch made durable by one
``syncfs``, each copy read back from the device and compared; then **plan** the names (the
template on the metadata, names made safe for every file system, collisions resolved by a
suffix from the sha256, files whose sha256 the catalog has skipped and their copies
dropped), **place** each copy under its name by a rename that never overwrites, flush the
folders, and only then delete the sources of a move. A file whose name under the template
already holds a file of its size (a rerun) is hashed before it is copied, so a card
imported again is read, not written. Then **scan** the root so the catalog takes the new
files (through the scanner and the writer, like any other file), and say whether the card
is **safe to erase**: every file on it is in the library and, where a backup target
covers the root, on that target. A dry run hashes every file (in the pool) and writes
nothing. What an import killed mid-way left (its stage dir) is removed by the next import
into the root.

Templates (beets' path formats and exiftool's ``-d`` are the models): text with fields in
braces, ``/`` between folders. ``{taken:%Y-%m-%d}`` formats the date the photo was taken
with strftime; with no date it becomes ``undated`` or the fallback after ``|``
(``{taken:%Y|no-date}``). Other fields: ``mtime`` (the file's modification time, same
formats), ``name`` (the file name), ``stem``, ``ext`` (without the dot, lower case), ``make``,
``model`` (``unknown`` when absent, or the fallback) and ``sha8``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import itertools
import os
import re
import stat
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lightbox.common import logs
from lightbox.daemon.backups import files
from lightbox.daemon.backups.real_dirs import RealDirs
from lightbox.daemon.catalog import tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.jobs.queue import JobContext, JobFailed, _owner_alive
from lightbox.daemon.library.indexer import Indexer
from lightbox.daemon.library.scanner import Offline, Scanner
from lightbox.daemon.library.sources import Sources
from lightbox.daemon.workers.pool import WorkerPool

log = logs.get("import")

P, M, T, F = tables.photos, tables.backup_manifest, tables.backup_targets, tables.folders

_FIELD = re.compile(r"\{([a-z0-9]+)(?::([^}|]*))?(?:\|([^}]*))?\}")
FIELDS = ("taken", "mtime", "name", "stem", "ext", "make", "model", "sha8")
_counter = itertools.count()
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_RESERVED = re.compile(r"(?i)^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$")


def template_problem(template: str) -> str | None:
    """Why a template cannot be used, or None."""
    if not template.strip():
        return "must not be empty"
    for m in _FIELD.finditer(template):
        if m.group(1) not in FIELDS:
            return f"unknown field {{{m.group(1)}}} (fields: {', '.join(FIELDS)})"
        if m.group(2) is not None and m.group(1) in ("taken", "mtime"):
            try:
                dt.datetime(2000, 1, 2).strftime(m.group(2))
            except ValueError as exc:
                return f"bad date format {m.group(2)!r}: {exc}"
    if "{name}" not in template and "{stem}" not in template and "{sha8}" not in template:
        return "must contain {name}, {stem} or {sha8}, or every photo would get the same name"
    return None


def safe_component(text: str) -> str:
    """One path component every file system takes: no reserved characters, no trailing
    dots or spaces, not a Windows device name, at most 255 UTF-8 bytes (the extension
    kept)."""
    s = _UNSAFE.sub("_", text).strip().rstrip(". ")
    if not s or s in (".", ".."):
        s = "_"
    if _RESERVED.match(s):
        s = "_" + s
    if len(s.encode("utf-8", "surrogateescape")) > 255:
        stem, dot, ext = s.rpartition(".")
        keep = (dot + ext) if dot and len(ext) <= 16 else ""
        base = stem if keep else s
        while len((base + keep).encode("utf-8", "surrogateescape")) > 255:
            base = base[:-1]
        s = base + keep
    return s


def render(template: str, meta: dict[str, Any]) -> str:
    """The relative path ``template`` gives for a file's metadata, each component safe."""
    name: str = meta["name"]
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""

    def value(m: re.Match[str]) -> str:
        key, fmt, fallback = m.group(1), m.group(2), m.group(3)
        if key in ("taken", "mtime"):
            when = meta.get(key)
            if when is None:
                return fallback if fallback is not None else "undated"
            return str(when.strftime(fmt or "%Y-%m-%d"))
        if key == "name":
            return str(name)
        if key == "stem":
            return stem
        if key == "ext":
            return ext.lower()
        if key == "sha8":
            return str(meta["sha256"][:8])
        text = meta.get(key)
        return str(text) if text else (fallback if fallback is not None else "unknown")

    rendered = _FIELD.sub(lambda m: value(m).replace("/", "_"), template)
    parts = [safe_component(p) for p in rendered.split("/") if p.strip()]
    return "/".join(parts) or safe_component(name)



# -- in worker processes ----------------------------------------------------------------

def probe(path: str, digest: bool = False) -> dict[str, Any]:
    """Kind and the metadata templates use, for one file (runs in the pool): the header
    only (content sniffing and EXIF read what they need, not the whole file), and with
    ``digest`` also the sha256 of the whole file (a dry run, or a file that is probably in
    the library already). A real import hashes the rest while it copies."""
    from lightbox.daemon.media import exif, sniff

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return {"error": "not a regular file"}
        sha = None
        if digest:
            sha, _ = files.hash_file(f)
            f.seek(0)
        sniffed = sniff.sniff_bytes(f.read(sniff.HEAD_SIZE))
        taken = make = model = None
        if sniffed.kind in (sniff.IMAGE, sniff.RAW):
            try:
                info = exif.read_exifread(f)
                taken, make, model = info.taken_at, info.make, info.model
            except Exception:  # no EXIF, or unreadable: the template falls back
                pass
    return {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "kind": sniffed.kind, "what": sniffed.what, "taken": taken, "make": make,
            "model": model}


# -- the job ----------------------------------------------------------------------------

STAGE_DIR = ".lightbox-import"  # below the root: hidden, so never scanned as photos
PART_FILES = 64
PART_BYTES = 128 << 20


@dataclass
class Planned:
    rel: str  # below the source folder
    sha256: str
    size: int
    meta: dict[str, Any]
    dest: str = ""  # below the root
    action: str = "copy"  # copy | skip (known) | present | not_photo | error
    reason: str = ""
    tmp: str = ""  # staged copy (in the job's stage dir), read back and checked


class Importer:
    name = "importer"

    def __init__(self, db: Database, sources: Sources, scanner: Scanner, indexer: Indexer,
                 pool: WorkerPool, owner: str = "") -> None:
        self.db = db
        self.sources = sources
        self.scanner = scanner
        self.indexer = indexer
        self.pool = pool
        self.owner = owner
        self._active: set[int] = set()  # import jobs of this process now running
        self._tidy: asyncio.Task[None] | None = None
        self.cleared = 0

    # -- lifecycle: what a killed import left is removed at start, not at the next import
    async def start(self) -> None:
        """In the background (a slow or hung root must not hold the daemon's start): each
        local root's stage dirs whose owner is gone are removed, so a daemon killed
        mid-import leaves no half-copied files in the root until someone imports again."""
        self._tidy = asyncio.get_running_loop().create_task(self._clear_all(),
                                                            name="import-tidy")

    async def _clear_all(self) -> None:
        for root in self.sources.local():
            try:
                cleared = await asyncio.to_thread(clear_stale, root.path, self.owner, None)
            except Exception:  # a root that cannot be read now: its next import tidies it
                log.debug("could not look for interrupted imports", root=root.name,
                          exc_info=True)
                continue
            if cleared:
                self.cleared += cleared
                log.info("removed what interrupted imports left", root=root.name,
                         files=cleared)

    async def stop(self) -> None:
        if self._tidy is not None:
            self._tidy.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._tidy
            self._tidy = None

    def status(self) -> dict[str, Any]:
        return {"running": len(self._active), "cleared_at_start": self.cleared}

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        self._active.add(ctx.id)
        try:
            return await self._run(ctx)
        finally:
            self._active.discard(ctx.id)

    async def _run(self, ctx: JobContext) -> dict[str, Any]:
        p = ctx.params
        source_path: str = p["source_path"]
        root = self.sources.resolve(p["root"])
        template: str = p.get("template") or "{taken:%Y}/{taken:%Y-%m-%d}/{name}"
        move = p.get("mode") == "move"
        dry = bool(p.get("dry_run"))
        reason = await self.sources.check(root)
        if reason:
            raise JobFailed(f"the root {root.name} is offline: {reason}", {"reason": "offline"})
        owner = ctx.queue.owner
        cleared = await asyncio.to_thread(clear_stale, root.path, owner, set(self._active))
        if cleared:
            log.info("removed what interrupted imports left", root=root.name, files=cleared)
        ctx.phase = "walking"
        ctx.progress()
        clock = time.monotonic()
        timings: dict[str, float] = {}

        def lap(name: str) -> None:
            nonlocal clock
            now = time.monotonic()
            timings[name] = round(now - clock, 3)
            clock = now

        found = await asyncio.to_thread(_walk, source_path)
        lap("walk")
        ctx.phase = "reading"
        ctx.progress(processed=0, total=len(found))
        plan = await self._probe(ctx, source_path, found, digest=dry)
        lap("probe")
        if dry:
            await self._plan(plan, template)
            lap("plan")
            return {**self._summary(plan, root.name, dry=True), "timings": timings}
        # A rerun: a file whose name under the template is taken by a file of its size is
        # probably in the library already; it is hashed first (a read, no write) and only
        # copied if the catalog does not have it. Every other file is read once: hashed
        # while it is copied, and "already in the library" decided after.
        await self._hash_likely_known(ctx, source_path, root.path, plan, template)
        lap("recheck")
        stage = os.path.join(root.path, STAGE_DIR, stage_name(owner, ctx.id))
        try:
            stop = await self._stage(ctx, source_path, root.path, stage,
                                     [it for it in plan if it.action == "copy"], move)
            lap("stage")
            await self._plan(plan, template)
            lap("plan")
            ctx.phase = "placing"
            ctx.progress()
            placed = await asyncio.to_thread(_place_all, source_path, root.path, plan, move)
            stop = stop or placed
            lap("place")
        finally:
            await asyncio.to_thread(_remove_stage, stage)
        # The catalog takes the new files the way it takes any: a scan of the root.
        ctx.phase = "indexing"
        ctx.progress()
        try:
            await self.scanner.scan(root, "")
        except Offline as exc:
            raise JobFailed(f"the root {root.name} went offline: {exc}",
                            {"reason": "offline"}) from None
        self.indexer.wake()
        while await self.indexer.pending([root.id]):
            if self.indexer.pause is not None or await self.indexer.only_retrying([root.id]):
                break
            await self.indexer.wait_progress(1.0)
        self.indexer.changes.flush()
        lap("index")
        result = self._summary(plan, root.name, dry=False)
        result.update(await self._verdict(plan, root.id, root.name))
        result["timings"] = timings
        if stop is not None:
            result["reason"] = stop.reason
            raise JobFailed(f"import stopped: {stop}", result)
        return result

    async def _probe(self, ctx: JobContext, source_path: str, found: list[str],
                     digest: bool) -> list[Planned]:
        async def one(rel: str) -> Planned:
            try:
                meta = await self.pool.submit(probe, os.path.join(source_path, rel), digest)
            except Exception as exc:  # the file, not the job: reported, the rest goes on
                ctx.progress(add=1, add_errors=1)
                return Planned(rel, "", 0, {}, action="error", reason=str(exc))
            ctx.progress(add=1)
            if "error" in meta:
                return Planned(rel, "", 0, {}, action="error", reason=meta["error"])
            item = Planned(rel, meta["sha256"] or "", meta["size"], meta)
            if meta["kind"] not in ("image", "raw"):
                item.action, item.reason = "not_photo", meta["what"]
            return item

        sem = asyncio.Semaphore(max(2, self.pool.processes * 2))

        async def bounded(rel: str) -> Planned:
            async with sem:
                return await one(rel)

        return list(await asyncio.gather(*(bounded(rel) for rel in found)))

    async def _hash_likely_known(self, ctx: JobContext, source_path: str, root: str,
                                 plan: list[Planned], template: str) -> None:
        if "{sha8}" in template:
            return  # the name depends on the content: nothing to look at before hashing
        todo = [it for it in plan if it.action == "copy"]
        for it in todo:
            it.dest = render(template, _meta(it))
        likely = await asyncio.to_thread(_likely_present, root, todo)
        if not likely:
            return
        ctx.phase = "checking what the library has"
        hashed = await self._probe(ctx, source_path, [it.rel for it in likely], digest=True)
        by_rel = {it.rel: it for it in likely}
        for h in hashed:
            it = by_rel[h.rel]
            if h.action == "error":
                it.action, it.reason = h.action, h.reason
            elif h.size != it.size:
                it.action, it.reason = "error", "the source changed while it was imported"
            else:
                it.sha256 = h.sha256
        known = await self._known([it.sha256 for it in likely if it.sha256])
        for it in likely:
            if it.action == "copy" and it.sha256 in known:
                it.action, it.reason = "skip", "already in the library"

    async def _stage(self, ctx: JobContext, source_path: str, root: str, stage: str,
                     todo: list[Planned], move: bool) -> files.TargetError | None:
        """Copy every file of ``todo`` into the stage dir, hashing it on the way, flushed
        and read back (``_stage_part``), ``pool.processes`` parts at a time. The first
        target error stops the staging; the files not staged then are reported."""
        ctx.phase = "copying"
        ctx.progress(processed=0, total=len(todo), bytes_=0)
        if not todo:
            return None
        try:
            await asyncio.to_thread(os.makedirs, stage, 0o700, True)
        except OSError as exc:
            err = files.target_error(exc, "creating the import's temporary folder")
            for it in todo:
                it.action, it.reason = "error", f"{err}; the source is kept"
            return err
        parts: list[list[Planned]] = []
        cur: list[Planned] = []
        size = 0
        for it in todo:
            cur.append(it)
            size += it.size
            if len(cur) >= PART_FILES or size >= PART_BYTES:
                parts.append(cur)
                cur, size = [], 0
        if cur:
            parts.append(cur)
        stop: files.TargetError | None = None
        sem = asyncio.Semaphore(max(1, self.pool.processes))

        async def one(part: list[Planned]) -> None:
            nonlocal stop
            async with sem:
                if stop is not None:
                    for it in part:
                        it.action, it.reason = "error", f"not copied: {stop}"
                    return
                out = await asyncio.to_thread(_stage_part, source_path, stage, part, move)
            stop = stop or out
            ctx.progress(add=len(part), add_bytes=sum(it.size for it in part if it.tmp),
                         add_errors=sum(1 for it in part if it.action == "error"))

        await asyncio.gather(*(one(part) for part in parts))
        return stop

    async def _known(self, shas: list[str]) -> set[str]:
        known: set[str] = set()
        async with self.db.engine.connect() as conn:
            for i in range(0, len(shas), 500):
                known.update((await conn.execute(sa.select(P.c.sha256).where(
                    P.c.sha256.in_(shas[i:i + 500]), P.c.status != "missing"))).scalars())
        return known

    async def _plan(self, plan: list[Planned], template: str) -> None:
        """Names for the files to copy (every one has its sha256 now); files the catalog
        has, and second files of one content, are skipped (a staged copy is dropped)."""
        known = await self._known([it.sha256 for it in plan if it.action == "copy"])
        by_dest: dict[str, set[str]] = {}
        first: set[str] = set()
        for it in plan:
            if it.action != "copy":
                continue
            if it.sha256 in known:
                it.action, it.reason = "skip", "already in the library"
                continue
            if it.sha256 in first:
                it.action, it.reason = "skip", "the same content is imported from another file"
                continue
            first.add(it.sha256)
            it.dest = render(template, _meta(it))
            by_dest.setdefault(it.dest, set()).add(it.sha256)
        for it in plan:
            # Several contents for one name: the lowest sha256 keeps it, the others get a
            # suffix from theirs, so the same card imported again gives the same names.
            if it.action == "copy" and len(by_dest[it.dest]) > 1 \
                    and it.sha256 != min(by_dest[it.dest]):
                it.dest = files.variant(it.dest, it.sha256)
            if it.action != "copy" and it.tmp:
                _quiet_unlink(it.tmp)
                it.tmp = ""

    @staticmethod
    def _summary(plan: list[Planned], root: str, dry: bool) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for it in plan:
            counts[it.action] = counts.get(it.action, 0) + 1
        listed = [{"from": it.rel, "to": it.dest, "action": it.action,
                   **({"reason": it.reason} if it.reason else {})}
                  for it in plan[:1000]]
        return {"root": root, "dry_run": dry, "counts": counts, "files": listed,
                "listed": len(listed), "total": len(plan)}

    async def _verdict(self, plan: list[Planned], root_id: int, root: str) -> dict[str, Any]:
        shas = [it.sha256 for it in plan if it.sha256 and it.action not in ("not_photo",)]
        in_library: set[str] = set()
        async with self.db.engine.connect() as conn:
            for i in range(0, len(shas), 500):
                in_library.update((await conn.execute(sa.select(P.c.sha256).where(
                    P.c.sha256.in_(shas[i:i + 500]), P.c.status == "ok"))).scalars())
            targets = [r for r in (await conn.execute(sa.select(T.c.id, T.c.name, T.c.config))
                                   ).all()
                       if not (r.config or {}).get("roots") or root in r.config["roots"]]
            backed: dict[str, int] = {}
            for t in targets:
                have: set[str] = set()
                for i in range(0, len(shas), 500):
                    have.update((await conn.execute(sa.select(M.c.sha256).where(
                        M.c.target_id == t.id, M.c.sha256.in_(shas[i:i + 500])))).scalars())
                backed[t.name] = len(set(shas) - have)
            # Each copy as the catalog read it (the indexer hashed it from the disk, its
            # pages dropped after the flush): that read is the copy's read-back.
            copied = [it for it in plan if it.action == "copied"]
            found: dict[tuple[str, str], str | None] = {}
            folders = sorted({it.dest.rpartition("/")[0] for it in copied})
            for i in range(0, len(folders), 200):
                for r in await conn.execute(
                        sa.select(F.c.path, P.c.name, P.c.sha256)
                        .join(F, F.c.id == P.c.folder_id)
                        .where(P.c.source_id == root_id, F.c.path.in_(folders[i:i + 200]),
                               P.c.status != "missing")):
                    found[(r.path, r.name)] = r.sha256
        unverified = 0
        for it in copied:
            folder, _, name = it.dest.rpartition("/")
            got = found.get((folder, name))
            if got is None:
                unverified += 1  # not indexed (yet): not proven
            elif got != it.sha256:
                unverified += 1
                it.action, it.reason = "error", (
                    "the copy read back from the disk differs from the card (the "
                    "destination's disk may be failing); the source is kept")
                log.error("an imported copy differs from its source", dest=it.dest)
        not_in = len(set(shas) - in_library)
        errors = sum(1 for it in plan if it.action == "error")
        not_photo = sum(1 for it in plan if it.action == "not_photo")
        # Every file on the card, not only the photos: erasing it must lose nothing.
        safe = not_in == 0 and errors == 0 and not_photo == 0 and unverified == 0 \
            and all(v == 0 for v in backed.values())
        return {"safe_to_erase": safe, "not_in_library": not_in, "not_backed_up": backed,
                "errors": errors, "not_photos": not_photo, "copies_unverified": unverified}




def _meta(it: Planned) -> dict[str, Any]:
    meta = dict(it.meta)
    meta["name"] = it.rel.rpartition("/")[2]
    meta["sha256"] = it.sha256
    meta["taken"] = _when(meta.get("taken"))
    meta["mtime"] = dt.datetime.fromtimestamp(meta["mtime_ns"] / 1e9)
    return meta


def _when(text: Any) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None


def _walk(top: str) -> list[str]:
    """Regular files below ``top``, relative, sorted; links and dot-files skipped."""
    out: list[str] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(top, rel) if rel else top) as it:
                entries = list(it)
        except OSError:
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            child = f"{rel}/{e.name}" if rel else e.name
            try:
                if e.is_symlink():
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append(child)
                elif e.is_file(follow_symlinks=False):
                    out.append(child)
            except OSError:
                continue
    return sorted(out)


def _likely_present(root: str, todo: list[Planned]) -> list[Planned]:
    """The files whose planned name (or a collision variant of it) below ``root`` holds a
    file of their size: probably imported before."""
    out = []
    for it in todo:
        path = os.path.join(root, it.dest)
        try:
            if os.stat(path).st_size == it.size:
                out.append(it)
                continue
        except OSError:
            pass
        head, _, name = path.rpartition("/")
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, ext = name, ""
        try:
            with os.scandir(head) as entries:
                if any(e.name.startswith(stem + ".") and e.name.endswith(ext)
                       and len(e.name) == len(name) + 9
                       and e.stat(follow_symlinks=False).st_size == it.size
                       for e in entries):
                    out.append(it)
        except OSError:
            pass
    return out


# -- temporary files ---------------------------------------------------------------------

def stage_name(owner: str, job: int) -> str:
    """The stage dir of one import job: its owner (host/pid/boot) and job id, so the next
    import knows whose it is."""
    return owner.replace("/", "!") + f"!{job}"


def clear_stale(root: str, owner: str, active: set[int] | None) -> int:
    """Remove what interrupted imports left below ``root``: stage dirs of owners that are
    gone (a daemon killed mid-import) or of this process's jobs no longer running (all of
    this process's are kept when ``active`` is None: the tidy at start, which runs beside
    imports starting). Returns how many files were removed. Another host's (a shared
    root) is left alone."""
    top = os.path.join(root, STAGE_DIR)
    try:
        entries = list(os.scandir(top))
    except OSError:
        return 0
    removed = 0
    for e in entries:
        who, _, job = e.name.rpartition("!")
        who = who.replace("!", "/")
        if who == owner:
            if active is None or (job.isdigit() and int(job) in active):
                continue
        elif _owner_alive(who) is not False:
            continue  # alive, or another host's: not ours to judge
        removed += _remove_stage(e.path)
    try:
        os.rmdir(top)
    except OSError:
        pass
    return removed


def _remove_stage(stage: str) -> int:
    """Remove a stage dir and the files in it (no subfolders are made there)."""
    removed = 0
    try:
        entries = list(os.scandir(stage))
    except OSError:
        entries = []
    for e in entries:
        try:
            os.unlink(e.path)
            removed += 1
        except OSError:
            pass
    for d in (stage, os.path.dirname(stage)):
        try:
            os.rmdir(d)  # the parent only once no other import uses it
        except OSError:
            break
    return removed


# -- copying (in threads) ------------------------------------------------------------------

def _stage_part(source: str, stage: str, part: list[Planned], move: bool
                ) -> files.TargetError | None:
    """Copy each file of ``part`` into ``stage``, hashing it on the way (its sha256 is
    what was read and written: one read of the source), then make them durable with one
    ``syncfs`` (an fsync per file where it is missing). Sets ``tmp`` and ``sha256``, or
    ``action = error``. A target error (full, read-only, gone) stops the part and is
    returned; what was staged before it is still checked and kept.

    What proves a copy is on the disk: its pages are clean after the flush, so dropping
    them (``POSIX_FADV_DONTNEED`` of the file) makes the next read of it go to the device.
    For a **move** that read is done here, and compared, before any source is deleted. For
    a copy the source stays where it is, and the next read is the indexer's (it hashes every
    new file of the root for the catalog): the verdict compares the catalog's sha256 of
    each placed copy with the card's, and says "safe to erase" only when they match, so the
    read the indexer needs anyway is the read-back, not a second one."""
    each = not files.has_syncfs()
    written: list[Planned] = []
    stop: files.TargetError | None = None
    for it in part:
        tmp = os.path.join(stage, f".lbimport-{next(_counter)}.part")
        try:
            sha = _copy_hashing(os.path.join(source, it.rel), tmp, it, each)
        except files.TargetError as exc:
            _quiet_unlink(tmp)
            it.action, it.reason = "error", f"{exc}; the source is kept"
            stop = exc
            break
        except OSError as exc:
            _quiet_unlink(tmp)
            it.action, it.reason = "error", f"{exc.strerror or exc}; the source is kept"
            continue
        it.sha256, it.tmp = sha, tmp
        written.append(it)
    if stop is not None:
        for it in part:
            if it.action == "copy" and not it.tmp:
                it.action, it.reason = "error", f"not copied: {stop}"
    if written and not each:
        try:
            files.syncfs(stage)
        except files.TargetError as exc:
            for it in written:
                _quiet_unlink(it.tmp)
                it.tmp = ""
                it.action, it.reason = "error", f"{exc}; the source is kept"
            return exc
    for it in written:
        if move:
            try:
                again, _ = files.hash_path(it.tmp, drop_cache=True)
            except OSError as exc:
                again = f"unreadable: {exc.strerror}"
        else:
            again = it.sha256 if _drop_cache(it.tmp) else "unreadable"
        if again != it.sha256:
            _quiet_unlink(it.tmp)
            it.tmp = ""
            it.action, it.reason = "error", ("the copy read back differs from what was "
                                             "written; the source is kept")
    return stop


def _drop_cache(path: str) -> bool:
    """Drop the (clean, flushed) pages of ``path``, so its next read comes from the disk."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def _copy_hashing(src: str, tmp: str, it: Planned, fsync: bool) -> str:
    """``src`` copied to ``tmp`` (new), hashed on the way; the source must still be the
    file the probe saw (size and mtime) before and after."""
    h = hashlib.sha256()
    fin_fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fin_fd, "rb") as fin:
        st = os.fstat(fin.fileno())
        if st.st_size != it.size or st.st_mtime_ns != it.meta["mtime_ns"]:
            raise OSError(0, "the source changed while it was imported")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise files.target_error(exc, "creating a temporary file") from None
        try:
            while True:
                chunk = fin.read(files.CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                view = memoryview(chunk)
                while view:
                    try:
                        n = os.write(fd, view)
                    except OSError as exc:
                        raise files.target_error(exc, "writing a copy") from None
                    view = view[n:]
            if fsync:
                try:
                    os.fsync(fd)
                except OSError as exc:
                    raise files.target_error(exc, "fsync of a copy") from None
        finally:
            os.close(fd)
        st = os.fstat(fin.fileno())
        if st.st_size != it.size or st.st_mtime_ns != it.meta["mtime_ns"]:
            raise OSError(0, "the source changed while it was imported")
    return h.hexdigest()


def _place_all(source: str, root: str, plan: list[Planned], move: bool
               ) -> files.TargetError | None:
    """Rename every staged copy to its planned name without overwriting (the same content
    there is adopted: ``present``), flush the folders, and only then delete the sources of
    a move. A target error stops the placing; the rest keep their sources."""
    dirs: set[str] = set()
    real = RealDirs(root)
    stop: files.TargetError | None = None
    for it in plan:
        if it.action != "copy" or not it.tmp:
            continue
        if stop is not None:
            it.action, it.reason = "error", f"not copied: {stop}"
            continue
        try:
            dest, present = files.place(root, it.tmp, it.dest, it.sha256, real)
        except files.TargetError as exc:
            it.action, it.reason = "error", f"{exc}; the source is kept"
            stop = exc
            continue
        except OSError as exc:
            it.action, it.reason = "error", f"{exc.strerror or exc}; the source is kept"
            continue
        it.tmp = ""
        it.dest = dest
        it.action = "present" if present else "copied"
        dirs.add(os.path.dirname(os.path.join(root, dest)))
    try:
        files.settle(root, dirs)
    except files.TargetError as exc:
        return exc  # nothing is durable for sure: no source is deleted
    if move:
        # Only now, with every copy read back and its folder on disk, may a source go.
        for it in plan:
            if it.action in ("copied", "present"):
                try:
                    os.unlink(os.path.join(source, it.rel))
                    it.reason = "moved"
                except OSError as exc:
                    it.reason = f"copied, but the source could not be deleted: {exc.strerror}"
    return stop


def _quiet_unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
