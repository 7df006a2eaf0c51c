"""``backups/real_dirs.py``: the folders a copy is placed into are real directories on the
target's own filesystem (no symbolic link, no file, no mount on the way)."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from lbtest import need

from lightbox.daemon.backups.real_dirs import NotBeneath, RealDirs


def test_real_folders_and_missing_ones_pass(tmp_path: Path) -> None:
    (tmp_path / "photos" / "2020").mkdir(parents=True)
    dirs = RealDirs(str(tmp_path))
    dirs.check("photos/2020")
    dirs.check("photos/2020/new/deeper")  # not made yet: makedirs makes it real
    dirs.check("")


def test_a_symbolic_link_on_the_way_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    (target / "photos").mkdir(parents=True)
    (target / "photos" / "2020").symlink_to(outside)
    dirs = RealDirs(str(target))
    with pytest.raises(NotBeneath) as caught:
        dirs.check("photos/2020/summer")
    assert caught.value.errno == errno.ELOOP
    assert "symbolic link" in str(caught.value)
    dirs.check("photos/2021")  # its neighbours are still fine


def test_a_file_or_dot_dot_on_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "2020").write_bytes(b"not a folder")
    dirs = RealDirs(str(tmp_path))
    with pytest.raises(NotBeneath) as caught:
        dirs.check("photos/2020/x")
    assert caught.value.errno == errno.ENOTDIR
    with pytest.raises(NotBeneath):
        dirs.check("photos/../..")


@pytest.fixture
def tmpfs_at() -> Iterator[list[Path]]:
    mounted: list[Path] = []
    yield mounted
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_filesystem_mounted_inside_the_target_is_refused(tmp_path: Path,
                                                          tmpfs_at: list[Path]) -> None:
    inner = tmp_path / "photos" / "usb"
    inner.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(inner)],
                          capture_output=True, text=True)
    need(done.returncode == 0, "mounting a tmpfs (root, CAP_SYS_ADMIN)",
         f"run the tests as root in a container that allows mounts ({done.stderr.strip()})")
    tmpfs_at.append(inner)
    dirs = RealDirs(str(tmp_path))
    dirs.check("photos")
    with pytest.raises(NotBeneath) as caught:
        dirs.check("photos/usb/2020")
    assert caught.value.errno == errno.EXDEV
    assert "mounted inside" in str(caught.value)
