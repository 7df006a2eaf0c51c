"""Roots (local photo folders): adding, removing, and deciding whether one can be trusted.

A root that cannot be read must never make its photos look deleted. Before anything under a
root changes state, ``check`` must say it is online:

- its path exists and is a directory we can list;
- it is the directory that was added (``identity``: the root's own (dev, inode) and the
  mount it lives on): an unmounted disk or bind mount leaves another directory at the path,
  empty or not (a ``.keep``), and that is offline — unless most of the known names at its
  top are visible there, in which case the library was moved or restored to another disk
  and the new identity is recorded;
- it is not suddenly empty while the catalog holds photos under it.

An offline root is reported (``source.offline``), left untouched and polled until it is
back (``source.online``, then rescanned).

Which folders may become roots at all (not ``/``, no system tree, none of the daemon's own
directories, no overlap or alias of another root) is ``admission``'s to say; a root's path is
stored resolved.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import stat
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lightbox.common import logs
from lightbox.common.errors import Conflict, InvalidParams, NotFound
from lightbox.daemon import kinds
from lightbox.daemon.catalog import paths, tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import iso, utcnow
from lightbox.daemon.control.events import EventBus
from lightbox.daemon.library import admission, writer
from lightbox.daemon.library.identity import Identity, probe
from lightbox.daemon.library.vanish import VanishGuard

log = logs.get("sources")


@dataclass
class Source:
    id: int
    kind: str
    name: str
    path: str
    device: int | None
    online: bool
    status: str | None
    scanned_at: Any = None
    identity: Identity | None = None  # local roots: what ``check`` compares against
    config: dict[str, Any] | None = None   # s3: endpoint, region, bucket, prefix, ...

    @property
    def interval(self) -> float:
        """Seconds between syncs of a bucket (0: only on demand)."""
        return float((self.config or {}).get("interval", DEFAULT_INTERVAL))


DEFAULT_INTERVAL = 24 * 3600.0
SECRET_NAMES = ("secret_access_key",)
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,254}$", re.I)
# ``_check_sync``'s verdict for a root that lists empty while the catalog has photos under
# it; compared by identity, worded (with the count) by ``check``.
_EMPTY_ROOT = "empty root"


def secret_fingerprint(value: str) -> str:
    """A short digest that tells a client whether the secret changed, not what it is."""
    return hashlib.sha256(b"lightbox-secret:" + value.encode()).hexdigest()[:12]


class Sources:
    """The roots, cached in memory (a handful of rows) and kept in step with the table."""

    name = "sources"
    settings_keys = ("library.vanish_delay", "s3.access_key_id", "s3.secret_access_key")

    def __init__(self, db: Database, bus: EventBus, *,
                 guarded: Sequence[admission.Guarded] = (), vanish_delay: float = 600.0
                 ) -> None:
        self.db = db
        self.bus = bus
        # Photos a pass found gone in numbers too large to believe at once (``vanish``).
        self.guard = VanishGuard(vanish_delay, bus.publish)
        # The daemon's own directories: no root may be, hold or lie inside one.
        self.guarded = tuple(guarded)
        # More folders a root must keep clear of, asked at each roots.add (the backups
        # component adds its local targets).
        self.guard_providers: list[Callable[[], Awaitable[list[admission.Guarded]]]] = []
        self.by_id: dict[int, Source] = {}
        # Called with (source, online) when a root goes offline or comes back.
        self.on_online: list[Callable[[Source, bool], None]] = []
        # source id -> {secret name: (value, fingerprint)}; values never leave the daemon
        # except to sign requests (in a locator to a worker).
        self._secrets: dict[int, dict[str, tuple[str, str]]] = {}
        # The settings s3.access_key_id / s3.secret_access_key: credentials for buckets that
        # name none of their own (no key id, no secret, no profile).
        self.default_s3: dict[str, str] = {}
        # The roots this daemon runs (watches, scans, declares offline) when several
        # daemons share the catalog (the cluster's leases); None: all of them.
        self.owned: set[int] | None = None

    async def apply(self, changes: dict[str, Any]) -> None:
        """A new vanish delay holds suspects found from now on (and those held) that long;
        new default S3 credentials are used by the next request of a bucket without its
        own."""
        if "library.vanish_delay" in changes:
            self.guard.delay = float(changes["library.vanish_delay"])
        for key in ("s3.access_key_id", "s3.secret_access_key"):
            if key in changes:
                self.default_s3[key.split(".", 1)[1]] = str(changes[key] or "")

    def _credentials(self, src: Source) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """A source's config and secrets, with the default S3 credentials for a bucket
        that has none of its own."""
        secrets = self.secrets(src)
        config = src.config
        if src.kind != "s3" or config is None or secrets or config.get("access_key_id") \
                or config.get("credentials_profile"):
            return config, secrets
        key_id = self.default_s3.get("access_key_id")
        secret = self.default_s3.get("secret_access_key")
        if not key_id or not secret:
            return config, secrets
        return {**config, "access_key_id": key_id}, {"secret_access_key": secret}

    async def start(self) -> None:
        await self.load()

    async def stop(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {"roots": len(self.by_id),
                "offline": [s.name for s in self.by_id.values() if not s.online],
                "suspect": {s.name: held for s in self.by_id.values()
                            if (held := self.guard.describe(s.id)) is not None}}

    async def load(self) -> None:
        s = tables.sources
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(s).order_by(s.c.id))).mappings().all()
            secrets = (await conn.execute(sa.select(tables.source_secrets))).all()
        self.by_id = {r["id"]: Source(r["id"], r["kind"], r["name"], r["path"] or "",
                                      r["device"], bool(r["online"]), r["status"],
                                      r["scanned_at"], _identity(r), r["config"])
                    for r in rows}
        self._secrets = {}
        for sec in secrets:
            self._secrets.setdefault(sec.source_id, {})[sec.name] = (sec.value, sec.fingerprint)

    async def reload(self) -> None:
        """Read the table again (the catalog moved to another database), keeping the
        Source objects other components hold: they are updated in place."""
        old = self.by_id
        await self.load()
        for sid, fresh in list(self.by_id.items()):
            kept = old.get(sid)
            if kept is not None:
                if self.owned is not None and sid in self.owned:
                    # Its online state and device are this daemon's to decide (it runs
                    # the root); the row can only be behind.
                    fresh.online, fresh.status, fresh.device = (kept.online, kept.status,
                                                                kept.device)
                kept.__dict__.update(fresh.__dict__)
                self.by_id[sid] = kept

    def local(self) -> list[Source]:
        return [s for s in self.by_id.values() if s.kind == "local"]

    def buckets(self) -> list[Source]:
        return [s for s in self.by_id.values() if s.kind == "s3"]

    def secrets(self, src: Source) -> dict[str, str]:
        return {k: v for k, (v, _) in self._secrets.get(src.id, {}).items()}

    def secret_info(self, src: Source) -> dict[str, Any]:
        """What a client may know of a source's secrets: set or not, and a fingerprint."""
        held = self._secrets.get(src.id, {})
        return {name: {"set": name in held, "fingerprint": held[name][1] if name in held
                       else None} for name in SECRET_NAMES}

    def kind_of(self, src: Source) -> kinds.SourceKind:
        """The source kind (``lightbox.daemon.kinds``) that lists and reads this source."""
        config, secrets = self._credentials(src)
        return kinds.for_source(src.kind, src.path, config, secrets)

    def s3_config(self, src: Source) -> kinds.S3Config:
        config, secrets = self._credentials(src)
        assert config is not None
        return kinds.s3_config(config, secrets)

    def mine(self) -> list[Source]:
        """The local roots this daemon runs: all, unless the catalog is shared."""
        owned = self.owned
        return [s for s in self.local() if owned is None or s.id in owned]

    def roots(self) -> list[tuple[int, str]]:
        return [(s.id, s.path) for s in self.local()]

    def get(self, source_id: int) -> Source:
        try:
            return self.by_id[source_id]
        except KeyError:
            raise NotFound(f"no root {source_id}") from None

    def resolve(self, ref: Any) -> Source:
        """A root named by id, name or path."""
        if isinstance(ref, int) and not isinstance(ref, bool):
            return self.get(ref)
        if isinstance(ref, str):
            if ref.isdigit() and int(ref) in self.by_id:
                return self.by_id[int(ref)]
            for s in self.by_id.values():
                if s.name == ref:
                    return s
            if ref.startswith(("/", "~")) and "\0" not in ref:
                wanted = {paths.normalize(ref), admission.resolve(ref)}
                for s in self.by_id.values():
                    if s.path in wanted:
                        return s
            raise NotFound(f"no root named {ref!r}")
        raise InvalidParams("root: expected an id, a name or a path",
                            {"errors": {"root": "expected an id, a name or a path"}})

    def locate(self, path: str) -> tuple[Source, str] | None:
        """The root holding an absolute path, and the path relative to it."""
        found = paths.locate(path, self.roots())
        if found is None:
            return None
        return self.by_id[found[0]], found[1]

    # -- add / remove ---------------------------------------------------------------------
    async def add(self, path: str, name: str | None) -> Source:
        if not path.startswith(("/", "~")):
            raise InvalidParams("path: must be absolute", {"errors": {"path": "not absolute"}})
        if "\0" in path:
            raise InvalidParams("path: contains a NUL byte", {"errors": {"path": "NUL byte"}})
        # Stored resolved (no links, no ``//``), so that every later open beneath it and
        # every comparison with other roots is about the directory itself.
        real = await asyncio.to_thread(admission.resolve, path)
        try:
            st = await asyncio.to_thread(os.stat, real)
            ident = await asyncio.to_thread(probe, real)
        except FileNotFoundError:
            raise NotFound(f"{real} does not exist") from None
        except PermissionError:
            raise InvalidParams(f"{real}: permission denied",
                                {"errors": {"path": "permission denied"}}) from None
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidParams(f"{real} is not a directory",
                                {"errors": {"path": "not a directory"}})
        if not await asyncio.to_thread(os.access, real, os.R_OK | os.X_OK):
            raise InvalidParams(f"{real}: cannot list it (permission denied)",
                                {"errors": {"path": "permission denied"}})
        guards = [admission.Guarded(other.path, f"the root {other.name}", admission.SAME_ROOT)
                  for other in self.local()]
        guards += admission.system_guards() + list(self.guarded)
        for provider in self.guard_providers:
            guards += await provider()
        refusal = await asyncio.to_thread(admission.check, real, guards)
        if refusal is not None:
            data = {"reason": refusal.reason, "errors": {"path": refusal.message}}
            if refusal.reason in (admission.SAME_ROOT, admission.INSIDE_ROOT,
                                  admission.HOLDS_ROOT):
                raise Conflict(refusal.message, data)
            raise InvalidParams(f"{refusal.message}; refusing to make it a root", data)
        label = (name or "").strip() or os.path.basename(real.rstrip("/")) or real
        taken = {s.name for s in self.by_id.values()}
        if label in taken:
            if name:
                raise Conflict(f"a root is already named {label!r}")
            n = 2
            while f"{label} ({n})" in taken:
                n += 1
            label = f"{label} ({n})"
        now = utcnow()
        async with self.db.engine.begin() as conn:
            result = await conn.execute(tables.sources.insert().values(
                kind="local", name=label, path=real, device=ident.dev, online=True,
                created_at=now, **_identity_values(ident)))
            source_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            await writer.insert_root_folder(conn, source_id, label, now)
        src = Source(source_id, "local", label, real, ident.dev, True, None, identity=ident)
        self.by_id[source_id] = src
        self.bus.publish("source", "added", {"id": source_id, "name": label, "path": real})
        log.info("root added", id=source_id, name=label, path=real)
        return src

    async def remove(self, src: Source) -> dict[str, int]:
        async with self.db.engine.begin() as conn:
            photos, folders = await writer.delete_source_rows(conn, src.id)
            await conn.execute(tables.source_secrets.delete().where(
                tables.source_secrets.c.source_id == src.id))
            await conn.execute(tables.sources.delete().where(tables.sources.c.id == src.id))
        self.by_id.pop(src.id, None)
        self.guard.forget(src.id)
        self._secrets.pop(src.id, None)
        self.bus.publish("source", "removed", {"id": src.id, "name": src.name})
        log.info("source removed", id=src.id, name=src.name, kind=src.kind, photos=photos)
        return {"removed": src.id, "photos": photos, "folders": folders}

    # -- buckets --------------------------------------------------------------------------
    def _unique_name(self, name: str) -> str:
        label = name.strip()
        if not label or len(label) > 200 or "\0" in label:
            raise InvalidParams("name: 1 to 200 characters", {"errors": {"name": "invalid"}})
        if label in {s.name for s in self.by_id.values()}:
            raise Conflict(f"a source is already named {label!r}",
                           {"reason": "name_taken", "errors": {"name": "taken"}})
        return label

    @staticmethod
    def validate_s3(params: dict[str, Any]) -> dict[str, Any]:
        """The stored config of a bucket source (no secret in it); InvalidParams per field."""
        errors: dict[str, str] = {}
        bucket = str(params.get("bucket") or "")
        if not _BUCKET_RE.match(bucket):
            errors["bucket"] = "a bucket name: letters, digits, '.', '-' or '_', 3-255 long"
        endpoint = params.get("endpoint") or None
        if endpoint is not None:
            url = urllib.parse.urlsplit(str(endpoint))
            if url.scheme not in ("http", "https") or not url.hostname or \
                    url.path not in ("", "/") or url.query or url.username:
                errors["endpoint"] = "an http:// or https:// URL of the host, nothing after it"
            else:
                endpoint = f"{url.scheme}://{url.netloc}"
        style = params.get("addressing_style") or "auto"
        if style not in ("auto", "path", "virtual"):
            errors["addressing_style"] = "auto, path or virtual"
        prefix = kinds.S3Config.norm_prefix(params.get("prefix"))
        if any(p in (".", "..") for p in prefix.split("/")) or "//" in prefix:
            errors["prefix"] = "no '.', '..' or empty segments"
        profile = params.get("credentials_profile") or None
        key_id = params.get("access_key_id") or None
        if profile is None and (key_id is None) != (params.get("secret_access_key") is None):
            errors["access_key_id"] = "give both the access key id and the secret, or a " \
                                      "credentials profile"
        if profile is not None and key_id is not None:
            errors["credentials_profile"] = "either a profile or an access key, not both"
        interval = params.get("interval")
        if interval is not None and not (0 <= float(interval) <= 365 * 86400):
            errors["interval"] = "seconds between 0 (on demand only) and a year"
        if errors:
            raise InvalidParams("; ".join(f"{k}: {v}" for k, v in errors.items()),
                                {"errors": errors})
        return {"bucket": bucket, "endpoint": endpoint,
                "region": params.get("region") or "us-east-1", "prefix": prefix,
                "addressing_style": style, "access_key_id": key_id,
                "credentials_profile": profile,
                "interval": DEFAULT_INTERVAL if interval is None else float(interval),
                "page_size": int(params.get("page_size") or 1000),
                "read_timeout": float(params.get("read_timeout") or 60),
                "object_timeout": float(params.get("object_timeout") or 300),
                "attempts": int(params.get("attempts") or 6)}

    @staticmethod
    def display(config: dict[str, Any]) -> str:
        return f"s3://{config['bucket']}/{config['prefix']}".rstrip("/")

    async def add_s3(self, name: str, params: dict[str, Any]) -> Source:
        """A bucket source; its secret is stored apart and never returned."""
        label = self._unique_name(name)
        config = self.validate_s3(params)
        for other in self.buckets():
            oc = other.config or {}
            if (oc.get("endpoint"), oc.get("bucket")) == (config["endpoint"], config["bucket"]) \
                    and (oc.get("prefix", "").startswith(config["prefix"])
                         or config["prefix"].startswith(oc.get("prefix", ""))):
                raise Conflict(f"{self.display(config)} overlaps the source {other.name} "
                               f"({other.path})", {"reason": "overlaps_source"})
        now = utcnow()
        path = self.display(config)
        async with self.db.engine.begin() as conn:
            result = await conn.execute(tables.sources.insert().values(
                kind="s3", name=label, path=path, config=config, online=True,
                created_at=now))
            source_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            await writer.insert_root_folder(conn, source_id, label, now)
        src = Source(source_id, "s3", label, path, None, True, None, None, config=config)
        self.by_id[source_id] = src
        secret = params.get("secret_access_key")
        if secret:
            await self.set_secret(src, "secret_access_key", str(secret))
        self.bus.publish("source", "added", {"id": source_id, "name": label, "path": path,
                                             "kind": "s3"})
        log.info("bucket added", id=source_id, name=label, path=path,
                 endpoint=config["endpoint"])
        return src

    async def update_s3(self, src: Source, changes: dict[str, Any],
                        clear: Sequence[str] = ()) -> list[str]:
        """Change how a bucket is reached and synced; the keys whose value changed.

        The bucket and the prefix name the objects the source is: a change of either is
        refused (its photos would become other objects' photos). A new access key id
        needs its secret in the same call, since the stored one belongs to the old key;
        clearing the key id, or moving to a credentials profile, forgets the secret.
        """
        if src.kind != "s3" or src.config is None:
            raise InvalidParams(f"{src.name} is a local root: it has no bucket settings",
                                {"errors": {"source": "not a bucket"}})
        old = dict(src.config)
        for key in ("bucket", "prefix"):
            given = changes.pop(key, None)
            if given is None:
                continue
            norm = kinds.S3Config.norm_prefix(given) if key == "prefix" else str(given)
            if norm != old.get(key):
                raise Conflict(
                    f"the {key} of {src.name} cannot change: another {key} holds other "
                    f"photos; add it as a new source (lightbox sources add) instead",
                    {"reason": "identity", "errors": {key: "cannot change"}})
        secret = changes.pop("secret_access_key", None)
        merged = {**old, **{k: v for k, v in changes.items() if v is not None}}
        for key in clear:
            merged[key] = None
        new_key = merged.get("access_key_id") != old.get("access_key_id")
        if new_key and merged.get("access_key_id") and secret is None:
            raise InvalidParams("access_key_id: a new access key needs its secret in the "
                                "same call (secret_access_key)",
                                {"errors": {"secret_access_key": "needed with a new key"}})
        drop_secret = not merged.get("access_key_id") and (
            "access_key_id" in clear or merged.get("credentials_profile"))
        if drop_secret and secret is not None:
            raise InvalidParams("secret_access_key: a secret needs its access_key_id",
                                {"errors": {"secret_access_key": "no access key id"}})
        held = self.secrets(src).get("secret_access_key")
        stored_secret = None if drop_secret else (secret if secret is not None else held)
        config = self.validate_s3({**merged, "secret_access_key": stored_secret})
        changed = [k for k in config if config[k] != old.get(k)]
        if stored_secret != held:
            changed.append("secret_access_key")
        if not changed:
            return []
        async with self.db.engine.begin() as conn:
            await conn.execute(tables.sources.update().where(tables.sources.c.id == src.id)
                               .values(config=config))
        src.config = config
        if "secret_access_key" in changed:
            await self.set_secret(src, "secret_access_key", stored_secret)
        self.bus.publish("source", "updated", {"id": src.id, "name": src.name,
                                               "changed": changed})
        log.info("bucket updated", id=src.id, name=src.name, changed=changed)
        return changed

    async def set_secret(self, src: Source, name: str, value: str | None) -> None:
        """Store (or, with None, remove) one secret of a source."""
        t = tables.source_secrets
        async with self.db.engine.begin() as conn:
            await conn.execute(t.delete().where(t.c.source_id == src.id, t.c.name == name))
            if value is not None:
                fp = secret_fingerprint(value)
                await conn.execute(t.insert().values(source_id=src.id, name=name, value=value,
                                                     fingerprint=fp, updated_at=utcnow()))
        held = self._secrets.setdefault(src.id, {})
        if value is None:
            held.pop(name, None)
        else:
            held[name] = (value, secret_fingerprint(value))

    async def set_status(self, src: Source, online: bool, status: str | None) -> None:
        """A bucket's state after a sync or a failure to reach it (an event when it flips)."""
        changed = online != src.online
        if not changed and status == src.status:
            return       # as it was: no write (an unchanged sync writes only scanned_at)
        src.online, src.status = online, status
        async with self.db.engine.begin() as conn:
            await conn.execute(tables.sources.update().where(tables.sources.c.id == src.id)
                               .values(online=online, status=status))
        if changed:
            topic = "online" if online else "offline"
            data = {"id": src.id, "name": src.name, "path": src.path}
            if not online:
                data["reason"] = status
            self.bus.publish("source", topic, data)

    # -- online / offline -----------------------------------------------------------------
    async def check(self, src: Source) -> str | None:
        """None when the root can be trusted, else why not.

        A root found to be another directory that holds the library's files (moved or
        restored to another disk) has its new identity recorded here.
        """
        live, names = await self._known_names(src)
        reason, found = await asyncio.to_thread(self._check_sync, src, live, names)
        if reason is _EMPTY_ROOT:
            # Only now, on the way to offline, is the count worth reading (it scans the
            # root's photos: a third of a second at 200,000, twice a pass, when it ran on
            # every check).
            count = await self._live_count(src)
            reason = (f"{src.path} is empty but the catalog has {count} photos under it "
                      "(is the disk mounted?)")
        if reason is None and found is not None and found != src.identity:
            src.identity, src.device = found, found.dev
            async with self.db.engine.begin() as conn:
                await conn.execute(tables.sources.update().where(tables.sources.c.id == src.id)
                                   .values(device=found.dev, **_identity_values(found)))
        return reason

    async def _known_names(self, src: Source) -> tuple[bool, list[str]]:
        """Whether the catalog has photos under the root that are not missing (one row
        read, not a count), and a few names at its top."""
        f, p = tables.folders, tables.photos
        async with self.db.engine.connect() as conn:
            live = (await conn.scalar(sa.select(p.c.id).where(
                p.c.source_id == src.id, p.c.status != "missing").limit(1))) is not None
            top = await conn.scalar(sa.select(f.c.id).where(
                f.c.source_id == src.id, f.c.path_hash == paths.path_hash("")))
            names: list[str] = []
            if top is not None:
                names += (await conn.execute(sa.select(f.c.name).where(
                    f.c.parent_id == top, f.c.missing_since.is_(None)).limit(25))).scalars().all()
                names += (await conn.execute(sa.select(p.c.name).where(
                    p.c.folder_id == top, p.c.status != "missing").limit(25))).scalars().all()
        return live, names

    async def _live_count(self, src: Source) -> int:
        """How many photos under the root are not missing (for the offline message)."""
        p = tables.photos
        async with self.db.engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(p).where(
                p.c.source_id == src.id, p.c.status != "missing")) or 0)

    def _check_sync(self, src: Source, live: bool, names: list[str]
                    ) -> tuple[str | None, Identity | None]:
        """(why the root cannot be trusted or None, its identity now). ``live``: the
        catalog has photos under it that are not missing (so there is something to lose).
        An empty root while there are is ``_EMPTY_ROOT``, worded by the caller."""
        try:
            found = probe(src.path)
        except FileNotFoundError:
            return f"{src.path} is not there (unmounted, renamed or deleted?)", None
        except OSError as exc:
            return f"{src.path}: {exc.strerror}", None
        if not os.path.isdir(src.path):
            return f"{src.path} is no longer a directory", None
        try:
            with os.scandir(src.path) as it:
                empty = next(it, None) is None
        except OSError as exc:
            return f"cannot list {src.path}: {exc.strerror}", None
        if empty and live:
            return _EMPTY_ROOT, None
        recorded = src.identity
        if recorded is None and src.device is not None:
            recorded = Identity(src.device, -1)   # recorded before identities: device only
        if recorded is None or not live:
            return None, found   # nothing to lose: take the directory as it is
        if recorded.same_directory(found) or (recorded.inode == -1
                                             and recorded.dev == found.dev):
            if recorded.mount_id is not None and found.mount_id != recorded.mount_id:
                log.info("root's file system was mounted again", root=src.name,
                         old=recorded.mount_id, new=found.mount_id)
            return None, found
        # Another directory stands at the path. The library moved (copied to a new disk,
        # restored from a backup) if what the catalog knows at its top is there; an unmount
        # leaves a mount point that holds none of it, or only a stray file or two.
        visible = sum(1 for n in names if os.path.lexists(os.path.join(src.path, n)))
        if names and visible * 2 >= len(names):
            log.warning("root is another directory now, holding the library's files; "
                        "its new identity is recorded", root=src.name,
                        old=recorded.describe(), new=found.describe(),
                        known=len(names), visible=visible)
            return None, found
        return (f"{src.path} is not the directory that was added ({found.describe()}, "
                f"was {recorded.describe()}) and {visible} of {len(names)} known names are "
                "there (unmounted?)"), None

    async def set_online(self, src: Source, reason: str | None) -> bool:
        """Record the root's state; returns True when it changed."""
        online = reason is None
        changed = online != src.online
        src.online, src.status = online, reason
        async with self.db.engine.begin() as conn:
            await conn.execute(tables.sources.update().where(tables.sources.c.id == src.id)
                               .values(online=online, status=reason))
        if changed:
            for hook in self.on_online:
                hook(src, online)
            if online:
                self.bus.publish("source", "online", {"id": src.id, "name": src.name,
                                                      "path": src.path})
                log.info("root is back online", root=src.name)
            else:
                self.bus.publish("source", "offline", {"id": src.id, "name": src.name,
                                                       "path": src.path, "reason": reason})
                log.warning("root is offline; nothing under it will change", root=src.name,
                            reason=reason)
        return changed

    async def mark_scanned(self, src: Source) -> None:
        now = utcnow()
        src.scanned_at = now
        async with self.db.engine.begin() as conn:
            await conn.execute(tables.sources.update().where(tables.sources.c.id == src.id)
                               .values(scanned_at=now))

    async def describe(self, watching: set[int]) -> list[dict[str, Any]]:
        """roots.list: every root with its counts, from cheap queries only.

        Totals come from the roots' top folders (kept current by the writer), bytes from the
        folders' direct sums, and the few photos that are pending, in error or missing
        through the (status, source_id) index: nothing here reads the photos table whole,
        which at a million photos would take a third of a second.
        """
        f, p = tables.folders, tables.photos
        async with self.db.engine.connect() as conn:
            tops = {r.source_id: r for r in await conn.execute(
                sa.select(f.c.source_id, f.c.total_count, f.c.id).where(
                    f.c.parent_id.is_(None)))}
            sizes: dict[int, int] = {}
            folders: dict[int, int] = {}
            for sid, count, size in await conn.execute(
                    sa.select(f.c.source_id, sa.func.count(),
                              sa.func.coalesce(sa.func.sum(f.c.bytes), 0))
                    .where(f.c.missing_since.is_(None)).group_by(f.c.source_id)):
                folders[sid], sizes[sid] = int(count), int(size)
            states: dict[int, dict[str, int]] = {}
            for status in ("pending", "error", "missing"):
                for sid, count in await conn.execute(
                        sa.select(p.c.source_id, sa.func.count())
                        .where(p.c.status == status).group_by(p.c.source_id)):
                    states.setdefault(sid, {})[status] = int(count)
        out = []
        for s in self.by_id.values():
            st = states.get(s.id, {})
            top = tops.get(s.id)
            total = int(top.total_count) if top else 0
            out.append({
                "id": s.id, "name": s.name, "path": s.path, "kind": s.kind,
                "online": s.online, "status": s.status,
                "photos": total,
                "ok": max(0, total - st.get("pending", 0) - st.get("error", 0)),
                "errors": st.get("error", 0), "pending": st.get("pending", 0),
                "missing": st.get("missing", 0), "bytes": sizes.get(s.id, 0),
                "folders": folders.get(s.id, 0),
                "folder_id": top.id if top else None,
                "scanned_at": iso(s.scanned_at), "watching": s.id in watching,
                "suspect": self.guard.describe(s.id),
            })
        return out


def _identity(row: Any) -> Identity | None:
    if row["device"] is None or row["root_inode"] is None:
        return None
    return Identity(int(row["device"]), int(row["root_inode"]),
                    None if row["mount_id"] is None else int(row["mount_id"]),
                    row["mount_device"])


def _identity_values(ident: Identity) -> dict[str, Any]:
    return {"root_inode": ident.inode, "mount_id": ident.mount_id,
            "mount_device": ident.mount_device}
