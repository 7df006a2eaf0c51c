"""The whole real-world corpus indexed by the real daemon, checked against MANIFEST.tsv.

Every file is either indexed with the metadata its manifest expects or recorded as an error
with a reason (policies in test_media_corpus). Nothing crashes, hangs or kills a worker, and
the daemon still answers afterwards.
"""

from __future__ import annotations

import collections
import shutil
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from lbtest import DaemonProcess, need, short_tmpdir
from media_fixtures import CORPUS, check_corpus_metadata, corpus_manifest

pytestmark = pytest.mark.corpus

ROWS = corpus_manifest() if (CORPUS / "MANIFEST.tsv").is_file() else []
RAW = {"dng", "arw", "nef", "cr2", "crw", "cr3", "rw2", "orf", "raf", "pef"}


@pytest.fixture(scope="module")
def indexed() -> Any:
    need(bool(ROWS), f"the image corpus at {CORPUS}",
         "check out ../shared beside the project or set LIGHTBOX_CORPUS")
    d = DaemonProcess(short_tmpdir(), {"library": {"watch": False}})
    d.start()
    try:
        started = time.monotonic()
        job = d.call("roots.add", {"path": str(CORPUS)})["job"]
        done = d.call("jobs.wait", {"id": job, "timeout": 280}, timeout=290)
        elapsed = time.monotonic() - started
        # The large JPEGs' previews come after indexing (``library.previews``).
        deadline = time.monotonic() + 280
        while d.call("system.status")["components"]["indexer"]["previews"]["pending"]:
            assert time.monotonic() < deadline, "previews still being made"
            time.sleep(0.2)
        con = sqlite3.connect(f"file:{d.data_dir / 'catalog.db'}?mode=ro", uri=True)
        con.row_factory = sqlite3.Row
        rows = {(r["folder"] + "/" + r["name"]).lstrip("/"): dict(r) for r in con.execute(
            "SELECT p.*, f.path AS folder FROM photos p JOIN folders f ON f.id = p.folder_id")}
        con.close()
        status = d.call("system.status")
        yield d, done, rows, status, elapsed
    finally:
        d.close()
        shutil.rmtree(d.data_dir, ignore_errors=True)


def as_analysis(row: dict[str, Any]) -> SimpleNamespace:
    taken = row["taken_at"]
    return SimpleNamespace(**{**row, "taken_at": taken[:19].replace(" ", "T") if taken else None})


def test_every_file_is_accounted_for(indexed: Any) -> None:
    d, done, rows, status, elapsed = indexed
    assert done["state"] == "succeeded", done
    missing = [r["path"] for r in ROWS if r["path"] not in rows]
    assert not missing, f"not in the catalog: {missing}"
    workers = status["components"]["workers"]
    assert workers["crashes"] == 0 and workers["timeouts"] == 0, workers
    assert workers["alive"] == workers["processes"]
    assert status["counts"]["pending"] == 0
    # Only frames too small or flat to hash (8x8 GIFs, blown-out or black frames) go
    # without a dHash.
    unhashed = [p for p, r in rows.items() if r["status"] == "ok" and r["phash"] is None]
    assert len(unhashed) <= 12, unhashed
    outcomes = collections.Counter(
        (r["class"], rows[r["path"]]["status"]) for r in ROWS)
    print(f"\ncorpus through the daemon: {len(ROWS)} files in {elapsed:.1f} s: "
          + ", ".join(f"{c}->{s}: {n}" for (c, s), n in sorted(outcomes.items())))
    assert d.call("hello")["daemon"] == "lightboxd"


@pytest.mark.parametrize("entry", ROWS or [None], ids=lambda r: r["path"] if r else "absent")
def test_file_matches_manifest(indexed: Any, entry: dict[str, Any] | None) -> None:
    assert entry is not None
    row = indexed[2][entry["path"]]
    cls, kv = entry["class"], entry["kv"]
    assert row["size"] == int(entry["size"])
    if row["sha256"] is not None:
        assert row["sha256"] == entry["sha256"]
    if cls == "ok" or (cls == "unsupported" and row["status"] == "ok"):
        assert row["status"] == "ok", (row["status"], row["error"])
        if cls == "unsupported":
            assert row["format"] == "heif" or row["format"] in RAW, row["format"]
        assert row["sha256"] == entry["sha256"]
        assert row["thumbs"] == 3
        check_corpus_metadata(as_analysis(row), kv)
    else:
        assert row["status"] == "error", (cls, row["status"])
        assert row["error"] and "\n" not in row["error"]
        assert "Traceback" not in row["error"]


def test_thumbnails_of_the_corpus_decode(indexed: Any) -> None:
    from PIL import Image

    d = indexed[0]
    files = list(Path(d.data_dir, "cache", "thumbnails").rglob("*.jpg"))
    assert len(files) >= 2 * 140
    for f in files:
        with Image.open(f) as img:
            img.load()
            assert max(img.size) <= 1280
