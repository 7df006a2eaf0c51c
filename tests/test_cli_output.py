"""What a new user and a script see from the CLI: names quoted as ``ls`` quotes them (control
characters cannot reach the terminal) while ``--json`` stays exact, dimensions after the EXIF
rotation, a quiet stop on a closed pipe, clear usage errors, a missing client key, the
``make link`` step of ``make run``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lbtest import DaemonProcess, run_cli, short_tmpdir

from lightbox.cli.quote import safe_line, shell_name
from lightbox.daemon.media import samples

ROOT = Path(__file__).resolve().parent.parent
NASTY = "evil\x1b]2;owned\x07\r\n\tb\x08\u009b31m.jpg"


def test_shell_name_quotes_control_characters_like_ls() -> None:
    assert shell_name("IMG_0001.JPG") == "IMG_0001.JPG"
    assert shell_name("with space.jpg") == "with space.jpg"  # columns as before
    assert shell_name("a\x1bb") == "'a'$'\\033''b'"
    assert shell_name("it's\n") == "'it'\\''s'$'\\n'"
    assert shell_name("\a\b\r\t\x7f") == "$'\\a\\b\\r\\t\\177'"
    assert shell_name("x\u009by") == "'x'$'\\302\\233''y'"  # C1, as UTF-8 bytes
    assert safe_line("camera \x1b[31mred") == "camera \\033[31mred"
    # What bash makes of the quoted form is the name again.
    for name in (NASTY, "a'b\x1bc", "\x01"):
        echoed = subprocess.run(["bash", "-c", f"printf %s {shell_name(name)}"],
                                capture_output=True, check=True).stdout
        assert echoed == name.encode(), name


@pytest.fixture(scope="module")
def lib() -> Iterator[tuple[DaemonProcess, Path]]:
    root = short_tmpdir("lbq")
    folder = root / "photos"
    folder.mkdir()
    img = samples.make_photo(400, 300, seed=3)
    samples.save_jpeg(img, folder / NASTY, samples.ExifSpec(orientation=6))
    samples.save_jpeg(img, folder / "plain.jpg", None)
    d = DaemonProcess(short_tmpdir("lbqd"))
    d.start()
    out = d.call("roots.add", {"path": str(folder)})
    done = d.call("jobs.wait", {"id": out["job"], "timeout": 60}, timeout=70)
    assert done["state"] == "succeeded", done
    yield d, folder
    d.close()


def env_for(d: DaemonProcess) -> dict[str, str]:
    return {"LIGHTBOX_DATA_DIR": str(d.data_dir)}


def test_ls_search_info_quote_names_and_json_stays_exact(lib: tuple[DaemonProcess, Path]
                                                          ) -> None:
    d, folder = lib
    for args in (("ls", str(folder)), ("search", "evil"), ("info", str(folder / NASTY)),
                 ("dupes",)):
        r = run_cli(*args, env=env_for(d))
        assert r.returncode == 0, (args, r.stderr)
        assert not any(c in r.stdout for c in "\x1b\x07\r\x08\u009b"), (args, r.stdout)
        if args[0] != "dupes":
            want = shell_name(str(folder / NASTY)) if args[0] == "search" else \
                shell_name(NASTY)
            assert want in r.stdout, (args, r.stdout)
    ls = run_cli("ls", str(folder), env=env_for(d)).stdout.splitlines()
    nasty = next(line for line in ls if line.startswith("'evil'"))
    assert " 300x400 " in nasty  # stored 400x300, orientation 6: shown upright
    assert " 400x300 " in next(line for line in ls if line.startswith("plain.jpg"))
    info = run_cli("info", str(folder / NASTY), env=env_for(d)).stdout
    assert "300x400 (stored 400x300, turned upright)" in info
    doc = json.loads(run_cli("ls", str(folder), "--json", env=env_for(d)).stdout)
    assert NASTY in [p["name"] for p in doc["photos"]]  # --json: the name itself
    got = json.loads(run_cli("info", str(folder / NASTY), "--json", env=env_for(d)).stdout)
    assert (got["width"], got["height"], got["orientation"]) == (400, 300, 6)


def test_a_closed_pipe_is_quiet(lib: tuple[DaemonProcess, Path]) -> None:
    """``lightbox search --all | head -2``: no "[Errno 32] Broken pipe", exit 141."""
    d, _ = lib
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_")}
    env.update(env_for(d))
    p = subprocess.Popen([sys.executable, "-m", "lightbox.cli.main", "call"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()  # the reader is gone before the first line
    err = p.stderr.read().decode()
    assert p.wait(60) == 141, err
    assert err == ""


def test_usage_errors_exit_2_with_a_clear_line(lib: tuple[DaemonProcess, Path]) -> None:
    d, folder = lib
    r = run_cli("search", "--from", "2024", "--to", "2023", env=env_for(d))
    assert r.returncode == 2 and "before" in r.stderr
    r = run_cli("call", "photos.search", "limit=abc", env=env_for(d))
    assert r.returncode == 2
    assert r.stderr.strip() == "lightbox: limit: expected a whole number, got 'abc'"
    for args in (("ls", str(folder), "--limit", "0"), ("search", "--limit", "2001"),
                 ("dupes", "--threshold", "17")):
        r = run_cli(*args, env=env_for(d))
        assert r.returncode == 2 and "outside" in r.stderr, (args, r.stderr)
    r = run_cli("status", "--help")
    assert "Show system.status" not in r.stdout and "uptime" in r.stdout


def test_hints_keep_the_data_dir() -> None:
    data = short_tmpdir("lbqh")
    r = run_cli("--data-dir", str(data), "status")
    assert r.returncode == 3
    assert f"lightbox --data-dir {data} start" in r.stderr


def test_tcp_without_a_client_key_names_keys_generate(tmp_path: Path) -> None:
    from lightbox.common import keys

    public, _ = keys.generate(tmp_path, "server")
    r = run_cli("--socket", "tcp://127.0.0.1:9", "--server-key", str(public), "status",
                env={"XDG_CONFIG_HOME": str(tmp_path / "empty")})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "lightbox keys generate" in lines[0]
    assert "Traceback" not in r.stderr


def _stacks(d: DaemonProcess) -> str:
    """The daemon's threads, dumped by its SIGUSR2 handler, for a failure's report."""
    if d.proc is None or d.proc.poll() is not None:
        return ""
    d.proc.send_signal(signal.SIGUSR2)
    import time

    time.sleep(1.0)
    return "\n" + d.log()[-8000:]


def test_ctrl_c_while_waiting_says_the_job_goes_on(tmp_path: Path) -> None:
    """Ctrl-C during ``scan --wait``: one line saying how to wait again, no asyncio noise."""
    many = tmp_path / "many"
    samples.make_demo_library(many / "0", 1, seed=2, megapixels=0.3, processes=1)
    # A scan that lasts on a fast machine: 40,000 names (hard links to one photo) in 80
    # folders. With 16 photos a quiet machine finished the scan before the Ctrl-C came.
    photo = next(p for p in (many / "0").rglob("*") if p.is_file())
    for f in range(80):
        (many / f"f{f:02}").mkdir()
        for n in range(500):
            os.link(photo, many / f"f{f:02}" / f"p{n:03}.jpg")
    d = DaemonProcess(short_tmpdir("lbqc"), {"workers": {"processes": 1}})
    d.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_")}
        env.update(env_for(d))
        p = subprocess.Popen([sys.executable, "-m", "lightbox.cli.main", "roots", "add",
                              str(many), "--wait"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        deadline = 60.0
        import time

        start = time.monotonic()
        waiting = 0
        while time.monotonic() - start < deadline:
            # Running, and the CLI inside its wait: its jobs.wait (a long poll) is in flight
            # beside this status call, twice in a row 0.3 s apart so that it is not the
            # roots.add reply still on its way (a Ctrl-C before the wait is a plain
            # interrupt).
            st = d.call("system.status", {})
            running = d.call("jobs.list", {"state": "running"})["jobs"]
            if running and st["components"]["control"]["in_flight"] >= 2:
                waiting += 1
                if waiting == 2:
                    break
                time.sleep(0.3)
                continue
            waiting = 0
            time.sleep(0.02)
        else:
            pytest.fail("the scan never ran while the CLI waited")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        job = running[0]
        # The daemon answering all along: 40,000 hard links to one photo once made each batch
        # of the scan compare every new name with every known row of that inode on the event
        # loop (minutes; on a slow machine before the interrupt, the CLI's own jobs.wait
        # unanswered). The daemon's stacks go with a failure.
        assert p.returncode == 130, (out, err, _stacks(d))
        assert f"job {job['id']} goes on" in err and f"jobs wait {job['id']}" in err
        assert "Future exception" not in err and "Traceback" not in err
        # The daemon outlives its client's interrupt and still answers.
        assert d.proc is not None and d.proc.poll() is None, \
            f"the daemon died (exit {d.proc.poll() if d.proc else None}):\n{d.log()[-4000:]}"
        try:
            jobs = d.call("jobs.list", {"limit": 5}, timeout=30)["jobs"]
        except Exception as exc:
            pytest.fail(f"the daemon did not answer after the interrupt ({exc}){_stacks(d)}")
        assert jobs[0]["id"] == job["id"] and jobs[0]["state"] in ("running", "succeeded"), jobs
    finally:
        d.close()


def test_make_link_puts_lightbox_on_path(tmp_path: Path) -> None:
    """``make run``'s first step, with an empty HOME: links in ~/.local/bin, and says so
    when that folder is not on PATH; an existing command of another kind is left alone."""
    if not (ROOT / ".venv" / ".installed-run").exists():
        pytest.skip("needs the checkout's .venv (make .venv/.installed-run)")
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    r = subprocess.run(["make", "-s", "-C", str(ROOT), "link"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    link = home / ".local" / "bin" / "lightbox"
    assert link.is_symlink() and os.path.samefile(link, ROOT / ".venv" / "bin" / "lightbox")
    assert "not on your PATH" in r.stdout
    out = subprocess.run([str(link), "--version"], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("lightbox ")
    (home / ".local" / "bin" / "lightboxd").unlink()
    (home / ".local" / "bin" / "lightboxd").write_text("#!/bin/sh\n")  # someone else's
    env["PATH"] = f"{home / '.local' / 'bin'}:/usr/bin:/bin"
    r = subprocess.run(["make", "-s", "-C", str(ROOT), "link"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert "left alone" in r.stdout and "not on your PATH" not in r.stdout
    assert not (home / ".local" / "bin" / "lightboxd").is_symlink()

