"""``folders.*`` and ``photos.*``: browsing and searching the catalog."""

from lightbox.common.api.schema import EventSpec, MethodSpec, Param, Permission

SORTS = ("name", "taken", "size")
PHOTO_FIELDS = (
    "id", "name", "path", "folder_id", "source_id", "size", "mtime", "status", "error",
    "error_reason", "sha256", "mime", "format", "width", "height", "orientation", "taken_at",
    "taken_offset",
    "make", "model", "lens", "exposure_time", "f_number", "iso", "focal_length", "gps_lat",
    "gps_lon", "gps_alt", "phash", "thumbs", "first_seen", "indexed_at",
)

_page = (
    Param("sort", "string", "order of photos (ties by id; `taken`: undated photos last in "
          "both directions)", default="name", enum=SORTS),
    Param("order", "string", "direction", default="asc", enum=("asc", "desc")),
    Param("limit", "integer", "photos per page", default=200, minimum=1, maximum=2000),
    Param("cursor", "string", "from the previous page's next_cursor", max_length=512),
    Param("fields", "array", "only these photo fields (id is always included)",
          items="string", max_length=len(PHOTO_FIELDS)),
)
PHOTO_REF = (
    Param("id", "integer", "photo id", minimum=1),
    Param("path", "string", "absolute path of the file (instead of id)", max_length=4096),
)

METHODS = (
    MethodSpec(
        "folders.list",
        Permission.READ,
        "A folder: its subfolders with counts and a page of its photos. Without `folder` and "
        "`path`, the top level: one folder per root. Subfolders come with the first page "
        "only; photos of every status but `missing` are listed (errors included, with "
        "`status`, `error` and `error_reason`).",
        params=(
            Param("folder", "integer", "folder id", minimum=1),
            Param("path", "string", "absolute path of the folder (instead of its id)",
                  max_length=4096),
            Param("photos", "boolean", "include photos", default=True),
            *_page,
            Param("around", "integer", "instead of `cursor`: open the listing at this photo "
                  "(about a third of the page before it, the rest from it on); `offset` "
                  "in the reply is the listing index of the page's first photo. A photo not "
                  "in this folder gives the first page (offset 0)", minimum=1),
        ),
        result="{folder, breadcrumbs[{id, name}] (top folder first, this folder last), "
        "folders[{id, name, path, source_id, parent_id, photo_count, folder_count, "
        "total_count, bytes, online, missing_since}], photos[], next_cursor, "
        "offset (with around)}",
        paginated=True,
    ),
    MethodSpec(
        "photos.get",
        Permission.READ,
        "Everything known about one photo, with the number of exact and near duplicates. "
        "`near` counts the other photos (of different content) within the default "
        "threshold of this one; null while a large library is still being grouped. With "
        "`ids`: the listed fields of many photos at once (what a client scrolling a large "
        "folder asks for), in the order given, without duplicate counts; ids the catalog "
        "does not have are left out.",
        params=(
            *PHOTO_REF,
            Param("ids", "array", "many photo ids (instead of id or path)", items="integer",
                  max_length=2000),
            Param("fields", "array", "with ids: only these photo fields (id is always "
                  "included)", items="string", max_length=len(PHOTO_FIELDS)),
        ),
        result="{…every photo field, folder{id, path}, source{id, name, online}, "
        "missing_since, duplicates{exact, near}}; with ids: {photos[]}",
    ),
    MethodSpec(
        "photos.thumbnail",
        Permission.READ,
        "A thumbnail as JPEG bytes in a binary frame; made on demand when missing. A photo "
        "whose file could not be read or is missing has none (not found, with the reason); "
        "one not indexed yet is `unavailable` (retry).",
        params=(
            Param("id", "integer", "photo id", required=True, minimum=1),
            Param("size", "string", "which thumbnail", default="grid",
                  enum=("grid", "preview")),
        ),
        result="{id, size, mime, width, height, bytes, data}",
        frames="`data` is the JPEG.",
    ),
    MethodSpec(
        "photos.original",
        Permission.READ,
        "A chunk of the original file as a binary frame; call again with the next offset "
        "until `eof`. Only photos indexed `ok` are served, and only the file the catalog "
        "names for `id`: opened beneath its root without following any link, and refused "
        "unless it is still the file that was indexed (device, inode, size, mtime). Refusals "
        "are `not found` with `data.reason`: `status_pending`, `status_error`, `changed` (the "
        "photo is read again), `symlink`, `not_regular`, `gone`, `unreadable`. A photo in a "
        "bucket is read with a ranged GET `If-Match` its indexed ETag (same chunking; "
        "`unavailable` when the bucket cannot be reached), or, with `presign`, not read at "
        "all: the reply is a presigned GET `url` whose `expires_in` is the smaller of "
        "`expires`, 7 days and the credentials' own lifetime (`invalid params` for a local "
        "photo).",
        params=(
            Param("id", "integer", "photo id", required=True, minimum=1),
            Param("offset", "integer", "where to start, in bytes", default=0, minimum=0),
            Param("length", "integer", "chunk size in bytes", default=1 << 20, minimum=1,
                  maximum=8 << 20),
            Param("presign", "boolean", "bucket photos: a presigned URL instead of bytes",
                  default=False),
            Param("expires", "integer", "presign: seconds the URL is valid", default=3600,
                  minimum=1, maximum=7 * 86400),
        ),
        result="{id, size, offset, length, eof, mime, sha256, data} | {id, size, mime, "
        "sha256, url, expires_in}",
        frames="`data` is the chunk.",
    ),
    MethodSpec(
        "photos.search",
        Permission.READ,
        "Photos matching every given filter: text in the name, path, camera or lens, a date "
        "range (on the camera's local time), a camera, GPS or not, a folder subtree.",
        params=(
            Param("text", "string", "words that must all appear, each in the name, the "
                  "folder path, the make, model or lens (case-insensitive substrings)",
                  max_length=200),
            Param("date_from", "string", "taken on or after (YYYY, YYYY-MM, YYYY-MM-DD or an "
                  "ISO date-time)", max_length=40),
            Param("date_to", "string", "taken on or before (YYYY, YYYY-MM, YYYY-MM-DD: the "
                  "whole period; or an ISO date-time)", max_length=40),
            Param("camera", "string", "every word appears in the make or model "
                  "(case-insensitive)", max_length=100),
            Param("has_gps", "boolean", "only photos with (true) or without (false) GPS"),
            Param("folder", "integer", "only this folder and (recursive) its subfolders",
                  minimum=1),
            Param("path", "string", "only below this absolute path", max_length=4096),
            Param("recursive", "boolean", "include subfolders of folder/path", default=True),
            Param("status", "string", "which photos", default="ok",
                  enum=("ok", "error", "pending", "missing", "any")),
            *_page,
            Param("count", "boolean", "also count every match (`count` in the reply)",
                  default=False),
        ),
        result="{photos[], next_cursor, count (when asked)}",
        paginated=True,
    ),
    MethodSpec(
        "photos.duplicates",
        Permission.READ,
        "Groups of duplicates across every root, largest first: exact (photos with the same "
        "sha256) or near (distinct contents whose perceptual hashes are within `threshold` "
        "bits, chained: each photo is near at least one other in its group; a set of "
        "byte-identical copies alone is an exact group, never a near one). Only photos with "
        "status ok; near photos carry `distance`, in bits, to the group's first photo (most "
        "pixels first). Grouping a large library the first time takes a while: until it is "
        "done the reply is `unavailable` with `data.retry_after`.",
        params=(
            Param("kind", "string", "exact or near", default="exact", enum=("exact", "near")),
            Param("threshold", "integer", "near: bits two hashes may differ by to be "
                  "neighbours (too large for a big library is refused, with the largest "
                  "that fits)", default=6, minimum=0, maximum=16),
            Param("limit", "integer", "groups per page", default=100, minimum=1, maximum=1000),
            Param("cursor", "string", "from the previous page's next_cursor", max_length=512),
            Param("fields", "array", "only these photo fields", items="string",
                  max_length=len(PHOTO_FIELDS)),
        ),
        result="{groups[{key, count, contents, photos[{…, distance}]}], next_cursor, "
        "total_groups, computed_at}",
        paginated=True,
    ),
    MethodSpec(
        "photos.trash",
        Permission.ADMIN,
        "Move photos' files to the freedesktop trash of the daemon's host (Send2Trash: "
        "`~/.local/share/Trash`, or the `.Trash-UID` of the file's volume), never a plain "
        "delete: they can be restored from there. Only ok photos of online local roots, "
        "whose files resolve inside their root. The catalog follows: a scan of each folder "
        "touched is started (`job`), which marks the files missing.",
        params=(
            Param("ids", "array", "photo ids", required=True, items="integer",
                  max_length=1000),
        ),
        result="{trashed[{id, path}], failed[{id, path, reason, message}], job}",
        starts_job=True,
    ),
)

