"""Declarations of control methods and events: names, permissions, parameters, results.

A method is declared once, here in ``lightbox.common.api``, as a ``MethodSpec``. From that one
declaration the daemon validates parameters and checks permissions, ``system.methods``
answers, the CLI builds ``lightbox call`` and its help, and ``docs/protocol.md`` is generated
(a test fails when the file and the registry differ). Handlers in the daemon attach to a spec
by name; the daemon refuses to start when a spec has no handler or a handler no spec.

Parameters are ``Field``s (``lightbox.common.fields``), a small typed subset of JSON Schema
validated by hand: it keeps the error messages ours (one per field, naming the field) and
avoids a schema library on the hot path. Every parameter also gets the rules any value gets:
valid Unicode text without NUL, finite numbers, integers within 64 bits.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightbox.common.errors import InvalidParams
from lightbox.common.fields import Field, reason_of, shown


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


# A method parameter is a field like any other (see ``lightbox.common.fields``): the same
# type checks, ranges and text rules as the bootstrap config and the runtime settings.
Param = Field


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
        reasons: dict[str, str] = {}
        out: dict[str, Any] = {}
        known = {p.name: p for p in self.params}
        for name in given:
            if name not in known:
                errors[shown(name)] = "unknown parameter"
                reasons[shown(name)] = "unknown_parameter"
        for p in self.params:
            if p.name not in given:
                if p.required:
                    errors[p.name] = "required"
                    reasons[p.name] = "required"
                else:
                    out[p.name] = p.default
                continue
            try:
                out[p.name] = p.check(given[p.name])
            except ValueError as exc:
                errors[p.name] = str(exc)
                reasons[p.name] = reason_of(exc)
        if errors:
            first = next(iter(errors.items()))
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise InvalidParams(f"{first[0]}: {first[1]}{more}",
                                {"errors": errors, "reasons": reasons})
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
