"""Bootstrap configuration: what the daemon must know before its database opens.

Everything else (roots, buckets, schedules) lives in the catalog and changes live; this file
only covers where the database is, where the sockets go and how to log. Sources, lowest
precedence first: built-in defaults, the TOML file (``$XDG_CONFIG_HOME/lightbox/lightboxd.toml``
or ``--config``), ``LIGHTBOX_<SECTION>_<KEY>`` environment variables, command-line flags.

Every key is declared once, as a ``Field``, in ``lightbox.common.settings`` (the same schema
the runtime settings and ``settings.set`` use, so a value is checked the same way wherever it
comes from); the loader, the error messages and ``lightboxd --print-config`` all derive from
that table. Runtime keys may be given here too: they are the starting values until the
catalog stores another (defaults < file < environment < database). A bad value names its key, so a
typo in a file read at boot costs one line of output and exit code 2, not a traceback.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightbox.common import paths as pathmod
from lightbox.common import settings as settingsmod
from lightbox.common.fields import Field


class ConfigError(Exception):
    """An invalid bootstrap setting; ``key`` names it as ``section.name``."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


# Every key, bootstrap and runtime, declared once as a Field in ``lightbox.common.settings``.
# Runtime keys may be given here too (the starting value until the database holds one).
KEYS: tuple[Field, ...] = settingsmod.FIELDS
KEY_BY_NAME = settingsmod.BY_KEY
LOG_LEVELS = settingsmod.LOG_LEVELS


def env_var(key: Field) -> str:
    return settingsmod.env_name(key.name)


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


def _coerce(key: Field, raw: Any, origin: str) -> Any:
    """Validate a TOML value (typed) or an environment/command-line text through the key's
    Field, or raise ConfigError naming the key and where the value came from."""
    where = f" (from {origin})"
    if raw is None:
        return None
    try:
        if isinstance(raw, str) and (key.type not in ("string", "path") or key.enum):
            value = key.parse(raw)
        else:
            value = key.check(raw.strip() if isinstance(raw, str) else raw)
    except ValueError as exc:
        raise ConfigError(key.name, f"{exc}{where}") from None
    if key.type == "path" and value is not None:
        return Path(value).expanduser()
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

    env_names = {env_var(k): k for k in KEYS}
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
        lines.append(f"# {key.description}; env {env_var(key)}; default {default}")
        shown = '""' if key.default is None else _toml_value(key.default)
        lines.append(f"# {name} = {shown}")
    return "\n".join(lines).lstrip() + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value) + '"'
