"""Runtime settings: stored in the catalog, applied live, audited.

The values in effect are, lowest first: built-in defaults < bootstrap TOML < ``LIGHTBOX_*``
environment < command line (all of that is ``Config``: the *base*) < rows of the
``settings`` table. A row exists only for a key whose value differs from its base value.

Every change runs in one transaction that bumps the global revision (a conditional
``UPDATE … WHERE revision = :seen``, which also serialises writers of several daemons on
every engine), writes the rows and appends the audit entry; a SIGKILL anywhere leaves the
old state or the new one. The store then tells the components: each one that takes part
declares ``settings_keys`` (glob patterns such as ``library.debounce`` or
``roots.*.watch``) and ``async apply(changes)``. Every daemon on a shared catalog polls the
revision twice a second and applies what another daemon changed, so daemons sharing a
catalog converge (on SQLite, which no other daemon shares, every 5 s).

What cannot change in a running daemon (``applies="restart"``) is stored and reported as
waiting for a restart; at start every stored value is applied before the components start.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import pwd
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from lightbox.common import logs
from lightbox.common import settings as schema
from lightbox.common.errors import Conflict, InvalidParams, NotFound
from lightbox.common.fields import Field
from lightbox.daemon.catalog import tables
from lightbox.daemon.catalog.types import iso, utcnow

if TYPE_CHECKING:
    from lightbox.daemon.app import Daemon
    from lightbox.daemon.rpc import Context

log = logs.get("settings")

POLL_EVERY = 0.5
# A catalog no other daemon can share (SQLite): nobody else changes it, so a slow beat is
# enough (a restored or hand-edited catalog is still noticed); 0.5 s cost ~9.5 ms of
# CPU a second on an idle daemon (py-spy, issue 13).
POLL_ALONE = 5.0
AUDIT_PAGE_MAX = 500
REVERTIBLE = ("set", "reset", "revert")


class Applies(Protocol):
    name: str
    settings_keys: tuple[str, ...]

    async def apply(self, changes: dict[str, Any]) -> None:
        """Take the new values of some of ``settings_keys`` (key -> value)."""


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b if not isinstance(a, (int, float)) else a == b


def invalid(problems: Iterable[schema.Problem]) -> InvalidParams:
    probs = list(problems)
    first = probs[0]
    more = f" (and {len(probs) - 1} more)" if len(probs) > 1 else ""
    return InvalidParams(f"{first.key}: {first.message}{more}", {
        "reason": "invalid_settings",
        "errors": {p.key: p.message for p in probs},
        "reasons": {p.key: p.reason for p in probs},
        "fields": [p.to_json() for p in probs]})


def actor_of(ctx: Context | None) -> dict[str, Any]:
    """Who makes a change, as far as the transport can tell (see ``Caller``).

    ipc: the peer's Unix user from SO_PEERCRED (libzmq's Peer-Address ``host:uid:gid:pid``);
    tcp: the CURVE key and its name (the comment in authorized_keys); both: the client kind
    the client declared in ``hello``, marked as declared (anyone can claim any name).
    """
    if ctx is None:
        return {"transport": "daemon"}
    out: dict[str, Any] = {"transport": ctx.transport}
    caller = ctx.caller
    if caller is None:
        return out
    if caller.transport == "ipc" and caller.peer_address:
        parts = caller.peer_address.rsplit(":", 3)
        if len(parts) == 4 and parts[1].isdigit():
            uid = int(parts[1])
            out["uid"] = uid
            out["pid"] = int(parts[3]) if parts[3].isdigit() else None
            try:
                out["user"] = pwd.getpwuid(uid).pw_name
            except KeyError:
                out["user"] = str(uid)
    if caller.transport == "tcp" and caller.key:
        out["key"] = caller.key
        out["key_name"] = ctx.daemon.control.key_name(caller.key)
    declared = ctx.daemon.control.declared_client(caller.identity)
    if declared:
        out["client"] = declared
        out["client_declared"] = True
    return out


def who(actor: Mapping[str, Any]) -> str:
    """The actor in a few words, for tables and logs."""
    name = actor.get("user") or actor.get("key_name") or actor.get("key", "")[:8] or \
        actor.get("transport", "?")
    client = actor.get("client")
    return f"{name} ({client}, declared)" if client else str(name)


class SettingsStore:
    name = "settings"

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.config = daemon.config
        self.revision = 0
        self.stored: dict[str, Any] = {}
        self.running: dict[str, Any] = {}  # value each restart-only key was started with
        self._lock = asyncio.Lock()
        self._poll: asyncio.Task[None] | None = None
        self.applied_at: float | None = None
        self.polls = 0

    # -- values -----------------------------------------------------------------------
    def base(self, key: str) -> tuple[Any, str]:
        """The value without the database, and where it comes from."""
        if key in self.config.values:
            value = self.config.values[key]
            fld = schema.BY_KEY[key]
            if fld.type == "path" and value is not None:
                value = str(value)
            return value, self.config.origins.get(key, "default")
        found = schema.field_for(key)
        default = found[0].default if found else None
        return (list(default) if isinstance(default, list) else default), "default"

    def value(self, key: str) -> Any:
        if key in self.stored:
            return self.stored[key]
        return self.base(key)[0]

    def origin(self, key: str) -> str:
        return "database" if key in self.stored else self.base(key)[1]

    def objects(self) -> dict[str, list[str]]:
        return {"roots": [str(s.id) for s in self.daemon.sources.local()]}

    def known_keys(self) -> list[str]:
        keys = [f.name for f in schema.FIELDS]
        for root in sorted(s.id for s in self.daemon.sources.local()):
            keys += schema.object_keys("roots", root)
        return keys

    def pending_restart(self) -> list[str]:
        return sorted(k for k, v in self.running.items() if not _same(self.value(k), v))

    def describe(self, key: str) -> dict[str, Any]:
        found = schema.field_for(key)
        assert found is not None
        fld = found[0]
        value = self.value(key)
        default = None if fld.secret else fld.default
        shown = schema.redact(key, value)
        if key == "database.url" and value:
            from lightbox.daemon.catalog.database import mask

            shown = mask(str(value))  # a URL may hold a password
        return {"value": shown, "origin": self.origin(key),
                "default": default, "applies": fld.applies, "scope": fld.scope,
                "secret": fld.secret,
                "pending_restart": key in self.running and not _same(value, self.running[key])}

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        for fld in schema.FIELDS:
            if fld.applies == "restart" and fld.scope == "runtime":
                self.running[fld.name] = self.base(fld.name)[0]
        async with self._lock:
            changed = await self._reload()
            # Before the other components start: they begin with the stored values.
            for key in list(self.running):
                self.running[key] = self.value(key)
            await self._apply(changed, starting=True)
        self._poll = asyncio.get_running_loop().create_task(self._watch(), name="settings")

    async def stop(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll

    def status(self) -> dict[str, Any]:
        return {"revision": self.revision, "stored": len(self.stored),
                "pending_restart": self.pending_restart(), "polls": self.polls}

    async def reload(self) -> None:
        """The catalog moved (database switch): its rows are the truth now."""
        async with self._lock:
            changed = await self._reload()
            await self._apply(changed)

    async def _reload(self) -> dict[str, Any]:
        """Re-read every row; the keys whose effective value changed (key -> new value)."""
        async with self.daemon.db.engine.connect() as conn:
            revision = await conn.scalar(sa.select(tables.settings_revision.c.revision)
                                         .where(tables.settings_revision.c.id == 1))
            rows = (await conn.execute(sa.select(tables.settings.c.key,
                                                 tables.settings.c.value))).all()
        before = {k: self.value(k) for k in {*self.stored, *(r.key for r in rows)}}
        stored: dict[str, Any] = {}
        for row in rows:
            found = schema.field_for(row.key)
            if found is None or found[0].scope == "bootstrap":
                continue  # a key of a newer version, or a bad row: not ours to apply
            try:
                stored[row.key] = found[0].check(row.value)
            except ValueError as exc:
                log.warning("ignoring a stored setting that is not valid", key=row.key,
                            reason=str(exc) if not found[0].secret else "invalid")
        self.stored = stored
        self.revision = int(revision or 0)
        return {k: self.value(k) for k, old in before.items() if not _same(self.value(k), old)}

    async def _watch(self) -> None:
        """Follow changes another daemon made to the shared catalog."""
        rev = tables.settings_revision
        while True:
            await asyncio.sleep(POLL_EVERY if self.daemon.cluster.active else POLL_ALONE)
            try:
                async with self.daemon.db.engine.connect() as conn:
                    revision = await conn.scalar(sa.select(rev.c.revision).where(rev.c.id == 1))
                self.polls += 1
                if revision is not None and int(revision) != self.revision:
                    async with self._lock:
                        changed = await self._reload()
                        if changed:
                            result = await self._apply(changed)
                            self._publish_changed("catalog", changed, result)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("settings revision poll failed", error=str(exc))

    # -- applying ----------------------------------------------------------------------
    def _targets(self) -> list[Applies]:
        d = self.daemon
        out: list[Any] = [c for c in d.components if hasattr(c, "apply")]
        out += [d.tasks, d.scanner]
        return out

    async def _apply(self, changed: Mapping[str, Any], starting: bool = False
                     ) -> dict[str, list[str]]:
        """Hand each component its changed keys; which keys took effect and which wait."""
        result: dict[str, list[str]] = {"applied": [], "workers": [], "restart": []}
        if not changed:
            return result
        live: dict[str, Any] = {}
        for key, value in changed.items():
            found = schema.field_for(key)
            fld = found[0] if found else None
            if fld is not None and fld.applies == "restart" and not starting:
                result["restart"].append(key)
                continue
            live[key] = value
            result["workers" if fld is not None and fld.applies == "workers"
                   else "applied"].append(key)
        if "log.level" in live:
            logs.set_level(str(live["log.level"]))
        for target in self._targets():
            mine = {k: v for k, v in live.items()
                    if any(fnmatch.fnmatchcase(k, p) for p in target.settings_keys)}
            if not mine:
                continue
            try:
                await target.apply(mine)
            except Exception:
                log.exception("a component could not apply new settings",
                              component=target.name, keys=sorted(mine))
                for k in mine:
                    for bucket in ("applied", "workers"):
                        if k in result[bucket]:
                            result[bucket].remove(k)
                    result.setdefault("failed", []).append(k)
                continue
            if not starting:
                self.daemon.bus.publish("settings", "applied", {
                    "revision": self.revision, "component": target.name,
                    "keys": sorted(mine)})
        self.applied_at = time.monotonic()
        return result

    def _publish_changed(self, source: str, changed: Mapping[str, Any],
                         result: Mapping[str, list[str]], actor: Mapping[str, Any] | None = None
                         ) -> None:
        self.daemon.bus.publish("settings", "changed", {
            "revision": self.revision, "source": source, "keys": sorted(changed),
            "values": {k: schema.redact(k, v) for k, v in changed.items()},
            "applied": result.get("applied", []), "workers": result.get("workers", []),
            "restart": result.get("restart", []),
            **({"by": who(actor)} if actor else {})})

    # -- changing ----------------------------------------------------------------------
    async def set(self, patch: Mapping[str, Any], actor: Mapping[str, Any], *,
                  if_revision: int | None = None, action: str = "set",
                  detail: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate the whole patch, store it in one transaction, apply it.

        A value ``None`` for a key that is not nullable resets it (as ``settings.reset``).
        """
        values: dict[str, Any] = {}
        resets: list[str] = []
        checkable: dict[str, Any] = {}
        for key, raw in patch.items():
            found = schema.field_for(key) if isinstance(key, str) else None
            if raw is None and found is not None and not found[0].nullable:
                resets.append(key)
                checkable[key] = found[0].default  # validate the key itself
            else:
                checkable[key] = raw
        good, problems = schema.validate(checkable, self.objects())
        if problems:
            raise invalid(problems)
        for key, value in good.items():
            if key not in resets:
                values[key] = value
        return await self._change(values, resets, actor, if_revision, action, detail)

    async def reset(self, keys: Iterable[str], actor: Mapping[str, Any], *,
                    if_revision: int | None = None, check: bool = True) -> dict[str, Any]:
        """``check=False``: the keys' object may be gone (a removed root's settings)."""
        keys = list(keys)
        _, problems = schema.validate({k: self.base(k)[0] if schema.field_for(k) else None
                                       for k in keys}, self.objects() if check else None)
        problems = [p for p in problems if p.reason in ("unknown_key", "read_only",
                                                        "unknown_object")]
        if problems:
            raise invalid(problems)
        return await self._change({}, keys, actor, if_revision, "reset", None)

    async def revert(self, revision: int, actor: Mapping[str, Any], *,
                     if_revision: int | None = None) -> dict[str, Any]:
        """Apply the inverse of the change that made ``revision``."""
        audit = tables.settings_audit
        async with self.daemon.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(audit).where(
                audit.c.revision == revision, audit.c.action.in_(REVERTIBLE),
                audit.c.result == "ok").order_by(audit.c.id.desc()).limit(1))).first()
        if row is None:
            raise NotFound(f"no settings change made revision {revision}",
                           {"reason": "no_such_revision", "revision": revision})
        values: dict[str, Any] = {}
        resets: list[str] = []
        secrets = []
        for change in row.changes:
            key = change["key"]
            found = schema.field_for(key)
            if found is not None and found[0].secret:
                secrets.append(key)
            elif change.get("old_stored"):
                values[key] = change["old"]
            else:
                resets.append(key)
        if secrets:
            raise Conflict(
                f"revision {revision} changed a secret ({', '.join(secrets)}); the audit log "
                "keeps no secret values, so set it again instead",
                {"reason": "secret_not_revertible", "keys": secrets})
        good, problems = schema.validate(values, self.objects())
        if problems:
            raise invalid(problems)
        return await self._change(good, resets, actor, if_revision, "revert",
                                  {"reverts": revision})

    async def _change(self, values: Mapping[str, Any], resets: Iterable[str],
                      actor: Mapping[str, Any], if_revision: int | None, action: str,
                      detail: dict[str, Any] | None) -> dict[str, Any]:
        resets = [k for k in resets if k not in values]
        async with self._lock:
            for _attempt in range(20):
                outcome = await self._write(values, resets, actor, if_revision, action, detail)
                if outcome is not None:
                    break
                # Another daemon changed the settings in between: catch up, then retry.
                changed = await self._reload()
                if changed:
                    self._publish_changed("catalog", changed, await self._apply(changed))
            else:  # pragma: no cover - twenty lost races in a row
                raise Conflict("settings kept changing; retry", {"reason": "busy"})
            changes, before = outcome
            if not changes:
                return {"revision": self.revision, "changed": [], "applied": [],
                        "workers": [], "restart": [], "notes": {},
                        "unchanged": sorted([*values, *resets])}
            changed = {k: self.value(k) for k in changes}
            result = await self._apply(changed)
            self._publish_changed(action, changed, result, actor)
        fields = {k: schema.field_for(k) for k in changed}
        notes = {k: f[0].note for k, f in fields.items() if f is not None and f[0].note}
        log.info("settings changed", revision=self.revision, action=action,
                 keys=",".join(sorted(changed)), by=who(actor))
        return {"revision": self.revision, "changed": sorted(changed), **result,
                "notes": notes,
                "unchanged": sorted(k for k in [*values, *resets] if k not in changed),
                "previous": before}

    async def _write(self, values: Mapping[str, Any], resets: list[str],
                     actor: Mapping[str, Any], if_revision: int | None, action: str,
                     detail: dict[str, Any] | None
                     ) -> tuple[list[str], int] | None:
        """One transaction; None when another writer got the revision first."""
        st, rev = tables.settings, tables.settings_revision
        async with self.daemon.db.engine.begin() as conn:
            current = int(await conn.scalar(sa.select(rev.c.revision).where(rev.c.id == 1))
                          or 0)
            if if_revision is not None and if_revision != current:
                raise Conflict(
                    f"the settings changed since revision {if_revision} (now {current}); "
                    "read them again and retry",
                    {"reason": "stale_revision", "revision": current,
                     "expected": if_revision})
            keys = [*values, *resets]
            rows = {r.key: r for r in (await conn.execute(
                sa.select(st.c.key, st.c.value, st.c.version).where(st.c.key.in_(keys)))).all()}
            changes: list[dict[str, Any]] = []
            writes: list[tuple[str, Any, int | None]] = []  # key, value (None: delete), version
            for key in keys:
                base = self.base(key)[0]
                row = rows.get(key)
                old = row.value if row is not None else base
                new = values.get(key, base)
                store = key in values and not _same(new, base)
                if store and row is not None and _same(row.value, new):
                    continue  # already stored with this value
                if not store and row is None:
                    continue  # already at its base value
                writes.append((key, new if store else None, row.version if row else None))
                changes.append(self._change_entry(key, old, new, row is not None, store))
            if not writes:
                return [], current
            new_revision = current + 1
            bumped = await conn.execute(rev.update().where(rev.c.id == 1,
                                                           rev.c.revision == current)
                                        .values(revision=new_revision))
            if bumped.rowcount != 1:
                if if_revision is not None:
                    raise Conflict("the settings changed meanwhile; read them again and retry",
                                   {"reason": "stale_revision", "expected": if_revision})
                return None
            now = utcnow()
            for key, value, version in writes:
                if value is None:
                    await conn.execute(st.delete().where(st.c.key == key))
                elif version is None:
                    await conn.execute(st.insert().values(key=key, value=value, version=1,
                                                          revision=new_revision,
                                                          updated_at=now))
                else:
                    await conn.execute(st.update().where(st.c.key == key).values(
                        value=value, version=version + 1, revision=new_revision,
                        updated_at=now))
            await self._audit(conn, new_revision, action, actor, changes, "ok", detail)
        for key, value, _ in writes:
            if value is None:
                self.stored.pop(key, None)
            else:
                self.stored[key] = value
        self.revision = new_revision
        return [w[0] for w in writes], current

    @staticmethod
    def _change_entry(key: str, old: Any, new: Any, old_stored: bool, new_stored: bool
                      ) -> dict[str, Any]:
        found = schema.field_for(key)
        if found is not None and found[0].secret:
            old, new = schema.redact(key, old), schema.redact(key, new)
        return {"key": key, "old": old, "new": new, "old_stored": old_stored,
                "new_stored": new_stored}

    async def _audit(self, conn: Any, revision: int, action: str, actor: Mapping[str, Any],
                     changes: list[dict[str, Any]], result: str,
                     detail: dict[str, Any] | None) -> None:
        audit, keys = tables.settings_audit, tables.settings_audit_keys
        res = await conn.execute(audit.insert().values(
            revision=revision, at=utcnow(), action=action, actor=dict(actor),
            changes=changes, result=result, detail=detail))
        audit_id = res.inserted_primary_key[0]
        names = sorted({c["key"] for c in changes})
        if names:
            await conn.execute(keys.insert(), [{"key": k, "audit_id": audit_id}
                                               for k in names])

    async def record(self, action: str, actor: Mapping[str, Any],
                     changes: list[dict[str, Any]], result: str = "ok",
                     detail: dict[str, Any] | None = None) -> None:
        """An audited change that is not a setting (roots.add, roots.remove)."""
        async with self.daemon.db.engine.begin() as conn:
            await self._audit(conn, self.revision, action, actor, changes, result, detail)

    # -- reading the audit log ---------------------------------------------------------
    async def audit(self, limit: int, cursor: int | None, key: str | None
                    ) -> dict[str, Any]:
        """Newest first; ``cursor`` is the id to continue below."""
        audit, keys = tables.settings_audit, tables.settings_audit_keys
        q = sa.select(audit)
        if key is not None:
            q = q.where(audit.c.id.in_(sa.select(keys.c.audit_id).where(keys.c.key == key)))
        if cursor is not None:
            q = q.where(audit.c.id < cursor)
        q = q.order_by(audit.c.id.desc()).limit(limit + 1)
        async with self.daemon.db.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        entries = [{"id": r.id, "revision": r.revision, "at": iso(r.at), "action": r.action,
                    "actor": r.actor, "by": who(r.actor), "changes": r.changes,
                    "result": r.result, "detail": r.detail} for r in rows]
        return {"entries": entries, "next_cursor": rows[-1].id if more and rows else None}


def field(key: str) -> Field:
    found = schema.field_for(key)
    if found is None:
        raise KeyError(key)
    return found[0]


def cpu_count() -> int:
    return os.cpu_count() or 2
