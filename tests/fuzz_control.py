"""The long protocol fuzz, run by hand (not part of the suite): N hostile messages from a raw
DEALER, counting answers received against answers JSON-RPC requires, and internal errors.

    .venv/bin/python tests/fuzz_control.py [--messages 10000] [--endpoint ipc:///…]

Without ``--endpoint`` it starts its own daemon on a scratch data dir. The messages are the
suite's strategies (``test_control_bad_input.messages``): envelopes, batches and calls of
every read/control method with their own parameter names, holding lone surrogates, NUL
bytes, huge integers and numbers — and, one message in ten, batches built to amplify: up to
100 calls of ``photos.original``, ``photos.thumbnail``, ``photos.search`` and
``folders.list`` on a real photo with the largest lengths and limits, so a reply could be
hundreds of MiB. Prints one line of figures (with the daemon's RSS growth when it started
its own); exits 1 unless every required answer came and none was an internal error.
Internal errors are listed with their ``ref``, which the daemon's log shows next to the
traceback.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from lbtest import DaemonProcess, short_tmpdir
from test_control_bad_input import Raw, exchange, huge_numbers, messages


def amplifying(photo_id: int, folder_id: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Small batches asking for big replies about things that exist."""
    big = st.sampled_from([8 << 20, 1 << 30, 2**31, 2**63 - 1]) | huge_numbers
    def one(method: str, params: dict[str, Any],
            optional: dict[str, Any] | None = None) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({"method": st.just(method), "params": st.fixed_dictionaries(
            params, optional=optional or {})})

    call = st.one_of(
        one("photos.original", {"id": st.just(photo_id), "length": big},
            {"offset": st.integers(0, 64)}),
        one("photos.thumbnail", {"id": st.just(photo_id),
                                 "size": st.sampled_from(["grid", "preview"])}),
        one("photos.search", {}, {"limit": big}),
        one("folders.list", {"folder": st.just(folder_id)}, {"limit": big}),
    )
    return st.lists(call, min_size=10, max_size=100).map(
        lambda calls: [{"jsonrpc": "2.0", "id": i, **c} for i, c in enumerate(calls)])


def seed_photo(daemon: DaemonProcess) -> tuple[int, int]:
    """A root with one 9 MB photo on the daemon's own scratch dir: (photo id, folder id)."""
    from lightbox.daemon.media.samples import make_photo, save_jpeg

    root = daemon.data_dir.parent / f"{daemon.data_dir.name}-photos"
    root.mkdir(exist_ok=True)
    save_jpeg(make_photo(4000, 3000, seed=3), root / "big.jpg", quality=100)
    job = daemon.call("roots.add", {"path": str(root)})["job"]
    daemon.call("jobs.wait", {"id": job, "timeout": 120}, timeout=130)
    found = daemon.call("photos.search", {"status": "ok"})["photos"][0]
    return int(found["id"]), int(found["folder_id"])


def rss(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) << 10
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--endpoint", help="a running daemon (default: start one)")
    parser.add_argument("--wait", type=float, default=3.0,
                        help="seconds to wait for an answer before counting it missing")
    args = parser.parse_args()

    daemon = None
    endpoint = args.endpoint
    strategy = messages
    before = 0
    if endpoint is None:
        daemon = DaemonProcess(short_tmpdir("lbfuzz"))
        daemon.start()
        endpoint = daemon.endpoint
        photo_id, folder_id = seed_photo(daemon)
        strategy = st.one_of(messages, messages, messages, messages, messages, messages,
                             messages, messages, messages, amplifying(photo_id, folder_id))
        assert daemon.proc is not None
        before = rss(daemon.proc.pid)
    totals = {"sent": 0, "expected": 0, "received": 0}
    internal: list[Any] = []
    silent: list[Any] = []
    started = time.monotonic()
    r = Raw(endpoint)

    @settings(max_examples=args.messages, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(doc=strategy)
    def run(doc: Any) -> None:
        nonlocal r
        expected, received, bad = exchange(r, doc, wait=args.wait if expected_any(doc) else 0.05)
        totals["sent"] += 1
        totals["expected"] += expected
        totals["received"] += received
        internal.extend(bad)
        if received < expected:
            silent.append(doc)
            r.close()  # a late reply must not be read as the next message's
            r = Raw(endpoint)

    growth = ""
    try:
        run()
        if daemon is not None and daemon.proc is not None:
            peak = rss(daemon.proc.pid, "VmHWM")
            growth = f", daemon RSS {before >> 20} MiB -> peak {peak >> 20} MiB"
    finally:
        r.close()
        if daemon is not None:
            daemon.close()
            shutil.rmtree(daemon.data_dir, ignore_errors=True)
            shutil.rmtree(daemon.data_dir.parent / f"{daemon.data_dir.name}-photos",
                          ignore_errors=True)
    seconds = time.monotonic() - started
    print(f"messages {totals['sent']}, answers received/expected "
          f"{totals['received']}/{totals['expected']}, silent {len(silent)}, internal errors "
          f"for bad input {len(internal)}{growth}, {seconds:.0f} s")
    for doc in silent[:10]:
        print("  no answer to:", ascii(doc)[:200])
    for rep in internal[:10]:
        print("  internal error:", rep["error"].get("data"))
    return 0 if not silent and not internal else 1


def expected_any(doc: Any) -> bool:
    from test_control_bad_input import _any_answer

    return _any_answer(doc)


if __name__ == "__main__":
    sys.exit(main())
