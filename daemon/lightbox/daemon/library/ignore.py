"""The one ignore policy: which names below a root are never photos, for the scanner's listings
and the watcher's events alike.

Before this module the full scan skipped NAS and OS metadata while the watcher indexed what
arrived in it live (a Synology writes ``@eaDir`` thumbnails all the time), and those rows
then turned missing. Now both ask here, and an ignored folder never enters the catalog:

- hidden files and folders (a leading dot: ``.git``, ``.Trash-1000``, ``.@__thumb``,
  ``.thumbnails``, editors' temp files);
- NAS and OS metadata folders: ``@eaDir``, ``#recycle``, ``#snapshot``, ``$RECYCLE.BIN``,
  ``lost+found``, ``System Volume Information``;
- files that are not photos by their extension: sidecars (``.xmp``, ``.aae``, ``.thm`` …),
  documents, archives and videos (not supported yet). Everything else is a candidate, and
  its content decides (``media.sniff``).
"""

from __future__ import annotations

IGNORED_DIRS = frozenset({"@eaDir", "#recycle", "#snapshot", "$RECYCLE.BIN", "lost+found",
                          "System Volume Information", "@Recycle", "@Recently-Snapshot",
                          ".Trash", ".Trashes"})
IGNORED_EXT = frozenset({
    ".xmp", ".aae", ".json", ".txt", ".md", ".db", ".ini", ".thm", ".pp3", ".dop", ".lrv",
    ".tsv", ".csv", ".yaml", ".yml", ".toml", ".rtf", ".doc", ".docx", ".sqlite",
    ".xml", ".log", ".pdf", ".zip", ".html", ".htm", ".css", ".js", ".py", ".sh", ".exe",
    ".mp4", ".mov", ".avi", ".mkv", ".m4v", ".mts", ".m2ts", ".3gp", ".wmv", ".webm", ".mpg",
    ".mpeg", ".wav", ".m4a", ".aac", ".flac", ".ogg", ".opus",
})


def ignored_dir(name: str) -> bool:
    """A folder never walked, watched for photos or put in the catalog."""
    return not name or name[0] == "." or name in IGNORED_DIRS


def ignored_file(name: str) -> bool:
    """A file never listed as a candidate photo (the hot loop of a rescan: keep it lean)."""
    if not name or name[0] == ".":
        return True
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IGNORED_EXT


def ignored_folder_path(rel: str) -> bool:
    """A folder (relative to its root) at or below an ignored folder."""
    return bool(rel) and any(ignored_dir(part) for part in rel.split("/"))


def ignored_path(rel: str) -> bool:
    """A file (relative to its root) that is ignored itself or lies in an ignored folder."""
    folder, _, name = rel.rpartition("/")
    return ignored_file(name) or ignored_folder_path(folder)
