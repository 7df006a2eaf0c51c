"""Database URLs as secrets: masking them for display and scrubbing them out of text.

A catalog URL such as ``postgresql+asyncpg://lightbox:s3cret@db/photos`` carries a password,
and that password must never reach a log line, a reply, an event, a job's parameters or
result, or an error message. Everything that shows a URL shows ``mask(url)``; everything
that shows text which may contain one (a driver's exception, a parse error that echoes its
input) shows ``scrub(text, url)``.

Parsing follows SQLAlchemy's own URL pattern (``user:password@`` up to the first ``@``;
``password=`` in the query string, which asyncpg and aiomysql also accept), without
importing SQLAlchemy: the CLI uses this too and must start quickly.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable

HIDDEN = "***"

_URL = re.compile(
    r"(?P<scheme>[\w+]+://)"
    r"(?:(?P<user>[^:/@]*)(?::(?P<password>[^@]*))?@)?"
    r"(?P<rest>[^?]*)"
    r"(?:\?(?P<query>.*))?",
    re.S,
)
# Query parameters drivers accept a secret in (asyncpg and aiomysql take ``?password=``).
_SECRET_PARAMS = frozenset({"password", "passwd", "pwd", "pass", "sslpassword", "secret",
                            "token", "auth_token", "api_key", "apikey"})

ENGINES = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql",
           "mariadb": "mysql"}


def engine_of(url: str) -> str | None:
    """``sqlite``, ``postgresql`` or ``mysql`` (MariaDB included), None when unknown."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    return ENGINES.get(scheme.split("+", 1)[0].lower())


def passwords(url: str) -> list[str]:
    """The secret parts of a URL, as written and percent-decoded (longest first)."""
    m = _URL.fullmatch(url)
    if m is None:
        return []
    found: list[str] = []
    if m.group("password"):
        found.append(m.group("password"))
    for part in (m.group("query") or "").split("&"):
        key, _, value = part.partition("=")
        if key.lower() in _SECRET_PARAMS and value:
            found.append(value)
    out: set[str] = set()
    for p in found:
        out.add(p)
        out.add(urllib.parse.unquote(p))
        out.add(urllib.parse.unquote_plus(p))
    return sorted((p for p in out if p), key=len, reverse=True)


def mask(url: str) -> str:
    """The URL with its password (and any ``password=`` parameter) replaced by ``***``."""
    m = _URL.fullmatch(url)
    if m is None or "://" not in url:
        return "<unparseable database URL>" if passwords_like(url) else url
    out = m.group("scheme")
    if m.group("user") is not None:
        out += m.group("user")
        if m.group("password") is not None:
            out += ":" + HIDDEN
        out += "@"
    out += m.group("rest")
    if m.group("query") is not None:
        parts = []
        for part in m.group("query").split("&"):
            key, sep, _ = part.partition("=")
            parts.append(f"{key}{sep}{HIDDEN}" if key.lower() in _SECRET_PARAMS and sep
                         else part)
        out += "?" + "&".join(parts)
    return out


def passwords_like(text: str) -> bool:
    """Whether a string that does not parse as a URL might still hold a credential."""
    return "@" in text or any(p in text.lower() for p in _SECRET_PARAMS)


def scrub(text: str, urls: Iterable[str | None]) -> str:
    """``text`` with every URL of ``urls`` masked and every password they hold removed."""
    for url in urls:
        if not url:
            continue
        text = text.replace(url, mask(url))
        for secret in passwords(url):
            text = text.replace(secret, HIDDEN)
    return text
