"""The browser's search and sort: the search bar's results, sort keys and direction, all
photos below a folder, the parent folder. Each is a new ``Query`` for the same loader; the
cursor stays on the photo it was on.

A mixin of ``BrowserScreen`` (one job per module); its methods take the screen as ``self``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from lightbox.tui.model import SORTS, Query
from lightbox.tui.widgets.search_bar import SearchBar

if TYPE_CHECKING:
    from lightbox.tui.screens.browser import BrowserScreen


class SearchAndSort:
    def _me(self) -> BrowserScreen:
        return self  # type: ignore[return-value]

    async def action_search(self) -> None:
        me = self._me()
        await me.query_one(SearchBar).open(me.filters)

    def on_search_bar_submitted(self, message: SearchBar.Submitted) -> None:
        me = self._me()
        me.query_one(SearchBar).close()
        filters = message.filters
        folder_id = int(me.folder["id"]) if me.folder else None
        if folder_id is None and not filters.everywhere:
            filters = replace(filters, everywhere=True)
        me.filters = filters
        me.load(Query(folder_id, filters, sort=me.sort, order=me.order))
        me.view.focus()

    def on_search_bar_invalid(self, message: SearchBar.Invalid) -> None:
        me = self._me()
        me.say(message.problem, error=True)

    def on_search_bar_closed(self, message: SearchBar.Closed) -> None:
        me = self._me()
        me.query_one(SearchBar).close()
        me.view.focus()

    def action_back(self) -> None:
        me = self._me()
        bar = me.query_one(SearchBar)
        if bar.is_open:
            bar.close()
            me.view.focus()
        elif me.seq is not None and me.seq.query.is_search and me.folder:
            me.open_folder(me.folder)

    def action_cycle_sort(self) -> None:
        me = self._me()
        me.sort = SORTS[(SORTS.index(me.sort) + 1) % len(SORTS)]
        me._resort()

    def action_reverse_sort(self) -> None:
        me = self._me()
        me.order = "desc" if me.order == "asc" else "asc"
        me._resort()

    def _resort(self) -> None:
        me = self._me()
        me._update_position()
        if me.seq is None:
            return
        photo = me.current_photo()
        me.load(me.seq.query.sorted_by(me.sort, me.order), photo["id"] if photo else None)

    def action_toggle_below(self) -> None:
        me = self._me()
        if me.folder is None:
            return
        showing_below = me.seq is not None and me.seq.query.recursive
        me.open_folder(me.folder, below=not showing_below)

    def action_parent(self) -> None:
        me = self._me()
        seq = me.seq
        if seq is None or len(seq.breadcrumbs) < 2:
            return
        parent = seq.breadcrumbs[-2]
        node = me.ftree.node_for(int(parent["id"]))
        if node is not None and node.data:
            me.open_folder(node.data)
            me.ftree.select_folder(int(parent["id"]))
