"""``library.import``: photos from a card or folder into a root, laid out by a template.

Phases: **walk** the source (a thread; links and dot-files are skipped), **probe** each file
in the worker pool (sha256, sniffed kind, EXIF date and camera), **plan** the names (the
template on the metadata, names made safe for every file system, collisions resolved by a
suffix from the sha256, files whose sha256 the catalog has skipped), **copy** in a thread
(temporary name, fsync, read back and hashed, renamed without overwriting, directory
fsynced; a move deletes its source only after that check), then **scan** the root so the
catalog takes the new files (through the scanner and the writer, like any other file), and
say whether the card is **safe to erase**: every file on it is in the library and, where a
backup target covers the root, on that target.

Templates (beets' path formats and exiftool's ``-d`` are the models): text with fields in
braces, ``/`` between folders. ``{taken:%Y-%m-%d}`` formats the date the photo was taken
with strftime; with no date it becomes ``undated`` or the fallback after ``|``
(``{taken:%Y|no-date}``). Other fields: ``mtime`` (the file's modification time, same
formats), ``name`` (the file name), ``stem``, ``ext`` (without the dot, lower case), ``make``,
``model`` (``unknown`` when absent, or the fallback) and ``sha8``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import re
import stat
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lightbox.common import logs
from lightbox.daemon.backups import files
from lightbox.daemon.catalog import tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.jobs.queue import JobContext, JobFailed
from lightbox.daemon.library.indexer import Indexer
from lightbox.daemon.library.scanner import Offline, Scanner
from lightbox.daemon.library.sources import Sources
from lightbox.daemon.workers.pool import WorkerPool

log = logs.get("import")

P, M, T = tables.photos, tables.backup_manifest, tables.backup_targets

_FIELD = re.compile(r"\{([a-z0-9]+)(?::([^}|]*))?(?:\|([^}]*))?\}")
FIELDS = ("taken", "mtime", "name", "stem", "ext", "make", "model", "sha8")
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

def probe(path: str) -> dict[str, Any]:
    """sha256, kind and the metadata templates use, for one file (runs in the pool)."""
    from lightbox.daemon.media import exif, sniff

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return {"error": "not a regular file"}
        h = hashlib.sha256()
        head = b""
        while True:
            chunk = f.read(files.CHUNK)
            if not chunk:
                break
            if not head:
                head = chunk[:sniff.HEAD_SIZE]
            h.update(chunk)
        sniffed = sniff.sniff_bytes(head)
        taken = make = model = None
        if sniffed.kind in (sniff.IMAGE, sniff.RAW):
            try:
                info = exif.read_exifread(f)
                taken, make, model = info.taken_at, info.make, info.model
            except Exception:  # no EXIF, or unreadable: the template falls back
                pass
    return {"sha256": h.hexdigest(), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "kind": sniffed.kind, "what": sniffed.what, "taken": taken, "make": make,
            "model": model}


# -- the job ----------------------------------------------------------------------------

@dataclass
class Planned:
    rel: str  # below the source folder
    sha256: str
    size: int
    meta: dict[str, Any]
    dest: str = ""  # below the root
    action: str = "copy"  # copy | skip (known) | present | not_photo | error
    reason: str = ""


class Importer:
    def __init__(self, db: Database, sources: Sources, scanner: Scanner, indexer: Indexer,
                 pool: WorkerPool) -> None:
        self.db = db
        self.sources = sources
        self.scanner = scanner
        self.indexer = indexer
        self.pool = pool

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        p = ctx.params
        source_path: str = p["source_path"]
        root = self.sources.resolve(p["root"])
        template: str = p.get("template") or "{taken:%Y}/{taken:%Y-%m-%d}/{name}"
        move = p.get("mode") == "move"
        dry = bool(p.get("dry_run"))
        reason = await self.sources.check(root)
        if reason:
            raise JobFailed(f"the root {root.name} is offline: {reason}", {"reason": "offline"})
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
        plan: list[Planned] = []

        async def one(rel: str) -> Planned:
            try:
                meta = await self.pool.submit(probe, os.path.join(source_path, rel))
            except Exception as exc:  # the file, not the job: reported, the rest goes on
                ctx.progress(add=1, add_errors=1)
                return Planned(rel, "", 0, {}, action="error", reason=str(exc))
            ctx.progress(add=1, add_bytes=int(meta.get("size", 0)))
            if "error" in meta:
                return Planned(rel, "", 0, {}, action="error", reason=meta["error"])
            item = Planned(rel, meta["sha256"], meta["size"], meta)
            if meta["kind"] not in ("image", "raw"):
                item.action, item.reason = "not_photo", meta["what"]
            return item

        sem = asyncio.Semaphore(max(2, self.pool.processes * 2))

        async def bounded(rel: str) -> Planned:
            async with sem:
                return await one(rel)

        plan = list(await asyncio.gather(*(bounded(rel) for rel in found)))
        lap("probe")
        await self._plan(plan, template)
        lap("plan")
        if dry:
            return {**self._summary(plan, root.name, dry=True), "timings": timings}
        ctx.phase = "copying"
        todo = [it for it in plan if it.action == "copy"]
        ctx.progress(processed=0, total=len(todo), bytes_=0)
        stop: files.TargetError | None = None
        for i in range(0, len(todo), 64):
            part = todo[i:i + 64]
            out = await asyncio.to_thread(_copy_part, source_path, root.path, part, move)
            ctx.progress(add=len(part), add_bytes=sum(it.size for it in part
                                                      if it.action == "copied"),
                         add_errors=sum(1 for it in part if it.action == "error"))
            if out is not None:
                stop = out
                for rest in todo[i + 64:]:
                    rest.action, rest.reason = "error", "not copied: " + str(out)
                break
        lap("copy")
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

    async def _plan(self, plan: list[Planned], template: str) -> None:
        shas = [it.sha256 for it in plan if it.action == "copy"]
        known: set[str] = set()
        async with self.db.engine.connect() as conn:
            for i in range(0, len(shas), 500):
                known.update((await conn.execute(sa.select(P.c.sha256).where(
                    P.c.sha256.in_(shas[i:i + 500]), P.c.status != "missing"))).scalars())
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
            meta = dict(it.meta)
            meta["name"] = it.rel.rpartition("/")[2]
            meta["taken"] = _when(meta.get("taken"))
            meta["mtime"] = dt.datetime.fromtimestamp(meta["mtime_ns"] / 1e9)
            it.dest = render(template, meta)
            by_dest.setdefault(it.dest, set()).add(it.sha256)
        for it in plan:
            # Several contents for one name: the lowest sha256 keeps it, the others get a
            # suffix from theirs, so the same card imported again gives the same names.
            if it.action == "copy" and len(by_dest[it.dest]) > 1 \
                    and it.sha256 != min(by_dest[it.dest]):
                it.dest = files.variant(it.dest, it.sha256)

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
        not_in = len(set(shas) - in_library)
        errors = sum(1 for it in plan if it.action == "error")
        not_photo = sum(1 for it in plan if it.action == "not_photo")
        # Every file on the card, not only the photos: erasing it must lose nothing.
        safe = not_in == 0 and errors == 0 and not_photo == 0 \
            and all(v == 0 for v in backed.values())
        return {"safe_to_erase": safe, "not_in_library": not_in, "not_backed_up": backed,
                "errors": errors, "not_photos": not_photo}


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


def _copy_part(source: str, root: str, part: list[Planned], move: bool
               ) -> files.TargetError | None:
    """Copy (and for a move, delete once verified) each planned file; sets its action to
    copied / present / error. A destination error (full, read-only) stops: returned.

    Two passes, as a backup batch: every file written under a temporary name beside its
    destination while hashing, one ``syncfs`` (an fsync per file where it is missing), then
    each read back from the device, checked and renamed without overwriting; the folders
    are flushed before any source of a move is deleted."""
    try:
        each = not files.syncfs(root)
    except files.TargetError as exc:
        for it in part:
            it.action, it.reason = "error", f"{exc}; the source is kept"
        return exc
    written: list[tuple[Planned, str]] = []
    stop: files.TargetError | None = None
    for it in part:
        tmp, stop = _write_tmp(source, root, it, each)
        if tmp is not None:
            written.append((it, tmp))
        if stop is not None:
            break
    if written and not each:
        try:
            files.syncfs(root)
        except files.TargetError as exc:
            for it, tmp in written:
                _quiet_unlink(tmp)
                it.action, it.reason = "error", f"{exc}; the source is kept"
            return exc
    dirs: set[str] = set()
    for it, tmp in written:
        try:
            if files.hash_path(tmp, drop_cache=True)[0] != it.sha256:
                raise OSError(0, "the copy read back differs from the source")
            dest, present = files.place(root, tmp, it.dest, it.sha256)
        except files.TargetError as exc:
            _quiet_unlink(tmp)
            it.action, it.reason = "error", f"{exc}; the source is kept"
            stop = stop or exc
            continue
        except OSError as exc:
            _quiet_unlink(tmp)
            it.action, it.reason = "error", f"{exc.strerror or exc}; the source is kept"
            continue
        it.dest = dest
        it.action = "present" if present else "copied"
        dirs.add(os.path.dirname(os.path.join(root, dest)))
    try:
        files.settle(root, dirs)
    except files.TargetError as exc:
        return exc  # nothing is durable for sure: no source is deleted
    if move:
        # Only now, with every copy read back and its folder on disk, may a source go.
        for it in part:
            if it.action in ("copied", "present"):
                try:
                    os.unlink(os.path.join(source, it.rel))
                    it.reason = "moved"
                except OSError as exc:
                    it.reason = f"copied, but the source could not be deleted: {exc.strerror}"
    return stop


def _write_tmp(source: str, root: str, it: Planned, fsync: bool
               ) -> tuple[str | None, files.TargetError | None]:
    """The planned file copied under a temporary name beside its destination, hashed on
    the way: (temp path or None, the target error that stops the part or None)."""
    src = os.path.join(source, it.rel)
    final_dir = os.path.dirname(os.path.join(root, it.dest))
    try:
        os.makedirs(final_dir, exist_ok=True)
    except OSError as exc:
        err = files.target_error(exc, "creating a folder")
        it.action, it.reason = "error", f"{err}; the source is kept"
        return None, err
    tmp = os.path.join(final_dir, f".lbimport-{os.getpid()}-{id(it)}.part")
    try:
        h = hashlib.sha256()
        with open(src, "rb") as fin:
            try:
                fout = open(tmp, "xb")  # noqa: SIM115 - closed below
            except OSError as exc:
                raise files.target_error(exc, "creating a temporary file") from None
            with fout:
                while True:
                    chunk = fin.read(files.CHUNK)
                    if not chunk:
                        break
                    h.update(chunk)
                    try:
                        fout.write(chunk)
                    except OSError as exc:
                        raise files.target_error(exc, "writing a copy") from None
                try:
                    fout.flush()
                    if fsync:
                        os.fsync(fout.fileno())
                except OSError as exc:
                    raise files.target_error(exc, "fsync of a copy") from None
        if h.hexdigest() != it.sha256:
            raise OSError(0, "the source changed while it was imported")
    except files.TargetError as exc:
        _quiet_unlink(tmp)
        it.action, it.reason = "error", f"{exc}; the source is kept"
        return None, exc
    except OSError as exc:
        _quiet_unlink(tmp)
        it.action, it.reason = "error", f"{exc.strerror or exc}; the source is kept"
        return None, None
    return tmp, None


def _quiet_unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
