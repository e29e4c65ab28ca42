"""Access: registry settings, identities, roles, admin user, tokens, keys, network rules.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _registry_fk() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "registry_id",
        sa.Integer,
        sa.ForeignKey("registries.id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    with op.batch_alter_table("registries") as batch:
        batch.add_column(sa.Column("sku", sa.String(16), nullable=False, server_default="Standard"))
        batch.add_column(
            sa.Column("admin_enabled", sa.SmallInteger, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("anonymous_pull", sa.SmallInteger, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("default_action", sa.String(8), nullable=False, server_default="Allow")
        )
    op.create_table(
        "admin_passwords",
        sa.Column(
            "registry_id",
            sa.Integer,
            sa.ForeignKey("registries.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(16), primary_key=True),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "identities",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "identity_credentials",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "identity_id",
            sa.String(36),
            sa.ForeignKey("identities.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("hash", sa.Text, nullable=False),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_identity_credentials_identity", "identity_credentials", ["identity_id"])
    op.create_table(
        "role_assignments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "identity_id",
            sa.String(36),
            sa.ForeignKey("identities.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("registry_id", sa.Integer, sa.ForeignKey("registries.id", ondelete="CASCADE")),
        sa.Column("repository", sa.String(255)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_role_assignments_identity", "role_assignments", ["identity_id"])
    op.create_table(
        "scope_maps",
        sa.Column("id", sa.String(36), primary_key=True),
        _registry_fk(),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("actions", sa.Text, nullable=False),
        sa.Column("system", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("registry_id", "name", name="uq_scope_maps_registry_name"),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        _registry_fk(),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("scope_map_id", sa.String(36), sa.ForeignKey("scope_maps.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="enabled"),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("registry_id", "name", name="uq_tokens_registry_name"),
    )
    op.create_table(
        "token_passwords",
        sa.Column(
            "token_id",
            sa.String(36),
            sa.ForeignKey("tokens.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(16), primary_key=True),
        sa.Column("hash", sa.Text, nullable=False),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("private_key", sa.Text, nullable=False),
        sa.Column("public_key", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("retired_at", sa.BigInteger),
    )
    op.create_table(
        "network_rules",
        sa.Column(
            "registry_id",
            sa.Integer,
            sa.ForeignKey("registries.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("address_range", sa.String(64), primary_key=True),
    )


def downgrade() -> None:
    for table in (
        "network_rules",
        "signing_keys",
        "token_passwords",
        "tokens",
        "scope_maps",
        "role_assignments",
        "identity_credentials",
        "identities",
        "admin_passwords",
    ):
        op.drop_table(table)
    with op.batch_alter_table("registries") as batch:
        for column in ("default_action", "anonymous_pull", "admin_enabled", "sku"):
            batch.drop_column(column)
