"""One typed settings object for the whole server.

Every field can be set by a `HAVEN_<FIELD>` environment variable; `haven serve` flags
override them. Worker processes receive their settings through the same variables, so
what the parent resolved is exactly what every worker uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    domain: str = Field(
        "localhost",
        description="Registries' login servers are <name>.<domain> (add :port if not 443; "
        "behind a proxy, the proxy's port, :443 included)",
    )
    default_registry: str = Field(
        "default", description="Registry that answers requests for an unknown Host"
    )
    db_threads: int = Field(8, ge=1, description="Threads (and connections) for metadata I/O")
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_page_size: int = 10_000
    default_catalog_page: int = 1000
    log_level: str = "info"
    tls_cert: Path | None = Field(None, description="PEM certificate: serve HTTPS")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    bootstrap_password: str | None = Field(
        None, description="Password of the deployment owner created on first start"
    )
    secret_key: str | None = Field(
        None,
        description="Fernet key sealing stored secrets; default: <data-dir>/secret.key",
    )
    rate_limit_anonymous: float = Field(
        100.0, ge=0, description="Requests/s per address for anonymous callers (0: no limit)"
    )
    rate_limit_principal: float = Field(
        0.0, ge=0, description="Requests/s per signed-in principal (0: no limit)"
    )
    rate_limit_registry: float = Field(
        0.0, ge=0, description="Requests/s per registry, all callers together (0: no limit)"
    )
    gc_interval_seconds: float = Field(
        600.0, ge=0, description="Seconds between background garbage collection passes (0: off)"
    )
    gc_link_grace_seconds: float = Field(
        86_400.0,
        ge=0,
        description="Age after which a blob uploaded but referenced by no manifest is unlinked",
    )
    gc_review_delay_seconds: float = Field(
        60.0, ge=0, description="How long a blob that lost its last link waits before deletion"
    )
    storage: str | None = Field(
        None,
        description="Where blobs are: file:///path, azure://<account>/<container>?…, "
        "s3://<bucket>/<prefix>?…; default: the data directory",
    )
    storage_redirect: bool = Field(
        True,
        description="Answer blob downloads from an object store with a redirect to a "
        "signed URL (false: stream them through Haven)",
    )
    storage_url_seconds: float = Field(
        300.0, gt=0, le=86_400, description="How long a signed download URL stays valid"
    )
    task_concurrency: int = Field(
        2, ge=0, description="Task runs each server process executes at once (0: runs none)"
    )
    task_containers: bool = Field(
        False,
        description="Let task steps run container images (with buildah, as this server's "
        "user: they run code on this host)",
    )
    task_buildah: str = Field("buildah", description="The buildah command task steps run with")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses/CIDRs whose X-Forwarded-For and X-Forwarded-Proto are believed",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'haven.db'}"

    def login_server(self, registry: str) -> str:
        """The login server of a registry: `<name>.<domain>`, with the port when the
        domain has none and Haven does not listen on 443.

        A domain with a port names where clients reach the registry, which behind a
        proxy is not the port Haven listens on; `:443`, HTTPS's own, is left out, as
        clients leave it out of image references and credential files."""
        if self.domain.endswith(":443"):
            return f"{registry}.{self.domain[:-4]}".lower()
        host = f"{registry}.{self.domain}".lower()
        if ":" not in self.domain and self.port not in (443, 0):
            host += f":{self.port}"
        return host

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
            "HAVEN_DOMAIN": self.domain,
            "HAVEN_DB_THREADS": str(self.db_threads),
            "HAVEN_LOG_LEVEL": self.log_level,
        }
        if self.database_url:
            env["HAVEN_DATABASE_URL"] = self.database_url
        if self.secret_key:
            env["HAVEN_SECRET_KEY"] = self.secret_key
        if self.tls_cert and self.tls_key:
            env["HAVEN_TLS_CERT"], env["HAVEN_TLS_KEY"] = str(self.tls_cert), str(self.tls_key)
        env["HAVEN_RATE_LIMIT_ANONYMOUS"] = str(self.rate_limit_anonymous)
        env["HAVEN_RATE_LIMIT_PRINCIPAL"] = str(self.rate_limit_principal)
        env["HAVEN_RATE_LIMIT_REGISTRY"] = str(self.rate_limit_registry)
        env["HAVEN_GC_INTERVAL_SECONDS"] = str(self.gc_interval_seconds)
        env["HAVEN_GC_LINK_GRACE_SECONDS"] = str(self.gc_link_grace_seconds)
        env["HAVEN_GC_REVIEW_DELAY_SECONDS"] = str(self.gc_review_delay_seconds)
        if self.storage:
            env["HAVEN_STORAGE"] = self.storage
        env["HAVEN_STORAGE_REDIRECT"] = str(self.storage_redirect).lower()
        env["HAVEN_STORAGE_URL_SECONDS"] = str(self.storage_url_seconds)
        env["HAVEN_TASK_CONCURRENCY"] = str(self.task_concurrency)
        env["HAVEN_TASK_CONTAINERS"] = str(self.task_containers).lower()
        env["HAVEN_TASK_BUILDAH"] = self.task_buildah
        if self.trusted_proxies:
            env["HAVEN_TRUSTED_PROXIES"] = ",".join(self.trusted_proxies)
        return env
