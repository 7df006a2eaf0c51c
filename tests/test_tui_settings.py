"""The settings screen against a real daemon: generated fields, inline errors (the field's
own validator and the daemon's), unsaved marks, the diff before saving, restart markers,
secrets, reset, the audit table and this terminal's own preferences."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lbtest import DaemonProcess, short_tmpdir
from test_tui_fixtures import SIZE, acall, make_app, until
from textual.widgets import DataTable, Footer, Input, Switch

from lightbox.tui.screens.settings import ConfirmDiff, FieldRow, SettingsScreen, widget_id
from lightbox.tui.settings import Settings
from lightbox.tui.widgets.status_line import StatusLine

SECRET = "tui-secret-9Qx7-never-shown"


async def open_settings(pilot: Any) -> SettingsScreen:
    app = pilot.app
    await until(pilot, lambda: app.link.connected, timeout=30, what="connected")
    await pilot.press("comma")
    screen = await until(pilot, lambda: isinstance(app.screen, SettingsScreen)
                         and app.screen.rows and app.screen, timeout=30, what="the form")
    assert isinstance(screen, SettingsScreen)
    return screen


def row(screen: SettingsScreen, key: str) -> FieldRow:
    return screen.rows[key]


async def type_into(pilot: Any, screen: SettingsScreen, key: str, text: str) -> None:
    editor = screen.query_one("#" + widget_id(key), Input)
    editor.focus()
    editor.value = ""
    await pilot.pause()
    await pilot.press(*text)
    await pilot.pause()


def message(screen: SettingsScreen) -> str:
    return screen.query_one(StatusLine).message


async def test_edit_inline_errors_diff_save_restart_marker_and_audit(
        make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon()
    app = make_app(d)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_settings(pilot)
        # Generated from the schema: a field per runtime setting, none for bootstrap keys.
        assert "library.debounce" in screen.rows and "database.url" not in screen.rows
        assert "⟳" in str(row(screen, "library.max_watches").query_one(".field-key").render())
        assert "⟳" not in str(row(screen, "library.watch").query_one(".field-key").render())
        # The field's own validator: shown inline, nothing sent.
        await type_into(pilot, screen, "library.debounce", "500")
        deb = row(screen, "library.debounce")
        assert deb.has_class("-invalid")
        assert "must be at most 60" in str(deb.query_one(".field-error").render())
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "fix 1 field" in message(screen), what="refused")
        await type_into(pilot, screen, "library.debounce", "0.5")
        assert deb.has_class("-unsaved") and not deb.has_class("-invalid")
        assert "●" in str(deb.query_one(".field-key").render())
        watch = screen.query_one("#" + widget_id("library.watch"), Switch)
        watch.focus()
        await pilot.press("space")
        await pilot.pause()
        assert row(screen, "library.watch").has_edit
        await type_into(pilot, screen, "library.max_watches", "1000")
        # The diff, then save.
        await pilot.press("ctrl+s")
        diff = await until(pilot, lambda: isinstance(app.screen, ConfirmDiff) and app.screen)
        text = "\n".join(diff.lines)
        assert "library.debounce: 1 → 0.5" in text
        assert "library.watch: true → false" in diff.lines
        assert "library.max_watches: 0 → 1000   (needs a restart)" in text
        await pilot.press("y")
        await until(pilot, lambda: "saved (revision 1)" in message(screen), timeout=30,
                    what=lambda: message(screen))
        assert "after a daemon restart: library.max_watches" in message(screen)
        got = (await acall(d, "settings.get", {"keys": ["library.debounce",
                                                        "library.watch"]}))["settings"]
        assert got["library.debounce"]["value"] == 0.5 and got["library.watch"]["value"] is False
        await until(pilot, lambda: "restart pending" in str(
            row(screen, "library.max_watches").query_one(".field-about").render()), timeout=30)
        assert not deb.has_edit and "[database]" in str(
            deb.query_one(".field-about").render())
        # The audit table: the focused key's history, then every change.
        screen.query_one("#" + widget_id("library.debounce"), Input).focus()
        await pilot.press("ctrl+o")
        table = screen.query_one("#settings-audit", DataTable)
        await until(pilot, lambda: table.display and table.row_count == 1, timeout=30)
        cells = [str(c) for c in table.get_row_at(0)]
        assert cells[0] == "1" and cells[3] == "set" and "library.debounce: 1 → 0.5" in cells[4]
        # r in the table reverts the selected change, after showing what it undoes.
        table.focus()
        await pilot.pause()
        await pilot.press("r")
        diff = await until(pilot, lambda: isinstance(app.screen, ConfirmDiff) and app.screen)
        assert diff.lines[0] == "undo revision 1:"
        assert sorted(diff.lines[1:]) == ["library.debounce: 0.5 → 1",
                                          "library.max_watches: 1000 → 0",
                                          "library.watch: false → true"]
        await pilot.press("y")
        await until(pilot, lambda: "reverted revision 1" in message(screen), timeout=30)
        got = (await acall(d, "settings.get", {"keys": ["library.debounce"]}))["settings"]
        assert got["library.debounce"]["origin"] == "default"
        await acall(d, "settings.set", {"patch": {"library.debounce": 0.5}})
        await until(pilot, lambda: screen.query_one(
            "#" + widget_id("library.debounce"), Input).value == "0.5", timeout=30,
            what="a change made elsewhere shown live")
        # Reset to default from the keyboard.
        screen.query_one("#" + widget_id("library.debounce"), Input).focus()
        await pilot.pause()
        await pilot.press("ctrl+r")
        await until(pilot, lambda: "back to its default" in message(screen), timeout=30,
                    what=lambda: f"{message(screen)!r}, focused {app.focused}")
        await until(pilot, lambda: screen.query_one(
            "#" + widget_id("library.debounce"), Input).value == "1", timeout=30)


async def test_daemon_errors_inline_secrets_and_local_prefs(make_daemon: Any,
                                                           tmp_path: Path) -> None:
    d: DaemonProcess = make_daemon()
    photos = short_tmpdir("lbp")
    root = (await acall(d, "roots.add", {"path": str(photos), "scan": False}))["root"]
    app = make_app(d)
    app.settings = Settings.load(tmp_path / "tui.toml")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_settings(pilot)
        key = f"roots.{root['id']}.watch"
        assert key in screen.rows  # per-root sections from the schema's object templates
        # The root goes away behind the screen's back: the daemon names the field.
        await acall(d, "roots.remove", {"root": root["id"]})
        switch = screen.query_one("#" + widget_id(key), Switch)
        switch.focus()
        await pilot.press("space")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDiff))
        await pilot.press("enter")
        await until(pilot, lambda: "not saved" in message(screen), timeout=30)
        assert f"no root {root['id']}" in str(row(screen, key).query_one(".field-error")
                                              .render())
        row(screen, key).undo()
        # A secret: set/unset only, typed in a password input, replaced by typing.
        sec = screen.query_one("#" + widget_id("s3.secret_access_key"), Input)
        assert sec.password and "unset" in sec.placeholder
        await type_into(pilot, screen, "s3.secret_access_key", SECRET)
        await pilot.press("ctrl+s")
        diff = await until(pilot, lambda: isinstance(app.screen, ConfirmDiff) and app.screen)
        assert SECRET not in "\n".join(diff.lines)
        assert "s3.secret_access_key: unset → a new value" in diff.lines
        await pilot.press("y")
        await until(pilot, lambda: "saved (revision" in message(screen), timeout=30)
        await until(pilot, lambda: "set (sha256:" in screen.query_one(
            "#" + widget_id("s3.secret_access_key"), Input).placeholder, timeout=30)
        assert screen.query_one("#" + widget_id("s3.secret_access_key"), Input).value == ""
        screen.query_one("#" + widget_id("s3.secret_access_key"), Input).focus()
        await pilot.press("ctrl+o")
        table = screen.query_one("#settings-audit", DataTable)
        await until(pilot, lambda: table.row_count == 1, timeout=30)
        assert SECRET not in " ".join(str(c) for c in table.get_row_at(0))
        # This terminal's preferences: saved to tui.toml, not to the catalog.
        hints = screen.query_one("#" + widget_id("local.key_hints"), Switch)
        hints.focus()
        await pilot.press("space")
        await pilot.press("ctrl+s")
        diff = await until(pilot, lambda: isinstance(app.screen, ConfirmDiff) and app.screen)
        assert diff.lines == ["key_hints: true → false"]
        await pilot.press("y")
        await until(pilot, lambda: "saved for this terminal" in message(screen))
        assert not screen.query_one(Footer).display
        assert "key_hints = false" in (tmp_path / "tui.toml").read_text()
        assert Settings.load(tmp_path / "tui.toml").key_hints is False
        stored = (await acall(d, "settings.audit", {}))["entries"]
        assert all("key_hints" not in str(e["changes"]) for e in stored)


async def test_grid_size_follows_the_library_unless_the_file_chooses(
        make_daemon: Any) -> None:
    from lightbox.tui.screens.browser import BrowserScreen

    d: DaemonProcess = make_daemon()
    await acall(d, "settings.set", {"patch": {"tui.grid_size": "large"}})
    app = make_app(d)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, BrowserScreen)
                    and app.screen.grid.thumb_size == "large", timeout=30,
                    what="the library's grid size")
        browser = app.screen
        assert isinstance(browser, BrowserScreen)
        await acall(d, "settings.set", {"patch": {"tui.grid_size": "small"}})
        await until(pilot, lambda: browser.grid.thumb_size == "small", timeout=30,
                    what="a live change of the library default")
        await pilot.press("plus")  # this client's own choice: the library no longer decides
        await until(pilot, lambda: browser.grid.thumb_size == "medium")
        await acall(d, "settings.set", {"patch": {"tui.grid_size": "large"}})
        await pilot.pause(1.0)
        assert browser.grid.thumb_size == "medium"
