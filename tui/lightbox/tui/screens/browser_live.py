"""Live updates for the browser: catalog, source and job events, and reconnection.

Events are applied where that is cheap and exact (removed photos leave the open folder at
once) and otherwise turn into a debounced reload of what is shown, keeping the cursor on the
same photo: the daemon already merges bursts, and one reload per half second is invisible
while a scan adds hundreds of photos. After a restart or a gap replay cannot cover
(``Resync``) everything shown is reloaded in place: the tree's open folders, the photos and
the cursor position survive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.timer import Timer

from lightbox.tui import link as linkmod
from lightbox.tui.messages import DaemonEvent, LinkChanged, Resync

if TYPE_CHECKING:
    from lightbox.tui.screens.browser import BrowserScreen

RELOAD_DELAY = 0.5


class LiveUpdates:
    _reload_timer: Timer | None = None
    _folders_timer: Timer | None = None
    _dirty_folders: set[int]
    _was_down = False

    def _me(self) -> BrowserScreen:
        return self  # type: ignore[return-value]

    def on_daemon_event(self, message: DaemonEvent) -> None:
        me = self._me()
        data = message.data
        if message.topic == "catalog":
            self._catalog(message.type, data)
        elif message.topic == "source":
            me.load_roots()
            if message.type in ("online", "offline"):
                self._schedule_reload()
        elif message.topic == "settings" and message.type == "changed" \
                and "tui.grid_size" in (data.get("keys") or []):
            size = (data.get("values") or {}).get("tui.grid_size")
            me.library_grid_size(size)
        elif message.topic == "system" and message.type == "started":
            me.say("lightboxd restarted")
        elif message.topic == "system" and message.type == "indexing_paused":
            me.say(f"indexing paused: {data.get('message') or data.get('reason')}")
        elif message.topic == "system" and message.type == "indexing_resumed":
            me.say("indexing resumed")

    def _catalog(self, kind: str, data: dict[str, Any]) -> None:
        me = self._me()
        seq = me.seq
        if kind == "folders":
            self._dirty(data.get("ids") or [])
            return
        ids = {int(i) for i in data.get("ids") or []}
        if kind == "changed":
            me.images.forget(list(ids))
        if seq is None:
            return
        shown = seq.query.folder_id
        touches = (seq.query.is_search or data.get("folder_id") == shown
                   or data.get("from_folder_id") == shown)
        if not touches:
            return
        if kind in ("removed", "moved") and ids and seq.remove(ids):
            # the cursor stays at the same place in the list
            for view in (me.grid, me.table):
                view.set_seq(seq, min(me.cursor, max(0, len(seq) - 1)))
            me._update_info()
        if kind != "removed" or data.get("count", 0) > len(ids):
            self._schedule_reload()

    def _schedule_reload(self) -> None:
        me = self._me()
        if self._reload_timer is not None:
            self._reload_timer.stop()
        self._reload_timer = me.set_timer(RELOAD_DELAY, self.reload_view)

    def reload_view(self) -> None:
        me = self._me()
        if me.seq is None:
            return
        # The cursor's photo by its id in the order, loaded or not: after a jump (G) its
        # row may still be on its way, and a reload then must not send the cursor home.
        me.load(me.seq.query, me.seq.id_at(me.cursor))

    def _dirty(self, ids: list[int]) -> None:
        me = self._me()
        if not hasattr(self, "_dirty_folders"):
            self._dirty_folders = set()
        self._dirty_folders.update(int(i) for i in ids)
        if self._folders_timer is not None:
            self._folders_timer.stop()
        self._folders_timer = me.set_timer(RELOAD_DELAY, self._refresh_folders)

    def _refresh_folders(self) -> None:
        me = self._me()
        ids, self._dirty_folders = self._dirty_folders, set()
        parents: set[int | None] = set()
        for fid in ids:
            node = me.ftree.node_for(fid)
            if node is not None and node.data is not None:
                parents.add(node.data.get("parent_id"))
            if node is not None and fid in me.ftree.loaded():
                parents.add(fid)  # new subfolders may have appeared in it
        if None in parents:
            me.load_roots()
        for pid in parents:
            if pid is not None and pid in me.ftree.loaded():
                me.load_children(int(pid))
        if me.folder is not None and int(me.folder["id"]) in ids:
            self._schedule_reload()

    def on_resync(self, message: Resync) -> None:
        me = self._me()
        me.images.forget()
        me.load_roots()
        self.reload_view()
        me.say("lightboxd restarted: reloaded" if message.restarted
               else "caught up with the daemon: reloaded")

    def on_link_changed(self, message: LinkChanged) -> None:
        me = self._me()
        if message.state == linkmod.CONNECTED:
            me.load_library_defaults()
        if message.state == linkmod.DOWN:
            self._was_down = True
        elif message.state == linkmod.CONNECTED and self._was_down:
            self._was_down = False
            if me.seq is None:
                me.load_roots(open_start=True)
            else:
                me.grid.update_cells()  # ask again for thumbnails that failed meanwhile
