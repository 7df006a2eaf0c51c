"""Scanning a real folder with the real daemon: metadata, incremental rescans, moves, vanished
files, offline roots, hostile trees. Assertions read the daemon's own SQLite catalog."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess, need

from lightbox.common import errors
from lightbox.daemon.media.fixtures import EXPECTED, make_fixture_set
from lightbox.daemon.media.samples import ExifSpec, make_photo, save_jpeg


def rows(d: DaemonProcess, sql: str, *args: Any) -> list[sqlite3.Row]:
    con = sqlite3.connect(f"file:{d.data_dir / 'catalog.db'}?mode=ro", uri=True, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def photo(d: DaemonProcess, name: str) -> sqlite3.Row:
    found = rows(d, "SELECT p.*, f.path AS folder FROM photos p JOIN folders f "
                    "ON f.id = p.folder_id WHERE p.name = ?", name)
    assert len(found) == 1, f"{name}: {len(found)} rows"
    return found[0]


def scan(d: DaemonProcess, **params: Any) -> dict[str, Any]:
    job = d.call("library.scan", params)["job"]
    done: dict[str, Any] = d.call("jobs.wait", {"id": job, "timeout": 120}, timeout=130)
    assert done["state"] in ("succeeded", "failed"), done
    return done


def add_root(d: DaemonProcess, path: Path) -> dict[str, Any]:
    out = d.call("roots.add", {"path": str(path)})
    done: dict[str, Any] = d.call("jobs.wait", {"id": out["job"], "timeout": 120}, timeout=130)
    assert done["state"] == "succeeded", done
    return done


def consistent(d: DaemonProcess, totals: bool = True) -> None:
    """No photo without its folder, and every folder's counts match its rows. ``totals``:
    the roots' subtree totals too — they are rolled up a few seconds after a batch (and
    redone at start), so a catalog read right after a kill may have them behind."""
    orphans = rows(d, "SELECT count(*) FROM photos p LEFT JOIN folders f ON f.id = p.folder_id "
                      "WHERE f.id IS NULL")[0][0]
    assert orphans == 0
    bad = rows(d, """
        SELECT f.id, f.path, f.photo_count,
               (SELECT count(*) FROM photos p WHERE p.folder_id = f.id
                AND p.status != 'missing') AS real,
               f.folder_count,
               (SELECT count(*) FROM folders c WHERE c.parent_id = f.id
                AND c.missing_since IS NULL) AS real_sub
        FROM folders f""")
    for r in bad:
        assert r["photo_count"] == r["real"], dict(r)
        assert r["folder_count"] == r["real_sub"], dict(r)
    # The exact duplicates' maintained counts equal the photos' own (0025_sha_counts).
    drift = rows(d, """
        SELECT sha256, sum(n) AS held, sum(real) AS real FROM (
            SELECT sha256, n, 0 AS real FROM photos_shas UNION ALL
            SELECT sha256, 0, count(*) FROM photos WHERE status = 'ok' AND sha256 IS NOT NULL
            GROUP BY sha256) GROUP BY sha256 HAVING sum(n) != sum(real)""")
    assert drift == [], [dict(r) for r in drift]
    if not totals:
        return
    for top in rows(d, "SELECT id, source_id, total_count FROM folders WHERE parent_id IS NULL"):
        live = rows(d, "SELECT count(*) FROM photos WHERE source_id = ? AND status != 'missing'",
                    top["source_id"])[0][0]
        assert top["total_count"] == live


# These tests are about what a scan pass finds: no watcher racing it to the changes.
SCAN_ONLY = {"library": {"watch": False, "reconcile_interval": 0}}


@pytest.fixture
def library(make_daemon: Any, tmp_path: Path) -> tuple[DaemonProcess, Path, dict[str, Path]]:
    daemon: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root = tmp_path / "photos"
    files = make_fixture_set(root)
    job = add_root(daemon, root)
    assert job["result"]["roots"]["photos"]["new"] == len([p for p in root.rglob("*")
                                                          if p.is_file()])
    return daemon, root, files


def test_fixture_set_is_indexed_as_expected(library: Any) -> None:
    d, _, files = library
    thumbs = d.data_dir / "cache" / "thumbnails"
    for key, expect in EXPECTED.items():
        row = photo(d, files[key].name)
        assert (row["status"] == "ok") == expect["ok"], (key, dict(row))
        for field in ("width", "height", "make", "model", "lens", "iso", "f_number",
                      "taken_offset", "orientation", "gps_lat", "gps_lon", "gps_alt", "mime",
                      "format"):
            if field in expect:
                want = expect[field]
                if isinstance(want, float):
                    assert row[field] == pytest.approx(want, abs=1e-6), (key, field)
                else:
                    assert row[field] == want, (key, field, row[field])
        if "taken_at" in expect:
            assert row["taken_at"].replace(" ", "T").startswith(expect["taken_at"]), key
        if expect["ok"]:
            assert row["sha256"]
            # The 16-bit scan is a smooth gradient: too little structure for a dHash.
            assert (row["phash"] is None) == (key == "tiff16"), key
            assert row["thumbs"] == 3
            for size in ("grid", "preview"):
                assert (thumbs / size / row["sha256"][:2] / f"{row['sha256']}.jpg").is_file()
        else:
            assert row["error"], key
    consistent(d)


def test_exact_duplicates_share_thumbnails(library: Any) -> None:
    d, _, files = library
    a, b = photo(d, files["original"].name), photo(d, files["exact_copy"].name)
    assert a["sha256"] == b["sha256"]
    assert a["id"] != b["id"]


def test_unchanged_rescan_reads_nothing(library: Any) -> None:
    d, _, _ = library
    before = {r["id"]: r["indexed_at"] for r in rows(d, "SELECT id, indexed_at FROM photos")}
    job = scan(d)
    report = job["result"]["roots"]["photos"]
    assert (report["new"], report["changed"], report["moved"], report["missing"]) == (0, 0, 0, 0)
    assert job["result"]["indexed"] == 0
    after = {r["id"]: r["indexed_at"] for r in rows(d, "SELECT id, indexed_at FROM photos")}
    assert after == before


def test_changes_moves_and_deletions(library: Any) -> None:
    d, root, files = library
    dated = photo(d, "dated.jpg")
    southern = photo(d, "southern.jpg")
    below = photo(d, "below_sea.jpg")
    # Rewrite one file, rename one, move one to a new folder, delete one.
    save_jpeg(make_photo(640, 480, seed=99), files["dated"], ExifSpec(make="Changed"))
    os.rename(files["southern"], root / "renamed.jpg")
    (root / "new folder").mkdir()
    os.rename(files["below_sea"], root / "new folder" / "below_sea.jpg")
    os.unlink(files["datetime_only"])
    job = scan(d)
    report = job["result"]["roots"]["photos"]
    assert report["changed"] == 1
    assert report["moved"] == 2, str(report)
    assert report["missing"] == 1
    rewritten = photo(d, "dated.jpg")
    assert rewritten["id"] == dated["id"]
    assert rewritten["sha256"] != dated["sha256"]
    assert rewritten["make"] == "Changed"
    renamed = photo(d, "renamed.jpg")
    assert (renamed["id"], renamed["sha256"], renamed["status"]) == \
        (southern["id"], southern["sha256"], "ok")
    moved = photo(d, "below_sea.jpg")
    assert moved["id"] == below["id"]
    assert moved["folder"] == "new folder"
    assert photo(d, "datetime_only.jpg")["status"] == "missing"
    consistent(d)
    # A second pass confirms the deletion.
    job = scan(d)
    assert job["result"]["roots"]["photos"]["removed"] == 1
    assert rows(d, "SELECT count(*) FROM photos WHERE name = 'datetime_only.jpg'")[0][0] == 0
    consistent(d)


def test_folder_rename_keeps_ids(library: Any) -> None:
    d, root, _ = library
    before = {r["name"]: r["id"] for r in rows(
        d, "SELECT p.name, p.id FROM photos p JOIN folders f ON f.id = p.folder_id "
           "WHERE f.path = 'orientation'")}
    assert len(before) == 8
    os.rename(root / "orientation", root / "rotated")
    job = scan(d)
    assert job["result"]["roots"]["photos"]["moved"] == 8
    after = {r["name"]: r["id"] for r in rows(
        d, "SELECT p.name, p.id FROM photos p JOIN folders f ON f.id = p.folder_id "
           "WHERE f.path = 'rotated' AND p.status = 'ok'")}
    assert after == before
    consistent(d)
    scan(d)  # the empty old folder is confirmed gone
    assert not rows(d, "SELECT id FROM folders WHERE path = 'orientation'")
    consistent(d)


def test_root_renamed_away_changes_nothing(library: Any, tmp_path: Path) -> None:
    d, root, _ = library
    before = rows(d, "SELECT id, status FROM photos ORDER BY id")
    away = tmp_path / "unmounted"
    os.rename(root, away)
    job = scan(d)
    assert job["state"] == "failed"
    assert "offline" in job["error"]
    assert rows(d, "SELECT id, status FROM photos ORDER BY id") == before
    listed = d.call("roots.list")["roots"][0]
    assert listed["online"] is False
    assert "not there" in listed["status"]
    page = d.call("events.since", {"seq": 0, "topics": ["source"]})
    assert any(e["type"] == "offline" for e in page["events"])
    os.rename(away, root)
    job = scan(d)
    assert job["state"] == "succeeded"
    assert d.call("roots.list")["roots"][0]["online"] is True
    assert rows(d, "SELECT id, status FROM photos ORDER BY id") == before


def test_emptied_mount_point_is_offline(library: Any, tmp_path: Path) -> None:
    d, root, _ = library
    before = rows(d, "SELECT id, status FROM photos ORDER BY id")
    stash = tmp_path / "stash"
    stash.mkdir()
    for child in list(root.iterdir()):
        shutil.move(str(child), stash / child.name)
    job = scan(d)
    assert job["state"] == "failed"
    assert "is empty" in job["error"]
    assert rows(d, "SELECT id, status FROM photos ORDER BY id") == before


def test_hostile_tree_is_reported_never_fatal(make_daemon: Any, tmp_path: Path) -> None:
    daemon: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root = tmp_path / "hostile"
    deep = root
    for i in range(60):
        deep = deep / f"level{i:02d}"
    deep.mkdir(parents=True)
    save_jpeg(make_photo(64, 48, seed=1), deep / "deep.jpg")
    (root / "loop").mkdir()
    (root / "loop" / "again").symlink_to(root / "loop")
    save_jpeg(make_photo(64, 48, seed=2), root / "loop" / "in_loop.jpg")
    bad_name = os.path.join(os.fsencode(root), b"bad-\xff\xfe.jpg")
    with open(bad_name, "wb") as f:
        f.write(b"\xff\xd8\xff")
    (root / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    (root / ".hidden.jpg").write_bytes(b"x")
    (root / "notes.xmp").write_text("<x/>")
    job = add_root(daemon, root)
    report = job["result"]["roots"]["hostile"]
    problems = " ".join(report["problems"])
    assert "not valid UTF-8" in problems
    # Links are not followed, not even inside the root: the loop is a skipped link.
    skipped = {(Path(s["path"]).relative_to(root).as_posix(), s["reason"])
               for s in report["skipped_files"]}
    assert ("loop/again", "symlink") in skipped and ("dangling.jpg", "symlink") in skipped
    assert photo(daemon, "deep.jpg")["status"] == "ok"
    assert photo(daemon, "in_loop.jpg")["status"] == "ok"
    names = {r["name"] for r in rows(daemon, "SELECT name FROM photos")}
    assert names == {"deep.jpg", "in_loop.jpg"}
    consistent(daemon)


def test_unreadable_folder_is_not_marked_missing(make_daemon: Any, tmp_path: Path) -> None:
    """A folder the daemon cannot list keeps its photos (as a non-root user)."""
    base = tmp_path / "u"
    base.mkdir()
    root = base / "photos"
    (root / "private").mkdir(parents=True)
    save_jpeg(make_photo(64, 48, seed=3), root / "private" / "secret.jpg")
    save_jpeg(make_photo(64, 48, seed=4), root / "public.jpg")
    data = base / "data"
    data.mkdir()
    d: DaemonProcess = make_daemon(data_dir=data, start=False, config=SCAN_ONLY)
    if os.getuid() == 0:
        # Root reads everything; without the DAC-override capabilities it obeys modes too.
        need(shutil.which("setpriv") is not None, "setpriv (util-linux)",
             "apt install util-linux")
        caps = "-dac_override,-dac_read_search"
        d.prefix = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
    d.start()
    add_root(d, root)
    assert photo(d, "secret.jpg")["status"] == "ok"
    (root / "private").chmod(0)
    try:
        job = scan(d)
        assert job["state"] == "succeeded"
        assert "Permission denied" in " ".join(job["result"]["roots"]["photos"]["problems"])
        assert photo(d, "secret.jpg")["status"] == "ok"
        scan(d)
        assert photo(d, "secret.jpg")["status"] == "ok"
    finally:
        (root / "private").chmod(0o755)


def test_roots_add_errors(daemon: DaemonProcess, tmp_path: Path) -> None:
    with pytest.raises(errors.NotFound):
        daemon.call("roots.add", {"path": str(tmp_path / "nope")})
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(errors.InvalidParams, match="not a directory"):
        daemon.call("roots.add", {"path": str(f)})
    with pytest.raises(errors.InvalidParams, match="absolute"):
        daemon.call("roots.add", {"path": "relative/path"})
    (tmp_path / "lib" / "sub").mkdir(parents=True)
    daemon.call("roots.add", {"path": str(tmp_path / "lib"), "scan": False})
    for path in (tmp_path / "lib", tmp_path / "lib" / "sub", tmp_path):
        with pytest.raises(errors.Conflict):
            daemon.call("roots.add", {"path": str(path)})
    removed = daemon.call("roots.remove", {"root": "lib"})
    assert removed["photos"] == 0
    with pytest.raises(errors.NotFound):
        daemon.call("roots.remove", {"root": "lib"})


def test_remove_root_forgets_its_photos(library: Any) -> None:
    d, root, _ = library
    n = rows(d, "SELECT count(*) FROM photos")[0][0]
    out = d.call("roots.remove", {"root": str(root)})
    assert out["photos"] == n
    assert rows(d, "SELECT count(*) FROM photos")[0][0] == 0
    assert rows(d, "SELECT count(*) FROM folders")[0][0] == 0
    assert any(root.rglob("*.jpg")), "files are never touched"


def test_catalog_events_are_merged(library: Any) -> None:
    d, root, _ = library
    seq = d.call("hello")["seq"]
    folder = root / "burst"
    folder.mkdir()
    for i in range(40):
        save_jpeg(make_photo(64, 48, seed=100 + i), folder / f"b{i:02d}.jpg")
    scan(d)
    events = d.call("events.since", {"seq": seq, "topics": ["catalog"]})["events"]
    added = [e for e in events if e["type"] == "added"]
    assert sum(e["data"]["count"] for e in added) == 40
    assert len(added) <= 3, [e["data"]["count"] for e in added]
    assert all(e["data"]["folder"] == str(folder) for e in added)
    changed = [e for e in events if e["type"] == "changed"]
    assert sum(e["data"]["count"] for e in changed) >= 40
    assert len(changed) < 40


def test_cli_roots_scan_jobs(library: Any) -> None:
    from lbtest import run_cli

    d, root, _ = library
    env = {"LIGHTBOX_DATA_DIR": str(d.data_dir)}
    r = run_cli("roots", "--json", env=env)
    assert r.returncode == 0, r.stderr
    import json

    assert json.loads(r.stdout)[0]["path"] == str(root)
    r = run_cli("scan", "--wait", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["state"] == "succeeded"
    r = run_cli("jobs", "--json", env=env)
    assert len(json.loads(r.stdout)) >= 2
    r = run_cli("roots", "add", str(root), "--if-missing", env=env)
    assert r.returncode == 0
    assert "already" in r.stdout
    r = run_cli("roots", "add", str(root), env=env)
    assert r.returncode == 7
    r = run_cli("scan", "/elsewhere", env=env)
    assert r.returncode == 4


def test_status_counts(library: Any) -> None:
    d, _, files = library
    counts = d.call("system.status")["counts"]
    assert counts["roots"] == 1
    assert counts["photos"] == len(files)
    assert counts["errors"] == sum(1 for e in EXPECTED.values() if not e["ok"])
    assert counts["pending"] == 0


def test_daemon_restart_keeps_catalog(library: Any) -> None:
    d, _, _ = library
    before = rows(d, "SELECT id, sha256, status FROM photos ORDER BY id")
    assert d.stop() == 0
    d.start()
    assert d.call("roots.list")["roots"][0]["photos"] == len(before)
    assert rows(d, "SELECT id, sha256, status FROM photos ORDER BY id") == before



def test_duplicates_from_real_files(library: Any) -> None:
    """Exact groups by content across folders; near groups catch a resized and a re-encoded
    copy of a photo and leave a different photo out."""
    d, _, files = library
    exact = d.call("photos.duplicates", {"kind": "exact"})
    groups = [{p["path"] for p in g["photos"]} for g in exact["groups"]]
    assert {str(files["original"]), str(files["exact_copy"])} in groups
    near = d.call("photos.duplicates", {"kind": "near"}, timeout=30)
    group = next(g for g in near["groups"]
                 if str(files["resized"]) in {p["path"] for p in g["photos"]})
    paths = {p["path"] for p in group["photos"]}
    assert {str(files["resized"]), str(files["reencoded"])} <= paths
    assert str(files["original"]) in paths or str(files["exact_copy"]) in paths
    assert str(files["different"]) not in paths
    assert all(p["distance"] is None or p["distance"] <= 6 for p in group["photos"])
    info = d.call("photos.get", {"path": str(files["original"])})
    assert info["duplicates"]["exact"] == 1
