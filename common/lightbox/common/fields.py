"""The one typed field: a value's type, default, constraints, description and behaviour.

A method's parameters (``lightbox.common.api``), the bootstrap configuration
(``lightbox.common.config``) and the runtime settings (``lightbox.common.settings``) are all
declared as ``Field``s, so a value is validated in one way wherever it comes from: a
request, the TOML file, a ``LIGHTBOX_*`` variable, ``lightbox settings set`` or a form in the
TUI. Two entry points:

- ``check(value)`` takes a decoded JSON (or TOML) value, strictly: ``"5"`` is not an integer.
- ``parse(text)`` takes what a person typed (environment, command line, a text input) and
  turns it into the field's type first, then checks it.

Both raise ``ValueError`` with a message meant for a person, without the field's name (the
caller knows under which name to show it). What any value must be, on top of a field's own
constraints: text is valid Unicode (no lone surrogates) without NUL characters, numbers are
finite, integers fit in 64 bits. A value that breaks those could not be stored, encoded
into a reply or passed to the operating system, so it is refused at the door.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TYPES = ("string", "integer", "number", "boolean", "array", "object", "any", "path")
# When a changed setting takes effect.
APPLIES = ("live", "workers", "restart")
INT_MIN = -(1 << 63)
INT_MAX = (1 << 63) - 1

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class FieldError(ValueError):
    """A value a field refuses: ``reason`` says why for a program, the text for a person.

    Reasons: ``null``, ``type``, ``text``, ``path``, ``pattern``, ``choice``, ``range``,
    ``length``, ``invalid`` (the field's own rule). Settings add ``unknown_key``,
    ``read_only`` and ``unknown_object``. Clients branch on the reason, never on the text.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def reason_of(exc: ValueError) -> str:
    return exc.reason if isinstance(exc, FieldError) else "invalid"


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be used as text, or None. ASCII without NUL is the fast path."""
    if "\x00" in value:
        return "must not contain NUL characters"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode text (it holds a lone surrogate)"
    return None


def shown(name: str) -> str:
    """A name as it can be shown and encoded: non-printable characters escaped."""
    return name if name.isprintable() else repr(name)[1:-1]


def json_problem(value: Any) -> str | None:
    """The first part of a nested JSON value that cannot be used (bad text, infinite
    numbers, integers beyond 64 bits), as ``where: why``; None when all of it is fine.

    Iterative: a deep value must not cost a recursion error.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, v = stack.pop()
        problem: str | None = None
        if isinstance(v, str):
            problem = text_problem(v)
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int):
            if not INT_MIN <= v <= INT_MAX:
                problem = "integer out of range (64 bits at most)"
        elif isinstance(v, float):
            if not math.isfinite(v):
                problem = "must be a finite number"
        elif isinstance(v, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(v))
        elif isinstance(v, dict):
            for k, item in v.items():
                key_problem = text_problem(k) if isinstance(k, str) else "keys must be text"
                if key_problem:
                    return f"{where or 'key'} {shown(str(k))!r}: {key_problem}"
                stack.append((f"{where}.{k}" if where else k, item))
        if problem:
            return f"{shown(where)}: {problem}" if where else problem
    return None


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


