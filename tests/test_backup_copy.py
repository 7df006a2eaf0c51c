"""The copy of a backup batch on its own (``backups.files``, no daemon): the kernel copy
(``sendfile``) and its fallback, the read-back compared with the catalog's sha256 (a
rotten source is damaged and never placed, a copy that reads back wrong is failed), and
``place`` with ``renameat2(RENAME_NOREPLACE)`` and without it.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from lightbox.daemon.backups import files
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
    # A file where a folder should be: the run stops (not a missing target).
    (target / "r" / "file").write_bytes(b"in the way")
    with pytest.raises(files.TargetError) as err:
        files.place(str(target), temp(b"three"), "r/file/c.jpg", sha(b"three"))
    assert err.value.reason == files.TARGET_IO


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
