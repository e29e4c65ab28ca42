"""The `haven` command line: `haven serve`, and registry management shaped like `az acr`.

Every management command talks to a Haven server over HTTP (never to its database): the
management API under `/api/`, and each registry's data plane (`/acr/v1/`, `/v2/`). So the
CLI works the same against a local or a remote deployment. See docs/cli.md for how each
`az acr` command maps to `haven`.

`haven serve` is dispatched before the management commands are imported: the server's
processes then do not carry the client libraries (httpx, yaml, jmespath) in memory.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import click


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The `haven` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        from haven.cli.serve import serve

        serve.main(args=args[1:], prog_name="haven serve")
        sys.exit(0)
    from haven.cli.command import run
    from haven.cli.commands import cli

    run(cli, args)


def __getattr__(name: str) -> Any:
    if name == "cli":
        from haven.cli.commands import cli

        group: click.Group = cli
        return group
    raise AttributeError(name)


__all__ = ["cli", "main"]
