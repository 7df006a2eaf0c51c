"""Source kinds, keyed by ``sources.kind``: how the library lists and reads a source.

See ``base`` for the interface (documented in docs/ARCHITECTURE.md, "Source kinds"),
``local`` and ``s3`` for the two kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lightbox.daemon.kinds.base import Entry, Listing, SourceKind
from lightbox.daemon.kinds.local import LocalKind
from lightbox.daemon.kinds.s3 import S3Config, S3Kind, S3Object

__all__ = ["KINDS", "Entry", "Listing", "LocalKind", "S3Config", "S3Kind", "S3Object",
           "SourceKind", "for_source", "s3_config"]


def s3_config(config: Mapping[str, Any], secrets: Mapping[str, str]) -> S3Config:
    """The S3Config of a source from its ``sources.config`` and its secrets."""
    return S3Config(
        bucket=str(config["bucket"]), region=str(config.get("region") or "us-east-1"),
        endpoint=config.get("endpoint") or None,
        prefix=S3Config.norm_prefix(config.get("prefix")),
        addressing_style=str(config.get("addressing_style") or "auto"),
        access_key_id=config.get("access_key_id") or None,
        secret_access_key=secrets.get("secret_access_key"),
        profile=config.get("credentials_profile") or None,
        read_timeout=float(config.get("read_timeout") or 60),
        object_timeout=float(config.get("object_timeout") or 300),
        attempts=int(config.get("attempts") or 6))


def _local(path: str | None, config: Mapping[str, Any] | None,
           secrets: Mapping[str, str]) -> SourceKind:
    assert path is not None
    return LocalKind(path)


def _s3(path: str | None, config: Mapping[str, Any] | None,
        secrets: Mapping[str, str]) -> SourceKind:
    assert config is not None
    return S3Kind(s3_config(config, secrets), page_size=int(config.get("page_size") or 1000))


KINDS: dict[str, Callable[[str | None, Mapping[str, Any] | None, Mapping[str, str]],
                          SourceKind]] = {"local": _local, "s3": _s3}


def for_source(kind: str, path: str | None, config: Mapping[str, Any] | None,
               secrets: Mapping[str, str] | None = None) -> SourceKind:
    return KINDS[kind](path, config, secrets or {})
