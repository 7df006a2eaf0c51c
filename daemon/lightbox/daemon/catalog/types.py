"""Column types that behave the same on SQLite, PostgreSQL and MySQL/MariaDB.

- ``Id``: a 64-bit key, except on SQLite where only ``INTEGER PRIMARY KEY`` aliases the rowid
  and autoincrements.
- ``Name``: strings compared byte for byte (file names), also on MySQL.
- ``Timestamp``: naive UTC datetimes with microseconds (MySQL's DATETIME drops them unless
  asked for fsp=6; MariaDB also drops time zones, so we never store one).
- ``Real``: a double-precision float everywhere (MySQL's FLOAT is single precision: an
  exposure of 1/3 s would come back as 0.333333, and a catalog copied to MySQL would no
  longer be the catalog it was copied from).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def Name(length: int = 255) -> sa.types.TypeEngine[str]:
    """A file or folder name: compared byte for byte everywhere.

    MySQL/MariaDB compare strings case- and accent-insensitively by default, so ``IMG.JPG``
    and ``img.jpg`` (two files on Linux) would collide in a unique index; the binary collation
    keeps them apart. SQLite and PostgreSQL compare bytes already.
    """
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Real = sa.Float().with_variant(mysql.DOUBLE(asdecimal=False), "mysql", "mariadb")


def utcnow() -> dt.datetime:
    """Now, as the naive UTC datetime every Timestamp column holds."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def iso(value: dt.datetime | None) -> str | None:
    """A stored naive-UTC timestamp as ISO 8601 text with a Z, for replies."""
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds") + "Z"
