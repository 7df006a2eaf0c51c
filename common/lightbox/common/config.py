"""Bootstrap configuration: what the daemon must know before its database opens.

Everything else (roots, buckets, schedules) lives in the catalog and changes live; this file
only covers where the database is, where the sockets go and how to log. Sources, lowest
precedence first: built-in defaults, the TOML file (``$XDG_CONFIG_HOME/lightbox/lightboxd.toml``
or ``--config``), ``LIGHTBOX_<SECTION>_<KEY>`` environment variables, command-line flags.

Every key is declared once in ``KEYS``; the loader, the error messages and
``lightboxd --print-config`` all derive from that table. A bad value names its key, so a
typo in a file read at boot costs one line of output and exit code 2, not a traceback.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightbox.common import paths as pathmod

LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """An invalid bootstrap setting; ``key`` names it as ``section.name``."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


@dataclass(frozen=True)
class Key:
    """One bootstrap setting."""

    name: str  # "section.key"
    kind: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = None

    @property
    def env(self) -> str:
        return "LIGHTBOX_" + self.name.replace(".", "_").upper()


def _check_hostport(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"expected HOST:PORT (for example 0.0.0.0:7480), got {value!r}"
    return None


def _check_db_url(value: str) -> str | None:
    allowed = ("sqlite+aiosqlite://", "postgresql+asyncpg://", "mysql+aiomysql://",
               "mariadb+aiomysql://")
    if not value.startswith(allowed):
        return (
            f"unsupported database URL {value.split('://', maxsplit=1)[0]!r}; use one of "
            + ", ".join(a.rstrip(":/") for a in allowed)
        )
    return None


KEYS: tuple[Key, ...] = (
    Key("database.url", str, None,
        "SQLAlchemy URL of the catalog; default: SQLite file catalog.db in the data dir",
        check=_check_db_url),
    Key("control.socket_dir", Path, None,
        "directory for control.sock and events.sock; default: the runtime dir"),
    Key("control.tcp", str, None,
        "HOST:PORT to also serve requests over TCP (CURVE encryption required)",
        check=_check_hostport),
    Key("control.tcp_events", str, None,
        "HOST:PORT for the TCP event socket; default: the control port + 1",
        check=_check_hostport),
    Key("control.server_key", Path, None,
        "CURVE secret key file of the daemon (from `lightbox keys generate`); needed with tcp"),
    Key("control.authorized_keys", Path, None,
        "file of 'CLASS PUBLIC-KEY [comment]' lines (CLASS: read, control or admin); "
        "needed with tcp"),
    Key("control.max_message_bytes", int, 1 << 20,
        "largest request accepted, in bytes", minimum=1024, maximum=64 << 20),
    Key("control.reply_budget", int, 32,
        "MiB of replies in flight to one connection (file chunks, thumbnails, large pages) "
        "before its requests are answered busy", minimum=16, maximum=4096),
    Key("control.reply_budget_total", int, 128,
        "MiB of replies in flight to all connections together", minimum=16,
        maximum=65536),
    Key("events.buffer", int, 10_000,
        "how many past events events.since can replay", minimum=100, maximum=1_000_000),
    Key("log.level", str, "info", "least severe level logged", choices=LOG_LEVELS),
    Key("log.format", str, "text", "text (key=value) or json, one record a line",
        choices=("text", "json")),
    Key("daemon.stop_timeout", float, 3.0,
        "seconds that in-flight work gets to finish after SIGTERM", minimum=0.1, maximum=600),
    Key("workers.processes", int, 0,
        "worker processes for hashing, metadata and thumbnails; 0: one per CPU",
        minimum=0, maximum=256),
    Key("workers.task_timeout", float, 120.0,
        "seconds one file may take before its worker is killed and the file marked error",
        minimum=1, maximum=3600),
    Key("workers.memory_mb", int, 2048,
        "address-space limit of each worker process in MiB (0: none)", minimum=0,
        maximum=1 << 20),
    Key("library.watch", bool, True, "watch roots for changes (inotify) as they happen"),
    Key("library.reconcile_interval", float, 3600.0,
        "seconds between full rescans that catch what watching missed (0: never)",
        minimum=0, maximum=7 * 86400),
    Key("library.max_watches", int, 0,
        "most folders one root may watch with inotify; a larger root is rescanned every "
        "library.poll_interval instead (0: half the kernel's per-user limit)",
        minimum=0, maximum=1 << 24),
    Key("library.poll_interval", float, 300.0,
        "seconds between rescans of a root that cannot be watched", minimum=0.1,
        maximum=86400),
    Key("library.vanish_delay", float, 600.0,
        "seconds photos a pass found gone en masse (more than max(50, 10 %) of a root) are "
        "held as suspect before a later pass may mark them missing", minimum=0,
        maximum=30 * 86400),
    Key("library.debounce", float, 1.0,
        "seconds a changed file must stay unchanged before it is indexed", minimum=0.05,
        maximum=60),
    Key("thumbnails.grid", int, 256, "long edge of grid thumbnails, px", minimum=64,
        maximum=1024),
    Key("thumbnails.preview", int, 1280, "long edge of preview images, px", minimum=256,
        maximum=4096),
    Key("thumbnails.preview_min", int, 960,
        "smallest acceptable preview long edge: when the JPEG decoder's own 1/2, 1/4, 1/8 "
        "scaling lands between this and thumbnails.preview, its output is used as is, saving "
        "a resize (a 12 MP photo then gets a 1000 px preview); 0: always exactly "
        "thumbnails.preview", minimum=0, maximum=4096),
    Key("thumbnails.quality", int, 82, "JPEG quality of thumbnails", minimum=30, maximum=100),
    Key("thumbnails.cleanup_days", int, 30,
        "thumbnails of photos missing this long are removed by the daily cleanup",
        minimum=0, maximum=3650),
    Key("jobs.concurrency", int, 2, "jobs that run at the same time", minimum=1, maximum=16),
    Key("jobs.max_attempts", int, 3, "attempts before a failing job is given up",
        minimum=1, maximum=20),
)
KEY_BY_NAME = {k.name: k for k in KEYS}


@dataclass(frozen=True)
class Config:
    """The validated bootstrap configuration of one daemon (or the client's view of it)."""

    paths: pathmod.Paths
    values: Mapping[str, Any]
    source: Path | None = None
    origins: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def database_url(self) -> str:
        url = self.values["database.url"]
        if url:
            return str(url)
        return f"sqlite+aiosqlite:///{self.paths.default_database}"

    @property
    def socket_dir(self) -> Path:
        configured = self.values["control.socket_dir"]
        return Path(configured) if configured else self.paths.runtime_dir

    @property
    def control_endpoint(self) -> str:
        return pathmod.ipc_endpoint(self.socket_dir / "control.sock")

    @property
    def events_endpoint(self) -> str:
        return pathmod.ipc_endpoint(self.socket_dir / "events.sock")

    @property
    def tcp_events(self) -> str | None:
        if not self.values["control.tcp"]:
            return None
        if self.values["control.tcp_events"]:
            return str(self.values["control.tcp_events"])
        host, _, port = str(self.values["control.tcp"]).rpartition(":")
        return f"{host}:{int(port) + 1}"


def _coerce(key: Key, raw: Any, origin: str) -> Any:
    """Turn a TOML or environment value into the key's type, or raise ConfigError."""
    where = f" (from {origin})"
    if raw is None:
        return None
    value: Any
    if key.kind is bool:
        if isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "on", "0", "false",
                                                      "no", "off"):
            value = raw.lower() in ("1", "true", "yes", "on")
        else:
            raise ConfigError(key.name, f"expected true or false, got {raw!r}{where}")
    elif key.kind is int:
        if isinstance(raw, bool):
            raise ConfigError(key.name, f"expected an integer, got {raw!r}{where}")
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise ConfigError(key.name, f"expected an integer, got {raw!r}{where}") from None
    elif key.kind is float:
        if isinstance(raw, bool):
            raise ConfigError(key.name, f"expected a number, got {raw!r}{where}")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(key.name, f"expected a number, got {raw!r}{where}") from None
    elif key.kind is Path:
        if not isinstance(raw, str) or not raw:
            raise ConfigError(key.name, f"expected a path, got {raw!r}{where}")
        value = Path(raw).expanduser()
    else:
        if not isinstance(raw, str):
            raise ConfigError(key.name, f"expected a string, got {raw!r}{where}")
        value = raw.strip()
        if key.choices and value.lower() in key.choices:
            value = value.lower()
    if key.choices and value not in key.choices:
        raise ConfigError(
            key.name, f"expected one of {', '.join(key.choices)}, got {raw!r}{where}"
        )
    if key.minimum is not None and value < key.minimum:
        raise ConfigError(key.name, f"must be at least {key.minimum:g}, got {value}{where}")
    if key.maximum is not None and value > key.maximum:
        raise ConfigError(key.name, f"must be at most {key.maximum:g}, got {value}{where}")
    if key.check is not None:
        problem = key.check(value)
        if problem:
            raise ConfigError(key.name, problem + where)
    return value


