"""The copy of a backup batch on its own (``backups.files``, no daemon): the kernel copy
(``sendfile``) and its fallback, the read-back compared with the catalog's sha256 (a
rotten source is damaged and never placed, a copy that reads back wrong is failed), and
``place`` with ``renameat2(RENAME_NOREPLACE)`` and without it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from lightbox.daemon.backups import files
from lightbox.daemon.backups.real_dirs import NotBeneath
from lightbox.daemon.media.confine import LocalFile


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_items(root: Path, contents: dict[str, bytes]) -> list[files.CopyItem]:
    items = []
    for i, (rel, data) in enumerate(sorted(contents.items())):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        st = path.stat()
        items.append(files.CopyItem(i, LocalFile(str(root), rel, st.st_size, st.st_mtime_ns,
                                                 st.st_ino, st.st_dev), sha(data),
                                    st.st_size, f"photos/{rel}"))
    return items


@pytest.fixture
def target(tmp_path: Path) -> Path:
    t = tmp_path / "nas"
    t.mkdir()
    files.prepare(str(t), "nas", "m1")
    return t


CONTENTS = {"a/small.jpg": b"x" * 1500, "a/empty.jpg": b"",
            "b/c/big.jpg": os.urandom(3 * files.CHUNK + 17), "exact.jpg": b"y" * files.CHUNK}


def test_a_batch_is_copied_byte_for_byte_and_no_temp_file_stays(tmp_path: Path,
                                                                target: Path) -> None:
    items = make_items(tmp_path / "lib", CONTENTS)
    out = files.LocalStore(str(target), "m1").copy_batch(items)
    assert out.stop is None
    assert sorted(o.status for o in out.outcomes) == ["copied"] * len(CONTENTS)
    for rel, data in CONTENTS.items():
        assert (target / "photos" / rel).read_bytes() == data
    assert sum(o.bytes for o in out.outcomes) == sum(map(len, CONTENTS.values()))
    assert not list((target / files.TMP_DIR).iterdir())
    # Again: the names are taken by the same content, which is adopted, not copied twice.
    again = files.copy_batch(str(target), items)
    assert sorted(o.status for o in again.outcomes) == ["adopted"] * len(CONTENTS)
    assert not list((target / files.TMP_DIR).iterdir())


def test_a_rotten_source_is_damaged_and_never_placed(tmp_path: Path, target: Path) -> None:
    lib = tmp_path / "lib"
    items = make_items(lib, {"good.jpg": b"g" * 3000, "rot.jpg": b"r" * 3000})
    victim = lib / "rot.jpg"
    st = victim.stat()
    victim.write_bytes(b"r" * 1500 + b"R" + b"r" * 1499)  # same size, mtime restored
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    out = files.copy_batch(str(target), items)
    status = {o.item.loc.path: o.status for o in out.outcomes}
    assert status == {str(lib / "good.jpg"): "copied", str(victim): "damaged"}
    assert "content changed at the source" in next(o.message for o in out.outcomes
                                                   if o.status == "damaged")
    assert not (target / "photos" / "rot.jpg").exists()
    assert not list((target / files.TMP_DIR).iterdir())


def test_a_copy_that_reads_back_wrong_is_failed_and_not_placed(
        tmp_path: Path, target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    items = make_items(tmp_path / "lib", {"one.jpg": b"1" * 2000})
    real = files._digest_fd

    def flipped(fd: int, size: int) -> tuple[str, int]:
        digest, n = real(fd, size)
        return ("0" if digest[0] != "0" else "1") + digest[1:], n

    monkeypatch.setattr(files, "_digest_fd", flipped)
    out = files.copy_batch(str(target), items)
    assert [o.status for o in out.outcomes] == ["failed"]
    assert "read back differs" in out.outcomes[0].message
    assert not (target / "photos" / "one.jpg").exists()
    assert not list((target / files.TMP_DIR).iterdir())


def test_sendfile_errors_fall_back_to_reads_or_stop_a_full_target(
        tmp_path: Path, target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(2 * files.CHUNK + 5)
    items = make_items(tmp_path / "lib", {"v.jpg": data})

    def eio(*_: Any) -> int:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "sendfile", eio)  # either disk: reads and writes tell which
    out = files.copy_batch(str(target), items)
    assert [o.status for o in out.outcomes] == ["copied"]
    assert (target / "photos" / "v.jpg").read_bytes() == data

    def full(*_: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "sendfile", full)
    (target / "photos" / "v.jpg").unlink()
    out = files.copy_batch(str(target), items)
    assert out.stop is not None and out.stop.reason == files.DISK_FULL
    assert out.outcomes == []
    assert not list((target / files.TMP_DIR).iterdir())


@pytest.mark.parametrize("noreplace", [True, False], ids=["renameat2", "look-then-rename"])
def test_place_never_overwrites_and_creates_nothing_when_the_target_went_away(
        tmp_path: Path, target: Path, monkeypatch: pytest.MonkeyPatch, noreplace: bool) -> None:
    if not noreplace:
        files.has_syncfs()
        monkeypatch.setattr(files, "_renameat2", False)
    tmp = target / files.TMP_DIR

    def temp(data: bytes) -> str:
        p = tmp / f"t{len(list(tmp.iterdir()))}.part"
        p.write_bytes(data)
        return str(p)

    # A folder that does not exist yet is made.
    assert files.place(str(target), temp(b"one"), "r/new/dir/a.jpg", sha(b"one")) == \
        ("r/new/dir/a.jpg", False)
    assert (target / "r/new/dir/a.jpg").read_bytes() == b"one"
    # The same content under the name: adopted, the temp file dropped.
    t = temp(b"one")
    assert files.place(str(target), t, "r/new/dir/a.jpg", sha(b"one")) == \
        ("r/new/dir/a.jpg", True)
    assert not os.path.exists(t)
    # Other content: a variant name beside it, the first file untouched.
    rel, adopted = files.place(str(target), temp(b"two"), "r/new/dir/a.jpg", sha(b"two"))
    assert (rel, adopted) == (f"r/new/dir/a.{sha(b'two')[:8]}.jpg", False)
    assert (target / "r/new/dir/a.jpg").read_bytes() == b"one"
    assert (target / rel).read_bytes() == b"two"
    # The temp file is gone (the disk was unmounted): target_missing, no folder created.
    with pytest.raises(files.TargetError) as err:
        files.place(str(target), str(tmp / "gone.part"), "r/other/b.jpg", sha(b"x"))
    assert err.value.reason == files.TARGET_MISSING
    assert not (target / "r" / "other").exists()
    # A file where a folder should be: that file fails (not a missing target, and not
    # the whole run: the copies into other folders go on).
    (target / "r" / "file").write_bytes(b"in the way")
    with pytest.raises(NotBeneath) as in_the_way:
        files.place(str(target), temp(b"three"), "r/file/c.jpg", sha(b"three"))
    assert in_the_way.value.errno == errno.ENOTDIR and "not a folder" in str(in_the_way.value)


def test_renameat2_takes_any_file_name_and_never_replaces(tmp_path: Path) -> None:
    """The call without a ctypes prototype (``_rename_noreplace``): names that are not
    UTF-8 (kept by Python as surrogate escapes) and non-ASCII names reach the kernel as the
    same bytes, a taken name is refused (False) and left as it was, and an error of the
    call is raised with its errno."""
    files.has_syncfs()
    if not files._renameat2:
        pytest.skip("no renameat2 in this C library")
    odd = os.fsdecode(b"caf\xe9-\xff.jpg")  # not UTF-8
    for name in (odd, "Ünïcødé 写真.jpg"):
        src = tmp_path / "t.part"
        src.write_bytes(b"new")
        dst = str(tmp_path / name)
        assert files._rename_noreplace(str(src), dst) is True
        assert os.fsencode(name) in os.listdir(os.fsencode(tmp_path))
        src.write_bytes(b"other")
        assert files._rename_noreplace(str(src), dst) is False
        assert Path(dst).read_bytes() == b"new" and src.read_bytes() == b"other"
    with pytest.raises(FileNotFoundError):  # a folder of the new name is missing
        files._rename_noreplace(str(tmp_path / "t.part"), str(tmp_path / "no" / "x.jpg"))


@pytest.mark.parametrize("size", [0, 2000, files.CHUNK, 2 * files.CHUNK + 3])
def test_verify_one_tells_ok_changed_longer_and_missing(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "f.jpg").write_bytes(data)
    assert files.verify_one(str(tmp_path), "f.jpg", sha(data), size) == ("ok", size)
    (tmp_path / "f.jpg").write_bytes(data + b"!")  # a byte more: not the manifest's file
    assert files.verify_one(str(tmp_path), "f.jpg", sha(data), size)[0] == "changed"
    if size:
        flipped = bytearray(data)
        flipped[size // 2] ^= 1
        (tmp_path / "f.jpg").write_bytes(bytes(flipped))
        assert files.verify_one(str(tmp_path), "f.jpg", sha(data), size) == ("changed", size)
    assert files.verify_one(str(tmp_path), "gone.jpg", sha(data), size) == ("missing", 0)


# -- the pipeline of a run (``CopyRun``): one flush per batch ---------------------------------

@pytest.fixture(params=["unnamed", "named"])
def copies(request: pytest.FixtureRequest, target: Path,
           monkeypatch: pytest.MonkeyPatch) -> str:
    """How a run writes its copies: unnamed files linked into place (where the file system
    has O_TMPFILE, as this one must for the test to mean anything) or temporary names in
    the temp dir (the way on file systems without it)."""
    if request.param == "named":
        monkeypatch.setattr(files, "tmpfile_works", lambda root: False)
    elif not files.tmpfile_works(str(target)):
        pytest.skip("this file system has no O_TMPFILE")
    mode: str = request.param
    return mode


def make_batches(root: Path, batches: int, per: int) -> list[list[files.CopyItem]]:
    """``batches`` batches of ``per`` files, the first of each large enough to be written
    behind (``WRITE_BEHIND``), the others small."""
    contents = {f"b{b}/f{i}.jpg": os.urandom(files.WRITE_BEHIND + 10 if i == 0 else 100 + i)
                for b in range(batches) for i in range(per)}
    items = make_items(root, contents)
    return [[it for it in items if it.rel.startswith(f"photos/b{b}/")] for b in range(batches)]


def drain(run: files.CopyRun, trace: Trace | None = None) -> list[files.Batch]:
    """Every batch the run hands over, in order (each marked in ``trace``); run closed."""
    out = []
    try:
        while (b := run.next()) is not None:
            if trace is not None:
                trace.mark(b)
            out.append(b)
    finally:
        run.close()
    return out


class Trace:
    """The order of a run's steps, each real call wrapped (the file system does the work):
    writes of temp files, flushes (start and end), renames into place, hand-overs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str]] = []
        self.folders: set[tuple[str, str]] = set()  # (writer thread, its temp files' folder)
        self.unnamed: list[tuple[str, str]] = []  # (source rel, the folder it was made in)
        send, place, flush = files._send_to_temp, files.place, files.CopyRun._flush_now
        send_unnamed = files._send_to_tmpfile

        def sent(loc: LocalFile, root_fd: int, tmp: str, fsync: bool) -> int:
            n = send(loc, root_fd, tmp, fsync)
            self.events.append(("written", loc.rel))
            self.folders.add((threading.current_thread().name, os.path.dirname(tmp)))
            return n

        def sent_unnamed(loc: LocalFile, root_fd: int, root: str, rel: str,
                         dirs: Any) -> tuple[int, int]:
            got = send_unnamed(loc, root_fd, root, rel, dirs)
            self.events.append(("written", loc.rel))
            self.unnamed.append((loc.rel, os.path.realpath(f"/proc/self/fd/{got[0]}")))
            return got

        def placed(root: str, tmp: str | int, rel: str, sha256: str,
                   dirs: Any = None) -> tuple[str, bool]:
            got = place(root, tmp, rel, sha256, dirs)
            self.events.append(("renamed", rel.removeprefix("photos/")))
            return got

        def flushed(run: files.CopyRun) -> None:
            self.events.append(("flush", "start"))
            try:
                self.before_flush(len([e for e in self.events if e == ("flush", "start")]))
                flush(run)
            except files.TargetError:
                self.events.append(("flush", "failed"))
                raise
            self.events.append(("flush", "end"))

        monkeypatch.setattr(files, "_send_to_temp", sent)
        monkeypatch.setattr(files, "_send_to_tmpfile", sent_unnamed)
        monkeypatch.setattr(files, "place", placed)
        monkeypatch.setattr(files.CopyRun, "_flush_now", flushed)

    def before_flush(self, n: int) -> None:
        """Called before the n-th flush (1-based); a test makes it fail."""

    def mark(self, batch: files.Batch) -> None:
        self.events.append(("handed", ",".join(o.item.loc.rel for o in batch.outcomes)))

    def flushes(self) -> list[tuple[int, int]]:
        """(start, end) positions of the flushes that succeeded."""
        starts = [i for i, e in enumerate(self.events) if e == ("flush", "start")]
        ends = [i for i, e in enumerate(self.events) if e[0] == "flush" and e[1] != "start"]
        return [(s, e) for s, e in zip(starts, ends, strict=False)
                if self.events[e] == ("flush", "end")]

    def at(self, event: tuple[str, str]) -> int:
        return self.events.index(event)

    def covered(self, after: int, before: int | None = None) -> bool:
        """Whether a flush that succeeded began after position ``after`` (and ended before
        ``before``)."""
        return any(after < s and (before is None or e < before) for s, e in self.flushes())


