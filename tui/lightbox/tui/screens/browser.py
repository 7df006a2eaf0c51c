"""The browser: folder tree, thumbnail grid or list, metadata panel, search, status.

This screen owns what is shown (a ``PhotoSeq`` for a folder or a search) and does all the
I/O for it in workers; the widgets only draw and report the cursor. The tree
(``browser_tree``), search and sort (``browser_search``) and live updates (``browser_live``)
are mixins in their own modules, so this one stays about loading and showing photos.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Input, Static

from lightbox.common import errors
from lightbox.tui import format as fmt
from lightbox.tui import opener
from lightbox.tui.model import (
    ROWS_BATCH,
    SORT_LABELS,
    Filters,
    PhotoSeq,
    Query,
    fetch_rows,
    pages,
    saved_folder,
)
from lightbox.tui.screens.base import LinkedScreen
from lightbox.tui.screens.browser_live import LiveUpdates
from lightbox.tui.screens.browser_search import SearchAndSort
from lightbox.tui.screens.browser_tree import TreeNavigation
from lightbox.tui.settings import THUMB_SIZES, Place
from lightbox.tui.widgets.breadcrumb import Breadcrumb
from lightbox.tui.widgets.folder_tree import Folder, FolderTree
from lightbox.tui.widgets.metadata import MetadataPanel
from lightbox.tui.widgets.nav import PhotoCursor, PhotoOpen
from lightbox.tui.widgets.photo_grid import PhotoGrid
from lightbox.tui.widgets.photo_table import PhotoTable
from lightbox.tui.widgets.search_bar import SearchBar
from lightbox.tui.widgets.start_footer import StartFooter
from lightbox.tui.widgets.status_line import StatusLine

RPC_ERRORS = (errors.ClientError, errors.RpcError)


HERE = Path(__file__).parent


class BrowserScreen(TreeNavigation, SearchAndSort, LiveUpdates, LinkedScreen):
    CSS_PATH = HERE / "browser.tcss"  # absolute: subclasses live elsewhere
    # Where the keys go is decided by what the folder shows (photos: the grid; none: the
    # tree), not by Textual's "first focusable widget", which is the tree and, on a busy
    # machine, won the race against a folder's photos arriving. "" turns it off (None would
    # inherit the app's "*": the tree took the focus at compose and gave it to the grid at
    # mount, two restyles of each before the first frame).
    AUTO_FOCUS = ""
    BINDINGS = [
        Binding("slash", "search", "Search"),
        Binding("v", "toggle_view", "Grid/List"),
        Binding("i", "toggle_metadata", "Info"),
        Binding("s", "cycle_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse sort", show=False),
        Binding("a", "toggle_below", "All below", show=False),
        Binding("backspace", "parent", "Parent folder", show=False),
        Binding("plus,equals_sign", "thumbs(1)", "Bigger thumbnails", show=False),
        Binding("minus", "thumbs(-1)", "Smaller thumbnails", show=False),
        Binding("R", "rescan", "Rescan folder", show=False),
        Binding("space", "mark", "Mark", show=False),
        Binding("V", "mark_range", "Mark range", show=False),
        Binding("U", "unmark", "Clear marks", show=False),
        Binding("y", "yank('path')", "Copy path", show=False),
        Binding("Y", "yank('id')", "Copy id", show=False),
        Binding("o", "open_original", "Open original", show=False),
        Binding("t", "toggle_tree", "Folder tree", show=False),
        Binding("J", "jobs", "Jobs"),
        Binding("D", "duplicates", "Duplicates"),
        Binding("comma", "settings", "Settings", show=False),
        Binding("B", "backups", "Backups", show=False),
        Binding("C", "database", "Catalog database", show=False),
        Binding("escape", "back", "Back", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, start: Place | None = None) -> None:
        super().__init__()
        self.start = start or Place()
        self.seq: PhotoSeq | None = None
        self.folder: Folder | None = None  # the folder whose photos (or subtree) are shown
        self.sort, self.order = "name", "asc"
        self.filters: Filters | None = None
        self._pending_folder: Timer | None = None
        self._tree_took_focus = False  # the tree got the keys because a folder was empty
        self.empty_text = ""
        self.marks: dict[int, str] = {}  # marked photo id -> its path (for y)
        self._mark_anchor: int | None = None  # index of the last photo (un)marked
        self.ftree = FolderTree(id="tree")
        self.grid = PhotoGrid(self.images, thumb_size=self.lb.settings.thumb_size, id="grid")
        self.table = PhotoTable(id="list")

    def compose(self) -> ComposeResult:
        settings = self.lb.settings
        yield Breadcrumb(id="crumbs")
        yield SearchBar(id="search")
        with Horizontal(id="panes"):
            yield self.ftree
            with ContentSwitcher(initial=settings.view, id="center"):
                yield self.grid
                yield self.table
                yield Static("", id="empty")
            panel = MetadataPanel(id="meta")
            panel.display = settings.metadata
            yield panel
        yield StatusLine()
        yield StartFooter()  # its keys once the first folder is shown (``_first_shown``)

    # -- handy ----------------------------------------------------------------------------
    @property
    def view(self) -> PhotoGrid | PhotoTable:
        return self.grid if self.lb.settings.view == "grid" else self.table

    @property
    def cursor(self) -> int:
        return self.view.cursor

    def current_photo(self) -> dict[str, Any] | None:
        return self.seq.get(self.cursor) if self.seq is not None else None

    def on_mount(self) -> None:
        # (LinkedScreen.on_mount runs too: Textual calls the handler of every class)
        self.query_one(MetadataPanel).show(None)
        query = saved_folder(self.start.folder_id, self.start.folder_path)
        if query is not None:
            # The saved folder's first page is on its way already (``prefetch_start``); the
            # tree fills in beside it and is opened down to the folder once both are here.
            self._starting = True
            self.load(query, self.start.photo_id)
            self.load_roots()
        else:
            self.load_roots(open_start=True)
        self.load_library_defaults()  # again whenever the link comes (back) up
        self.view.focus()

    def remember(self) -> None:
        photo = self.current_photo()
        folder = self.folder or {}
        place = Place(folder.get("id"), folder.get("path"), photo["id"] if photo else None)
        self.lb.place = place

    # -- the tree -------------------------------------------------------------------------
    # -- loading photos -------------------------------------------------------------------
    def open_folder(self, folder: Folder, photo_id: int | None = None,
                    below: bool = False) -> None:
        self.folder = folder
        self.filters = None
        self.query_one(SearchBar).close()
        self.load(Query(int(folder["id"]), recursive=below, sort=self.sort, order=self.order),
                  photo_id)

    def load(self, query: Query, photo_id: int | None = None) -> None:
        self._load(query, photo_id)

    @work(group="photos", exclusive=True)
    async def _load(self, query: Query, photo_id: int | None) -> None:
        starting, self._starting = self._starting, False
        seq = PhotoSeq(query)
        if not query.is_search and self.folder:
            seq.expected = int(self.folder.get("photo_count") or 0)
        seq.on_miss = self._rows_wanted
        first = True
        prefetched = self.lb.take_start_page(query, photo_id) if starting else None
        try:
            async for loaded in pages(self.link, seq, around=photo_id, first_page=prefetched):
                if first:
                    first = False
                    self._show_seq(seq, photo_id)
                    if starting and seq.folder:
                        self.start_revealed(seq.breadcrumbs, int(seq.folder["id"]))
                else:
                    self.view.seq_grew()
                    if photo_id is not None and self.cursor == 0:
                        index = seq.index_of(photo_id)
                        if index:
                            self.view.move_cursor(index)
                self._update_info()
                del loaded
                await asyncio.sleep(0)
        except errors.NotFound:
            if starting:  # the saved folder is gone: start as without one
                self.start = Place()
                self.load_roots(open_start=True)
                return
            self._empty("This folder is no longer in the library.")
            self.load_roots()
        except RPC_ERRORS as exc:
            if first:
                self._empty(self._trouble("Cannot load the photos", exc))
            else:
                self.say(f"stopped loading: {exc}", error=True)

    # -- rows on demand ------------------------------------------------------------------
    _fetching = False
    _starting = False  # the next load is the saved folder's, whose first page was prefetched

    def _rows_wanted(self, index: int) -> None:
        """A view asked for a row that is not here (called while drawing): fetch it soon."""
        if not self._fetching:
            self._fetching = True
            self.call_later(self._fetch_rows)

    @work(group="rows")
    async def _fetch_rows(self) -> None:
        """Rows around the last one asked for, a batch at a time, until what is wanted is
        here (its ids may still be on their way: the order's next page wakes this again)."""
        try:
            while (seq := self.seq) is not None and seq.last_miss is not None:
                at = seq.last_miss
                seq.last_miss = None
                ids = seq.missing(at - ROWS_BATCH // 4, at + ROWS_BATCH * 3 // 4)
                if not ids:
                    continue
                await fetch_rows(self.link, seq, ids)
                if seq is not self.seq:
                    return
                seq.evict(self.cursor)
                self.view.seq_grew()  # the hidden view catches up when it is shown
        except RPC_ERRORS as exc:
            self.say(f"cannot load photos: {exc}", error=True)
        finally:
            self._fetching = False

    def _show_seq(self, seq: PhotoSeq, photo_id: int | None) -> None:
        old = self.seq
        self.seq = seq
        if old is None or old.query != seq.query:
            self._set_marks({})
        if seq.folder and not seq.query.is_search:
            self.folder = seq.folder
        index = seq.index_of(photo_id) or 0
        for view in (self.grid, self.table):
            view.set_seq(seq, index)
        if old is None or old.query.folder_id != seq.query.folder_id:
            self.query_one(MetadataPanel).show(None)
        self._update_crumbs()
        if not len(seq) and seq.complete:
            self._empty(self._empty_text(seq))
            if self.focused is None or self.focused is self.view:
                # Nothing to move through here: the keys go to the tree, opened on what this
                # folder holds (and come back when photos show up, unless the user has
                # started moving in the tree meanwhile).
                self.ftree.focus()
                self._tree_took_focus = True
                node = self.ftree.node_for(int(self.folder["id"])) if self.folder else None
                if node is not None and not seq.query.is_search:
                    node.expand()
        else:
            self.query_one("#center", ContentSwitcher).current = self.lb.settings.view
            if self._tree_took_focus and self.ftree.has_focus:
                self.view.focus()
            elif not isinstance(self.focused, (FolderTree, Input)):
                self.view.focus()  # it was hidden behind the empty-folder message
            self._tree_took_focus = False
        self._update_info()
        self._cursor_moved()
        if self.view is self.grid and not self.grid.has_cells and len(seq):
            # The grid builds its cells at its first size, which may come after the first
            # page (it is asked for before the screen is built): until then no frame shows a
            # photo, and images and the heap freeze would only delay the one that does.
            self._started_pending = True
        else:
            self.call_after_refresh(self._first_shown)

    _started_pending = False

    def on_photo_grid_cells_built(self, message: PhotoGrid.CellsBuilt) -> None:
        if self._started_pending:
            self._started_pending = False
            self.call_after_refresh(self._first_shown)

    def _first_shown(self) -> None:
        """A folder's photos are on screen (every folder shown calls this; it acts once):
        the app starts images and the footer composes its keys."""
        self.lb.started()
        self.query_one(StartFooter).show_keys()

    def _trouble(self, what: str, exc: Exception) -> str:
        if isinstance(exc, errors.DaemonNotRunning):
            hint = self.link.start_hint
            return (f"Not connected: {exc}.\n\n{hint[:1].upper()}{hint[1:]}; this screen "
                    "fills in as soon as it answers.")
        return f"{what}: {exc}"

    def _empty(self, text: str) -> None:
        self.query_one(StartFooter).show_keys()  # no folder to wait for
        self.empty_text = text
        self.query_one("#empty", Static).update(text)
        self.query_one("#center", ContentSwitcher).current = "empty"

    def _empty_text(self, seq: PhotoSeq) -> str:
        if seq.query.filters is not None:
            return (f"No photos match {seq.query.filters.describe()}.\n\n"
                    "Press / to change the search, Esc to go back to the folder.")
        folder = seq.folder or self.folder or {}
        subs, total = seq.subfolders, int(folder.get("total_count") or 0)
        if subs and total:
            verb = "holds" if len(subs) == 1 else "hold"
            return (f"No photos directly in this folder.\n\n{fmt.count(len(subs), 'subfolder')}"
                    f" {verb} {fmt.count(total)}: open one in the tree, or press a to show all "
                    "of them here.")
        if not folder.get("online", True):
            return "This source is offline (unmounted or unreachable); its photos are kept."
        return "No photos in this folder (yet)."

    def _update_crumbs(self) -> None:
        seq = self.seq
        crumbs = self.query_one(Breadcrumb)
        parts = [c.get("name") or "?" for c in (seq.breadcrumbs if seq is not None else [])]
        if seq is not None and seq.query.is_search:
            folder = self.folder or {}
            here = [folder.get("name") or "?"]
            if seq.query.filters is not None:
                where = [] if seq.query.filters.everywhere else here
                crumbs.set_path(where, f"Search: {seq.query.filters.describe()}")
            else:
                crumbs.set_path(here, "All photos below")
        else:
            crumbs.set_path(parts)
        self._update_position()

    def _update_position(self) -> None:
        seq = self.seq
        arrow = "↑" if self.order == "asc" else "↓"
        pos = ""
        if seq is not None and len(seq):
            pos = f"{self.cursor + 1:,}/{seq.total:,}" + ("" if seq.complete else "…")
        self.query_one(Breadcrumb).set_right(
            f"{pos}   sorted by {SORT_LABELS[self.sort]} {arrow}")

    def _update_info(self) -> None:
        seq = self.seq
        line = self.status_line
        if line is None:
            return
        parts = []
        if seq is not None:
            loading = "" if seq.complete else " (loading…)"
            parts.append(fmt.count(seq.total) + loading)
        if self.marks:
            parts.append(f"{len(self.marks):,} marked")
        parts.append(self.lb.graphics_label())
        line.set_info("  ·  ".join(parts))
        self._update_position()

    # -- cursor and opening ---------------------------------------------------------------
    def on_photo_cursor(self, message: PhotoCursor) -> None:
        # The hidden view only takes the index; it scrolls to it when it is shown.
        other = self.table if message.control is self.grid else self.grid
        other.cursor = message.index
        self._cursor_moved()

    def _cursor_moved(self) -> None:
        self.remember()
        self._update_position()
        if self.query_one(MetadataPanel).display:
            self.load_metadata()

    @work(group="meta", exclusive=True)
    async def load_metadata(self) -> None:
        panel = self.query_one(MetadataPanel)
        photo = self.current_photo()
        if photo is None:
            panel.show(None)
            return
        await asyncio.sleep(0.12)  # let a held arrow key pass first
        try:
            detail = await self.link.call("photos.get", {"id": photo["id"]})
        except RPC_ERRORS as exc:
            panel.show({**photo, "error": f"(details unavailable: {exc})"})
            return
        panel.show(detail)

    def on_photo_open(self, message: PhotoOpen) -> None:
        if self.seq is None or not len(self.seq):
            return
        from lightbox.tui.screens.preview import PreviewScreen

        def back(index: int | None) -> None:
            if index is not None:
                self.view.move_cursor(index)
                other = self.table if self.view is self.grid else self.grid
                other.move_cursor(index, announce=False)

        self.app.push_screen(PreviewScreen(self.seq, message.index), back)

    def graphics_changed(self) -> None:
        self.grid.update_cells()
        self._update_info()

    # -- marks, clipboard, opening -------------------------------------------------------
    def photo_path(self, photo: dict[str, Any]) -> str:
        if photo.get("path"):
            return str(photo["path"])
        folder = (self.seq.folder if self.seq is not None else None) or self.folder or {}
        return f"{folder.get('path') or ''}/{photo.get('name') or ''}"

    def _set_marks(self, marks: dict[int, str]) -> None:
        self.marks = marks
        for view in (self.grid, self.table):
            view.set_marks(set(marks))
        self._update_info()

    def action_mark(self) -> None:
        """Space: mark or unmark the photo under the cursor, then move on (yazi's key)."""
        photo = self.current_photo()
        if photo is None:
            return
        marks = dict(self.marks)
        pid = int(photo["id"])
        if pid in marks:
            del marks[pid]
        else:
            marks[pid] = self.photo_path(photo)
        self._mark_anchor = self.cursor
        self._set_marks(marks)
        self.view.action_move(1, "item")

    def action_mark_range(self) -> None:
        """V: mark every photo from the last one marked to the cursor."""
        if self.seq is None or not len(self.seq):
            return
        anchor = self.cursor if self._mark_anchor is None else self._mark_anchor
        lo, hi = sorted((anchor, self.cursor))
        marks = dict(self.marks)
        waiting = 0
        for i in range(lo, hi + 1):
            photo = self.seq.get(i)
            if photo is None:
                waiting += 1
                continue
            marks[int(photo["id"])] = self.photo_path(photo)
        self._set_marks(marks)
        self.say(f"{len(marks):,} marked" + (f" ({waiting:,} still loading: V again)"
                                             if waiting else ""))

    def action_unmark(self) -> None:
        if self.marks:
            self.say(f"{len(self.marks):,} marks cleared")
        self._set_marks({})

    def action_yank(self, what: str) -> None:
        """y / Y: the marked photos' paths or ids (else the current one's) to the clipboard
        through OSC 52, which works over SSH (inside tmux: ``set -g set-clipboard on``)."""
        if self.marks:
            values = list(self.marks.values()) if what == "path" else \
                [str(i) for i in self.marks]
        else:
            photo = self.current_photo()
            if photo is None:
                return
            values = [self.photo_path(photo) if what == "path" else str(photo["id"])]
        self.app.copy_to_clipboard("\n".join(values))
        shown = values[0] if len(values) == 1 else f"{len(values)} {what}s"
        self.say(f"copied {shown}")

    @work(group="open", exclusive=True)
    async def action_open_original(self) -> None:
        """o: the original, fetched through the daemon (it may be on another host) into a
        temporary file, opened with the ``open_command`` of tui.toml (xdg-open by default
        when there is a display)."""
        photo = self.current_photo()
        if photo is None:
            return
        argv = opener.command(self.lb.settings.open_command)
        if argv is None:
            self.say("no way to open it here: set open_command in tui.toml (for example "
                     '"feh {}"); o then opens the original with it', error=True)
            return
        self.say(f"fetching {photo.get('name')} …")
        try:
            path = await opener.fetch(self.link, int(photo["id"]), str(photo.get("name")))
            opener.launch(argv, path)
        except RPC_ERRORS as exc:
            self.say(f"cannot open it: {exc}", error=True)
            return
        except OSError as exc:
            self.say(f"cannot run {argv[0]}: {exc.strerror or exc}", error=True)
            return
        self.say(f"opened {photo.get('name')} with {argv[0]}")

    def action_toggle_tree(self) -> None:
        self.ftree.display = not self.ftree.display
        if not self.ftree.display and self.ftree.has_focus:
            self.view.focus()

    def on_resize(self, event: Any) -> None:
        # A narrow terminal keeps most of its width for the photos (t hides the tree).
        width = self.size.width
        self.ftree.styles.width = 32 if width >= 100 else max(12, width // 3)

    # -- actions --------------------------------------------------------------------------
    def action_toggle_view(self) -> None:
        settings = self.lb.settings
        index = self.cursor
        settings.view = "list" if settings.view == "grid" else "grid"
        settings.save()
        switcher = self.query_one("#center", ContentSwitcher)
        if switcher.current != "empty":
            switcher.current = settings.view
        self.view.move_cursor(index, announce=False)
        self.view.focus()
        if settings.view == "grid":
            self.grid.update_cells()

    def action_toggle_metadata(self) -> None:
        panel = self.query_one(MetadataPanel)
        panel.display = not panel.display
        self.lb.settings.metadata = bool(panel.display)
        self.lb.settings.save()
        if panel.display:
            self.load_metadata()

    @work(group="library-defaults", exclusive=True)
    async def load_library_defaults(self) -> None:
        """The library's grid size (``tui.grid_size``), unless tui.toml chooses one."""
        if self.lb.settings.own_grid_size:
            return
        try:
            got = await self.link.call("settings.get", {"keys": ["tui.grid_size"]})
        except (errors.ClientError, errors.RpcError):
            return  # a daemon without settings: keep ours
        self.library_grid_size(got["settings"]["tui.grid_size"]["value"])

    def library_grid_size(self, size: Any) -> None:
        settings = self.lb.settings
        if settings.own_grid_size or size not in THUMB_SIZES or size == self.grid.thumb_size:
            return
        settings.thumb_size = str(size)  # not saved: the file keeps following the library
        settings.grid_from_library = True
        self.grid.set_thumb_size(str(size))

    async def action_thumbs(self, step: int) -> None:
        names = list(THUMB_SIZES)
        settings = self.lb.settings
        i = max(0, min(len(names) - 1, names.index(settings.thumb_size) + step))
        settings.thumb_size = names[i]
        settings.explicit.add("thumbnails")  # this client's own choice from now on
        settings.save()
        self.grid.set_thumb_size(names[i])
        self.say(f"{names[i]} thumbnails")

    @work(group="rescan")
    async def action_rescan(self) -> None:
        folder = self.folder
        if not folder or not folder.get("path"):
            return
        method, params, verb = fmt.refresh_call(folder)
        try:
            r = await self.link.call(method, params)
        except RPC_ERRORS as exc:
            self.say(f"cannot start a scan: {exc}", error=True)
            return
        self.say(f"{verb} {folder['name']} (job {r['job']}); J shows its progress")

    def action_jobs(self) -> None:
        from lightbox.tui.screens.jobs import JobsScreen

        self.app.push_screen(JobsScreen(self.folder))

    def action_settings(self) -> None:
        from lightbox.tui.screens.settings import SettingsScreen

        self.app.push_screen(SettingsScreen())

    def action_backups(self) -> None:
        from lightbox.tui.screens.backups import BackupsScreen

        self.app.push_screen(BackupsScreen())

    def action_database(self) -> None:
        from lightbox.tui.screens.database import DatabaseScreen

        self.app.push_screen(DatabaseScreen())

    def action_duplicates(self) -> None:
        from lightbox.tui.screens.duplicates import DuplicatesScreen

        self.app.push_screen(DuplicatesScreen())

    async def action_quit(self) -> None:
        self.app.exit(0)
