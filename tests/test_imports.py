"""common/ and the CLI never import Textual (nor the daemon's heavy dependencies)."""

from __future__ import annotations

import subprocess
import sys

from lbtest import ROOT

PROBE = """
import sys, pkgutil, importlib
import lightbox.common, lightbox.cli
for pkg in (lightbox.common, lightbox.cli):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if not m.name.endswith("__main__"):
            importlib.import_module(m.name)
from lightbox.cli.main import build_parser
build_parser().parse_args(["status"])
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "textual_image", "rich",
    "sqlalchemy", "alembic", "PIL", "exifread", "boto3", "watchdog", "lightbox.tui")
    or m.startswith(("lightbox.tui", "lightbox.daemon")))
print(",".join(bad))
"""


def test_common_and_cli_do_not_import_textual_or_the_daemon() -> None:
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"imported: {r.stdout.strip()}"


def test_no_textual_import_statement_in_common_or_cli() -> None:
    for path in (ROOT / "common").rglob("*.py"):
        text = path.read_text()
        assert "import textual" not in text and "from textual" not in text, path
