"""Control-socket round trip: lightboxd's `hello` against a bare pyzmq asyncio echo.

Both servers run in their own process on an ipc socket and are driven by the same client
harness: C client processes, each a plain DEALER doing sequential round trips, measuring
each one. Reported per server: p50 and p99 latency and requests per second, for 1 and for 8
concurrent clients, and the ratio lightbox / echo (latency: lower is better; rate: higher).
Target (issue 2): lightbox p50 within 2x of the bare echo. Also reported: each server's CPU
time (user + sys, from ``/proc/PID/stat``) per request, which is less noisy than latency on a
shared machine and is what grows the ratio under load.

``--floor`` adds a third server, the floor of a ``hello``: the echo's work plus what the
protocol itself needs, ``protocol.parse_message`` of the request and ``protocol.dumps`` of a
hello-sized reply, in lightbox's receive loop (every ready message taken with ``NOBLOCK``,
one await when none is left, the reply sent on the socket itself).

    .venv/bin/python benchmarks/control_roundtrip.py [--requests 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

ECHO_SERVER = r"""
import asyncio, sys, zmq, zmq.asyncio
async def main(addr):
    ctx = zmq.asyncio.Context()
    s = ctx.socket(zmq.ROUTER)
    s.bind(addr)
    print("ready", flush=True)
    while True:
        frames = await s.recv_multipart()
        await s.send_multipart(frames)
asyncio.run(main(sys.argv[1]))
"""

FLOOR_SERVER = r"""
import asyncio, sys, zmq, zmq.asyncio
from lightbox.common import protocol
REPLY = {"protocol": 1, "daemon": "lightboxd", "version": "0.0.0",
         "features": ["events.since", "batch", "frames"], "boot": "0123456789abcdef",
         "seq": 12, "events": "ipc:///tmp/x/run/events.sock", "permission": "admin",
         "max_message_bytes": 16777216}
async def main(addr):
    ctx = zmq.asyncio.Context()
    s = ctx.socket(zmq.ROUTER)
    s.bind(addr)
    raw = zmq.Socket.shadow(s.underlying)
    nb = int(zmq.NOBLOCK)
    print("ready", flush=True)
    while True:
        try:
            ident, body = raw.recv_multipart(nb)
        except zmq.Again:
            ident, body = await s.recv_multipart()
        calls, _ = protocol.parse_message(body, 16 << 20)
        reply = protocol.dumps(protocol.result_reply(calls[0].id, dict(REPLY)))
        raw.send_multipart([ident, reply], nb)
asyncio.run(main(sys.argv[1]))
"""

HELLO = b'{"jsonrpc":"2.0","id":1,"method":"hello"}'


def client(addr: str, count: int, warmup: int, out: mp.Queue[list[float]]) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(addr)
    lat: list[float] = []
    for i in range(warmup + count):
        t0 = time.perf_counter()
        s.send(HELLO)
        s.recv_multipart()
        if i >= warmup:
            lat.append(time.perf_counter() - t0)
    s.close()
    ctx.term()
    out.put(lat)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(addr: str, clients: int, requests: int, pid: int) -> dict[str, float]:
    per = max(1, requests // clients)
    q: mp.Queue[list[float]] = mp.Queue()
    procs = [mp.Process(target=client, args=(addr, per, 200, q)) for _ in range(clients)]
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    lats: list[float] = []
    for _ in procs:
        lats += q.get()
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    # Includes the 200 warm-up round trips of each client: they are served too.
    cpu = cpu_seconds(pid) - cpu0
    served = len(lats) + 200 * clients
    lats.sort()
    return {
        "p50_ms": lats[len(lats) // 2] * 1000,
        "p99_ms": lats[int(len(lats) * 0.99)] * 1000,
        "rps": len(lats) / wall,
        "cpu_us": cpu / served * 1e6,
    }


def start_echo(tmp: Path, code: str = ECHO_SERVER,
               name: str = "echo") -> tuple[subprocess.Popen[str], str]:
    addr = f"ipc://{tmp}/{name}.sock"
    proc = subprocess.Popen([sys.executable, "-c", code, addr], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc, addr


def start_lightbox(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    data = tmp / "lb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_")}
    proc = subprocess.Popen([sys.executable, "-m", "lightbox.daemon", "--data-dir", str(data),
                             "--log-level", "warning"], env=env)
    addr = f"ipc://{data}/run/control.sock"
    ctx = zmq.Context()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (data / "run" / "control.sock").exists():
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(addr)
            s.send(HELLO)
            if s.poll(500):
                s.recv()
                s.close()
                break
            s.close()
        time.sleep(0.1)
    ctx.term()
    return proc, addr


def ratios(summary: dict[str, dict[str, float]], base: str, keys: tuple[str, ...],
           header: str) -> None:
    """A table of lightbox's figures divided by ``base``'s, for 1 and 8 clients."""
    print()
    print(header)
    print("|" + "---|" * (len(keys) + 1))
    for clients in (1, 8):
        b, lb_ = summary[f"{base}/{clients}"], summary[f"lightbox/{clients}"]
        print(f"| {clients} | " + " | ".join(f"{lb_[k] / b[k]:.2f}" for k in keys) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=5000, help="per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians kept")
    ap.add_argument("--floor", action="store_true",
                    help="also measure the floor: echo + the protocol's parse and encode")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lbb-", dir="/tmp"))
    servers: dict[str, tuple[subprocess.Popen[Any], str]] = {"echo": start_echo(tmp)}
    if args.floor:
        servers["floor"] = start_echo(tmp, FLOOR_SERVER, "floor")
    servers["lightbox"] = start_lightbox(tmp)
    names = list(servers)
    results: dict[str, dict[int, list[dict[str, float]]]] = {name: {} for name in names}
    try:
        for _ in range(args.rounds):
            for clients in (1, 8):
                for name, (proc, addr) in servers.items():
                    results[name].setdefault(clients, []).append(
                        drive(addr, clients, args.requests, proc.pid))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    def med(name: str, clients: int, key: str) -> float:
        return statistics.median(r[key] for r in results[name][clients])

    summary = {}
    print(f"control round trip over ipc, {args.requests} requests x {args.rounds} rounds "
          f"(medians), {os.cpu_count()} CPUs")
    print("| clients | server | p50 ms | p99 ms | req/s | server CPU us/req |")
    print("|---|---|---|---|---|---|")
    for clients in (1, 8):
        for name in names:
            row = {k: med(name, clients, k) for k in ("p50_ms", "p99_ms", "rps", "cpu_us")}
            summary[f"{name}/{clients}"] = row
            print(f"| {clients} | {name} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | "
                  f"{row['rps']:.0f} | {row['cpu_us']:.0f} |")
    print()
    ratios(summary, "echo", ("p50_ms", "p99_ms", "rps", "cpu_us"),
           "| clients | p50 ratio (lightbox/echo) | p99 ratio | req/s ratio | CPU ratio |")
    if args.floor:
        ratios(summary, "floor", ("p50_ms", "cpu_us"),
               "| clients | p50 lightbox / floor | CPU lightbox / floor |")
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
