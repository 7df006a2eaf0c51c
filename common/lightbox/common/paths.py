"""Where lightbox keeps its files.

Four places, after the XDG base directory spec (through platformdirs):

- data: the catalog database (``$XDG_DATA_HOME/lightbox``);
- cache: thumbnails, which can always be rebuilt (``$XDG_CACHE_HOME/lightbox``);
- state: logs (``$XDG_STATE_HOME/lightbox``);
- runtime: the control and event sockets (``$XDG_RUNTIME_DIR/lightbox``).

Under systemd the system unit's ``StateDirectory=`` (catalog), ``CacheDirectory=``,
``LogsDirectory=`` and ``RuntimeDirectory=`` arrive as ``STATE_DIRECTORY`` and friends; they win
over the XDG defaults so the system unit needs no configuration file. ``--data-dir D`` (or
``LIGHTBOX_DATA_DIR``) puts all four under ``D`` so that several instances, tests among them,
can run side by side.

The runtime directory holds the control socket, so it must be private: a directory that is
not ours, or that others can enter, is refused rather than used.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP = "lightbox"
# sun_path in struct sockaddr_un holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


class PathError(Exception):
    """A directory lightbox needs is unusable (wrong owner, too open, not a directory)."""


@dataclass(frozen=True)
class Paths:
    """The resolved directories of one lightbox instance."""

    data_dir: Path
    cache_dir: Path
    state_dir: Path
    runtime_dir: Path

    @property
    def control_socket(self) -> Path:
        return self.runtime_dir / "control.sock"

    @property
    def events_socket(self) -> Path:
        return self.runtime_dir / "events.sock"

    @property
    def default_database(self) -> Path:
        return self.data_dir / "catalog.db"

    @property
    def thumbnails_dir(self) -> Path:
        return self.cache_dir / "thumbnails"

    @property
    def log_file(self) -> Path:
        """Where ``lightbox start`` sends a detached daemon's stderr."""
        return self.state_dir / "lightboxd.log"

    def ensure(self) -> list[str]:
        """Create every directory private to this user (0700) and return what was fixed.

        The catalog tells where every photo is and when it was taken, the cache shows them:
        an existing directory that is ours but open to others is closed (with the catalog
        and log files in it), and one that belongs to someone else is refused.
        """
        fixed: list[str] = []
        for d in (self.data_dir, self.cache_dir, self.state_dir):
            try:
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise PathError(f"cannot create {d}: {exc.strerror}") from exc
            fixed += _make_private(d, 0o700)
        for f in (self.default_database, self.default_database.with_name("catalog.db-wal"),
                  self.default_database.with_name("catalog.db-shm"), self.log_file):
            fixed += _make_private(f, 0o600)
        ensure_private_dir(self.runtime_dir)
        return fixed


def _make_private(path: Path, mode: int) -> list[str]:
    """Close ``path`` to others if it is ours; refuse it if it is someone else's."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PathError(f"cannot use {path}: {exc.strerror}") from exc
    if st.st_uid != os.getuid():
        raise PathError(f"{path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}); "
                        "refusing to keep the catalog there (chown it, or use another "
                        "--data-dir)")
    if not st.st_mode & 0o077:
        return []
    try:
        os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o077 | (mode & 0o700))
    except OSError as exc:
        raise PathError(f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):o}) "
                        f"and cannot be closed: {exc.strerror}") from exc
    return [f"{path} was open to other users (mode {stat.S_IMODE(st.st_mode):o}); "
            f"now {stat.S_IMODE(os.stat(path).st_mode):o}"]


def default_config_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if "LIGHTBOX_CONFIG" in env:
        return Path(env["LIGHTBOX_CONFIG"]).expanduser()
    if env.get("CONFIGURATION_DIRECTORY"):  # systemd's ConfigurationDirectory=
        return Path(env["CONFIGURATION_DIRECTORY"].split(":")[0]) / "lightboxd.toml"
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / APP / "lightboxd.toml"


def default_client_key_file(env: Mapping[str, str] | None = None) -> Path:
    """The CURVE key pair a client presents to a daemon reached over TCP."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / APP / "client.key_secret"


def resolve(
    data_dir: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Paths:
    """Work out the four directories, without creating anything."""
    env = os.environ if env is None else env
    if data_dir is None and env.get("LIGHTBOX_DATA_DIR"):
        data_dir = env["LIGHTBOX_DATA_DIR"]
    if data_dir is not None:
        root = Path(data_dir).expanduser().absolute()
        return Paths(
            data_dir=root,
            cache_dir=root / "cache",
            state_dir=root / "state",
            runtime_dir=root / "run",
        )

    def pick(systemd_var: str, xdg: str) -> Path:
        value = env.get(systemd_var)
        if value:
            # systemd may pass several colon-separated directories; the first is ours.
            return Path(value.split(":")[0])
        return Path(xdg)

    return Paths(
        data_dir=pick("STATE_DIRECTORY", platformdirs.user_data_dir(APP, appauthor=False)),
        cache_dir=pick("CACHE_DIRECTORY", platformdirs.user_cache_dir(APP, appauthor=False)),
        state_dir=pick("LOGS_DIRECTORY", platformdirs.user_state_dir(APP, appauthor=False)),
        runtime_dir=_runtime_dir(env),
    )


def _runtime_dir(env: Mapping[str, str]) -> Path:
    if env.get("RUNTIME_DIRECTORY"):
        return Path(env["RUNTIME_DIRECTORY"].split(":")[0])
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / APP
    uid = os.getuid()
    run_user = Path(f"/run/user/{uid}")
    try:
        st = run_user.stat()
        if stat.S_ISDIR(st.st_mode) and st.st_uid == uid:
            return run_user / APP
    except OSError:
        pass
    # No per-user runtime directory (containers, cron, su without a login session): a
    # directory of our own in the temporary directory, which ensure_private_dir vets.
    return Path(tempfile.gettempdir()) / f"{APP}-{uid}"


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` mode 0700, or check that an existing one is ours and closed to others.

    A directory in a shared place such as /tmp could have been made by another user to
    intercept the socket; refusing it is the only safe answer.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise PathError(f"cannot create {path}: {exc.strerror}") from exc
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise PathError(f"{path} is not a directory (or is a symbolic link); refusing to use it")
    if st.st_uid != os.getuid():
        raise PathError(
            f"{path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}); refusing to use it"
        )
    if st.st_mode & 0o077:
        # Ours but too open (an old umask, a careless chmod): close it rather than fail.
        os.chmod(path, 0o700)


def ipc_endpoint(path: Path) -> str:
    """The ZeroMQ endpoint for a socket file, after checking the kernel can bind it."""
    text = str(path)
    if len(text.encode()) > MAX_SOCKET_PATH:
        raise PathError(
            f"socket path {text!r} is {len(text.encode())} bytes; Unix sockets allow "
            f"{MAX_SOCKET_PATH}. Use a shorter --data-dir or set control.socket_dir."
        )
    return f"ipc://{text}"
