"""The left pane: sources (roots today, buckets later: the daemon lists both as top-level
folders, so nothing here knows the difference) and their folders, with photo counts.

Children are loaded when a folder is first expanded: the tree asks with ``NeedChildren`` and
the browser answers with ``set_children``, which updates nodes in place (expanded folders stay
expanded) so live count changes do not reset what the user opened.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

Folder = dict[str, Any]


def label(folder: Folder) -> Text:
    text = Text(folder.get("name") or "?", no_wrap=True, overflow="ellipsis")
    # Photos in the folder and below it: what a person expects to find by opening it.
    text.append(f" {int(folder.get('total_count') or 0):,}", style="dim")
    if not folder.get("online", True):
        text.append(" offline", style="bold red")
    return text


class FolderTree(Tree[Folder]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("l,right", "expand_or_enter", "Expand", show=False),
        Binding("h,left", "collapse_or_parent", "Collapse", show=False),
        Binding("g,home", "scroll_home", "First", show=False),
        Binding("G,end", "scroll_end", "Last", show=False),
        Binding("ctrl+d", "page_down", "Page down", show=False),
        Binding("ctrl+u", "page_up", "Page up", show=False),
    ]
    DEFAULT_CSS = """
    FolderTree {
        background: $surface;
        scrollbar-size-vertical: 1;
    }
    """

    class NeedChildren(Message):
        def __init__(self, folder_id: int) -> None:
            super().__init__()
            self.folder_id = folder_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("library", id=id)
        self.show_root = False
        self.auto_expand = False
        self.guide_depth = 2
        self._by_id: dict[int, TreeNode[Folder]] = {}
        self._loaded: set[int] = set()

    # -- attributes down ------------------------------------------------------------------
    def set_roots(self, folders: list[Folder]) -> None:
        self._sync(self.root, folders)

    def set_children(self, folder_id: int, folders: list[Folder]) -> None:
        node = self._by_id.get(folder_id)
        if node is None:
            return
        self._loaded.add(folder_id)
        self._sync(node, folders)

    def update_folder(self, folder: Folder) -> None:
        node = self._by_id.get(int(folder["id"]))
        if node is not None:
            node.data = {**(node.data or {}), **folder}
            node.set_label(label(node.data))

    def node_for(self, folder_id: int) -> TreeNode[Folder] | None:
        return self._by_id.get(folder_id)

    def loaded(self) -> list[int]:
        """Folders whose children are loaded (to re-list after a reconnect)."""
        return [fid for fid in self._loaded if fid in self._by_id]

    def select_folder(self, folder_id: int) -> bool:
        node = self._by_id.get(folder_id)
        if node is None:
            return False
        parent = node.parent
        while parent is not None and parent is not self.root:
            parent.expand()
            parent = parent.parent
        self.call_after_refresh(self.move_cursor, node)
        return True

    def _sync(self, parent: TreeNode[Folder], folders: list[Folder]) -> None:
        wanted = {int(f["id"]): f for f in folders}
        for child in list(parent.children):
            fid = int(child.data["id"]) if child.data else -1
            if fid not in wanted:
                self._forget(child)
                child.remove()
        existing = {int(c.data["id"]): c for c in parent.children if c.data}
        for folder in folders:
            fid = int(folder["id"])
            leaf = not int(folder.get("folder_count") or 0)
            node = existing.get(fid)
            if node is None:
                node = parent.add(label(folder), data=folder, allow_expand=not leaf)
                self._by_id[fid] = node
            else:
                node.data = folder
                node.set_label(label(folder))
                node.allow_expand = not leaf
        # keep the daemon's order (by name) for new nodes too
        order = {int(f["id"]): i for i, f in enumerate(folders)}
        parent._children.sort(key=lambda n: order.get(int(n.data["id"]) if n.data else -1, 0))
        self._invalidate()

    def _forget(self, node: TreeNode[Folder]) -> None:
        for child in node.children:
            self._forget(child)
        if node.data:
            self._by_id.pop(int(node.data["id"]), None)
            self._loaded.discard(int(node.data["id"]))

    # -- loading and keys -----------------------------------------------------------------
    def on_tree_node_expanded(self, event: Tree.NodeExpanded[Folder]) -> None:
        data = event.node.data
        if data and int(data["id"]) not in self._loaded:
            self.post_message(self.NeedChildren(int(data["id"])))

    def action_expand_or_enter(self) -> None:
        node = self.cursor_node
        if node is None or not node.allow_expand:
            return
        if not node.is_expanded:
            node.expand()
        elif node.children:
            self.move_cursor(node.children[0])

    def action_collapse_or_parent(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.is_expanded:
            node.collapse()
        elif node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent)
