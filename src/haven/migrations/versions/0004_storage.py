"""Storage accounting and garbage collection: reference-counted registry content, each
registry's usage (filled in from the manifests already stored) and quota override, the
review queue of blobs that lost a link, and leases for work one process does at a time.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registries") as batch:
        batch.add_column(sa.Column("used_bytes", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("quota_bytes", sa.BigInteger))
    op.create_table(
        "registry_content",
        sa.Column(
            "registry_id",
            sa.Integer,
            sa.ForeignKey("registries.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("digest", sa.String(200), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("refs", sa.Integer, nullable=False),
    )
    op.create_table(
        "gc_blob_reviews",
        sa.Column("digest", sa.String(200), primary_key=True),
        sa.Column("queued_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.execute(
        "INSERT INTO registry_content (registry_id, digest, size, refs) "
        "SELECT registry_id, digest, MAX(size), COUNT(*) FROM ("
        "SELECT r.registry_id AS registry_id, m.digest AS digest, m.size AS size "
        "FROM manifests m JOIN repositories r ON r.id = m.repository_id "
        "UNION ALL "
        "SELECT r.registry_id, mr.digest, b.size FROM manifest_references mr "
        "JOIN manifests m ON m.id = mr.manifest_id "
        "JOIN repositories r ON r.id = m.repository_id "
        "JOIN blobs b ON b.digest = mr.digest WHERE mr.kind = 0"
        ") AS refs GROUP BY registry_id, digest"
    )
    op.execute(
        "UPDATE registries SET used_bytes = (SELECT COALESCE(SUM(size), 0) "
        "FROM registry_content c WHERE c.registry_id = registries.id)"
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("gc_blob_reviews")
    op.drop_table("registry_content")
    with op.batch_alter_table("registries") as batch:
        batch.drop_column("quota_bytes")
        batch.drop_column("used_bytes")