def test_an_unnamed_copy_is_linked_never_over_a_name_and_nothing_is_made_where_the_target_went(
        tmp_path: Path, target: Path) -> None:
    """``place`` of an unnamed copy (a descriptor): linked into a folder it makes, adopted
    when the name holds the same content, a variant beside other content; and when the
    target is gone from its path (unmounted, moved away) nothing is created there, by the
    writer or by ``place``."""
    if not files.tmpfile_works(str(target)):
        pytest.skip("this file system has no O_TMPFILE")
    from lightbox.daemon.backups.real_dirs import RealDirs

    items = make_items(tmp_path / "lib", {"x/one.jpg": b"one", "x/two.jpg": b"two"})
    dirs = RealDirs(str(target))
    root_fd = os.open(tmp_path / "lib", os.O_PATH | os.O_DIRECTORY)
    try:
        def unnamed(it: files.CopyItem) -> int:
            assert isinstance(it.loc, LocalFile)
            fd, n = files._send_to_tmpfile(it.loc, root_fd, str(target), it.rel, dirs)
            assert n == it.size
            return fd

        fd = unnamed(items[0])
        assert (target / "photos" / "x").is_dir() and not list((target / "photos" / "x").iterdir())
        assert files.place(str(target), fd, items[0].rel, items[0].sha256, dirs) == \
            (items[0].rel, False)
        os.close(fd)
        assert (target / items[0].rel).read_bytes() == b"one"
        fd = unnamed(items[0])  # the same content again: adopted, nothing more linked
        assert files.place(str(target), fd, items[0].rel, items[0].sha256, dirs) == \
            (items[0].rel, True)
        os.close(fd)
        fd = unnamed(items[1])  # other content for the taken name: a variant beside it
        rel, adopted = files.place(str(target), fd, items[0].rel, items[1].sha256, dirs)
        os.close(fd)
        assert not adopted and rel == files.variant(items[0].rel, items[1].sha256)
        assert (target / rel).read_bytes() == b"two"
        assert (target / items[0].rel).read_bytes() == b"one"
        # The target moved away and an empty folder in its place (as a mount point is):
        fd = unnamed(items[1])
        away = tmp_path / "away"
        target.rename(away)
        target.mkdir()
        with pytest.raises(files.TargetError) as err:
            files.place(str(target), fd, "photos/y/two.jpg", items[1].sha256, dirs)
        os.close(fd)
        assert err.value.reason == files.TARGET_MISSING
        other = files.CopyItem(9, items[1].loc, items[1].sha256, items[1].size, "photos/z/2.jpg")
        with pytest.raises(files.TargetError) as err:
            unnamed(other)
        assert err.value.reason == files.TARGET_MISSING
        assert list(target.iterdir()) == []
        assert sorted(files.walk_files(str(away))) == sorted([items[0].rel, rel])
    finally:
        os.close(root_fd)


