"""Alembic environment of the hazmap store, run programmatically by `data.store` (no alembic.ini).

The store hands over an open connection in `config.attributes["connection"]` so the migration runs
inside the caller's transaction (PostgreSQL and, with the store's SQLite setup, SQLite both have
transactional DDL: a failed upgrade leaves the database as it was). Without one, a URL in
`sqlalchemy.url` is used, which is how `alembic -x` style tooling can drive it too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from data.schema import metadata

config = context.config


def _include_object(obj, name, type_, reflected, compare_to):
    # Day partitions of pings/readings and PostGIS's own tables are not declared in the schema.
    if type_ == "table" and reflected and compare_to is None:
        return False
    return True


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=_include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("hazmap migrations run online only (the PostGIS branch inspects the server)")
run_migrations_online()
