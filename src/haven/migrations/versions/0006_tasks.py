"""Tasks: definitions, cron timers, runs and their logs, and each registry's run counter.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _registry() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "registry_id",
        sa.Integer,
        sa.ForeignKey("registries.id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    with op.batch_alter_table("registries") as batch:
        batch.add_column(
            sa.Column("task_runs_count", sa.Integer, nullable=False, server_default="0")
        )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _registry(),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("timeout", sa.Integer, nullable=False),
        sa.Column("enabled", sa.SmallInteger, nullable=False, server_default="1"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("registry_id", "name"),
    )
    op.create_table(
        "task_timers",
        sa.Column(
            "task_id",
            sa.Integer,
            sa.ForeignKey("tasks.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("schedule", sa.String(200), nullable=False),
        sa.Column("enabled", sa.SmallInteger, nullable=False, server_default="1"),
        sa.Column("next_run_at", sa.BigInteger),
    )
    op.create_index("ix_task_timers_due", "task_timers", ["enabled", "next_run_at"])
    op.create_table(
        "task_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _registry(),
        sa.Column("run_id", sa.String(16), nullable=False),
        sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.id", ondelete="SET NULL")),
        sa.Column("task_name", sa.String(50)),
        sa.Column("run_type", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("timeout", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.BigInteger),
        sa.Column("finished_at", sa.BigInteger),
        sa.Column("error", sa.String(1000)),
        sa.Column("cancel_requested", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("agent", sa.String(128)),
        sa.Column("heartbeat_at", sa.BigInteger),
        sa.UniqueConstraint("registry_id", "run_id"),
    )
    op.create_index("ix_task_runs_status", "task_runs", ["status", "created_at"])
    op.create_index("ix_task_runs_registry", "task_runs", ["registry_id", "created_at"])
    op.create_table(
        "task_run_logs",
        sa.Column(
            "run_pk",
            sa.Integer,
            sa.ForeignKey("task_runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("task_run_logs")
    op.drop_index("ix_task_runs_registry", "task_runs")
    op.drop_index("ix_task_runs_status", "task_runs")
    op.drop_table("task_runs")
    op.drop_index("ix_task_timers_due", "task_timers")
    op.drop_table("task_timers")
    op.drop_table("tasks")
    with op.batch_alter_table("registries") as batch:
        batch.drop_column("task_runs_count")
