"""The `haven` command line."""

from __future__ import annotations

from pathlib import Path

import click

from haven import __version__


@click.group()
@click.version_option(__version__, prog_name="haven")
def main() -> None:
    """Haven: a self-hosted container registry."""


@main.command()
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
def serve(
    host: str, port: int, data_dir: Path, workers: int | None, database_url: str | None
) -> None:
    """Run the registry."""
    from haven.config import Settings
    from haven.server import serve as run

    values: dict[str, object] = {"host": host, "port": port, "data_dir": data_dir}
    if workers is not None:
        values["workers"] = workers
    if database_url:
        values["database_url"] = database_url
    run(Settings(**values))  # type: ignore[arg-type]
