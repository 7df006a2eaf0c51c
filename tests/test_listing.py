"""Directory listings for the scanner (``library/listing.py``), on real directories.

A rescan trusts a folder whose listing digest equals the one stored when the catalog last
matched it, without reading its rows: so the digest must change with every change that
matters (a name, a size, an mtime down to the nanosecond, an inode), and the fast path over
whole lists must list exactly what the entry-by-entry path lists, for every kind of entry.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from lightbox.daemon.library import listing
from lightbox.daemon.library.listing import Listing, list_dir


def _fields(lst: Listing) -> tuple[object, ...]:
    return (lst.rel, sorted(lst.dirs), lst.files, sorted(lst.problems), lst.unreadable,
            sorted(lst.skipped), lst.complete, lst.gone, lst.digest, lst.key, lst.unchanged,
            lst.count)


def _both(root: Path, rel: str = "", exclude: frozenset[str] = frozenset(),
          ignore: tuple[str, ...] = (), expected: str | None = None
          ) -> tuple[Listing | None, Listing]:
    path = str(root / rel) if rel else str(root)
    fast = listing._list_fast(path, rel, exclude, ignore, expected)
    slow = listing._list_entries(path, rel, exclude, ignore, expected)
    return fast, slow


def _tree(root: Path) -> None:
    (root / "sub").mkdir()
    (root / "x.xmp").mkdir()            # a folder whose name is an ignored file's
    (root / ".git").mkdir()             # hidden folder: not listed
    (root / "@eaDir").mkdir()           # NAS metadata: not listed
    for name in ("b.jpg", "a.JPG", "c.Xmp", "d.xmp.jpg", ".hidden.jpg", "e.json",
                 "noext", "f.", "g\u212akv.jpg", "h.m\u212av", "\u00e9t\u00e9.jpg",
                 "i.tar.gz", "j.MP4", "k.js"):
        (root / name).write_bytes(b"x" * len(name))
    (root / "link.jpg").symlink_to(root / "b.jpg")
    (root / ".hidden-link").symlink_to(root / "b.jpg")
    os.mkfifo(root / "pipe.jpg")


def test_fast_path_lists_what_the_entry_by_entry_path_lists(tmp_path: Path) -> None:
    _tree(tmp_path)
    fast, slow = _both(tmp_path)
    assert fast is not None
    assert _fields(fast) == _fields(slow)
    names = [e.name for e in slow.files]
    # What is kept: candidates by name, whatever their case; ignored extensions (also via
    # a Kelvin sign, which str.lower makes a "k") and hidden names are not.
    assert names == sorted(["b.jpg", "a.JPG", "d.xmp.jpg", "noext", "f.", "g\u212akv.jpg",
                            "\u00e9t\u00e9.jpg", "i.tar.gz"])
    assert sorted(slow.dirs) == ["sub", "x.xmp"]
    assert sorted(slow.skipped) == [("link.jpg", "symlink"), ("pipe.jpg", "not_regular")]
    assert slow.count == len(names) and slow.complete and slow.digest is not None


def test_fast_path_with_the_roots_patterns(tmp_path: Path) -> None:
    _tree(tmp_path)
    fast, slow = _both(tmp_path, ignore=("b.*", "sub", "*.gz"))
    assert fast is not None
    assert _fields(fast) == _fields(slow)
    assert "b.jpg" not in [e.name for e in fast.files] and "sub" not in fast.dirs
    assert "i.tar.gz" not in [e.name for e in fast.files]


def test_unusual_directories_are_listed_entry_by_entry(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"1")
    (tmp_path / "busy.jpg").write_bytes(b"2")
    # A name still being written (``exclude``) is unreadable: neither new nor gone.
    fast, slow = _both(tmp_path, exclude=frozenset({"busy.jpg"}))
    assert fast is None
    assert slow.unreadable == {"busy.jpg"} and slow.digest is None
    assert list_dir(str(tmp_path), "", frozenset({"busy.jpg"})).unreadable == {"busy.jpg"}
    # A name that is not UTF-8 is reported, and skipped.
    os.close(os.open(os.fsencode(tmp_path) + b"/bad\xff.jpg", os.O_CREAT | os.O_WRONLY))
    lst = list_dir(str(tmp_path), "")
    assert listing._list_fast(str(tmp_path), "", frozenset(), (), None) is None
    assert [e.name for e in lst.files] == ["a.jpg", "busy.jpg"]
    assert any("not valid UTF-8" in p for p in lst.problems)


def test_gone_and_not_a_directory(tmp_path: Path) -> None:
    assert list_dir(str(tmp_path), "nothing").gone
    (tmp_path / "file").write_bytes(b"")
    assert list_dir(str(tmp_path), "file").gone
    lst = list_dir(str(tmp_path), "file/below")
    assert not lst.complete and lst.problems  # a path through a file: a problem, not gone


def _as_nobody(fn: Callable[[], tuple[bool, bool, int]]) -> tuple[bool, bool, int]:
    """``fn()`` in a forked child that has given up root (uid and gid 65534): root reads
    every directory, so a permission problem shows only to another user."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(w, json.dumps(fn()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and out, "the child failed"
    complete, gone, problems = json.loads(out)
    return bool(complete), bool(gone), int(problems)


