"""Every file of the real-world corpus, through the real WorkerPool, against MANIFEST.tsv.

Policy decisions a photo tool has to make, as asserted below:

- Dates: "0000:00:00 00:00:00" (camera clock never set) and other impossible dates are not
  stored (taken_at None) even though exiftool prints them.
- Orientation: only 1..8 is stored; the corpus's 0 and >8 values become None.
- GPS: stored only when both coordinates are present and valid. ``gps=4294967295,None`` (an
  unsigned -1) and ``gps=0,0`` ("null island", what phones write without a fix) are stored as
  no location. ``gps=,`` (Nikon D5000: seconds written as 0/0) is empty for exiftool; we read
  0/0 seconds as 0 because degrees and minutes carry the real position, so either "no
  location" or a valid pair is accepted there. ``gps=7,0`` is a real coordinate and is kept.
- Classes: ``unsupported`` HEIC/HEIF decode through pillow-heif, and a RAW may be indexed
  through its embedded JPEG preview; both then count as ok. Everything else must match.
"""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path
from typing import Any

import pytest
from lbtest import need
from media_fixtures import CORPUS, check_corpus_metadata, corpus_manifest

from lightbox.daemon.media import DEFAULT_SPECS, Analysis, AnalyzeRequest
from lightbox.daemon.media.sniff import MIME
from lightbox.daemon.workers import WorkerPool, analyze_in_pool

pytestmark = pytest.mark.corpus

ROWS = corpus_manifest() if (CORPUS / "MANIFEST.tsv").is_file() else []
RAW_FORMATS = {fmt for fmt, mime in MIME.items() if mime.startswith("image/x-")}


async def _run_corpus(thumbs: Path) -> tuple[dict[str, Analysis], dict[str, Any]]:
    pool = WorkerPool(2, task_timeout=60)
    await pool.start()
    try:
        started = time.monotonic()
        analyses = await asyncio.gather(*(
            analyze_in_pool(pool, AnalyzeRequest(str(CORPUS / row["path"]), str(thumbs),
                                                 DEFAULT_SPECS))
            for row in ROWS))
        elapsed = time.monotonic() - started
        echo = await pool.submit(str.upper, "still answering")
        status = pool.status()
    finally:
        await pool.stop()
    return ({row["path"]: a for row, a in zip(ROWS, analyses, strict=True)},
            {"elapsed": elapsed, "echo": echo, "status": status})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Analysis],
                                                             dict[str, Any]]:
    need(bool(ROWS), f"the image corpus at {CORPUS}",
         "check out ../shared beside the project or set LIGHTBOX_CORPUS")
    return asyncio.run(_run_corpus(tmp_path_factory.mktemp("corpus-thumbs")))


def test_the_pool_survives_the_whole_corpus(corpus: tuple[dict[str, Analysis],
                                                          dict[str, Any]]) -> None:
    results, run = corpus
    status = run["status"]
    outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
    for row in ROWS:
        a = results[row["path"]]
        outcomes[(row["class"], "ok" if a.ok else str(a.error_kind))] += 1
    print(f"\ncorpus: {len(ROWS)} files in {run['elapsed']:.2f} s through 2 workers")
    for (cls, outcome), n in sorted(outcomes.items()):
        print(f"  manifest {cls:<12} -> {outcome:<12} {n}")
    assert run["echo"] == "STILL ANSWERING"
    assert status["alive"] == 2 and status["crashes"] == 0 and status["timeouts"] == 0
    assert status["completed"] == len(ROWS) + 1          # + the echo
    assert status["replaced"] == 0


@pytest.mark.parametrize("row", ROWS or [None], ids=lambda r: r["path"] if r else "absent")
def test_corpus_file(corpus: tuple[dict[str, Analysis], dict[str, Any]],
                     row: dict[str, Any]) -> None:
    a = corpus[0][row["path"]]
    cls, kv = row["class"], row["kv"]
    assert a.sha256 == row["sha256"]
    assert a.size == int(row["size"])
    assert a.error_kind not in ("timeout", "crash"), a.error
    if cls == "unsupported" and a.ok:
        assert a.format == "heif" or a.format in RAW_FORMATS, a
        assert set(a.thumbs) == {"grid", "preview"}
        check_corpus_metadata(a, kv)
    elif cls == "unsupported":
        assert a.error_kind == "unsupported" and a.error, a
    elif cls == "ok":
        assert a.ok, (a.error_kind, a.error)
        assert set(a.thumbs) == {"grid", "preview"}
        # A hash for every picture with structure; none (and a note saying so) for flat,
        # blown-out or smooth-gradient frames, which would all look alike.
        assert a.phash is not None or \
            "no perceptual hash: the image has too little structure" in a.notes
        assert a.width and a.height
        check_corpus_metadata(a, kv)
    else:
        assert not a.ok and a.error and a.error.strip(), a
        assert "\n" not in a.error
        expected_kind = {"bomb": {"bomb"}, "empty": {"empty"},
                         "corrupt": {"corrupt", "unsupported"}}[cls]
        assert a.error_kind in expected_kind, (a.error_kind, a.error)
        assert not a.thumbs
