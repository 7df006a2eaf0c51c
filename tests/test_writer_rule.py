"""The documented rule, enforced (issue 7, build item 2): ``library/writer.py`` is the only code
of the daemon that writes photo and folder rows. Every other module may read them; none may
build an INSERT, UPDATE or DELETE on them, in SQLAlchemy or in SQL text.

Exempt by design: migrations (they reshape the tables), ``catalog/copy.py`` (a database
switch copies every table row by row into another database, not the one in use), and the
text index's rebuild on MySQL, which sets columns to themselves so that its triggers run
again (no value changes).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

DAEMON = Path(__file__).resolve().parent.parent / "daemon" / "lightbox" / "daemon"
WRITER = DAEMON / "library" / "writer.py"
EXEMPT = {DAEMON / "catalog" / "copy.py"}
ALLOWED = {("textindex.py", "UPDATE photos SET name = name"),
           ("textindex.py", "UPDATE folders SET path = path")}
TABLES = {"photos", "folders"}
WRITES = {"insert", "update", "delete"}
SQL_WRITE = re.compile(r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+[\"`]?(photos|folders)\b",
                       re.IGNORECASE)


def _table_of(node: ast.expr, aliases: set[str]) -> str | None:
    """'photos'/'folders' when ``node`` names one of those tables: ``tables.photos``,
    ``P`` where ``P = tables.photos``, ``sa.table("photos", …)``."""
    if isinstance(node, ast.Attribute) and node.attr in TABLES:
        return node.attr
    if isinstance(node, ast.Name) and node.id in aliases:
        return node.id
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
            node.func.attr == "table" and node.args and isinstance(node.args[0], ast.Constant) \
            and node.args[0].value in TABLES:
        return str(node.args[0].value)
    return None


def _aliases(tree: ast.AST) -> set[str]:
    """Names bound to the photos or folders table anywhere in a module."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            pairs: list[tuple[ast.expr, ast.expr]] = []
            if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs = list(zip(target.elts, node.value.elts, strict=False))
            else:
                pairs = [(target, node.value)]
            for t, v in pairs:
                if isinstance(t, ast.Name) and _table_of(v, set()) is not None:
                    names.add(t.id)
    return names


def violations(path: Path) -> list[str]:
    source = path.read_text()
    tree = ast.parse(source)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            # P.update(), tables.folders.delete(), …
            if node.func.attr in WRITES and _table_of(node.func.value, aliases):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node.func)}()")
            # sa.insert(P), sa.update(tables.photos), …
            elif node.func.attr in WRITES and node.args and \
                    _table_of(node.args[0], aliases):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)[:60]}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                SQL_WRITE.search(node.value) and (path.name, node.value) not in ALLOWED:
            found.append(f"{path.name}:{node.lineno}: SQL text {node.value[:60]!r}")
    return found


def test_only_the_writer_writes_photo_and_folder_rows() -> None:
    modules = [p for p in DAEMON.rglob("*.py")
               if "migrations" not in p.parts and p != WRITER and p not in EXEMPT]
    assert len(modules) > 50
    bad = [v for p in sorted(modules) for v in violations(p)]
    assert bad == [], "photo/folder rows written outside library/writer.py:\n" + "\n".join(bad)


def test_the_rule_would_catch_a_write(tmp_path: Path) -> None:
    """The checker itself finds each way of writing (so an empty result above means
    something)."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import sqlalchemy as sa\n"
        "from lightbox.daemon.catalog import tables\n"
        "P, F = tables.photos, tables.folders\n"
        "f = tables.folders\n"
        "a = P.update().values(status='ok')\n"
        "b = f.delete()\n"
        "c = tables.photos.insert()\n"
        "d = sa.update(tables.folders)\n"
        "e = 'UPDATE photos SET status = 1'\n"
        "g = sa.table('folders').delete()\n"
        "ok = tables.jobs.update()\n"
        "fine = sa.select(P.c.id)\n")
    found = violations(sample)
    assert sorted(int(v.split(":")[1]) for v in found) == [5, 6, 7, 8, 9, 10], found
    # And the writer itself does write (the test reads the file it means).
    assert violations(WRITER)
