"""`haven serve`: run the registry."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--host", envvar="HAVEN_HOST", default="127.0.0.1", show_default=True)
@click.option(
    "--port", envvar="HAVEN_PORT", type=click.IntRange(0, 65535), default=5000, show_default=True
)
@click.option(
    "--data-dir",
    envvar="HAVEN_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("./data"),
    show_default=True,
    help="Metadata database and blobs live here (created on first start).",
)
@click.option(
    "--workers",
    envvar="HAVEN_WORKERS",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes [default: the number of CPUs, at most 4].",
)
@click.option(
    "--database-url",
    envvar="HAVEN_DATABASE_URL",
    default=None,
    help="postgresql://… for scale-out [default: SQLite in the data directory].",
)
@click.option(
    "--tls-cert",
    envvar="HAVEN_TLS_CERT",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificate (chain): serve HTTPS, TLS 1.2 or newer.",
)
@click.option(
    "--tls-key",
    envvar="HAVEN_TLS_KEY",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM private key of --tls-cert.",
)
def serve(
    host: str,
    port: int,
    data_dir: Path,
    workers: int | None,
    database_url: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Run the registry."""
    from haven.config import Settings
    from haven.server import serve as run

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    values: dict[str, object] = {"host": host, "port": port, "data_dir": data_dir}
    if workers is not None:
        values["workers"] = workers
    if database_url:
        values["database_url"] = database_url
    if tls_cert is not None:
        values["tls_cert"], values["tls_key"] = tls_cert, tls_key
    run(Settings(**values))  # type: ignore[arg-type]
