"""Conformance of the source kinds: ``local`` and ``s3`` answer the library's five questions
the same way (list with a completeness verdict, stat, read a byte range of the listed entry
only, fingerprint, a picklable locator).

The S3 kind runs against moto over real HTTP, through the test proxy.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from s3env import ACCESS_KEY, REGION, SECRET_KEY, S3Env

from lightbox.daemon.kinds import S3Config, SourceKind, for_source
from lightbox.daemon.media.confine import CHANGED, Refused

FILES = {"a.jpg": b"A" * 10, "sub/b.png": b"BB" * 300, "sub/deeper/c.gif": bytes(range(256)),
         "sub/space name é.jpg": b"odd key"}


@dataclass
class Subject:
    kind: SourceKind
    put: Callable[[str, bytes], None]
    delete: Callable[[str], None]


def _local(tmp_path: Path) -> Subject:
    root = tmp_path / "root"
    root.mkdir()

    def put(rel: str, data: bytes) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        before = p.stat().st_mtime_ns if p.exists() else 0
        p.write_bytes(data)
        if p.stat().st_mtime_ns == before:      # coarse clocks: make the change visible
            os.utime(p, ns=(before + 1_000_000, before + 1_000_000))

    return Subject(for_source("local", str(root), None), put, lambda rel: (root / rel).unlink())


def _s3(env: S3Env) -> Subject:
    bucket = env.make_bucket()
    config = {"bucket": bucket, "endpoint": env.endpoint, "region": REGION, "prefix": "lib",
              "addressing_style": "path", "access_key_id": ACCESS_KEY}
    kind = for_source("s3", None, config, {"secret_access_key": SECRET_KEY})

    def put(rel: str, data: bytes) -> None:
        env.put(bucket, "lib/" + rel, data)

    return Subject(kind, put, lambda rel: env.delete(bucket, "lib/" + rel))


@pytest.fixture(params=["local", "s3"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    if request.param == "local":
        yield _local(tmp_path)
    else:
        yield _s3(request.getfixturevalue("s3"))


def _fill(sub: Subject) -> None:
    for rel, data in FILES.items():
        sub.put(rel, data)


def test_list_prefix_is_complete_and_whole(subject: Subject) -> None:
    _fill(subject)
    listing = subject.kind.list_prefix()
    assert listing.complete and listing.reason is None
    assert {e.rel: e.size for e in listing.entries} == {k: len(v) for k, v in FILES.items()}
    below = subject.kind.list_prefix("sub/deeper/")
    assert [e.rel for e in below.entries] == ["sub/deeper/c.gif"] and below.complete


def test_stat_matches_the_listing_and_none_when_absent(subject: Subject) -> None:
    _fill(subject)
    listed = {e.rel: e for e in subject.kind.list_prefix().entries}
    for rel in FILES:
        got = subject.kind.stat(rel)
        assert got is not None
        assert subject.kind.fingerprint(got) == subject.kind.fingerprint(listed[rel])
    assert subject.kind.stat("nope.jpg") is None


def test_read_range_reads_the_listed_entry(subject: Subject) -> None:
    _fill(subject)
    entries = {e.rel: e for e in subject.kind.list_prefix().entries}
    rel = "sub/deeper/c.gif"
    loc = subject.kind.locator(rel, entries[rel])
    assert subject.kind.read_range(loc, 0, 16) == FILES[rel][:16]
    assert subject.kind.read_range(loc, 250, 100) == FILES[rel][250:]
    assert subject.kind.read_range(loc, 256, 10) == b""
    odd = "sub/space name é.jpg"
    assert subject.kind.read_range(subject.kind.locator(odd, entries[odd]), 0, 100) == b"odd key"


def test_a_changed_entry_has_another_fingerprint_and_is_refused(subject: Subject) -> None:
    _fill(subject)
    rel = "a.jpg"
    old = next(e for e in subject.kind.list_prefix().entries if e.rel == rel)
    loc = subject.kind.locator(rel, old)
    time.sleep(0.01)
    subject.put(rel, b"Z" * 12)
    new = subject.kind.stat(rel)
    assert new is not None
    assert subject.kind.fingerprint(new) != subject.kind.fingerprint(old)
    with pytest.raises(Refused) as info:
        subject.kind.read_range(loc, 0, 4)
    assert info.value.reason == CHANGED
    assert subject.kind.read_range(subject.kind.locator(rel, new), 0, 4) == b"ZZZZ"


def test_deleted_entries_leave_the_listing(subject: Subject) -> None:
    _fill(subject)
    subject.delete("sub/b.png")
    listing = subject.kind.list_prefix()
    assert listing.complete
    assert "sub/b.png" not in {e.rel for e in listing.entries}
    assert len(listing.entries) == len(FILES) - 1


def test_locators_cross_a_process_boundary(subject: Subject) -> None:
    _fill(subject)
    entry = subject.kind.list_prefix().entries[0]
    loc: Any = subject.kind.locator(entry.rel, entry)
    back = pickle.loads(pickle.dumps(loc))
    assert back == loc
    assert subject.kind.read_range(back, 0, 3) == FILES[entry.rel][:3]
    assert back.name == entry.rel.rpartition("/")[2]
    if isinstance(getattr(loc, "config", None), S3Config):
        assert SECRET_KEY not in repr(loc)      # the secret travels, but never in a repr
