"""Alembic environment: run with the connection the daemon hands over.

The daemon calls ``alembic.command.upgrade`` inside ``AsyncConnection.run_sync`` and puts the
sync connection into ``config.attributes["connection"]``; there is no alembic.ini and no
offline mode. ``render_as_batch`` lets ALTERs work on SQLite.
"""

from alembic import context

from lightbox.daemon.catalog.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("lightbox migrations run from the daemon (lightboxd --migrate)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
