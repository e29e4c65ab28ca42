"""The metadata schema, as SQLAlchemy Core tables.

Alembic's migrations create exactly this schema (a test compares the two); the request
path uses plain SQL against it. Times are milliseconds since the epoch, so that SQLite
and PostgreSQL store and compare them alike.

Content is global and stored once per digest (`blobs`); what a repository may read is
what it links (`repository_blobs`) or holds as a manifest. Manifests are kept byte-exact
in `manifests.payload`, with the fields that listing, referrers and GC need alongside.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from haven.store.locks import LOCK_COLUMNS

metadata = MetaData()


def _locks() -> list[Column]:  # type: ignore[type-arg]
    """ACR's lock attributes: each true unless switched off (see services/locks.py)."""
    return [Column(name, SmallInteger, nullable=False, server_default="1") for name in LOCK_COLUMNS]


registries = Table(
    "registries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(50), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("sku", String(16), nullable=False, server_default="Standard"),
    Column("admin_enabled", SmallInteger, nullable=False, server_default="0"),
    Column("anonymous_pull", SmallInteger, nullable=False, server_default="0"),
    Column("default_action", String(8), nullable=False, server_default="Allow"),
    # Storage accounting (store/usage.py): bytes referenced, and an operator's quota
    # override (NULL: what the SKU includes).
    Column("used_bytes", BigInteger, nullable=False, server_default="0"),
    Column("quota_bytes", BigInteger),
    # Retention of untagged manifests (NULL: disabled), and since when it applies.
    Column("retention_days", Integer),
    Column("retention_enabled_at", BigInteger),
    # Soft delete: whether deletions keep what they delete, for how many days (kept when
    # the policy is disabled: what was soft-deleted still expires), last changed when.
    Column("soft_delete_enabled", SmallInteger, nullable=False, server_default="0"),
    Column("soft_delete_days", Integer, nullable=False, server_default="7"),
    Column("soft_delete_updated_at", BigInteger),
    # How many task runs the registry has had: run ids are `ca<count>`.
    Column("task_runs_count", Integer, nullable=False, server_default="0"),
)