def _flatten(doc: Mapping[str, Any], origin: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for section, body in doc.items():
        if not isinstance(body, dict):
            raise ConfigError(section, f"expected a [{section}] table, got a value{origin}")
        for name, value in body.items():
            flat[f"{section}.{name}"] = value
    return flat


def _unknown(name: str, origin: str) -> ConfigError:
    close = difflib.get_close_matches(name, KEY_BY_NAME, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigError(name, f"unknown key{hint}{origin}")


def load(
    config_file: str | Path | None = None,
    data_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    require_file: bool | None = None,
) -> Config:
    """Read and validate the bootstrap configuration.

    ``config_file`` given explicitly must exist; the default one is optional.
    """
    env = os.environ if env is None else env
    explicit = config_file is not None or "LIGHTBOX_CONFIG" in env
    path = Path(config_file).expanduser() if config_file else pathmod.default_config_file(env)
    must_exist = explicit if require_file is None else require_file

    values: dict[str, Any] = {k.name: k.default for k in KEYS}
    origins: dict[str, str] = {k.name: "default" for k in KEYS}
    source: Path | None = None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if must_exist:
            raise ConfigError("", f"config file {path} does not exist") from None
        text = None
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from None
    if text is not None:
        source = path
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("", f"{path} is not valid TOML: {exc}") from None
        origin = f" in {path}"
        for name, raw in _flatten(doc, origin).items():
            key = KEY_BY_NAME.get(name)
            if key is None:
                raise _unknown(name, origin)
            values[name] = _coerce(key, raw, str(path))
            origins[name] = str(path)

    env_names = {k.env: k for k in KEYS}
    for var, raw in env.items():
        if not var.startswith("LIGHTBOX_"):
            continue
        key = env_names.get(var)
        if key is None:
            continue  # LIGHTBOX_CONFIG, LIGHTBOX_DATA_DIR, LIGHTBOX_SOCKET... are not keys
        values[key.name] = _coerce(key, raw, f"environment {var}")
        origins[key.name] = f"environment {var}"

    for name, raw in (overrides or {}).items():
        if raw is None:
            continue
        key = KEY_BY_NAME.get(name)
        if key is None:
            raise _unknown(name, " (command line)")
        values[name] = _coerce(key, raw, "command line") if isinstance(raw, str) else raw
        origins[name] = "command line"

    if values["control.tcp"]:
        for needed in ("control.server_key", "control.authorized_keys"):
            if not values[needed]:
                raise ConfigError(
                    needed,
                    "required when control.tcp is set: TCP is served only with CURVE keys "
                    "(make them with `lightbox keys generate`)",
                )
    resolved = pathmod.resolve(data_dir, env)
    cfg = Config(paths=resolved, values=values, source=source, origins=origins)
    try:
        cfg.control_endpoint  # noqa: B018 - validates the socket path length
    except pathmod.PathError as exc:
        raise ConfigError("control.socket_dir", str(exc)) from None
    return cfg


def describe() -> str:
    """A commented TOML file listing every key with its default, for the docs and --help."""
    lines: list[str] = []
    section = ""
    for key in KEYS:
        sec, name = key.name.split(".", 1)
        if sec != section:
            lines.append(f"\n[{sec}]")
            section = sec
        default = "(unset)" if key.default is None else repr(key.default)
        lines.append(f"# {key.help}; env {key.env}; default {default}")
        shown = '""' if key.default is None else _toml_value(key.default)
        lines.append(f"# {name} = {shown}")
    return "\n".join(lines).lstrip() + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value) + '"'
