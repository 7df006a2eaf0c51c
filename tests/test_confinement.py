"""Nothing outside the roots is read or served; the daemon's files are its own (issue 7, build
items 4, 7 and 9): roots.add refusals and aliases, links never followed, a swapped-in hard link
never served, private file modes, a refused second daemon that does nothing, and database
passwords kept out of logs and replies. Against the real daemon over its socket; the opening
primitive itself is also checked on both of its paths (openat2 and the O_NOFOLLOW walk).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess, need, short_tmpdir
from test_library_scan import SCAN_ONLY, add_root, photo, rows

from lightbox.common import errors
from lightbox.daemon.catalog.database import mask
from lightbox.daemon.media import confine
from lightbox.daemon.media.samples import ExifSpec, make_photo, save_jpeg
from lightbox.daemon.media.thumbs import _boot_id

# -- the primitive ---------------------------------------------------------------------------

@pytest.fixture(params=["openat2", "walk"])
def open_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    saved = list(confine._probed)
    if request.param == "walk":
        confine.use_walk_only()
    else:
        confine._probed.clear()
        need(confine._openat2_nr() is not None, "openat2 (Linux >= 5.6)",
             "run on a newer kernel; the walk is tested either way")
    yield request.param
    confine._probed[:] = saved


def test_open_beneath_never_follows_links_nor_leaves_the_root(
        open_mode: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f.jpg").write_bytes(b"photo")
    (tmp_path / "outside.jpg").write_bytes(b"secret")
    (root / "out.jpg").symlink_to(tmp_path / "outside.jpg")
    (root / "in.jpg").symlink_to(root / "d" / "f.jpg")          # links inside: not followed
    (root / "dl").symlink_to(root / "d")
    (root / "etc").symlink_to("/etc")
    os.mkfifo(root / "pipe.jpg")
    r = str(root)
    f, st = confine.open_photo(confine.LocalFile(r, "d/f.jpg"))
    with f:
        assert f.read() == b"photo"
    for rel, reason in (("out.jpg", "symlink"), ("in.jpg", "symlink"), ("dl/f.jpg", "symlink"),
                        ("etc/passwd", "symlink"), ("../outside.jpg", "outside"),
                        ("d/../d/f.jpg", "outside"), ("/etc/passwd", "outside"),
                        ("pipe.jpg", "not_regular"), ("d", "not_regular")):
        with pytest.raises(confine.Refused) as refused:
            confine.open_photo(confine.LocalFile(r, rel))
        assert refused.value.reason == reason, rel
    with pytest.raises(FileNotFoundError):
        confine.open_photo(confine.LocalFile(r, "d/nope.jpg"))
    # The catalog's fingerprint: any part that differs refuses before a byte is read.
    good = confine.LocalFile(r, "d/f.jpg", size=st.st_size, mtime_ns=st.st_mtime_ns,
                             inode=st.st_ino, device=st.st_dev)
    confine.open_photo(good)[0].close()
    for change in ({"inode": st.st_ino + 1}, {"device": st.st_dev + 1}, {"size": 99},
                   {"mtime_ns": st.st_mtime_ns + 1}):
        with pytest.raises(confine.Refused) as refused:
            confine.open_photo(confine.LocalFile(**{**good.__dict__, **change}))
        assert refused.value.reason == "changed"
        assert refused.value.found == (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


# -- roots.add -------------------------------------------------------------------------------

def refusal(d: DaemonProcess, path: str) -> tuple[str, str, str]:
    with pytest.raises(errors.RpcError) as err:
        d.call("roots.add", {"path": path, "scan": False})
    return type(err.value).__name__, err.value.data.get("reason"), err.value.message


def test_roots_add_refuses_system_daemon_and_home_dirs(daemon: DaemonProcess,
                                                        tmp_path: Path) -> None:
    expect = {"/": "filesystem_root", "/etc": "system_tree", "/usr/share": "system_tree",
              "/var": "system_tree", "/proc": "pseudo_filesystem", "/sys": "pseudo_filesystem",
              "/dev": "pseudo_filesystem", str(Path.home()): "home_dir",
              str(daemon.data_dir): "daemon_dir", str(daemon.data_dir / "cache"): "daemon_dir",
              str(daemon.data_dir.parent): "daemon_dir"}
    (daemon.data_dir / "photos").mkdir()
    expect[str(daemon.data_dir / "photos")] = "daemon_dir"
    for path, reason in expect.items():
        if not os.path.isdir(path):
            continue
        kind, got, message = refusal(daemon, path)
        assert kind == "InvalidParams", (path, message)
        # /dev is devtmpfs where it is mounted as such, a plain tree in some containers
        assert got == reason or (path == "/dev" and got == "system_tree"), (path, message)
    # A folder inside a home is what `make run` adds (~/Pictures; /root/Pictures for root).
    pictures = Path(tempfile.mkdtemp(prefix="lbtest-Pictures-", dir=Path.home()))
    try:
        out = daemon.call("roots.add", {"path": str(pictures), "scan": False})
        assert out["root"]["path"] == str(pictures)
        daemon.call("roots.remove", {"root": out["root"]["id"]})
    finally:
        pictures.rmdir()
    assert refusal(daemon, "/tmp/with\0nul")[0] == "InvalidParams"


def test_roots_add_refuses_aliases_and_overlaps(daemon: DaemonProcess, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(lib)
    # Added through a link: the root is the directory itself, stored resolved.
    out = daemon.call("roots.add", {"path": str(tmp_path / "alias"), "scan": False})
    assert out["root"]["path"] == str(lib)
    for path, reason in ((str(lib), "already_a_root"), ("/" + str(lib), "already_a_root"),
                         (f"//{str(lib).lstrip('/')}/./", "already_a_root"),
                         (str(tmp_path / "alias"), "already_a_root"),
                         (str(lib / "sub"), "inside_a_root"),
                         (str(tmp_path / "alias" / "sub"), "inside_a_root"),
                         (str(tmp_path), "holds_a_root")):
        kind, got, message = refusal(daemon, path)
        assert (kind, got) == ("Conflict", reason), (path, message)
    assert len(daemon.call("roots.list")["roots"]) == 1


@pytest.fixture
def bind() -> Iterator[Any]:
    mounted: list[Path] = []

    def mount(source: Path | str, target: Path) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "--bind", str(source), str(target)],
                              capture_output=True, text=True)
        need(done.returncode == 0, "bind mounts (root, CAP_SYS_ADMIN)",
             f"run the tests as root where mounting is allowed ({done.stderr.strip()})")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def test_bind_mount_aliases_are_seen_by_identity(daemon: DaemonProcess, tmp_path: Path,
                                                 bind: Any) -> None:
    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    daemon.call("roots.add", {"path": str(lib), "scan": False})
    for source, where, kind, reason in (
            (lib, "m1", "Conflict", "already_a_root"),
            (lib / "sub", "m2", "Conflict", "inside_a_root"),
            (tmp_path, "m3", "Conflict", "holds_a_root"),     # the root's parent, bound below
            ("/etc", "m4", "InvalidParams", "system_tree")):
        target = bind(source, tmp_path / where)
        got = refusal(daemon, str(target))
        assert got[:2] == (kind, reason), (target, got)
        assert "another path" in got[2], got


# -- reads -----------------------------------------------------------------------------------

def _sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_links_out_of_a_root_are_never_read_nor_served(make_daemon: Any,
                                                       tmp_path: Path) -> None:
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root, outside = tmp_path / "photos", tmp_path / "outside"
    root.mkdir()
    (outside / "deep").mkdir(parents=True)
    save_jpeg(make_photo(320, 240, seed=1), root / "real.jpg")
    save_jpeg(make_photo(320, 240, seed=2), outside / "secret.jpg",
              ExifSpec(gps=(48.8584, 2.2945, 35.0)))
    save_jpeg(make_photo(320, 240, seed=3), outside / "deep" / "also.jpg")
    (root / "link.jpg").symlink_to(outside / "secret.jpg")
    (root / "shadow.jpg").symlink_to("/etc/shadow")
    (root / "etc").symlink_to("/etc")
    (root / "elsewhere").symlink_to(outside)
    add_root(d, root)
    assert photo(d, "real.jpg")["status"] == "ok"
    secrets = {_sha(outside / "secret.jpg"), _sha(outside / "deep" / "also.jpg")}
    if os.access("/etc/shadow", os.R_OK):
        secrets.add(_sha("/etc/shadow"))
    hashed = {r[0] for r in rows(d, "SELECT sha256 FROM photos WHERE sha256 IS NOT NULL")}
    assert hashed == {photo(d, "real.jpg")["sha256"]}, "nothing but the real photo was read"
    assert not hashed & secrets
    others = rows(d, "SELECT id, name, status, gps_lat, width FROM photos "
                     "WHERE name != 'real.jpg'")
    for r in others:   # a listing that skips links leaves no row; one that lists them, errors
        assert r["status"] != "ok" and r["gps_lat"] is None and r["width"] is None, dict(r)
        for method, params in (("photos.original", {"id": r["id"]}),
                               ("photos.thumbnail", {"id": r["id"], "size": "grid"})):
            with pytest.raises((errors.NotFound, errors.Unavailable)):
                d.call(method, params)


def test_a_hard_link_swapped_in_is_never_served(make_daemon: Any, tmp_path: Path) -> None:
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root = tmp_path / "photos"
    root.mkdir()
    target = root / "a.jpg"
    save_jpeg(make_photo(320, 240, seed=4), target)
    (root / "notes.jpg").write_text("not an image: never served even though it was read")
    add_root(d, root)
    row = photo(d, "a.jpg")
    assert row["status"] == "ok"
    got = d.call("photos.original", {"id": row["id"], "offset": 0, "length": 1 << 20})
    assert got["size"] == target.stat().st_size
    # A file outside the root, of the same size and mtime, hard-linked in place of the photo:
    # only its inode tells it apart.
    secret = tmp_path / "secret"
    secret.write_bytes(b"TOP SECRET " * (target.stat().st_size // 11 + 1))
    os.truncate(secret, target.stat().st_size)
    os.utime(secret, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns))
    secret.chmod(0o600)
    target.unlink()
    os.link(secret, target)
    with pytest.raises(errors.NotFound) as refused:
        d.call("photos.original", {"id": row["id"], "offset": 0, "length": 1 << 20})
    assert refused.value.data["reason"] == "changed"
    # Read again under what is there now: not an image, so it is never served.
    deadline = time.monotonic() + 30
    while photo(d, "a.jpg")["status"] != "error":
        assert time.monotonic() < deadline, dict(photo(d, "a.jpg"))
        time.sleep(0.2)
    for name in ("a.jpg", "notes.jpg"):
        with pytest.raises(errors.NotFound) as refused:
            d.call("photos.original", {"id": photo(d, name)["id"], "offset": 0, "length": 64})
        assert refused.value.data["reason"] == "status_error"


# -- the daemon's own files ------------------------------------------------------------------

HARNESS_FILES = {"daemon.log", "lightboxd.toml"}   # written by the tests, not the daemon


def _as_nobody(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           *cmd], capture_output=True, text=True)


def test_files_are_private_even_in_an_open_data_dir(make_daemon: Any, tmp_path: Path) -> None:
    need(os.getuid() == 0 and shutil.which("setpriv") is not None,
         "root and setpriv (util-linux)", "run the tests as root with util-linux installed")
    data = short_tmpdir()
    for sub in ("", "cache", "state"):
        (data / sub).mkdir(exist_ok=True)
        (data / sub).chmod(0o755)
    (data / "state" / "lightboxd.log").write_text("an old log\n")
    (data / "state" / "lightboxd.log").chmod(0o644)
    d: DaemonProcess = make_daemon(data_dir=data, config=SCAN_ONLY)
    try:
        root = tmp_path / "photos"
        root.mkdir()
        save_jpeg(make_photo(320, 240, seed=5), root / "p.jpg")
        add_root(d, root)
        assert (data / "catalog.db-wal").exists() and (data / "catalog.db-shm").exists()
        deadline = time.monotonic() + 60      # the grid's thumbnail: written as it is made
        while not any((data / "cache" / "thumbnails").rglob("*.jpg")):
            assert time.monotonic() < deadline, "no thumbnail was written"
            time.sleep(0.2)
        seen = 0
        for path in [data, *data.rglob("*")]:
            if path.name in HARNESS_FILES or path.is_socket():
                continue
            mode = stat.S_IMODE(path.lstat().st_mode)
            assert mode & 0o077 == 0, f"{path} is {mode:o}"
            seen += 1
        assert seen > 10
        assert "closed to other users" in d.log()
        for cmd in (("cat", str(data / "catalog.db")), ("ls", str(data / "cache")),
                    ("cat", str(data / "state" / "lightboxd.log"))):
            done = _as_nobody(*cmd)
            assert done.returncode != 0 and "Permission denied" in done.stderr, (cmd, done)
    finally:
        d.stop()
        shutil.rmtree(data, ignore_errors=True)
    # One that belongs to someone else is refused with a message.
    other = short_tmpdir()
    try:
        os.chown(other, 65534, 65534)
        refused = DaemonProcess(other)
        refused.log_path = tmp_path / "refused.log"
        refused.start(wait=False)
        assert refused.proc is not None and refused.proc.wait(30) == 2
        assert "belongs to uid 65534" in refused.log()
        refused.close()
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_a_refused_second_daemon_does_nothing(make_daemon: Any, tmp_path: Path) -> None:
    first: DaemonProcess = make_daemon(config=SCAN_ONLY, start=False)
    shard = first.data_dir / "cache" / "thumbnails" / "grid" / "ab"
    shard.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = shard / f".ab{'0' * 14}.p{gone.pid}b{_boot_id()}.zz.tmp"
    dead.write_bytes(b"left by a daemon that died")
    first.start()
    assert not dead.exists(), "a dead writer's temp file is cleaned up at start"
    live = shard / f".ab{'1' * 14}.p{first.proc.pid}b{_boot_id()}.zz.tmp"  # type: ignore[union-attr]
    live.write_bytes(b"being written by the running daemon")
    before = {p: p.stat().st_mtime_ns for p in first.data_dir.glob("catalog.db*")}
    second = DaemonProcess(first.data_dir)
    second.log_path = tmp_path / "second.log"
    try:
        second.start(wait=False)
        assert second.proc is not None and second.proc.wait(30) == 3
        out = second.log()
        assert "already serving" in out
        for sign in ("catalog ready", "workers", "listening", "watch", "removed"):
            assert sign not in out, out
        assert live.exists(), "the running daemon's temp file survives"
        assert {p: p.stat().st_mtime_ns for p in first.data_dir.glob("catalog.db*")} == before
        assert first.call("hello")["daemon"] == "lightboxd"
    finally:
        second.close()


# -- secrets in the database URL -------------------------------------------------------------

def test_query_string_password_is_masked(pg_scratch_url: str, make_daemon: Any) -> None:
    assert "hunter2" not in mask("postgresql+asyncpg://u@h/db?password=hunter2&ssl=disable")
    assert mask("postgresql+asyncpg://u:hunter2@h/db") == "postgresql+asyncpg://u:***@h/db"
    url = f"{pg_scratch_url}?password=hunter2-in-the-query"
    d: DaemonProcess = make_daemon(args=["--database", url])
    shown = d.call("system.status")["database"]["url"]
    assert "hunter2" not in shown and "password=***" in shown
    printed = subprocess.run([sys.executable, "-m", "lightbox.daemon", "--data-dir",
                              str(d.data_dir), "--database", url, "--print-config"],
                             capture_output=True, text=True)
    assert printed.returncode == 0 and "password=***" in printed.stdout
    d.stop()
    assert "hunter2" not in d.log() + printed.stdout + printed.stderr
