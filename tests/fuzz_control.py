"""The long protocol fuzz, run by hand (not part of the suite): N hostile messages from a raw
DEALER, counting answers received against answers JSON-RPC requires, and internal errors.

    .venv/bin/python tests/fuzz_control.py [--messages 10000] [--endpoint ipc:///…]

Without ``--endpoint`` it starts its own daemon on a scratch data dir. The messages are the
suite's strategies (``test_control_bad_input.messages``): envelopes, batches and calls of
every read/control method with their own parameter names, holding lone surrogates, NUL
bytes, huge integers and numbers. Prints one line of figures; exits 1 unless every required
answer came and none was an internal error. Internal errors are listed with their ``ref``,
which the daemon's log shows next to the traceback.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from lbtest import DaemonProcess, short_tmpdir
from test_control_bad_input import Raw, exchange, messages


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
    if endpoint is None:
        daemon = DaemonProcess(short_tmpdir("lbfuzz"))
        daemon.start()
        endpoint = daemon.endpoint
    totals = {"sent": 0, "expected": 0, "received": 0}
    internal: list[Any] = []
    silent: list[Any] = []
    started = time.monotonic()
    r = Raw(endpoint)

    @settings(max_examples=args.messages, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(doc=messages)
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

    try:
        run()
    finally:
        r.close()
        if daemon is not None:
            daemon.close()
            shutil.rmtree(daemon.data_dir, ignore_errors=True)
    seconds = time.monotonic() - started
    print(f"messages {totals['sent']}, answers received/expected "
          f"{totals['received']}/{totals['expected']}, silent {len(silent)}, internal errors "
          f"for bad input {len(internal)}, {seconds:.0f} s")
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
