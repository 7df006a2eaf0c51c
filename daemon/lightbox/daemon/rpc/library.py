"""TEMPORARY while the lead builds this area: every method answers 'unavailable'."""

from __future__ import annotations

from typing import Any

from lightbox.common.api import METHODS
from lightbox.common.errors import Unavailable
from lightbox.daemon.rpc import Context, method


def _unbuilt(name: str) -> None:
    async def handler(ctx: Context, **params: Any) -> Any:
        raise Unavailable(f"{name} is being built")

    method(name)(handler)


for _name in METHODS:
    if _name.startswith("library."):
        _unbuilt(_name)