EVENTS = (
    EventSpec("catalog", "added", "Photos appeared (merged per burst and folder).",
              {"folder_id": "", "folder": "absolute path", "ids": "photo ids (at most 500)",
               "count": "how many"}),
    EventSpec("catalog", "changed", "Photos changed: new content or metadata, thumbnails.",
              {"folder_id": "", "folder": "", "ids": "", "count": ""}),
    EventSpec("catalog", "moved", "Photos moved or were renamed; ids are kept.",
              {"folder_id": "the new folder", "folder": "", "from_folder_id": "", "ids": "",
               "count": ""}),
    EventSpec("catalog", "removed", "Photos are gone (missing, then confirmed).",
              {"folder_id": "", "folder": "", "ids": "", "count": "",
               "missing": "true when only marked missing"}),
    EventSpec("catalog", "folders", "The folder tree or its counts changed.",
              {"source_id": "", "ids": "folder ids (at most 500)"}),
    EventSpec("catalog", "indexing", "Photos waiting to be read (hash, metadata, "
              "thumbnails), whoever queued them (a scan job, the watcher, a restart): at "
              "most once a second while the indexer works, and once with `pending` 0 when "
              "it is done.",
              {"pending": "photos still to read", "indexed": "read since the daemon started",
               "failed": "unreadable since the daemon started", "rate": "photos/s lately"}),
)
