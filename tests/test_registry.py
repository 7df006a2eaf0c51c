"""One registry: dispatcher, system.methods, the CLI and docs/protocol.md all agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lbtest import ROOT, DaemonProcess

from lightbox.common.api import EVENTS, METHODS, reference
from lightbox.common.api.schema import MethodSpec, Param, Permission
from lightbox.common.errors import InvalidParams


def test_protocol_doc_matches_registry() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text()
    assert doc == reference.splice(doc), "docs/protocol.md is out of date: run `make docs`"
    for name in METHODS:
        assert f"### `{name}`" in doc
    for ev in EVENTS:
        assert f"| `{ev.topic}` | `{ev.type}` |" in doc


def test_readme_config_table_matches_keys() -> None:
    from lightbox.common.config import KEYS

    readme = (ROOT / "README.md").read_text()
    assert readme == reference.splice(readme), "README.md is out of date: run `make docs`"
    for key in KEYS:
        assert f"`{key.name}`" in readme


def test_doc_check_command_detects_drift(tmp_path: Path) -> None:
    stale = tmp_path / "protocol.md"
    stale.write_text(f"intro\n{reference.BEGIN}\nold\n{reference.END}\n")
    r = subprocess.run([sys.executable, "-m", "lightbox.common.api.reference", str(stale),
                        "--check"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "make docs" in r.stderr


def test_every_spec_has_a_handler_and_back() -> None:
    from lightbox.daemon.rpc import load_handlers

    assert set(load_handlers()) == set(METHODS)


def test_dispatcher_refuses_a_registry_mismatch() -> None:
    from lightbox.daemon.control.dispatch import Dispatcher

    extra = {**METHODS, "ghost.method": MethodSpec("ghost.method", Permission.READ, "x")}
    with pytest.raises(RuntimeError, match=r"ghost\.method"):
        Dispatcher(None, 1024, specs=extra)  # type: ignore[arg-type]


def test_system_methods_is_the_registry(shared_daemon: DaemonProcess) -> None:
    listing = shared_daemon.call("system.methods")
    assert [m["name"] for m in listing["methods"]] == list(METHODS)
    for m in listing["methods"]:
        assert m == {**METHODS[m["name"]].describe(), "allowed": True}
    assert {(e["topic"], e["type"]) for e in listing["events"]} == \
        {(e.topic, e.type) for e in EVENTS}


def test_every_method_is_area_verb_and_documented() -> None:
    for spec in METHODS.values():
        assert spec.summary.strip()
        assert spec.name == "hello" or spec.name.count(".") == 1
        for p in spec.params:
            assert p.description.strip(), f"{spec.name}.{p.name} has no description"


def test_param_validation_reports_every_field() -> None:
    spec = MethodSpec("a.b", Permission.READ, "x", params=(
        Param("n", "integer", "n", required=True, minimum=1),
        Param("s", "string", "s", enum=("x", "y")),
        Param("l", "array", "l", items="integer", max_length=2),
        Param("f", "number", "f", default=1.5),
    ))
    assert spec.validate({"n": 3}) == {"n": 3, "s": None, "l": None, "f": 1.5}
    assert spec.validate([2, "x"]) == {"n": 2, "s": "x", "l": None, "f": 1.5}
    assert spec.validate({"n": 2.0})["n"] == 2  # an integral float is an integer
    with pytest.raises(InvalidParams) as info:
        spec.validate({"n": 0, "s": "z", "l": [1, "a"], "q": 1})
    assert set(info.value.data["errors"]) == {"n", "s", "l", "q"}
    assert "item 1" in info.value.data["errors"]["l"]
    with pytest.raises(InvalidParams):
        spec.validate({"n": 1, "l": [1, 2, 3]})
    with pytest.raises(InvalidParams):
        spec.validate({"n": 1, "f": float("inf")})
    with pytest.raises(InvalidParams):
        spec.validate("not params")
