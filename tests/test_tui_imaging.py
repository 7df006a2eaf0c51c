"""Pictures in the terminal: fitting, the encoders (a Sixel decoder checks every pixel), the
caches, graphics detection and its fallbacks, and the image service against a daemon."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from test_tui_fixtures import SIZE, add_root, make_app, settled, until

from lightbox.daemon.media import samples
from lightbox.tui.imaging import choice, graphics, sixel, symbols
from lightbox.tui.imaging import encode as enc
from lightbox.tui.imaging.cache import LRU
from lightbox.tui.screens.browser import BrowserScreen
from lightbox.tui.settings import Settings
from lightbox.tui.widgets.photo_grid import PhotoGrid


def jpeg(w: int, h: int, seed: int = 1) -> bytes:
    out = io.BytesIO()
    samples.make_photo(w, h, seed).save(out, "JPEG", quality=85)
    return out.getvalue()


# -- fitting ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["sixel", "kitty", "symbols", "halfcell"])
@pytest.mark.parametrize("src", [(4000, 3000), (3000, 4000), (128, 128), (5000, 500)])
def test_fit_keeps_aspect_inside_the_box(mode: str, src: tuple[int, int]) -> None:
    cell = (8, 17)
    f = enc.fit(*src, 100, 30, cell, mode)
    assert 1 <= f.cols <= 100 and 1 <= f.rows <= 30
    if mode == "halfcell":
        shown = (f.width * cell[0], f.height * cell[1] / 2)
    elif mode == "symbols":
        shown = (f.cols * cell[0], f.rows * cell[1])
        assert (f.width, f.height) == (f.cols * 8, f.rows * 16)  # the sampling grid
    else:
        shown = (f.width, f.height)
        assert f.width <= 100 * 8 and f.height <= 30 * 17
    assert shown[0] / shown[1] == pytest.approx(src[0] / src[1], rel=0.08)
    if mode == "sixel" and f.height >= 6:
        assert f.height % 6 == 0  # no partial band to spill into the caption line


def test_the_smallest_thumbnail_that_fills_the_box() -> None:
    assert enc.source_size(18, 7, (8, 17), "sixel") == "grid"
    assert enc.source_size(120, 37, (8, 17), "sixel") == "preview"
    # Text modes count their samples: a preview box wants the preview thumbnail, a grid
    # cell the grid one (issue 12: tmux previews were blown up from 256 px).
    assert enc.source_size(120, 37, (8, 17), "halfcell") == "preview"
    assert enc.source_size(160, 45, (8, 17), "symbols") == "preview"
    assert enc.source_size(18, 7, (8, 17), "symbols") == "grid"
    assert enc.source_size(28, 9, (8, 17), "halfcell") == "grid"


@pytest.mark.parametrize("cell", [(8, 17), (16, 32), (1, 2)])
def test_text_modes_fill_the_box_whatever_tmux_says_a_cell_is(cell: tuple[int, int]) -> None:
    """The enlargement cap counts the cells' own resolution, not the terminal's pixels: a
    256 px thumbnail fills a 160x45 box (it showed as 64x24 inside tmux)."""
    for mode in ("symbols", "halfcell"):
        f = enc.fit(256, 192, 160, 45, cell, mode)
        assert f.cols == 160 or f.rows == 45, (mode, cell, f)


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


@pytest.mark.parametrize("size", [(131, 47), (7, 5), (1, 1), (900, 13)])
def test_sixel_draws_every_pixel_once_in_its_colour(size: tuple[int, int]) -> None:
    """Odd sizes: a partial last band, a ragged edge; pictures too small for any run of
    four equal sixels (the encoder before issue 13's rewrite failed on those); a wide one
    whose spans share passes and whose gaps and runs need three-digit counts."""
    img = samples.make_photo(*size, 3)
    text = sixel.encode(img, budget=None)
    drawn, regs = decode_sixel(text)
    assert len(regs) <= 256
    q = sixel.palette_image(img).convert("RGB")
    a, b = drawn.tobytes(), q.tobytes()
    mismatches = sum(1 for i in range(0, len(a), 3)
                     if max(abs(a[i + k] - b[i + k]) for k in range(3)) > 3)
    assert mismatches == 0  # every pixel painted, in its own colour, first band included


def test_a_busy_picture_keeps_to_the_sixel_budget_and_a_smooth_one_keeps_its_size() -> None:
    """Noise (every band holds most of the palette) cannot get under the budget by merging
    colours: it is drawn smaller, and the encoded box says so; a smooth picture of the same
    size fits at full size and full palette."""
    rng = np.random.default_rng(5)
    noise = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), "RGB")
    whole = len(sixel.encode(noise, budget=None))
    text, (w, h) = sixel.encode_sized(noise, budget=200_000)
    assert whole > 200_000 >= len(text)
    assert w < 400 and h < 300 and h % 6 == 0
    drawn, _ = decode_sixel(text)
    assert drawn.size == (w, h)
    smooth = Image.linear_gradient("L").resize((400, 300)).convert("RGB")
    assert sixel.encode_sized(smooth, budget=200_000)[1] == (400, 300)
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    e = enc.encode(buf.getvalue(), "sixel", 50, 18, (8, 17))  # 400x300 fits 50x18 cells
    assert e.cols * 8 >= w // 2 and e.rows <= 18
    assert sixel.budget_from_env({"LIGHTBOX_SIXEL_BUDGET": "0"}) is None
    assert sixel.budget_from_env({"LIGHTBOX_SIXEL_BUDGET": "123456"}) == 123456
    assert sixel.budget_from_env({"LIGHTBOX_SIXEL_BUDGET": "lots"}) == sixel.BUDGET


@pytest.mark.parametrize("name", symbols.SETS)
def test_symbols_recover_a_picture_drawn_from_their_own_shapes(name: str) -> None:
    """Cells drawn from a shape and two colours come back as that shape (or its complement
    with the colours swapped) and those colours: the fit is exact where it can be."""
    ss = symbols.symbol_set(name)
    rng = np.random.default_rng(7)
    rows, cols = 4, 9
    sx, sy = symbols.SAMPLES
    px = np.zeros((rows * sy, cols * sx, 3))
    want = []
    for r in range(rows):
        for c in range(cols):
            k = int(rng.integers(len(ss.chars)))
            fg, bg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            while np.abs(fg - bg).sum() < 90:  # two colours that differ in brightness
                bg = rng.integers(0, 256, 3)
            u = ss.masks[:, k].reshape(sy, sx, 1)
            px[r * sy:(r + 1) * sy, c * sx:(c + 1) * sx] = u * fg + (1 - u) * bg
            want.append((ss.chars[k], fg, bg))
    got = symbols.fit_cells(px.round().astype(np.uint8), cols, rows, ss)
    for i, (char, fg, bg) in enumerate(want):
        r, c = divmod(i, cols)
        assert got.chars[r][c] == char, (i, char, got.chars[r][c])
        assert np.abs(got.fg[r, c].astype(int) - fg).max() <= 2
        assert np.abs(got.bg[r, c].astype(int) - bg).max() <= 2


def test_symbol_sampling_is_one_number() -> None:
    assert enc.SYMBOL_SAMPLES == symbols.SAMPLES  # encode knows it without importing numpy


def test_sextant_characters() -> None:
    assert symbols.sextant_char(1) == "\U0001FB00" and symbols.sextant_char(62) == "\U0001FB3B"
    assert symbols.sextant_char(22) == "\U0001FB14"  # after the skipped left column (21)
    for p in (0, 21, 42, 63):
        with pytest.raises(ValueError, match="no sextant"):
            symbols.sextant_char(p)


def test_symbol_strips_fill_the_footprint() -> None:
    e = enc.encode(jpeg(400, 300), "symbols", 20, 8, (10, 20), symbol_set="sextants")
    assert e.mode == "symbols" and e.cells is not None and len(e.strips) == e.rows
    assert [s.text for s in e.strips] == e.cells.chars
    assert all(s.cell_length == e.cols for s in e.strips)
    assert e.cols == 20 and e.rows <= 8


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
XTERM = graphics.Graphics("sixel", requested="auto", detected="sixel",
                          available=("sixel", *graphics.TEXT), terminal="xterm-256color")
TMUX = graphics.Graphics("symbols", requested="auto", detected="symbols",
                         available=graphics.TEXT, terminal="tmux in xterm-256color")


def test_mode_precedence(monkeypatch: Any, tmp_path: Path) -> None:
    """Flag, then LIGHTBOX_GRAPHICS, then a choice saved for this terminal, then detection;
    a choice saved elsewhere, or one this terminal cannot show, does not apply (and says
    why)."""
    s = Settings(graphics_saved={"xterm-256color": "halfcell"}, path=tmp_path / "tui.toml")
    found = XTERM
    monkeypatch.setattr(choice, "detect", lambda mode, env, symbols="auto":
                        found if mode == "auto" else found.with_mode(mode, "forced"))
    assert choice.start("kitty", {"LIGHTBOX_GRAPHICS": "none"}, s).graphics.mode == "kitty"
    assert choice.start(None, {"LIGHTBOX_GRAPHICS": "none"}, s).graphics.mode == "none"
    got = choice.start(None, {}, s)
    assert got.graphics.mode == "halfcell" and "saved for xterm-256color" in got.graphics.note
    found = TMUX  # the same person, now inside tmux: the xterm choice is not this terminal's
    assert choice.start(None, {}, s).graphics.mode == "symbols"
    s.graphics_saved["tmux in xterm-256color"] = "sixel"  # saved when passthrough was on
    got = choice.start(None, {}, s)
    assert got.graphics.mode == "symbols" and "cannot show" in got.notice
    legacy = Settings(graphics="sixel")  # an older tui.toml: one mode for all terminals
    assert choice.start(None, {}, legacy).graphics.mode == "symbols"
    found = XTERM
    assert choice.start(None, {}, legacy).graphics.mode == "sixel"


def test_saving_a_choice_is_per_terminal(tmp_path: Path) -> None:
    path = tmp_path / "tui.toml"
    s = Settings(graphics="sixel", path=path)
    assert choice.options(XTERM)[0] == ("auto", "auto (detected: Sixel)")
    assert [v for v, _ in choice.options(TMUX)] == ["auto", "symbols", "halfcell", "none"]
    choice.save(s, XTERM, "sixel")
    choice.save(s, TMUX, "halfcell")
    back = Settings.load(path)
    assert back.problems == [] and back.graphics == "auto"
    assert choice.saved(back, XTERM) == "sixel" and choice.saved(back, TMUX) == "halfcell"
    choice.save(back, TMUX, "auto")
    assert choice.saved(Settings.load(path), TMUX) == "auto"
    with pytest.raises(ValueError, match="cannot be shown"):
        choice.save(back, TMUX, "sixel")


def test_forced_modes_and_no_terminal() -> None:
    assert graphics.detect("none").mode == "none"
    assert graphics.detect("sixel").requested == "sixel"
    g = graphics.detect("auto")  # pytest's stdout is not a terminal
    assert g.mode == "symbols" and g.note == "not a terminal"
    assert g.available == graphics.TEXT
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
    assert bad.graphics == "auto" and "must be one of" in bad.problems[0]


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


def test_numpy_is_a_runtime_dependency() -> None:
    """`make run` installs the fast encoders: numpy is not only in the dev extra."""
    import importlib.metadata as md

    requires = md.requires("lightbox") or []
    runtime = [r for r in requires if "extra ==" not in r]
    assert any(r.lower().startswith("numpy") for r in runtime)


def test_tmux_pane_state_and_wrapping() -> None:
    from lightbox.tui.imaging import tmux

    assert tmux.parse("0 0 1 1 0 1 on bottom") == tmux.PaneState(0, 0, True)
    assert tmux.parse("5 61 1 0 0 1 on top") == tmux.PaneState(6, 61, True)  # status on top
    assert tmux.parse("0 0 0 1 0 1 on bottom").visible is False  # another window in front
    assert tmux.parse("0 0 1 0 1 1 on bottom").visible is False  # another pane zoomed
    assert tmux.parse("0 0 1 1 0 0 on bottom").visible is False  # detached
    assert tmux.parse("no server running") is None
    assert graphics.wrap_tmux("\x1b[c") == "\x1bPtmux;\x1b\x1b[c\x1b\\"
    e = enc.encode(jpeg(300, 200), "kitty", 10, 4, (10, 20))
    wrapped = tmux.wrap_kitty(e.data)
    assert wrapped.count("\x1bPtmux;") == e.data.count("\x1b_G") >= 2
    assert wrapped.replace("\x1b\x1b", "\x1b").replace("\x1bPtmux;", "").replace(
        "\x1b\\\x1b\\", "\x1b\\") == e.data


def test_tmux_detection_reads_what_tmux_says(monkeypatch: Any) -> None:
    """Inside tmux the Kitty query is never sent; Kitty outside is known from tmux's
    client; without passthrough the answer is symbols, with the reason."""
    import subprocess

    def fake_run(cmd: list[str], **kw: Any) -> Any:
        out = "on\n" if "show" in cmd else "3.3a\txterm-kitty\tkitty(0.31)\n"
        return subprocess.CompletedProcess(cmd, 0, out, "")

    monkeypatch.setattr(graphics.subprocess, "run", fake_run)
    monkeypatch.setattr(graphics, "query_sixel", lambda through_tmux=False: False)
    monkeypatch.setattr(graphics, "query_kitty", lambda: pytest.fail("kitty query in tmux"))
    env = {"TMUX": "/tmp/tmux-0/default,1,0", "TMUX_PANE": "%3", "TERM": "tmux-256color"}
    info = graphics.tmux_info(env)
    assert info == graphics.Tmux("3.3a", True, "xterm-kitty", "kitty(0.31)", "%3")
    mode, pictures, why = graphics._auto_mode(env, info)
    assert (mode, pictures) == ("kitty", ["kitty"]) and "through tmux" in why
    assert graphics.symbol_set(env, info)[0] == "sextants"  # kitty draws them itself
    assert graphics.terminal_key(env, info) == "tmux in xterm-kitty"
    off = graphics.Tmux("3.3a", False, "xterm-256color", "XTerm(379)", "%3")
    mode, pictures, why = graphics._auto_mode(env, off)
    assert mode == "symbols" and pictures == [] and "allow-passthrough" in why
