"""A bucket in the TUI: it is a source like a root, so its prefixes are folders in the tree,
its photos fill the grid, and ``r`` on the jobs screen syncs it (progress from job events)."""

from __future__ import annotations

from typing import Any

import pytest
from lbtest import DaemonProcess
from s3daemon import CORPUS_JPEGS, add_bucket, sync
from s3env import S3Env
from test_tui_fixtures import SIZE, grid_names, make_app, settled, until

from lightbox.tui.screens.browser import BrowserScreen
from lightbox.tui.screens.jobs import JobsScreen

pytestmark = pytest.mark.skipif(not CORPUS_JPEGS, reason="the image corpus is not there")


@pytest.fixture
def synced(make_daemon: Any, s3: S3Env) -> tuple[DaemonProcess, str]:
    """A daemon with one bucket source, synced (set up outside the test's event loop)."""
    bucket = s3.make_bucket()
    for i in range(4):
        s3.put(bucket, f"trips/rome/{i}-{CORPUS_JPEGS[i].name}", CORPUS_JPEGS[i].read_bytes())
    d: DaemonProcess = make_daemon()
    add_bucket(d, s3, bucket, name="cloud")
    assert sync(d)["state"] == "succeeded"
    return d, bucket


async def test_bucket_in_the_tree_grid_and_jobs(synced: tuple[DaemonProcess, str]) -> None:
    d, bucket = synced
    app = make_app(d)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        tree = screen.ftree
        assert [n.data["name"] for n in tree.root.children] == ["cloud"]
        await until(pilot, lambda: tree.root.children[0].children, what="the bucket's folders")
        await pilot.press("j", "l")       # trips, expand
        await until(pilot, lambda: tree.cursor_node.children, what="rome")
        await pilot.press("j", "enter")   # rome
        await until(pilot, lambda: screen.folder and screen.folder["name"] == "rome",
                    what="rome to open")
        await settled(pilot)
        assert sorted(grid_names(app)) == sorted(f"{i}-{CORPUS_JPEGS[i].name}"
                                                 for i in range(4))
        assert screen.folder["path"].startswith(f"s3://{bucket}/")
        await pilot.press("J")
        jobs = await until(pilot, lambda: isinstance(app.screen, JobsScreen) and app.screen)
        await until(pilot, lambda: jobs.rows, what="the job list")
        first = dict(jobs.rows)
        await pilot.press("r")           # the open folder is in a bucket: a sync
        new = await until(pilot, lambda: set(jobs.rows) - set(first), what="a new job row")
        job_id = max(new)
        await until(pilot, lambda: jobs.rows[job_id].job["state"] == "succeeded",
                    timeout=60, what="the sync to finish (from job events)")
        assert jobs.rows[job_id].job["kind"] == "sync"
