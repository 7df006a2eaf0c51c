"""Pictures in the terminal: fitting, the encoders (a Sixel decoder checks every pixel), the
caches, graphics detection and its fallbacks, and the image service against a daemon."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_tui_fixtures import SIZE, add_root, make_app, settled, until

from lightbox.daemon.media import samples
from lightbox.tui.imaging import encode as enc
from lightbox.tui.imaging import graphics, sixel
from lightbox.tui.imaging.cache import LRU
from lightbox.tui.main import choose_mode
from lightbox.tui.screens.browser import BrowserScreen
from lightbox.tui.settings import Settings
from lightbox.tui.widgets.photo_grid import PhotoGrid


def jpeg(w: int, h: int, seed: int = 1) -> bytes:
    out = io.BytesIO()
    samples.make_photo(w, h, seed).save(out, "JPEG", quality=85)
    return out.getvalue()


# -- fitting ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["sixel", "kitty", "halfcell"])
@pytest.mark.parametrize("src", [(4000, 3000), (3000, 4000), (128, 128), (5000, 500)])
def test_fit_keeps_aspect_inside_the_box(mode: str, src: tuple[int, int]) -> None:
    cell = (8, 17)
    f = enc.fit(*src, 100, 30, cell, mode)
    assert 1 <= f.cols <= 100 and 1 <= f.rows <= 30
    if mode == "halfcell":
        shown = (f.width * cell[0], f.height * cell[1] / 2)
    else:
        shown = (f.width, f.height)
        assert f.width <= 100 * 8 and f.height <= 30 * 17
    assert shown[0] / shown[1] == pytest.approx(src[0] / src[1], rel=0.08)
    if mode == "sixel" and f.height >= 6:
        assert f.height % 6 == 0  # no partial band to spill into the caption line


def test_the_smallest_thumbnail_that_fills_the_box() -> None:
    assert enc.source_size(18, 7, (8, 17), "sixel") == "grid"
    assert enc.source_size(120, 37, (8, 17), "sixel") == "preview"
    assert enc.source_size(120, 37, (8, 17), "halfcell") == "grid"  # 120x74 half-cells


# -- encoders ---------------------------------------------------------------------------------
def decode_sixel(text: str) -> tuple[Image.Image, dict[int, tuple[int, int, int]]]:
    """A small Sixel decoder (RGB registers, RLE, passes, bands): what a terminal draws."""
    m = re.match(r'\x1bP0;1;0q"1;1;(\d+);(\d+)', text)
    assert m, text[:40]
    w, h = int(m[1]), int(m[2])
    body = text[m.end():]
    assert body.endswith("\x1b\\")
    body = body[:-2]
    img = Image.new("RGB", (w, h), (255, 0, 255))
    px = img.load()
    regs: dict[int, tuple[int, int, int]] = {}
    x = y = 0
    colour = 0
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "#":
            j = i + 1
            while j < len(body) and (body[j].isdigit() or body[j] == ";"):
                j += 1
            parts = [int(p) for p in body[i + 1:j].split(";")]
            colour = parts[0]
            if len(parts) == 5:
                assert parts[1] == 2
                regs[colour] = (parts[2], parts[3], parts[4])
            i = j
            continue
        if ch == "$":
            x = 0
        elif ch == "-":
            x, y = 0, y + 6
        elif ch == "!":
            j = i + 1
            while body[j].isdigit():
                j += 1
            n, bits = int(body[i + 1:j]), ord(body[j]) - 63
            for k in range(n):
                _put(px, x + k, y, bits, regs[colour], w, h)
            x += n
            i = j
        else:
            _put(px, x, y, ord(ch) - 63, regs[colour], w, h)
            x += 1
        i += 1
    return img, regs


def _put(px: Any, x: int, y: int, bits: int, pct: tuple[int, int, int], w: int, h: int) -> None:
    rgb = tuple(round(v * 255 / 100) for v in pct)
    for k in range(6):
        if bits & (1 << k):
            assert x < w and y + k < h, "drawn outside the raster"
            px[x, y + k] = rgb


@pytest.mark.parametrize("use_numpy", [True, False] if sixel.HAVE_NUMPY else [False])
def test_sixel_draws_every_pixel_once_in_its_colour(use_numpy: bool) -> None:
    img = samples.make_photo(131, 47, 3)  # odd sizes: a partial last band, a ragged edge
    text = sixel.encode(img, use_numpy=use_numpy)
    drawn, regs = decode_sixel(text)
    assert len(regs) <= 256
    q = sixel.palette_image(img).convert("RGB")
    a, b = drawn.tobytes(), q.tobytes()
    mismatches = sum(1 for i in range(0, len(a), 3)
                     if max(abs(a[i + k] - b[i + k]) for k in range(3)) > 3)
    assert mismatches == 0  # every pixel painted, in its own colour, first band included


def test_sixel_numpy_and_pure_python_agree() -> None:
    if not sixel.HAVE_NUMPY:
        pytest.skip("numpy is not installed (it is optional)")
    img = samples.make_photo(200, 150, 9)
    assert sixel.encode(img, use_numpy=True) == sixel.encode(img, use_numpy=False)


def test_halfcell_strips_fill_the_footprint() -> None:
    e = enc.encode(jpeg(400, 300), "halfcell", 20, 8, (10, 20))
    assert e.mode == "halfcell" and len(e.strips) == e.rows
    assert all(s.cell_length == e.cols for s in e.strips)
    assert e.cols == 20 and e.rows <= 8


def test_kitty_transmits_once_and_places_with_placeholders() -> None:
    e = enc.encode(jpeg(400, 300), "kitty", 20, 8, (10, 20))
    assert e.data.startswith("\x1b_Ga=t,f=100,i=") and f"i={e.image_id}" in e.data
    assert "a=p,U=1" in e.data and e.data.endswith("\x1b\\")
    assert len(e.strips) == e.rows and all(s.cell_length == e.cols for s in e.strips)
    assert "\U0010eeee" in e.strips[0].text


def test_lru_keeps_to_its_byte_budget() -> None:
    lru: LRU[int, bytes] = LRU(100, len)
    for i in range(10):
        lru.put(i, b"x" * 30)
    assert lru.used <= 100 and len(lru) == 3
    assert lru.get(9) is not None and lru.get(0) is None
    lru.put(99, b"y" * 500)  # larger than the budget: not kept
    assert 99 not in lru


# -- graphics mode ----------------------------------------------------------------------------
def test_mode_precedence() -> None:
    s = Settings(graphics="halfcell")
    assert choose_mode("sixel", {"LIGHTBOX_GRAPHICS": "kitty"}, s) == "sixel"
    assert choose_mode(None, {"LIGHTBOX_GRAPHICS": "kitty"}, s) == "kitty"
    assert choose_mode(None, {}, s) == "halfcell"
    assert choose_mode(None, {}, Settings()) == "auto"


def test_forced_modes_and_no_terminal() -> None:
    assert graphics.detect("none").mode == "none"
    assert graphics.detect("sixel").requested == "sixel"
    g = graphics.detect("auto")  # pytest's stdout is not a terminal
    assert g.mode == "halfcell" and g.note == "not a terminal"
    with pytest.raises(ValueError, match="graphics"):
        graphics.detect("ascii-art")


def test_a_terminal_that_reports_zero_columns_falls_back(monkeypatch: Any) -> None:
    from textual_image import _terminal

    def zero_columns() -> Any:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(_terminal, "get_cell_size", zero_columns)
    assert graphics._cell_size() == graphics.DEFAULT_CELL


def test_settings_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "tui.toml"
    s = Settings(graphics="sixel", thumb_size="large", view="list", metadata=True, path=path)
    s.save()
    back = Settings.load(path)
    assert (back.graphics, back.thumb_size, back.view, back.metadata) == \
        ("sixel", "large", "list", True)
    path.write_text('graphics = "fancy"\n')
    bad = Settings.load(path)
    assert bad.graphics == "auto" and "expected one of" in bad.problems[0]


# -- the image service ------------------------------------------------------------------------
async def test_unreadable_photos_say_so_and_are_not_asked_again(make_daemon: Any,
                                                                tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(3):
        samples.save_jpeg(samples.make_photo(300, 200, i), lib / f"ok{i}.jpg")
    (lib / "broken.jpg").write_bytes(jpeg(300, 200)[:400])  # truncated JPEG
    (lib / "notes.jpg").write_text("not a picture at all")
    d = make_daemon(config={"library": {"reconcile_interval": 0}})
    import asyncio

    await asyncio.to_thread(add_root, d, lib)
    app = make_app(d, start=str(lib))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        grid = screen.query_one(PhotoGrid)
        by_name = {screen.seq[c.index]["name"]: c for c in grid._cells if c.index is not None}
        for name in ("ok0.jpg", "ok1.jpg", "ok2.jpg"):
            assert by_name[name].view.encoded is not None, name
        fetched = app.images.stats["fetched"]
        broken = [by_name[n] for n in ("broken.jpg", "notes.jpg") if n in by_name]
        assert broken, sorted(by_name)
        for cell in broken:
            assert cell.view.encoded is None
            assert "unreadable" in cell.view._placeholder
        await pilot.press("G", "g")  # the view asks again: failures are remembered
        await until(pilot, lambda: app.images.idle)
        assert app.images.stats["fetched"] == fetched


def test_numpy_is_used_when_installed() -> None:
    """numpy is a runtime dependency (the daemon's duplicate grouping); the Sixel encoder
    uses it then, and keeps its pure-Python path (tested above) for an install without."""
    import importlib.metadata as md

    requires = md.requires("lightbox") or []
    runtime = [r for r in requires if "extra ==" not in r]
    assert any(r.lower().startswith("numpy") for r in runtime)
    assert sixel.HAVE_NUMPY
