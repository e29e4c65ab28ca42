"""Lock attributes on repositories, tags and manifests; timestamps and platforms for
ACR's repository API.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LOCKS = ("write_enabled", "delete_enabled", "read_enabled", "list_enabled")


def _locks() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column(name, sa.SmallInteger, nullable=False, server_default="1") for name in LOCKS]


def upgrade() -> None:
    with op.batch_alter_table("repositories") as batch:
        for column in _locks():
            batch.add_column(column)
        batch.add_column(sa.Column("updated_at", sa.BigInteger, nullable=False, server_default="0"))
    with op.batch_alter_table("tags") as batch:
        for column in _locks():
            batch.add_column(column)
        batch.add_column(sa.Column("created_at", sa.BigInteger, nullable=False, server_default="0"))
    with op.batch_alter_table("manifests") as batch:
        for column in _locks():
            batch.add_column(column)
        batch.add_column(sa.Column("updated_at", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("config_media_type", sa.String(255)))
        batch.add_column(sa.Column("architecture", sa.String(64)))
        batch.add_column(sa.Column("os", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("manifests") as batch:
        for name in (*LOCKS, "updated_at", "config_media_type", "architecture", "os"):
            batch.drop_column(name)
    with op.batch_alter_table("tags") as batch:
        for name in (*LOCKS, "created_at"):
            batch.drop_column(name)
    with op.batch_alter_table("repositories") as batch:
        for name in (*LOCKS, "updated_at"):
            batch.drop_column(name)
