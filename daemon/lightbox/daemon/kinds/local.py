"""The ``local`` source kind: a folder on this machine, read through ``media.confine``.

The scanner keeps its own, faster walk (listing digests, moves by inode, the pool for big
trees); this class is the same rules behind the kind interface, for code that must not care
which kind a source is (``photos.original``, the conformance tests, tools).
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable
from typing import Any

from lightbox.daemon.kinds.base import UNREADABLE, Entry, Listing
from lightbox.daemon.media.confine import LocalFile, open_photo


class LocalKind:
    kind = "local"

    def __init__(self, root: str) -> None:
        self.root = root

    def list_prefix(self, prefix: str = "",
                    on_page: Callable[[int, int], None] | None = None) -> Listing:
        out = Listing()
        start = os.path.join(self.root, prefix) if prefix else self.root
        stack = [start]
        while stack:
            here = stack.pop()
            try:
                with os.scandir(here) as it:
                    items = list(it)
            except OSError as exc:
                out.cut(UNREADABLE, f"cannot list {here}: {exc.strerror or exc}")
                continue
            for item in items:
                try:
                    st = item.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat_mod.S_ISDIR(st.st_mode):
                    stack.append(item.path)
                elif stat_mod.S_ISREG(st.st_mode):
                    rel = os.path.relpath(item.path, self.root)
                    out.entries.append(Entry(rel, st.st_size, st.st_mtime_ns, None, st.st_ino))
                else:
                    out.skipped.append(f"{item.path}: not a regular file")
        out.pages = 1
        out.entries.sort(key=lambda e: e.rel)
        if on_page is not None:
            on_page(1, len(out.entries))
        return out

    def stat(self, rel: str) -> Entry | None:
        try:
            st = os.lstat(os.path.join(self.root, rel))
        except FileNotFoundError:
            return None
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        return Entry(rel, st.st_size, st.st_mtime_ns, None, st.st_ino)

    def fingerprint(self, entry: Entry) -> tuple[Any, ...]:
        return (entry.size, entry.mtime_ns, entry.inode)

    def locator(self, rel: str, entry: Entry) -> LocalFile:
        return LocalFile(self.root, rel, size=entry.size, mtime_ns=entry.mtime_ns,
                         inode=entry.inode)

    def read_range(self, loc: LocalFile, offset: int, length: int) -> bytes:
        f, st = open_photo(loc)
        with f:
            return os.pread(f.fileno(), length, offset) if offset < st.st_size else b""
