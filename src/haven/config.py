"""One typed settings object for the whole server.

Every field can be set by a `HAVEN_<FIELD>` environment variable; `haven serve` flags
override them. Worker processes receive their settings through the same variables, so
what the parent resolved is exactly what every worker uses.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HAVEN_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(5000, ge=0, le=65535)
    data_dir: Path = Path("./data")
    workers: int = Field(default_factory=lambda: max(1, min(os.cpu_count() or 1, 4)), ge=1)
    database_url: str | None = Field(
        None,
        description="postgresql://… for scale-out; default: SQLite in the data directory",
    )
    default_registry: str = Field(
        "default", description="Registry that answers requests for an unknown Host"
    )
    db_threads: int = Field(8, ge=1, description="Threads (and connections) for metadata I/O")
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_page_size: int = 10_000
    default_catalog_page: int = 1000
    log_level: str = "info"

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'haven.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite:")

    def to_environment(self) -> dict[str, str]:
        """The variables that reproduce these settings in a worker process."""
        env = {
            "HAVEN_HOST": self.host,
            "HAVEN_PORT": str(self.port),
            "HAVEN_DATA_DIR": str(self.data_dir),
            "HAVEN_WORKERS": str(self.workers),
            "HAVEN_DEFAULT_REGISTRY": self.default_registry,
            "HAVEN_DB_THREADS": str(self.db_threads),
            "HAVEN_LOG_LEVEL": self.log_level,
        }
        if self.database_url:
            env["HAVEN_DATABASE_URL"] = self.database_url
        return env
