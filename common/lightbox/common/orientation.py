"""Which way up a photo is shown: EXIF orientations 5 to 8 turn it a quarter, so the picture a
person sees is ``height`` wide and ``width`` high. The catalog keeps the stored pixel size
(``width``/``height`` are what the file holds); everything that shows a size to a person
(CLI, TUI) goes through ``upright`` so an upright portrait never reads 2048x1536."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

QUARTER_TURNS = frozenset({5, 6, 7, 8})


def upright(width: int | None, height: int | None, orientation: int | None
            ) -> tuple[int | None, int | None]:
    """(width, height) as displayed, after the EXIF rotation."""
    if orientation in QUARTER_TURNS:
        return height, width
    return width, height


def upright_of(photo: Mapping[str, Any]) -> tuple[int | None, int | None]:
    return upright(photo.get("width"), photo.get("height"), photo.get("orientation"))
