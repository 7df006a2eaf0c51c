"""Declarations of control methods and events: names, permissions, parameters, results.

A method is declared once, here in ``lightbox.common.api``, as a ``MethodSpec``. From that one
declaration the daemon validates parameters and checks permissions, ``system.methods``
answers, the CLI builds ``lightbox call`` and its help, and ``docs/protocol.md`` is generated
(a test fails when the file and the registry differ). Handlers in the daemon attach to a spec
by name; the daemon refuses to start when a spec has no handler or a handler no spec.

Parameters are a small typed subset of JSON Schema, validated by hand: it keeps the error
messages ours (one per field, naming the field) and avoids a schema library on the hot path.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightbox.common.errors import InvalidParams


class Permission(enum.IntEnum):
    """Who may call a method: read < control < admin.

    ``read`` only looks; ``control`` starts and cancels work and changes the library;
    ``admin`` changes settings, keys and the daemon itself. The owner of the ipc socket is
    admin; TCP clients get the class their key has in the authorized-keys file.
    """

    READ = 1
    CONTROL = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Permission:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown permission class {text!r} (read, control, admin)") from None

    @property
    def label(self) -> str:
        return self.name.lower()


_JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object", "any")


@dataclass(frozen=True)
class Param:
    """One named parameter of a method."""

    name: str
    type: str
    description: str
    required: bool = False
    default: Any = None
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    items: str | None = None  # element type of an array
    nullable: bool = False
    max_length: int | None = None

    def __post_init__(self) -> None:
        if self.type not in _JSON_TYPES:
            raise ValueError(f"param {self.name}: unknown type {self.type}")

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"description": self.description}
        if self.type != "any":
            schema["type"] = [self.type, "null"] if self.nullable else self.type
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.items is not None:
            schema["items"] = {"type": self.items}
        if self.max_length is not None:
            key = "maxItems" if self.type == "array" else "maxLength"
            schema[key] = self.max_length
        if not self.required and self.default is not None:
            schema["default"] = self.default
        return schema

    def check(self, value: Any) -> Any:
        """Return the value (ints accepted as numbers) or raise ValueError with the reason."""
        if value is None:
            if self.nullable:
                return None
            if not self.required:
                return self.default  # null for an optional parameter means "the default"
            raise ValueError("must not be null")
        value = _check_type(self.type, value)
        if self.type == "array" and self.items:
            value = [_check_type(self.items, v, f"item {i}: ") for i, v in enumerate(value)]
        if self.enum is not None and value not in self.enum:
            raise ValueError("must be one of " + ", ".join(map(str, self.enum)))
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"must be at least {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be at most {self.maximum:g}")
        if self.max_length is not None and len(value) > self.max_length:
            raise ValueError(f"must have at most {self.max_length} "
                             + ("items" if self.type == "array" else "characters"))
        return value


def _check_type(kind: str, value: Any, prefix: str = "") -> Any:
    ok: bool
    if kind == "string":
        ok = isinstance(value, str)
    elif kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok and isinstance(value, float) and value.is_integer() and math.isfinite(value):
            return int(value)
    elif kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise ValueError(f"{prefix}must be a finite number")
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "array":
        ok = isinstance(value, list)
    elif kind == "object":
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        raise ValueError(f"{prefix}expected {_ARTICLE[kind]}, got {_describe(value)}")
    return value


_ARTICLE = {"string": "a string", "integer": "an integer", "number": "a number",
            "boolean": "true or false", "array": "an array", "object": "an object"}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


@dataclass(frozen=True)
class MethodSpec:
    """A control method: everything but its implementation."""

    name: str
    permission: Permission
    summary: str
    params: tuple[Param, ...] = ()
    result: str = "null"
    frames: str | None = None  # what binary frames a reply carries, if any
    starts_job: bool = False  # the result has a job id; the CLI offers --wait
    paginated: bool = False
    examples: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        area, dot, verb = self.name.partition(".")
        if self.name != "hello" and (not dot or not area or not verb):
            raise ValueError(f"method name {self.name!r} is not area.verb")

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def validate(self, params: Any) -> dict[str, Any]:
        """Named arguments for the handler, defaults filled in; InvalidParams otherwise.

        Accepts an object (by name) or an array (by position, in declaration order), as
        JSON-RPC 2.0 allows. Every problem is reported, each under its parameter's name.
        """
        if params is None:
            given: Mapping[str, Any] = {}
        elif isinstance(params, dict):
            given = params
        elif isinstance(params, list):
            if len(params) > len(self.params):
                raise InvalidParams(
                    f"{self.name} takes at most {len(self.params)} positional params, "
                    f"got {len(params)}"
                )
            given = dict(zip(self.param_names, params, strict=False))
        else:
            raise InvalidParams("params must be an object or an array")
        errors: dict[str, str] = {}
        out: dict[str, Any] = {}
        known = {p.name: p for p in self.params}
        for name in given:
            if name not in known:
                errors[name] = "unknown parameter"
        for p in self.params:
            if p.name not in given:
                if p.required:
                    errors[p.name] = "required"
                else:
                    out[p.name] = p.default
                continue
            try:
                out[p.name] = p.check(given[p.name])
            except ValueError as exc:
                errors[p.name] = str(exc)
        if errors:
            first = next(iter(errors.items()))
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise InvalidParams(f"{first[0]}: {first[1]}{more}", {"errors": errors})
        return out

    def describe(self) -> dict[str, Any]:
        """The entry ``system.methods`` returns for this method."""
        return {
            "name": self.name,
            "permission": self.permission.label,
            "summary": self.summary,
            "params": {
                "type": "object",
                "properties": {p.name: p.json_schema() for p in self.params},
                "required": [p.name for p in self.params if p.required],
                "additionalProperties": False,
            },
            "result": self.result,
            "frames": self.frames,
            "starts_job": self.starts_job,
            "paginated": self.paginated,
        }


@dataclass(frozen=True)
class EventSpec:
    """An event published on the PUB socket under ``topic`` with ``type``."""

    topic: str
    type: str
    summary: str
    data: Mapping[str, str] = field(default_factory=dict)  # field name -> meaning


def build_registry(groups: Sequence[Sequence[MethodSpec]]) -> dict[str, MethodSpec]:
    registry: dict[str, MethodSpec] = {}
    for group in groups:
        for spec in group:
            if spec.name in registry:
                raise ValueError(f"method {spec.name} declared twice")
            registry[spec.name] = spec
    return dict(sorted(registry.items()))
