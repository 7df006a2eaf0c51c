"""``roots.*`` and ``library.*``: which folders are in the library, and scanning them."""

from lightbox.common.api.schema import EventSpec, MethodSpec, Param, Permission

ROOT_REF = Param("root", "any", "a root's id, name or absolute path", required=True)

METHODS = (
    MethodSpec(
        "roots.list",
        Permission.READ,
        "Every root (local photo folder) with its state and counts.",
        result="{roots[{id, name, path, online, status, photos, folders, bytes, errors, "
        "pending, missing, suspect{count, since, confirm_in}|null, scanned_at, watching}]}",
    ),
    MethodSpec(
        "roots.add",
        Permission.ADMIN,
        "Add a folder to the library and start scanning it. The path is stored resolved "
        "(links, `//`, `..`). Refused when the folder does not exist or is not a directory "
        "(`invalid params`); when it is `/`, a system or kernel tree (`/etc`, `/usr`, `/proc`, "
        "`/var/lib` …) or on a pseudo file system, the daemon's own data, cache, state, config "
        "or runtime dir, a home directory itself (a folder inside one is fine), or holds one "
        "of these (`invalid params`, `data.reason`: `filesystem_root`, `system_tree`, "
        "`pseudo_filesystem`, `daemon_dir`, `home_dir`); when it is, lies inside or holds a "
        "local backup target (`invalid params`, `data.reason`: `backup_target`: its copies "
        "would be indexed as photos); when it is a root already, lies "
        "inside one or holds one, also through a bind mount or a link (`conflict`, "
        "`data.reason`: `already_a_root`, `inside_a_root`, `holds_a_root`).",
        params=(
            Param("path", "string", "absolute path of the folder", required=True,
                  max_length=4096),
            Param("name", "string", "display name (default: the folder's name)", max_length=200),
            Param("scan", "boolean", "start the initial scan at once", default=True),
        ),
        result="{root{…as roots.list}, job}",
        starts_job=True,
    ),
    MethodSpec(
        "roots.remove",
        Permission.ADMIN,
        "Forget a root: its folders and photos leave the catalog (the files are not touched; "
        "thumbnails are removed by the next cleanup).",
        params=(ROOT_REF,),
        result="{removed, photos, folders}",
    ),
    MethodSpec(
        "roots.confirm",
        Permission.ADMIN,
        "Accept that the photos a pass found gone in numbers too large to believe at once "
        "(more than max(50, 10 %) of the root's photos; `roots.list` shows them as "
        "`suspect`) are gone: they become missing now, instead of after "
        "`library.vanish_delay` and another pass. A later scan removes them if they are "
        "still not there.",
        params=(ROOT_REF,),
        result="{root, confirmed}",
    ),
    MethodSpec(
        "library.scan",
        Permission.CONTROL,
        "Scan roots for new, changed, moved and vanished files; unchanged files (same size, "
        "mtime and inode) are not read. Returns the job at once: an identical scan still "
        "queued is reused, one already running is not (it may have passed what changed).",
        params=(
            Param("root", "any", "a root's id, name or path (default: every root)"),
            Param("path", "string", "only this folder (absolute path) and what is below it",
                  max_length=4096),
            Param("full", "boolean", "re-read every file, even unchanged ones", default=False),
        ),
        result="{job}",
        starts_job=True,
    ),
    MethodSpec(
        "library.cleanup",
        Permission.CONTROL,
        "Remove thumbnails that no photo uses any more and those of photos missing for more "
        "than `days` days.",
        params=(Param("days", "integer", "age of missing photos whose thumbnails go "
                      "(default: the configured thumbnails.cleanup_days)", minimum=0,
                      maximum=3650),),
        result="{job}",
        starts_job=True,
    ),
)

EVENTS = (
    EventSpec("source", "added", "A root was added.", {"id": "root id", "name": "", "path": ""}),
    EventSpec("source", "removed", "A root was removed.", {"id": "root id", "name": ""}),
    EventSpec("source", "offline", "A root cannot be read (unmounted, missing, emptied); "
              "nothing under it changes state until it is back.",
              {"id": "root id", "name": "", "path": "", "reason": "why"}),
    EventSpec("source", "online", "A root that was offline can be read again.",
              {"id": "root id", "name": "", "path": ""}),
    EventSpec("source", "suspect", "The photos of a root held as suspect changed: a pass "
              "found more gone than it may make vanish at once; they stay as they are until a "
              "later pass confirms after `library.vanish_delay` or `roots.confirm`. `count` 0: "
              "none held any more.",
              {"id": "root id", "name": "", "count": "photos held", "since": "ISO time",
               "confirm_in": "seconds until a pass may confirm"}),
    EventSpec("source", "taken_over", "A daemon sharing the catalog took this root over from "
              "one that stopped heart-beating; that daemon's last events (its final fraction "
              "of a second) may never have been relayed, so reload what is shown of the root.",
              {"id": "root id", "name": "", "owner": "the daemon now running it",
               "previous": "the daemon that stopped"}),
)