def test_a_run_beyond_its_descriptor_budget_writes_the_rest_under_temporary_names(
        tmp_path: Path, target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unnamed copies hold a descriptor each until placed: a run takes at most its budget
    of them (``_fd_room``) and writes the others under temporary names, the same way."""
    if not files.tmpfile_works(str(target)):
        pytest.skip("this file system has no O_TMPFILE")
    monkeypatch.setattr(files, "_fd_room", lambda want: 3)
    batches = make_batches(tmp_path / "lib", 4, 5)
    trace = Trace(monkeypatch)
    got = drain(files.CopyRun(str(target), batches, writers=2, placers=2), trace)
    assert trace.unnamed and trace.folders  # both kinds in one run
    outcomes = [o for b in got for o in b.outcomes]
    assert sorted(o.status for o in outcomes) == ["copied"] * 20
    for o in outcomes:
        assert (target / o.rel).read_bytes() == (tmp_path / "lib" / o.item.loc.rel).read_bytes()
    assert not list((target / files.TMP_DIR).iterdir())
    assert len(os.listdir("/proc/self/fd")) < 64  # every unnamed copy was closed


FD_ROOM = """
import resource, sys
from lightbox.daemon.backups import files
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
room = files._fd_room(1000)
print(room, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)
"""


def test_the_descriptor_budget_raises_the_soft_limit_up_to_the_hard_one() -> None:
    out = subprocess.run([sys.executable, "-c", FD_ROOM], capture_output=True, text=True,
                         check=True).stdout.split()
    room, soft, hard = (int(x) for x in out)
    if hard != -1 and hard < 256 + 1000 + files.FD_RESERVE:
        assert soft == hard and room < 1000
    else:
        assert room == 1000 and soft >= 1000 + files.FD_RESERVE


@pytest.mark.parametrize("writers", [1, 2])
def test_a_run_shares_its_flushes_and_hands_over_only_what_a_flush_covered(
        tmp_path: Path, target: Path, monkeypatch: pytest.MonkeyPatch, writers: int,
        copies: str) -> None:
    batches = make_batches(tmp_path / "lib", 4, 5)
    trace = Trace(monkeypatch)
    run = files.CopyRun(str(target), batches, writers=writers, placers=2)
    got = drain(run, trace)
    tmp = str(target / files.TMP_DIR)
    if copies == "named":
        # Each writer creates its temp files in a folder of its own (creates in one folder
        # take turns on its lock), all below the temp dir; none is left after the run.
        by_writer = {w: {d for w2, d in trace.folders if w2 == w} for w, _ in trace.folders}
        assert all(len(d) == 1 for d in by_writer.values())
        used = [d.pop() for d in by_writer.values()]
        assert len(set(used)) == len(used) and all(d == tmp or os.path.dirname(d) == tmp
                                                   for d in used)
        assert writers == 1 or len(used) == 2
        assert not trace.unnamed
    else:
        # Every copy was an unnamed file made in the folder its name is in (no name in
        # the temp dir, no rename across folders), and nothing else is on the target.
        assert not trace.folders
        assert len(trace.unnamed) == 20
        for rel, made_in in trace.unnamed:
            assert made_in.startswith(str(target / "photos" / os.path.dirname(rel)) + "/")
            assert "(deleted)" in made_in or made_in.endswith("/#")  # unnamed when written
        assert sorted(files.walk_files(str(target))) == sorted(
            f"photos/{it.loc.rel}" for b in batches for it in b)
    assert all(b.stop is None for b in got)
    outcomes = [o for b in got for o in b.outcomes]
    assert sorted(o.status for o in outcomes) == ["copied"] * 20
    umask = os.umask(0)
    os.umask(umask)
    for o in outcomes:
        assert (target / o.rel).read_bytes() == (tmp_path / "lib" / o.item.loc.rel).read_bytes()
        # The same file either way: its owner's alone, as the temporary file was.
        assert (target / o.rel).stat().st_mode & 0o777 == 0o600 & ~umask
        assert (target / o.rel).stat().st_nlink == 1
    assert not list((target / files.TMP_DIR).iterdir())
    # One flush per batch at most (its data's, which also covers the renames before it),
    # and one for the last renames (copy_batch + settle: two per batch).
    assert 1 <= run.stats["flushes"] <= len(batches) + 1
    for b in got:
        handed = trace.at(("handed", ",".join(o.item.loc.rel for o in b.outcomes)))
        for o in b.outcomes:
            written = trace.at(("written", o.item.loc.rel))
            renamed = trace.at(("renamed", o.item.loc.rel))
            # Read back (and renamed) only after a flush that began after it was written...
            assert trace.covered(written, renamed), o.item.loc.rel
            # ...handed over (recorded) only after a flush that began after its rename.
            assert trace.covered(renamed, handed), o.item.loc.rel


@pytest.mark.parametrize("failing", [2, 3])
def test_a_failed_flush_places_nothing_it_covered_and_reports_no_copy_it_did_not_prove(
        tmp_path: Path, target: Path, monkeypatch: pytest.MonkeyPatch, failing: int,
        copies: str) -> None:
    batches = make_batches(tmp_path / "lib", 5, 4)
    trace = Trace(monkeypatch)

    def fail(n: int) -> None:
        if n == failing:
            raise files.TargetError(files.TARGET_IO, "writing to the target failed (EIO)")

    trace.before_flush = fail  # type: ignore[method-assign]
    run = files.CopyRun(str(target), batches, writers=1, placers=2)
    got = drain(run, trace)
    stops = [b.stop for b in got if b.stop is not None]
    assert stops and all(s.reason == files.TARGET_IO for s in stops)
    everything = {it.loc.rel: it for b in batches for it in b}
    copied = {o.item.loc.rel for b in got for o in b.outcomes if o.status == "copied"}
    placed = {r for r, it in everything.items() if (target / it.rel).exists()}
    assert placed < set(everything)  # the run stopped
    for rel in placed:
        written, renamed = trace.at(("written", rel)), trace.at(("renamed", rel))
        # Placed only after a flush that succeeded made its data durable; whole.
        assert trace.covered(written, renamed), rel
        assert (target / everything[rel].rel).read_bytes() == (tmp_path / "lib" / rel).read_bytes()
    # A batch is reported copied (recorded in the manifest) exactly when a flush that
    # succeeded began after its last rename: the others stay on the target unrecorded,
    # for the next run to adopt.
    expected: set[str] = set()
    for batch in batches:
        renamed = [it.loc.rel for it in batch if it.loc.rel in placed]
        if renamed and trace.covered(max(trace.at(("renamed", r)) for r in renamed)):
            expected |= set(renamed)
    assert copied == expected
    assert copied < placed or failing == 2
    # Nothing written but not placed is left behind, and no batch began after the failure.
    assert not list((target / files.TMP_DIR).iterdir())
    assert set(files.walk_files(str(target))) == {everything[r].rel for r in placed}
    # (One writer: at most the batch it had taken when the flush failed is written after.)
    fail_at = trace.at(("flush", "failed"))
    assert len([i for i, e in enumerate(trace.events)
                if i > fail_at and e[0] == "written" and e[1].endswith("/f0.jpg")]) <= 1
    # The next run adopts by hash what was placed (not copied twice) and copies the rest.
    monkeypatch.undo()
    again = drain(files.CopyRun(str(target), batches, writers=2))
    status = {o.item.loc.rel: o.status for b in again for o in b.outcomes}
    assert all(b.stop is None for b in again)
    assert {r for r, s in status.items() if s == "adopted"} == placed
    assert {r for r, s in status.items() if s == "copied"} == set(everything) - placed


KILLED_RUN = """
import json, os, signal, sys
from lightbox.daemon.backups import files
from lightbox.daemon.media.confine import LocalFile

spec = json.loads(sys.argv[1])
batches = [[files.CopyItem(i["id"], LocalFile(*i["loc"]), i["sha"], i["size"], i["rel"])
            for i in b] for b in spec["batches"]]
places = 0
ask, place = files._GroupFlush.ask, files.place

def asked(flusher, urgent=True):
    if spec["at"] == "after-placing" and not urgent:
        os.kill(os.getpid(), signal.SIGKILL)  # batch 0 placed, its renames not flushed
    return ask(flusher, urgent)

def placed(root, tmp, rel, sha256, dirs=None):
    global places
    places += 1
    if spec["at"] == "mid-read-back" and places == len(batches[0]) + 2:
        os.kill(os.getpid(), signal.SIGKILL)  # batch 1 flushed, one of it placed
    return place(root, tmp, rel, sha256, dirs)

files._GroupFlush.ask = asked
files.place = placed
if spec["copies"] == "named":
    files.tmpfile_works = lambda root: False
run = files.CopyRun(spec["target"], batches, writers=1)
while run.next() is not None:
    pass
run.close()
sys.exit(3)  # not killed: the test's hooks did not fire
"""


@pytest.mark.parametrize("at", ["after-placing", "mid-read-back"])
def test_a_run_killed_between_its_stages_leaves_no_partial_file_under_a_final_name(
        tmp_path: Path, target: Path, at: str, copies: str) -> None:
    batches = make_batches(tmp_path / "lib", 4, 4)
    spec = {"target": str(target), "at": at, "copies": copies, "batches": [[{
        "id": it.photo_id, "sha": it.sha256, "size": it.size, "rel": it.rel,
        "loc": [it.loc.root, it.loc.rel, it.loc.size, it.loc.mtime_ns, it.loc.inode,
                it.loc.device]} for it in b] for b in batches]}
    done = subprocess.run([sys.executable, "-c", KILLED_RUN, json.dumps(spec)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, done.stderr
    everything = [it for b in batches for it in b]
    placed = [it for it in everything if (target / it.rel).exists()]
    # Whatever has a final name is whole and the source's bytes; the rest is only in temp.
    for it in placed:
        assert (target / it.rel).read_bytes() == (tmp_path / "lib" / it.loc.rel).read_bytes()
    assert {it.rel for it in batches[0]} <= {it.rel for it in placed}
    assert not any((target / it.rel).exists() for b in batches[2:] for it in b)
    if at == "mid-read-back":  # one of batch 1 placed, three not
        assert len([it for it in batches[1] if (target / it.rel).exists()]) == 1
    # Named copies: the rest only under temporary names in the temp dir; unnamed ones:
    # nothing at all (they went with the process), no name anywhere but the placed ones.
    assert set(files.walk_files(str(target))) == {it.rel for it in placed}
    if copies == "named":
        assert all(p.suffix == ".part" for p in (target / files.TMP_DIR).iterdir())
        assert at != "mid-read-back" or len(list((target / files.TMP_DIR).iterdir())) >= 3
    else:
        assert not list((target / files.TMP_DIR).iterdir())
    # The next run (after clear_temp, as a run starts) adopts what was placed, copies the
    # rest, and leaves nothing in temp.
    files.clear_temp(str(target))
    again = drain(files.CopyRun(str(target), batches, writers=1))
    status = {o.item.rel: o.status for b in again for o in b.outcomes}
    assert {r for r, s in status.items() if s == "adopted"} == {it.rel for it in placed}
    assert {r for r, s in status.items() if s == "copied"} == \
        {it.rel for it in everything} - {it.rel for it in placed}
    for it in everything:
        assert (target / it.rel).read_bytes() == (tmp_path / "lib" / it.loc.rel).read_bytes()
    assert not list((target / files.TMP_DIR).iterdir())


def test_a_runs_batches_spread_its_large_files_among_the_small_ones(tmp_path: Path) -> None:
    """In the catalog's order a folder of camera files comes as one run; the batches mix
    them with the small files (the disk's work beside the CPU's), each photo in exactly
    one batch, each kind in its own order, within the batch limits."""
    from lightbox.daemon.backups import service

    def item(i: int, size: int) -> files.CopyItem:
        return files.CopyItem(i, LocalFile(str(tmp_path), f"f{i}"), "0" * 64, size, f"r/f{i}")

    large = [item(i, 4 << 20) for i in range(20)]
    small = [item(100 + i, 2000) for i in range(4000)]
    batches = service._batches(large + small, threads=2)
    flat = [it.photo_id for b in batches for it in b]
    assert sorted(flat) == sorted(it.photo_id for it in large + small)
    assert [i for i in flat if i < 100] == list(range(20))
    assert [i for i in flat if i >= 100] == [it.photo_id for it in small]
    assert all(len(b) <= service.BATCH_FILES for b in batches)
    per = [sum(1 for it in b if it.size >= service.SPREAD_BYTES) for b in batches]
    assert len(batches) == 4 and per == [5, 5, 5, 5]
    # Only one kind: as it was.
    assert [it.photo_id for b in service._batches(small) for it in b] == \
        [it.photo_id for it in small]