def test_unreadable_directory_is_a_problem(tmp_path: Path) -> None:
    base = tmp_path
    if os.geteuid() == 0:
        # Run by root (CI): the tree where an unprivileged user can reach it, the folder
        # its own and unreadable to it, and the listing made as that user.
        base = Path(tempfile.mkdtemp(prefix="lb-unreadable-"))
        base.chmod(0o711)
    locked = base / "locked"
    locked.mkdir(mode=0o300)
    (locked / "a.jpg").write_bytes(b"x")
    try:
        def listing() -> tuple[bool, bool, int]:
            lst = list_dir(str(base), "locked")
            return lst.complete, lst.gone, len(lst.problems)

        if os.geteuid() == 0:
            os.chown(locked, 65534, 65534)
            complete, gone, problems = _as_nobody(listing)
            # Root itself lists it: the same call, the other answer.
            assert listing() == (True, False, 0)
        else:
            complete, gone, problems = listing()
        assert not complete and not gone and problems
    finally:
        locked.chmod(0o700)
        if base != tmp_path:
            shutil.rmtree(base)


def test_socket_is_skipped_never_opened(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s.jpg"))
        fast, slow = _both(tmp_path)
        assert fast is not None and _fields(fast) == _fields(slow)
        assert slow.skipped == [("s.jpg", "not_regular")] and not slow.files
    finally:
        sock.close()


def test_digest_notices_every_change(tmp_path: Path) -> None:
    f = tmp_path / "a.jpg"
    f.write_bytes(b"12345")
    (tmp_path / "b.jpg").write_bytes(b"x")
    st = f.stat()
    first = list_dir(str(tmp_path), "")
    assert first.digest is not None
    again = list_dir(str(tmp_path), "", expected=first.digest)
    assert again.unchanged and not again.files and again.count == 2
    seen = {first.digest}

    def digest() -> str:
        d = list_dir(str(tmp_path), "").digest
        assert d is not None
        return d

    # mtime one nanosecond later, same second
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    seen.add(digest())
    # same size, other content, mtime restored: nothing a listing can see, same digest
    f.write_bytes(b"54321")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert digest() == first.digest
    # size
    f.write_bytes(b"123456")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    seen.add(digest())
    # inode (replaced by a copy with the same size and mtime)
    f.write_bytes(b"12345")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert digest() == first.digest
    (tmp_path / "tmp").write_bytes(b"12345")
    os.utime(tmp_path / "tmp", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp_path / "tmp", f)
    seen.add(digest())
    # a name
    os.rename(tmp_path / "b.jpg", tmp_path / "c.jpg")
    seen.add(digest())
    # a file added, then an ignored one (no change: it is not listed)
    (tmp_path / "d.jpg").write_bytes(b"")
    seen.add(digest())
    before = digest()
    (tmp_path / "d.xmp").write_bytes(b"")
    assert digest() == before
    assert len(seen) == 6


def test_digest_of_fingerprints_out_of_range() -> None:
    """An mtime past 2262 (a bogus clock) does not fit the arrays: a tagged text form,
    still telling listings apart."""
    class Near:
        st_size, st_mtime_ns, st_ino = 5, 2**62, 1

    class Far:
        st_size, st_mtime_ns, st_ino = 5, 2**70, 1

    class Farther:
        st_size, st_mtime_ns, st_ino = 5, 2**70 + 1, 1

    a = listing._digest(["a", "b"], [Far(), Far()])  # type: ignore[list-item]
    b = listing._digest(["a", "b"], [Far(), Farther()])  # type: ignore[list-item]
    c = listing._digest(["a", "b"], [Near(), Near()])  # type: ignore[list-item]
    assert len({a, b, c}) == 3