@dataclass(frozen=True)
class Field:
    """One named, typed value.

    The first eleven attributes are those of the original method ``Param`` (in the same
    order, so ``Param(name, type, description, required=..., ...)`` still builds one); the
    rest serve settings: ``secret`` (never shown, only set/unset and a fingerprint),
    ``applies`` (live, on worker restart, on daemon restart), ``scope`` (``bootstrap``:
    read before the database opens, so not stored in it), ``note`` (what a change means
    beyond the value, e.g. that existing thumbnails keep their size).
    """

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
    pattern: str | None = None  # strings (and array items) must match it entirely
    pattern_hint: str | None = None  # what the pattern means, for the error message
    check_fn: Callable[[Any], str | None] | None = None  # extra rule: the problem, or None
    absolute: bool = False  # paths: must be absolute
    secret: bool = False
    applies: str = "live"
    scope: str = "runtime"  # or "bootstrap"
    unit: str | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"field {self.name}: unknown type {self.type}")
        if self.items is not None and self.items not in TYPES:
            raise ValueError(f"field {self.name}: unknown item type {self.items}")
        if self.applies not in APPLIES:
            raise ValueError(f"field {self.name}: applies must be one of {APPLIES}")
        if self.scope not in ("runtime", "bootstrap"):
            raise ValueError(f"field {self.name}: scope must be runtime or bootstrap")
        if self.pattern is not None:
            object.__setattr__(self, "_regex", re.compile(self.pattern))

    # -- describing ------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"description": self.description}
        if self.type != "any":
            kind = "string" if self.type == "path" else self.type
            schema["type"] = [kind, "null"] if self.nullable else kind
        if self.type == "path":
            schema["format"] = "path"
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.items is not None:
            schema["items"] = {"type": self.items}
            if self.pattern is not None:
                schema["items"]["pattern"] = self.pattern
        elif self.pattern is not None:
            schema["pattern"] = self.pattern
        if self.max_length is not None:
            key = "maxItems" if self.type == "array" else "maxLength"
            schema[key] = self.max_length
        if not self.required and self.default is not None and not self.secret:
            schema["default"] = self.default
        if self.secret:
            schema["writeOnly"] = True
        return schema

    def describe(self) -> dict[str, Any]:
        """Everything a client needs to build a form field (``settings.schema``)."""
        return {
            "key": self.name,
            "label": self.label,
            "type": self.type,
            "description": self.description,
            "default": None if self.secret else self.default,
            "nullable": self.nullable,
            "enum": list(self.enum) if self.enum is not None else None,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "items": self.items,
            "max_length": self.max_length,
            "pattern": self.pattern,
            "pattern_hint": self.pattern_hint,
            "absolute": self.absolute,
            "secret": self.secret,
            "applies": self.applies,
            "scope": self.scope,
            "unit": self.unit,
            "note": self.note,
        }

    # -- validating ------------------------------------------------------------------------
    def check(self, value: Any) -> Any:
        """The value as the field holds it, or ValueError with the reason.

        ``null`` is the default for an optional field that is not nullable. Integers are
        accepted as numbers (and returned as floats); integral floats as integers.
        """
        if value is None:
            if self.nullable:
                return None
            if not self.required:
                return self.default  # null for an optional parameter means "the default"
            raise FieldError("null", "must not be null")
        value = _check_type(self.type, value)
        if self.type == "array":
            kind = self.items or "any"
            value = [self._scalar(_check_type(kind, v, f"item {i}: "), f"item {i}: ")
                     for i, v in enumerate(value)]
        else:
            value = self._scalar(value, "")
        if self.max_length is not None and len(value) > self.max_length:
            raise FieldError("length", f"must have at most {self.max_length} "
                             + ("items" if self.type == "array" else "characters"))
        if self.check_fn is not None:
            problem = self.check_fn(value)
            if problem:
                raise FieldError("invalid", problem)
        return value

    def _scalar(self, value: Any, prefix: str) -> Any:
        """Constraints on one value (the field's, or an array item's)."""
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise FieldError("text", prefix + problem)
            if self.type == "path" and self.absolute and not value.startswith(("/", "~")):
                raise FieldError("path", prefix + "must be an absolute path")
            regex: re.Pattern[str] | None = getattr(self, "_regex", None)
            if regex is not None and not regex.fullmatch(value):
                raise FieldError("pattern", prefix + (self.pattern_hint
                                                      or f"must match {self.pattern}"))
        elif isinstance(value, (list, dict)) or self.type == "any":
            problem = json_problem(value)
            if problem:
                raise FieldError("text", prefix + problem)
        if self.enum is not None and value not in self.enum:
            raise FieldError("choice", prefix + "must be one of " + ", ".join(map(str, self.enum)))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            low = self.minimum
            high = self.maximum
            if isinstance(value, int):
                low = INT_MIN if low is None else low
                high = INT_MAX if high is None else high
            if low is not None and value < low:
                raise FieldError("range", prefix + f"must be at least {_num(low)}")
            if high is not None and value > high:
                raise FieldError("range", prefix + f"must be at most {_num(high)}")
        return value

    def parse(self, text: str) -> Any:
        """Convert what a person typed into the field's type, then ``check`` it.

        Booleans: true/false, yes/no, on/off, 1/0. Arrays: comma-separated items, or JSON.
        An empty text is null for a nullable field.
        """
        raw = text.strip()
        if raw == "" and self.nullable:
            return None
        if raw.lower() == "null" and self.nullable and self.type not in ("string", "path"):
            return None
        kind = self.type
        value: Any
        if kind == "boolean":
            if raw.lower() in _TRUE:
                value = True
            elif raw.lower() in _FALSE:
                value = False
            else:
                raise FieldError("type", f"expected true or false, got {raw!r}")
        elif kind == "integer":
            try:
                value = int(raw.replace("_", ""))
            except ValueError:
                raise FieldError("type", f"expected an integer, got {raw!r}") from None
        elif kind == "number":
            try:
                value = float(raw.replace("_", ""))
            except ValueError:
                raise FieldError("type", f"expected a number, got {raw!r}") from None
        elif kind == "array":
            if raw.startswith("["):
                value = _json(raw)
            else:
                item = Field(self.name, self.items or "string", "")
                value = [item.parse(part) for part in raw.split(",") if part.strip()]
        elif kind in ("object", "any"):
            value = _json(raw) if raw[:1] in ("{", "[", '"') or kind == "object" else raw
        elif kind == "path":
            if not raw:
                raise FieldError("type", "expected a path")
            value = raw
        else:
            value = text  # strings keep their spaces
            if self.enum is not None and raw.lower() in self.enum:
                value = raw.lower()
        return self.check(value)

    def format(self, value: Any) -> str:
        """The value as a person would type it back (``parse`` of it gives it again)."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            return str(int(value)) if self.type == "integer" else f"{value:g}"
        if isinstance(value, list) and all(isinstance(v, str) and "," not in v
                                           for v in value):
            return ",".join(value)
        if isinstance(value, (list, dict)):
            import json

            return json.dumps(value, ensure_ascii=False)
        return str(value)


def _json(raw: str) -> Any:
    import json

    try:
        return json.loads(raw)
    except ValueError as exc:
        raise FieldError("type", f"not valid JSON: {exc}") from None


def _check_type(kind: str, value: Any, prefix: str = "") -> Any:
    ok: bool
    if kind in ("string", "path"):
        ok = isinstance(value, str)
    elif kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok and isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
    elif kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            if isinstance(value, float) and not math.isfinite(value):
                raise FieldError("range", f"{prefix}must be a finite number")
            if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
                raise FieldError("range", f"{prefix}number out of range")
            return float(value)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "array":
        ok = isinstance(value, list)
    elif kind == "object":
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        raise FieldError("type", f"{prefix}expected {_ARTICLE[kind]}, got {describe_value(value)}")
    return value


_ARTICLE = {"string": "a string", "path": "a path (a string)", "integer": "an integer",
            "number": "a number", "boolean": "true or false", "array": "an array",
            "object": "an object"}


def describe_value(value: Any) -> str:
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
