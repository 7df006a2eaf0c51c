"""The catalog read side over the real control socket: a synthetic catalog is built at
``<data_dir>/catalog.db`` before the daemon starts, plus a small root of real JPEGs (with
thumbnails written where the daemon looks for them), then every method and the CLI commands
are exercised as a client and a script would."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zmq
from catalog_fixtures import (
    big_folder,
    make_jpeg,
    real_photo,
    sha_of,
    signed64,
    standard,
    synth,
    write_thumbnails,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lbtest import DaemonProcess, run_cli, short_tmpdir
from PIL import Image

from lightbox.common import errors
from lightbox.common.api import METHODS
from lightbox.common.api.catalog import PHOTO_FIELDS
from lightbox.daemon.catalog import present
from lightbox.daemon.catalog.types import natural_key

FAKE = "/nonexistent/lbd-photos"
H = 0x5A5A_0F0F_3C3C_9999


@dataclass
class Lib:
    daemon: DaemonProcess
    where: dict[str, Any]
    real_dir: Path
    real: dict[str, int] = field(default_factory=dict)  # file name -> photo id
    thumbs: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    near: list[int] = field(default_factory=list)
    big: list[int] = field(default_factory=list)

    def call(self, method: str, params: Any = None) -> Any:
        return self.daemon.call(method, params, timeout=30)

    def env(self) -> dict[str, str]:
        return {"LIGHTBOX_DATA_DIR": str(self.daemon.data_dir)}


async def _build(data: Path, real_dir: Path, lib: Lib) -> None:
    b, w = await standard(f"sqlite+aiosqlite:///{data}/catalog.db", FAKE)
    # No pending photo: the daemon's indexer would pick it up and change it under our feet.
    async with b.engine.begin() as conn:
        from lightbox.daemon.catalog.tables import photos

        await conn.execute(photos.delete().where(photos.c.status == "pending"))
        b.folders[w["trip"]].photos -= 1
    lib.big = await big_folder(b, w["big"], 2500)
    lib.near = await b.photos(w["2009"], [
        synth(60, name="near-1.jpg", phash=signed64(H), width=4000, height=3000),
        synth(61, name="near-2.jpg", phash=signed64(H ^ 0b1011), width=2000, height=1500),
        synth(62, name="near-3.jpg", phash=signed64(H ^ 0xFF00_0000)),  # 8 bits: not near
        synth(63, name="near-3 copy.jpg", sha256=sha_of(62), phash=signed64(H ^ 0xFF00_0000)),
    ])
    real = await b.source("real", str(real_dir))
    files = {"red.jpg": ((640, 480), False), "noise.jpg": ((1600, 1200), True),
             "nothumb.jpg": ((300, 200), False)}
    rows = []
    for i, (name, (size, noise)) in enumerate(files.items()):
        make_jpeg(real_dir / name, size, seed=i + 1, noise=noise, quality=95)
        rows.append(real_photo(real_dir / name, taken_at=dt.datetime(2020, 1, 1 + i)))
    # A file that is gone, and a symbolic link that leads out of the root.
    outside = data / "outside.jpg"
    make_jpeg(outside, (64, 64), seed=9)
    os.symlink(outside, real_dir / "escape.jpg")
    rows.append(real_photo(real_dir / "escape.jpg"))
    make_jpeg(real_dir / "gone.jpg", (64, 64), seed=10)
    rows.append(real_photo(real_dir / "gone.jpg"))
    (real_dir / "gone.jpg").unlink()
    ids = await b.photos(b.top(real), rows)
    lib.real = dict(zip([*files, "escape.jpg", "gone.jpg"], ids, strict=True))
    thumbs_dir = data / "cache" / "thumbnails"
    for name in ("red.jpg", "noise.jpg"):
        sha = rows[list(files).index(name)]["sha256"]
        lib.thumbs[name] = write_thumbnails(thumbs_dir, real_dir / name, sha)
    await b.finish()
    await b.close()
    w["real"] = real
    lib.where.update(w)


@pytest.fixture(scope="module")
def lib() -> Iterator[Lib]:
    data = short_tmpdir("lbc")
    real_dir = short_tmpdir("lbr")
    d = DaemonProcess(data, {"workers": {"processes": 1}})
    lib = Lib(d, {}, real_dir)
    asyncio.run(_build(data, real_dir, lib))
    d.start()
    yield lib
    d.stop()
    log = d.log_path.read_text(errors="replace")
    d.close()
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(real_dir, ignore_errors=True)
    assert "handler crashed" not in log, log  # every failure was a proper error reply


def expect_error(cls: Any, fn: Any, *args: Any) -> Any:
    with pytest.raises(cls) as info:
        fn(*args)
    return info.value


# -- folders.list ---------------------------------------------------------------------------
def test_top_level_lists_every_root(lib: Lib) -> None:
    top = lib.call("folders.list")
    by_name = {f["name"]: f for f in top["folders"]}
    assert list(by_name) == ["main", "other", "real"]
    assert by_name["real"]["path"] == str(lib.real_dir)
    assert by_name["main"]["id"] == lib.call("folders.list", {"path": FAKE})["folder"]["id"]
    assert top["breadcrumbs"] == [] and top["next_cursor"] is None


def test_folder_listing_breadcrumbs_subfolders_and_fields(lib: Lib) -> None:
    w = lib.where
    doc = lib.call("folders.list", {"path": FAKE + "/2008/trip", "fields": ["name", "status"]})
    assert doc["folder"]["id"] == w["trip"]
    assert [c["name"] for c in doc["breadcrumbs"]] == ["main", "2008", "trip"]
    assert [f["name"] for f in doc["folders"]] == ["day 2"]
    assert all(set(p) == {"id", "name", "status"} for p in doc["photos"])
    assert "j-missing.jpg" not in {p["name"] for p in doc["photos"]}
    assert {p["name"]: p["status"] for p in doc["photos"]}["h-error.jpg"] == "error"
    full = lib.call("folders.list", {"folder": w["trip"], "limit": 1})
    assert list(full["photos"][0]) == list(PHOTO_FIELDS)
    nxt = lib.call("folders.list", {"folder": w["trip"], "limit": 1,
                                    "cursor": full["next_cursor"]})
    assert nxt["folders"] == [] and nxt["photos"][0]["id"] != full["photos"][0]["id"]


@pytest.mark.parametrize("sort", ["name", "taken", "size"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_paging_through_2500_photos(lib: Lib, sort: str, order: str) -> None:
    got: list[dict[str, Any]] = []
    cursor = None
    with lib.daemon.client(30) as c:
        while True:
            doc = c.call("folders.list", {"folder": lib.where["big"], "sort": sort,
                                          "order": order, "limit": 333, "cursor": cursor,
                                          "fields": ["name", "size", "taken_at"]})
            got += doc["photos"]
            cursor = doc["next_cursor"]
            if cursor is None:
                break
    ids = [p["id"] for p in got]
    assert len(ids) == len(set(ids)) == 2500 and set(ids) == set(lib.big)
    desc = order == "desc"
    if sort == "taken":
        dated = [p for p in got if p["taken_at"] is not None]
        assert got[len(dated):] == [p for p in got if p["taken_at"] is None]  # undated last
        keys: list[Any] = [(p["taken_at"], p["id"]) for p in dated]
        undated = [p["id"] for p in got[len(dated):]]
        assert undated == sorted(undated, reverse=desc)
    else:
        keys = [(p[sort], p["id"]) for p in got]
    assert keys == sorted(keys, reverse=desc)


def test_bad_params_are_invalid_params_naming_the_field(lib: Lib) -> None:
    w = lib.where
    e = expect_error(errors.InvalidParams, lib.call, "folders.list",
                     {"folder": w["trip"], "cursor": "not-a-cursor"})
    assert "cursor" in e.data["errors"]
    other = lib.call("folders.list", {"folder": w["day2"], "limit": 1})["next_cursor"]
    e = expect_error(errors.InvalidParams, lib.call, "folders.list",
                     {"folder": w["trip"], "cursor": other})
    assert "another query" in e.message
    e = expect_error(errors.InvalidParams, lib.call, "photos.search", {"date_from": "2008-13-45"})
    assert "date_from" in e.data["errors"] and "2008-13-45" in e.message
    e = expect_error(errors.InvalidParams, lib.call, "photos.search", {"date_to": "soon"})
    assert "date_to" in e.data["errors"]
    e = expect_error(errors.InvalidParams, lib.call, "folders.list",
                     {"folder": w["trip"], "fields": ["name", "nope"]})
    assert "fields" in e.data["errors"]
    expect_error(errors.InvalidParams, lib.call, "folders.list", {"limit": 0})
    expect_error(errors.InvalidParams, lib.call, "photos.search", {"sort": "colour"})
    expect_error(errors.InvalidParams, lib.call, "photos.get", {})


def test_not_found(lib: Lib) -> None:
    e = expect_error(errors.NotFound, lib.call, "folders.list", {"folder": 999_999})
    assert "999999" in e.message
    expect_error(errors.NotFound, lib.call, "folders.list", {"path": "/etc"})
    expect_error(errors.NotFound, lib.call, "photos.get", {"id": 999_999})
    e = expect_error(errors.NotFound, lib.call, "photos.get", {"path": FAKE + "/2008/no.jpg"})
    assert "no.jpg" in e.message
    expect_error(errors.NotFound, lib.call, "photos.thumbnail", {"id": 999_999})
    expect_error(errors.NotFound, lib.call, "photos.original", {"id": 999_999})


# -- photos.get / search / duplicates -------------------------------------------------------
def test_photo_get_by_id_and_path_with_duplicate_counts(lib: Lib) -> None:
    a_id = lib.where["ids"]["trip"][0]
    a = lib.call("photos.get", {"id": a_id})
    by_path = lib.call("photos.get", {"path": FAKE + "/2008/trip/a.jpg"})
    # The same photo; only its root's online flag may have changed in between (the fake
    # root is found missing by the daemon's first check, whenever that runs).
    assert {**a, "source": None} == {**by_path, "source": None}
    assert {k: v for k, v in a["source"].items() if k != "online"} == {
        k: v for k, v in by_path["source"].items() if k != "online"}
    assert a["path"] == FAKE + "/2008/trip/a.jpg" and a["taken_at"] == "2008-05-30T15:56:01"
    assert a["folder"] == {"id": lib.where["trip"], "path": FAKE + "/2008/trip"}
    assert a["duplicates"]["exact"] == 1  # "copy of a.jpg" in the other root
    assert set(PHOTO_FIELDS) <= set(a)
    # ``near: null`` until the daemon's near-duplicate index is built (in the background,
    # after the start): wait for it rather than race it.
    deadline = time.monotonic() + 60
    while (n1 := lib.call("photos.get", {"id": lib.near[0]}))["duplicates"]["near"] is None:
        assert time.monotonic() < deadline, "the near-duplicate index was never ready"
        time.sleep(0.2)
    assert n1["duplicates"] == {"exact": 0, "near": 1}  # near-2 (3 bits); near-3 is 8 away
    n3 = lib.call("photos.get", {"id": lib.near[2]})
    assert n3["duplicates"] == {"exact": 1, "near": 0}  # its copy is exact, not near


def test_search_over_the_socket(lib: Lib) -> None:
    doc = lib.call("photos.search", {"text": "TRIP", "date_from": "2008-05-30",
                                     "date_to": "2008-05-31", "sort": "taken",
                                     "fields": ["name", "taken_at", "path"]})
    assert [p["name"] for p in doc["photos"]] == ["l.jpg", "a.jpg", "B.jpg", "c 100%.jpg",
                                                  "f.jpg"]
    assert doc["photos"][0]["path"] == FAKE + "/2008/trip/l.jpg"
    names = []
    cursor = None
    while True:
        page = lib.call("photos.search", {"path": FAKE + "/2008", "limit": 4,
                                          "cursor": cursor, "fields": ["name"]})
        names += [p["name"] for p in page["photos"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(names) == len(set(names)) == 9 + 3 + 2 + 2
    assert names == sorted(names, key=natural_key)  # any case, numbers by value


def test_duplicates_exact_and_near(lib: Lib) -> None:
    exact = lib.call("photos.duplicates", {"fields": ["name", "path"]})
    groups = {g["key"]: g for g in exact["groups"]}
    a = lib.call("photos.get", {"id": lib.where["ids"]["trip"][0]})
    assert sorted(p["name"] for p in groups[a["sha256"]]["photos"]) == ["a.jpg",
                                                                         "copy of a.jpg"]
    near = lib.call("photos.duplicates", {"kind": "near", "fields": ["name", "width"]})
    assert near["total_groups"] >= 1
    g = next(g for g in near["groups"] if g["key"] == f"near-{lib.near[0]}")
    assert [(p["name"], p["distance"]) for p in g["photos"]] == [("near-1.jpg", 0),
                                                                 ("near-2.jpg", 3)]
    tight = lib.call("photos.duplicates", {"kind": "near", "threshold": 2})
    assert all(g["key"] != f"near-{lib.near[0]}" for g in tight["groups"])
    page = lib.call("photos.duplicates", {"limit": 1})
    assert page["next_cursor"] and len(page["groups"]) == 1


# -- bytes: thumbnails and originals --------------------------------------------------------
def test_thumbnail_bytes_round_trip(lib: Lib) -> None:
    thumbs_dir = lib.daemon.data_dir / "cache" / "thumbnails"
    red = lib.call("photos.get", {"id": lib.real["red.jpg"]})
    for size in ("grid", "preview"):
        t = lib.call("photos.thumbnail", {"id": lib.real["red.jpg"], "size": size})
        on_disk = (thumbs_dir / size / red["sha256"][:2] / f"{red['sha256']}.jpg").read_bytes()
        assert t["data"] == on_disk and t["bytes"] == len(on_disk)
        assert (t["width"], t["height"]) == lib.thumbs["red.jpg"][size]
        assert t["mime"] == "image/jpeg" and t["size"] == size and t["id"] == red["id"]


def test_missing_thumbnail_is_made_on_demand(lib: Lib) -> None:
    t = lib.call("photos.thumbnail", {"id": lib.real["nothumb.jpg"], "size": "grid"})
    with Image.open(io.BytesIO(t["data"])) as img:
        assert img.format == "JPEG" and img.size == (t["width"], t["height"])
        assert max(img.size) <= 300


def test_no_thumbnail_for_errors_and_missing_photos(lib: Lib) -> None:
    err_id = lib.where["ids"]["trip"][7]  # h-error.jpg
    e = expect_error(errors.NotFound, lib.call, "photos.thumbnail", {"id": err_id})
    assert "truncated JPEG" in e.message and str(err_id) in e.message
    missing = lib.where["ids"]["trip"][9]  # j-missing.jpg
    e = expect_error(errors.NotFound, lib.call, "photos.thumbnail", {"id": missing})
    assert "missing" in e.message


def test_original_in_chunks_reassembles_the_file(lib: Lib) -> None:
    pid = lib.real["noise.jpg"]
    path = lib.real_dir / "noise.jpg"
    want = path.read_bytes()
    assert len(want) > 1_000_000
    chunks, offset = [], 0
    with lib.daemon.client(30) as c:
        while True:
            r = c.call("photos.original", {"id": pid, "offset": offset, "length": 300_000})
            assert r["offset"] == offset and r["length"] == len(r["data"]) <= 300_000
            assert r["size"] == len(want) and r["mime"] == "image/jpeg"
            chunks.append(r["data"])
            offset += r["length"]
            if r["eof"]:
                break
    assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(want).digest()
    assert len(chunks) == -(-len(want) // 300_000)
    whole = lib.call("photos.original", {"id": lib.real["red.jpg"]})
    assert whole["eof"] and whole["data"] == (lib.real_dir / "red.jpg").read_bytes()
    past = lib.call("photos.original", {"id": pid, "offset": len(want) + 10})
    assert past["data"] == b"" and past["eof"] and past["length"] == 0


def test_original_refuses_gone_files_and_escapes(lib: Lib) -> None:
    expect_error(errors.NotFound, lib.call, "photos.original", {"id": lib.real["gone.jpg"]})
    e = expect_error(errors.NotFound, lib.call, "photos.original",
                     {"id": lib.real["escape.jpg"]})
    # Refused at read time (a link out of the root), or — once a scan has listed the folder,
    # which skips links — already missing: never the outside file's bytes.
    assert "escape.jpg" in e.message or "the file is missing" in e.message, e.message


def test_original_of_a_photo_under_an_offline_root_is_unavailable(lib: Lib) -> None:
    expect_error((errors.Unavailable, errors.NotFound), lib.call, "photos.original",
                 {"id": lib.where["ids"]["trip"][0]})


# -- the CLI ----------------------------------------------------------------------------------
def cli(lib: Lib, *args: str) -> Any:
    r = run_cli(*args, "--json", env=lib.env())
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_cli_ls(lib: Lib) -> None:
    top = cli(lib, "ls")
    assert [f["name"] for f in top["folders"]] == ["main", "other", "real"]
    doc = cli(lib, "ls", FAKE + "/big", "--limit", "700", "--all", "--sort", "size", "--desc")
    assert len(doc["photos"]) == 2500 and doc["next_cursor"] is None
    sizes = [p["size"] for p in doc["photos"]]
    assert sizes == sorted(sizes, reverse=True)
    human = run_cli("ls", str(lib.real_dir), env=lib.env())
    assert human.returncode == 0 and "red.jpg" in human.stdout and "640x480" in human.stdout
    # A relative path is made absolute before it is sent.
    rel = subprocess.run([sys.executable, "-m", "lightbox.cli.main", "ls", lib.real_dir.name,
                          "--json"], cwd=lib.real_dir.parent, capture_output=True, text=True,
                         env={**os.environ, **lib.env()}, timeout=60)
    assert rel.returncode == 0, rel.stderr
    assert json.loads(rel.stdout)["folder"]["path"] == str(lib.real_dir)
    missing = run_cli("ls", "/etc", env=lib.env())
    assert missing.returncode == 4 and "not inside any root" in missing.stderr


def test_cli_info_search_dupes(lib: Lib) -> None:
    a_id = lib.where["ids"]["trip"][0]
    info = cli(lib, "info", str(a_id))
    assert info["name"] == "a.jpg" and info["duplicates"]["exact"] == 1
    by_path = cli(lib, "info", str(lib.real_dir / "red.jpg"))
    assert by_path["id"] == lib.real["red.jpg"]
    human = run_cli("info", str(a_id), env=lib.env())
    assert human.returncode == 0 and "duplicates" in human.stdout and "1 exact" in human.stdout
    assert run_cli("info", "999999", env=lib.env()).returncode == 4
    found = cli(lib, "search", "trip", "--from", "2008-05-30", "--to", "2008-05-31",
                "--in", FAKE + "/2008", "--gps")
    assert [p["name"] for p in found["photos"]] == ["f.jpg"]
    bad = run_cli("search", "--from", "someday", env=lib.env())
    assert bad.returncode == 2 and "date_from" in bad.stderr
    dupes = cli(lib, "dupes")
    assert dupes["total_groups"] >= 1
    near = cli(lib, "dupes", "--near", "--threshold", "4")
    assert any(g["key"] == f"near-{lib.near[0]}" for g in near["groups"])
    text = run_cli("dupes", "--near", env=lib.env())
    assert text.returncode == 0 and "near-1.jpg" in text.stdout


# -- hostile input ----------------------------------------------------------------------------
def _cursor(doc: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def test_hostile_values_get_proper_errors(lib: Lib) -> None:
    huge = 10**30
    trip = lib.where["trip"]
    scope = present.scope("folders.list", trip)
    for method, params, cls in [
        # Beyond 63 bits an id cannot exist: refused before any query (issue 7).
        ("folders.list", {"folder": huge}, errors.InvalidParams),
        ("photos.get", {"id": huge}, errors.InvalidParams),
        ("photos.thumbnail", {"id": huge}, errors.InvalidParams),
        ("photos.search", {"folder": huge}, errors.InvalidParams),
        ("photos.get", {"id": 2**62}, errors.NotFound),
        ("folders.list", {"folder": 2**63 - 1}, errors.NotFound),
        ("folders.list", {"folder": trip, "cursor": _cursor([1, scope, "name", "asc", "a", huge])},
         errors.InvalidParams),
        ("folders.list", {"folder": trip, "sort": "size",
                          "cursor": _cursor([1, scope, "size", "asc", huge, 1])},
         errors.InvalidParams),
        ("folders.list", {"folder": trip, "sort": "taken",
                          "cursor": _cursor([1, scope, "taken", "asc", "2008-01-01T00:00+05:00",
                                             1])}, errors.InvalidParams),
        ("photos.search", {"text": "a\x00b"}, errors.InvalidParams),
        ("photos.search", {"camera": "\x00"}, errors.InvalidParams),
        ("photos.get", {"path": str(lib.real_dir) + "/\x00.jpg"}, errors.InvalidParams),
        ("photos.get", {"path": "relative.jpg"}, errors.InvalidParams),
    ]:
        expect_error(cls, lib.call, method, params)
    end = lib.call("photos.search", {"date_to": "9999-12-31", "limit": 1})  # not an overflow
    assert end["photos"]
    expect_error(errors.InvalidParams, lib.call, "photos.original",
                 {"id": lib.real["red.jpg"], "offset": huge})
    whole = lib.call("photos.original", {"id": lib.real["red.jpg"], "offset": 2**63 - 1})
    assert whole["eof"] and whole["data"] == b""


def test_lone_surrogates_in_raw_json_are_invalid_params(lib: Lib) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(lib.daemon.endpoint)
    try:
        for params in (rb'{"text":"a\ud800b"}', rb'{"path":"/x/\udfff.jpg"}',
                       rb'{"cursor":"\ud800"}'):
            s.send(b'{"jsonrpc":"2.0","id":1,"method":"photos.search","params":' + params + b"}")
            assert s.poll(10_000)
            reply = json.loads(s.recv())
            assert reply["error"]["code"] == errors.INVALID_PARAMS, reply
    finally:
        s.close()
        ctx.term()


def _param_strategy(p: Any) -> Any:
    if p.type == "integer":
        return st.one_of(st.integers(-5, 3000), st.integers(-(2**70), 2**70))
    if p.type == "boolean":
        return st.booleans()
    if p.type == "array":
        return st.lists(st.one_of(st.sampled_from(PHOTO_FIELDS), st.text(max_size=8)),
                        max_size=5)
    if p.enum:
        return st.sampled_from(p.enum)
    if p.name == "cursor":
        return st.one_of(st.text(max_size=40), st.builds(_cursor, st.lists(
            st.one_of(st.integers(-(2**70), 2**70), st.text(max_size=10), st.none(),
                      st.sampled_from(["name", "taken", "size", "asc", "desc", "groups"])),
            max_size=7)))
    if p.name in ("date_from", "date_to"):
        return st.one_of(st.text(max_size=30), st.dates().map(str),
                         st.datetimes().map(dt.datetime.isoformat))
    if p.name == "path":
        return st.one_of(st.text(max_size=30), st.just(FAKE + "/2008"),
                         st.text(max_size=20).map(lambda t: FAKE + "/" + t))
    return st.text(max_size=30)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_params_never_crash_a_handler(lib: Lib, data: st.DataObject) -> None:
    method = data.draw(st.sampled_from(["folders.list", "photos.get", "photos.search",
                                        "photos.duplicates", "photos.thumbnail",
                                        "photos.original"]))
    spec = METHODS[method]
    names = data.draw(st.lists(st.sampled_from(spec.param_names), unique=True, max_size=5))
    params = {n: data.draw(_param_strategy(next(p for p in spec.params if p.name == n)))
              for n in names}
    if method == "photos.original":
        params["length"] = min(abs(params.get("length", 1)) or 1, 4096)
    failure: errors.RpcError | None = None
    try:
        lib.call(method, params)
    except errors.RpcError as exc:
        failure = exc  # any proper error reply is fine
    assert not isinstance(failure, errors.InternalError), (method, params, failure)