# Per registry and digest, how many references keep it counted in the registry's usage:
# one per manifest with that digest, one per manifest naming it as a blob.
registry_content = Table(
    "registry_content",
    metadata,
    Column(
        "registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("digest", String(200), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("refs", Integer, nullable=False),
)

login_servers = Table(
    "login_servers",
    metadata,
    Column("host", String(255), primary_key=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    *_locks(),
    Column("updated_at", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("registry_id", "name", name="uq_repositories_registry_name"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(200), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(200), ForeignKey("blobs.digest"), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    # 1 until a manifest of the repository references the blob (store/gc.py).
    Column("pending", SmallInteger, nullable=False, server_default="1"),
    Index("ix_repository_blobs_digest", "digest"),
    Index("ix_repository_blobs_pending", "pending", "created_at"),
)

manifests = Table(
    "manifests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("digest", String(200), nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("artifact_type", String(255)),
    Column("subject_digest", String(200)),
    Column("annotations", Text),
    Column("size", BigInteger, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    *_locks(),
    Column("updated_at", BigInteger, nullable=False, server_default="0"),
    Column("config_media_type", String(255)),
    Column("architecture", String(64)),
    Column("os", String(64)),
    # When it last became untagged (pushed without a tag, or its last tag removed or
    # moved); NULL while tagged, and for manifests untagged before this was recorded.
    Column("untagged_at", BigInteger),
    UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_digest"),
    Index("ix_manifests_subject", "repository_id", "subject_digest"),
)

# What each manifest references: kind 0 = blob, 1 = child manifest.
manifest_references = Table(
    "manifest_references",
    metadata,
    Column(
        "manifest_id",
        Integer,
        ForeignKey("manifests.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("kind", SmallInteger, primary_key=True),
    Column("digest", String(200), primary_key=True),
    Index("ix_manifest_references_digest", "digest"),
)

tags = Table(
    "tags",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(128), primary_key=True),
    Column("manifest_digest", String(200), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    *_locks(),
    Column("created_at", BigInteger, nullable=False, server_default="0"),
    Index("ix_tags_manifest", "repository_id", "manifest_digest"),
)

# Soft-deleted manifests (store/soft_delete.py), out of `manifests` so that nothing that
# reads live content sees them; keyed by repository name, since deleting a repository
# removes its row. Their references stay counted in `registry_content`.
deleted_manifests = Table(
    "deleted_manifests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("repository", String(255), nullable=False),
    Column("digest", String(200), nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("artifact_type", String(255)),
    Column("subject_digest", String(200)),
    Column("annotations", Text),
    Column("size", BigInteger, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    *_locks(),
    Column("updated_at", BigInteger, nullable=False, server_default="0"),
    Column("config_media_type", String(255)),
    Column("architecture", String(64)),
    Column("os", String(64)),
    Column("deleted_at", BigInteger, nullable=False),
    UniqueConstraint("registry_id", "repository", "digest", name="uq_deleted_manifests_digest"),
    Index("ix_deleted_manifests_deleted_at", "registry_id", "deleted_at"),
)

# What each soft-deleted manifest references (kinds as in manifest_references); garbage
# collection keeps every blob named here.
deleted_manifest_references = Table(
    "deleted_manifest_references",
    metadata,
    Column(
        "deleted_manifest_id",
        Integer,
        ForeignKey("deleted_manifests.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("kind", SmallInteger, primary_key=True),
    Column("digest", String(200), primary_key=True),
    Index("ix_deleted_manifest_references_digest", "digest"),
)

# Soft-deleted tags: which manifest each named when it was deleted. A tag deleted, pushed
# again and deleted again names one manifest per row.
deleted_tags = Table(
    "deleted_tags",
    metadata,
    Column(
        "registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("repository", String(255), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("manifest_digest", String(200), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    *_locks(),
    Column("deleted_at", BigInteger, nullable=False),
    Index("ix_deleted_tags_deleted_at", "registry_id", "deleted_at"),
)

# Blobs that lost a link, to be deleted once reviewed if nothing links them any more
# (store/gc.py).
gc_blob_reviews = Table(
    "gc_blob_reviews",
    metadata,
    Column("digest", String(200), primary_key=True),
    Column("queued_at", BigInteger, nullable=False),
)

# Work that one process of the deployment does at a time (the background collector).
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("repository", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("hash_state", LargeBinary, nullable=True),
)


# --- Access (see docs/access.md) -----------------------------------------------------

# The admin user's two passwords, encrypted with the deployment's secret key: unlike
# other secrets they must be shown again (`haven credential show`), as ACR does.
admin_passwords = Table(
    "admin_passwords",
    metadata,
    Column(
        "registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("name", String(16), primary_key=True),
    Column("secret", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Users and service principals. `version` changes when every token issued to the identity
# must stop working (a credential reset, say).
identities = Table(
    "identities",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", BigInteger, nullable=False),
)

identity_credentials = Table(
    "identity_credentials",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "identity_id", String(36), ForeignKey("identities.id", ondelete="CASCADE"), nullable=False
    ),
    Column("name", String(128), nullable=False),
    Column("hash", Text, nullable=False),
    Column("expires_at", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_identity_credentials_identity", "identity_id"),
)

# Scope: the deployment (registry_id NULL), a registry, or one repository of it.
role_assignments = Table(
    "role_assignments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "identity_id", String(36), ForeignKey("identities.id", ondelete="CASCADE"), nullable=False
    ),
    Column("role", String(32), nullable=False),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE")),
    Column("repository", String(255)),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_role_assignments_identity", "identity_id"),
)

scope_maps = Table(
    "scope_maps",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("actions", Text, nullable=False),
    Column("system", SmallInteger, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("registry_id", "name", name="uq_scope_maps_registry_name"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("scope_map_id", String(36), ForeignKey("scope_maps.id"), nullable=False),
    Column("status", String(16), nullable=False, server_default="enabled"),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("registry_id", "name", name="uq_tokens_registry_name"),
)

token_passwords = Table(
    "token_passwords",
    metadata,
    Column("token_id", String(36), ForeignKey("tokens.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(16), primary_key=True),
    Column("hash", Text, nullable=False),
    Column("expires_at", BigInteger),
    Column("created_at", BigInteger, nullable=False),
)

# JWT signing keys; the private half encrypted with the deployment's secret key.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_key", Text, nullable=False),
    Column("public_key", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("retired_at", BigInteger),
)

network_rules = Table(
    "network_rules",
    metadata,
    Column(
        "registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("address_range", String(64), primary_key=True),
)


# --- Tasks (see docs/tasks.md) -------------------------------------------------------

# A registry's tasks: ACR Tasks YAML (`definition`), run by `haven task run`, a timer or
# a user; `timeout` bounds a whole run in seconds.
tasks = Table(
    "tasks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("definition", Text, nullable=False),
    Column("timeout", Integer, nullable=False),
    Column("enabled", SmallInteger, nullable=False, server_default="1"),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("registry_id", "name"),
)

# Cron timers of a task; `next_run_at` is when the next run is due (ms, UTC).
task_timers = Table(
    "task_timers",
    metadata,
    Column("task_id", Integer, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(50), primary_key=True),
    Column("schedule", String(200), nullable=False),
    Column("enabled", SmallInteger, nullable=False, server_default="1"),
    Column("next_run_at", BigInteger),
    Index("ix_task_timers_due", "enabled", "next_run_at"),
)

# Runs: queued by the API or a timer, claimed by one agent (a server process), which
# keeps `heartbeat_at` fresh while it runs them. `run_id` is the registry's `caN`.
task_runs = Table(
    "task_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("run_id", String(16), nullable=False),
    Column("task_id", Integer, ForeignKey("tasks.id", ondelete="SET NULL")),
    Column("task_name", String(50)),
    Column("run_type", String(16), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("definition", Text, nullable=False),
    Column("timeout", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("started_at", BigInteger),
    Column("finished_at", BigInteger),
    Column("error", String(1000)),
    Column("cancel_requested", SmallInteger, nullable=False, server_default="0"),
    Column("agent", String(128)),
    Column("heartbeat_at", BigInteger),
    UniqueConstraint("registry_id", "run_id"),
    Index("ix_task_runs_status", "status", "created_at"),
    Index("ix_task_runs_registry", "registry_id", "created_at"),
)

# A run's log, in the order it was written.
task_run_logs = Table(
    "task_run_logs",
    metadata,
    Column("run_pk", Integer, ForeignKey("task_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("data", Text, nullable=False),
)
