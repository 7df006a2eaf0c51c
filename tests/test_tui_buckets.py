"""A bucket in the TUI: it is a source like a root, so its prefixes are folders in the tree,
its photos fill the grid, and ``r`` on the jobs screen syncs it (progress from job events)."""

from __future__ import annotations

from typing import Any

import pytest
from lbtest import DaemonProcess
from s3daemon import CORPUS_JPEGS, add_bucket, sync
from s3env import ACCESS_KEY, SECRET_KEY, S3Env
from test_tui_fixtures import SIZE, acall, grid_names, make_app, settled, until

from lightbox.tui.screens.browser import BrowserScreen
from lightbox.tui.screens.bucket_form import BucketForm, input_id
from lightbox.tui.screens.jobs import JobsScreen
from lightbox.tui.screens.settings import SettingsScreen

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


async def open_settings(pilot: Any, app: Any) -> SettingsScreen:
    await until(pilot, lambda: app.link.connected, timeout=30, what="connected")
    await pilot.press("comma")
    screen: SettingsScreen = await until(pilot, lambda: isinstance(app.screen, SettingsScreen)
                                         and app.screen, timeout=30, what="settings")
    return screen


@pytest.fixture
def empty_bucket(make_daemon: Any, s3: S3Env) -> tuple[DaemonProcess, S3Env, str]:
    bucket = s3.make_bucket()
    s3.put(bucket, "a/one.jpg", CORPUS_JPEGS[0].read_bytes())
    d: DaemonProcess = make_daemon()
    return d, s3, bucket


async def test_bucket_form_tests_the_connection_and_adds_it(
        empty_bucket: tuple[DaemonProcess, S3Env, str]) -> None:
    d, s3, bucket = empty_bucket
    app = make_app(d)
    async with app.run_test(size=SIZE) as pilot:
        settings = await open_settings(pilot, app)
        await pilot.press("ctrl+b")
        form = await until(pilot, lambda: isinstance(app.screen, BucketForm) and app.screen,
                           what="the bucket form")
        values = {"name": "cloud", "endpoint": s3.endpoint, "bucket": "no-such-bucket",
                  "addressing_style": "path", "access_key_id": ACCESS_KEY,
                  "secret_access_key": SECRET_KEY}
        for param, value in values.items():
            form.query_one("#" + input_id(param)).value = value
        await pilot.press("ctrl+t")
        await until(pilot, lambda: "does not exist" in form.result_text, timeout=30,
                    what="the missing bucket named")
        assert "FAIL  bucket" in form.result_text
        form.query_one("#" + input_id("bucket")).value = bucket
        await pilot.press("ctrl+t")
        await until(pilot, lambda: "can be listed and read" in form.result_text,
                    timeout=30, what="every check passing")
        assert SECRET_KEY not in form.result_text
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is settings, what="the form to close")
        listed = (await acall(d, "sources.list"))["sources"]
        assert [s["name"] for s in listed] == ["cloud"]
        assert listed[0]["secrets"]["secret_access_key"]["set"]


async def test_a_bucket_is_changed_from_the_settings_screen_and_keeps_its_photos(
        synced: tuple[DaemonProcess, str]) -> None:
    """ctrl+e on the settings screen: the bucket's form filled with what it is, its name,
    bucket and prefix fixed; only what changed is sent (``sources.update``), a bad value
    is named and changes nothing, and the photos stay."""
    d, bucket = synced
    app = make_app(d)
    async with app.run_test(size=SIZE) as pilot:
        settings = await open_settings(pilot, app)
        await until(pilot, lambda: "cloud" in settings.buckets_text, what="the bucket listed")
        assert "syncs only when asked" in settings.buckets_text      # interval 0
        await pilot.press("ctrl+e")
        form = await until(pilot, lambda: isinstance(app.screen, BucketForm) and app.screen,
                           what="the bucket form")
        assert form.query_one("#" + input_id("bucket")).value == bucket
        assert form.query_one("#" + input_id("bucket")).disabled
        assert form.query_one("#" + input_id("name")).disabled
        assert form.query_one("#" + input_id("secret_access_key")).value == ""
        await pilot.press("ctrl+s")
        await until(pilot, lambda: form.result_text == "nothing changed", what="no change")
        form.query_one("#" + input_id("interval")).value = "soon"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "not changed" in form.result_text and "interval"
                    in form.result_text, what="the bad interval named")
        form.query_one("#" + input_id("interval")).value = "3600"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is settings, what="the form to close")
        await until(pilot, lambda: "syncs every 1h00m" in settings.buckets_text,
                    what="the new interval shown")
        got = (await acall(d, "sources.get", {"source": "cloud"}))["source"]
        assert got["config"]["interval"] == 3600 and got["photos"] == 4
        assert got["secrets"]["secret_access_key"]["set"]       # an empty field keeps it
        audit = (await acall(d, "settings.audit", {"limit": 5}))["entries"]
        assert audit[0]["action"] == "sources.update"
        assert [c["key"].rsplit(".", 1)[1] for c in audit[0]["changes"]] == ["interval"]
