"""The browser's folder tree: the sources at the top, folders loaded as they are opened,
the tree following (and leading) the folder whose photos are shown.

A mixin of ``BrowserScreen`` (one job per module); its methods take the screen as ``self``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work
from textual.widgets import Tree

from lightbox.common import errors
from lightbox.tui.settings import Place
from lightbox.tui.widgets.folder_tree import Folder, FolderTree

if TYPE_CHECKING:
    from lightbox.tui.screens.browser import BrowserScreen

RPC_ERRORS = (errors.ClientError, errors.RpcError)


class TreeNavigation:
    def _me(self) -> BrowserScreen:
        return self  # type: ignore[return-value]

    @work(group="roots", exclusive=True)
    async def load_roots(self, open_start: bool = False) -> None:
        me = self._me()
        try:
            top = await me.link.call("folders.list", {"photos": False})
        except RPC_ERRORS as exc:
            me._empty(me._trouble("Cannot list the library", exc))
            return
        folders = top.get("folders") or []
        me.ftree.set_roots(folders)
        me._roots_here = True
        for fid in me.ftree.loaded():
            me.load_children(fid)
        if me._reveal_due is not None:
            me.start_revealed(*me._reveal_due)
        if not open_start:
            return
        if not folders:
            me._empty("The library is empty. Add a folder of photos with\n\n"
                      "    lightbox roots add /path/to/photos\n\n"
                      "and it appears here as soon as the scan finds something.")
            return
        start = me.start
        if start.folder_id is not None or start.folder_path:
            await me._open_start(start)
        else:
            first = next((f for f in folders if f.get("total_count")), folders[0])
            me.open_folder(first, photo_id=None)
            me.ftree.select_folder(int(first["id"]))

    async def _open_start(self, start: Place) -> None:
        me = self._me()
        params = ({"path": start.folder_path} if start.folder_path
                  else {"folder": start.folder_id})
        try:
            page = await me.link.call("folders.list", {**params, "photos": False})
        except errors.NotFound:
            me.start = Place()
            me.load_roots(open_start=True)
            return
        except RPC_ERRORS as exc:
            me._empty(f"Cannot open the last folder: {exc}")
            return
        folder = page.get("folder")
        if folder:
            me.open_folder(folder, photo_id=start.photo_id)
            await me._reveal(page.get("breadcrumbs") or [], int(folder["id"]))

    _roots_here = False  # the tree has its top level
    _reveal_due: tuple[list[dict[str, Any]], int] | None = None

    def start_revealed(self, crumbs: list[dict[str, Any]], folder_id: int) -> None:
        """The saved folder is shown (its page came first): open the tree down to it once
        the tree has its roots (whichever of the two replies comes last does it)."""
        me = self._me()
        if not me._roots_here:
            me._reveal_due = (crumbs, folder_id)
            return
        me._reveal_due = None
        me._reveal_worker(crumbs, folder_id)

    @work(group="reveal", exclusive=True)
    async def _reveal_worker(self, crumbs: list[dict[str, Any]], folder_id: int) -> None:
        await self._me()._reveal(crumbs, folder_id)

    async def _reveal(self, crumbs: list[dict[str, Any]], folder_id: int) -> None:
        """Expand the tree down to ``folder_id`` (loading each level) and put the cursor
        on it."""
        me = self._me()
        for crumb in crumbs[:-1]:
            fid = int(crumb["id"])
            node = me.ftree.node_for(fid)
            if node is None:
                return
            if fid not in me.ftree.loaded():
                await me._fetch_children(fid)
            node.expand()
        me.ftree.select_folder(folder_id)

    async def _fetch_children(self, folder_id: int) -> None:
        me = self._me()
        try:
            page = await me.link.call("folders.list", {"folder": folder_id, "photos": False})
        except RPC_ERRORS as exc:
            me.say(f"cannot list folder {folder_id}: {exc}", error=True)
            return
        me.ftree.set_children(folder_id, page.get("folders") or [])
        if page.get("folder"):
            me.ftree.update_folder(page["folder"])

    @work(group="children")
    async def load_children(self, folder_id: int) -> None:
        me = self._me()
        await me._fetch_children(folder_id)

    def on_folder_tree_need_children(self, message: FolderTree.NeedChildren) -> None:
        me = self._me()
        me.load_children(message.folder_id)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[Folder]) -> None:
        me = self._me()
        data = event.node.data
        if not data or not me.ftree.has_focus:
            return
        if me._pending_folder is not None:
            me._pending_folder.stop()
        me._pending_folder = me.set_timer(0.25, lambda: me._follow_tree(data))

    def _follow_tree(self, data: Folder) -> None:
        me = self._me()
        me._tree_took_focus = False  # the user is moving in the tree: the keys stay there
        if not me.folder or int(me.folder["id"]) != int(data["id"]) or me.filters:
            me.open_folder(data)

    def on_tree_node_selected(self, event: Tree.NodeSelected[Folder]) -> None:
        me = self._me()
        data = event.node.data
        if data:
            if me._pending_folder is not None:
                me._pending_folder.stop()
            if not me.folder or int(me.folder["id"]) != int(data["id"]) or me.filters:
                me.open_folder(data)
            me._tree_took_focus = False
            if int(data.get("photo_count") or 0) > 0:
                me.view.focus()
            else:
                # A folder of folders: show what is inside it, in the tree.
                event.node.expand()
