"""Alembic environment: migrations run against the URL Haven hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from haven.store.schema import metadata

url = context.config.get_main_option("sqlalchemy.url")
assert url is not None
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
