"""Retention policy for untagged manifests: a registry's days and when it was enabled,
and when each manifest last became untagged. Also, for garbage collection: an index of
blob links by digest (is a blob linked anywhere? and blob deletion's foreign-key check),
and which links no manifest references yet, so that the sweep for abandoned uploads looks
at those alone.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registries") as batch:
        batch.add_column(sa.Column("retention_days", sa.Integer))
        batch.add_column(sa.Column("retention_enabled_at", sa.BigInteger))
    with op.batch_alter_table("manifests") as batch:
        batch.add_column(sa.Column("untagged_at", sa.BigInteger))
    op.create_index("ix_repository_blobs_digest", "repository_blobs", ["digest"])
    # Every existing link starts pending; the first collection pass settles those that
    # a manifest references.
    with op.batch_alter_table("repository_blobs") as batch:
        batch.add_column(sa.Column("pending", sa.SmallInteger, nullable=False, server_default="1"))
    op.create_index("ix_repository_blobs_pending", "repository_blobs", ["pending", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_repository_blobs_pending", "repository_blobs")
    with op.batch_alter_table("repository_blobs") as batch:
        batch.drop_column("pending")
    op.drop_index("ix_repository_blobs_digest", "repository_blobs")
    with op.batch_alter_table("manifests") as batch:
        batch.drop_column("untagged_at")
    with op.batch_alter_table("registries") as batch:
        batch.drop_column("retention_enabled_at")
        batch.drop_column("retention_days")
