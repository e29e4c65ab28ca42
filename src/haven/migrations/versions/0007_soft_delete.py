"""Soft delete: each registry's policy (whether, how many days, changed when), and the
soft-deleted manifests, their references and the soft-deleted tags.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

LOCKS = ("write_enabled", "delete_enabled", "read_enabled", "list_enabled")


def _locks() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column(name, sa.SmallInteger, nullable=False, server_default="1") for name in LOCKS]


def _registry(primary_key: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "registry_id",
        sa.Integer,
        sa.ForeignKey("registries.id", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
    )


def upgrade() -> None:
    with op.batch_alter_table("registries") as batch:
        batch.add_column(
            sa.Column("soft_delete_enabled", sa.SmallInteger, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("soft_delete_days", sa.Integer, nullable=False, server_default="7")
        )
        batch.add_column(sa.Column("soft_delete_updated_at", sa.BigInteger))
    op.create_table(
        "deleted_manifests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _registry(),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("digest", sa.String(200), nullable=False),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("artifact_type", sa.String(255)),
        sa.Column("subject_digest", sa.String(200)),
        sa.Column("annotations", sa.Text),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        *_locks(),
        sa.Column("updated_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("config_media_type", sa.String(255)),
        sa.Column("architecture", sa.String(64)),
        sa.Column("os", sa.String(64)),
        sa.Column("deleted_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint(
            "registry_id", "repository", "digest", name="uq_deleted_manifests_digest"
        ),
    )
    op.create_index(
        "ix_deleted_manifests_deleted_at", "deleted_manifests", ["registry_id", "deleted_at"]
    )
    op.create_table(
        "deleted_manifest_references",
        sa.Column(
            "deleted_manifest_id",
            sa.Integer,
            sa.ForeignKey("deleted_manifests.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kind", sa.SmallInteger, primary_key=True),
        sa.Column("digest", sa.String(200), primary_key=True),
    )
    op.create_index(
        "ix_deleted_manifest_references_digest", "deleted_manifest_references", ["digest"]
    )
    op.create_table(
        "deleted_tags",
        _registry(primary_key=True),
        sa.Column("repository", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("manifest_digest", sa.String(200), primary_key=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        *_locks(),
        sa.Column("deleted_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_deleted_tags_deleted_at", "deleted_tags", ["registry_id", "deleted_at"])


def downgrade() -> None:
    op.drop_index("ix_deleted_tags_deleted_at", "deleted_tags")
    op.drop_table("deleted_tags")
    op.drop_index("ix_deleted_manifest_references_digest", "deleted_manifest_references")
    op.drop_table("deleted_manifest_references")
    op.drop_index("ix_deleted_manifests_deleted_at", "deleted_manifests")
    op.drop_table("deleted_manifests")
    with op.batch_alter_table("registries") as batch:
        batch.drop_column("soft_delete_updated_at")
        batch.drop_column("soft_delete_days")
        batch.drop_column("soft_delete_enabled")
