"""What every `haven` management command shares, the way az shapes its commands.

- az's global arguments on every command, after the command name as in
  `haven registry list --query "[].name" -o tsv`: `-o/--output`, `--query`, `--debug`,
  `--only-show-errors`.
- A command's callback returns its result (parsed JSON, or None); `HavenCommand` renders
  it once, after `--query`, in the chosen output format.
- Options that take several words, as az's `--repository REPO ACTION [ACTION …]` and
  `--ids ID [ID …]` do: the words up to the next option are gathered into one value.
- Failures print one `ERROR: …` line on stderr and exit non-zero (2: bad arguments,
  3: resource not found, 1: anything else); never a traceback, except under `--debug`
  for an unexpected failure.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import click
import jmespath

from haven.cli.client import HavenClient
from haven.cli.errors import EXIT_FAILURE, CliError
from haven.cli.output import OUTPUT_FORMATS, TableTransformer, compile_query, render

_WORD_SEPARATOR = "\x1f"
_INVOCATION_KEY = "haven.invocation"


@dataclass
class Invocation:
    """The global arguments of the running command, and its connection to the server."""

    output: str = "json"
    query: jmespath.parser.ParsedResult | None = None
    debug: bool = False
    only_show_errors: bool = False
    _client: HavenClient | None = field(default=None, repr=False)

    def client(self) -> HavenClient:
        if self._client is None:
            self._client = HavenClient(debug=self.debug)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def invocation() -> Invocation:
    """The running command's Invocation (a default one outside a HavenCommand)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return Invocation()
    found = ctx.meta.get(_INVOCATION_KEY)
    if not isinstance(found, Invocation):
        found = Invocation()
        ctx.meta[_INVOCATION_KEY] = found
    return found


def session() -> HavenClient:
    """The signed-in client of the running command."""
    return invocation().client()


def warn(message: str) -> None:
    """A `WARNING:` line on stderr, unless `--only-show-errors` was given."""
    if not invocation().only_show_errors:
        click.echo(f"WARNING: {message}", err=True)


def confirm(message: str, yes: bool) -> None:
    """Ask `message (y/n)` on a terminal, as az does before deleting.

    `--yes` skips the question. Without a terminal to ask on, the command is refused
    rather than assumed; answering no cancels it. Both raise CliError.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise CliError("Unable to prompt for confirmation as no tty available. Use --yes.")
    while True:
        answer = click.prompt(f"{message} (y/n)", default="", show_default=False, err=True)
        if answer.strip().lower() in ("y", "yes"):
            return
        if answer.strip().lower() in ("n", "no"):
            raise CliError("Operation cancelled.")


class Words(click.ParamType):  # type: ignore[type-arg]
    """The value of a several-word option (`--repository REPO ACTION …`) as a tuple."""

    name = "words"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        return tuple(str(value).split(_WORD_SEPARATOR))


WORDS = Words()


def _looks_like_option(token: str) -> bool:
    return token.startswith("-") and len(token) > 1


def gather_words(ctx: click.Context, args: Sequence[str], names: Iterable[str]) -> list[str]:
    """`args` with the words after each option in `names` joined into that option's value.

    `--ids a b c --role R` becomes `--ids <a␟b␟c> --role R`, which click then parses as an
    ordinary option; `--ids=a b` works too. Raises UsageError for such an option with no word.
    """
    wanted = frozenset(names)
    result: list[str] = []
    index = 0
    while index < len(args):
        token = args[index]
        if token == "--":
            result.extend(args[index:])
            break
        name, equals, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        if name not in wanted:
            result.append(token)
            index += 1
            continue
        words = [inline] if equals else []
        index += 1
        while index < len(args) and not _looks_like_option(args[index]):
            words.append(args[index])
            index += 1
        if not words:
            raise click.UsageError(f"Option '{name}' requires an argument.", ctx=ctx)
        result.extend([name, _WORD_SEPARATOR.join(words)])
    return result


def _parse_query(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return compile_query(value)
    except ValueError as error:
        raise click.BadParameter(f"invalid JMESPath query {value!r}: {error}") from error


def global_options() -> list[click.Parameter]:
    return [
        click.Option(
            ["-o", "--output"],
            type=click.Choice(OUTPUT_FORMATS, case_sensitive=False),
            default="json",
            envvar="HAVEN_CORE_OUTPUT",
            show_default=True,
            help="Output format [env: HAVEN_CORE_OUTPUT].",
        ),
        click.Option(
            ["--query"],
            callback=_parse_query,
            metavar="JMESPATH",
            help="JMESPath query applied to the result before it is printed.",
        ),
        click.Option(
            ["--debug"],
            is_flag=True,
            help="Print every HTTP request and response to stderr (secrets redacted).",
        ),
        click.Option(
            ["--only-show-errors"], is_flag=True, help="Only show errors, suppressing warnings."
        ),
    ]


class HavenCommand(click.Command):
    """A management command: az's global arguments, several-word options, rendered result."""

    def __init__(
        self,
        *args: Any,
        words: Sequence[str] = (),
        table: TableTransformer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.word_options = tuple(words)
        self.table = table
        self.params.extend(global_options())

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, gather_words(ctx, args, self.word_options))

    def invoke(self, ctx: click.Context) -> Any:
        state = Invocation(
            output=str(ctx.params.pop("output")).lower(),
            query=ctx.params.pop("query"),
            debug=bool(ctx.params.pop("debug")),
            only_show_errors=bool(ctx.params.pop("only_show_errors")),
        )
        ctx.meta[_INVOCATION_KEY] = state
        try:
            result = super().invoke(ctx)
        except (CliError, click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            if state.debug:
                traceback.print_exc()
            raise CliError(
                f"The command failed with an unexpected error: {type(error).__name__}: {error}"
            ) from error
        finally:
            state.close()
        if result is not None:
            text = render(
                result,
                state.output,
                query=state.query,
                table=self.table,
                color=sys.stdout.isatty(),
            )
            click.echo(text, nl=False)
        return None


class HavenGroup(click.Group):
    """A command group whose commands and subgroups are HavenCommands and HavenGroups."""

    command_class = HavenCommand
    group_class = type


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def run(group: click.Group, argv: Sequence[str] | None = None) -> NoReturn:
    """Run the `haven` command line and exit with az's exit codes."""
    try:
        code = group.main(args=argv, prog_name="haven", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as error:
        click.echo(error.ctx.get_help() if error.ctx else error.format_message())
        sys.exit(0)
    except click.UsageError as error:
        if error.ctx is not None and not isinstance(error.ctx.command, (HavenCommand, HavenGroup)):
            error.show()  # `haven serve` keeps click's own usage messages
            sys.exit(error.exit_code)
        hint = f" See '{error.ctx.command_path} --help'." if error.ctx is not None else ""
        click.echo(f"ERROR: {_one_line(error.format_message())}{hint}", err=True)
        sys.exit(error.exit_code)
    except click.ClickException as error:
        click.echo(f"ERROR: {_one_line(error.format_message())}", err=True)
        sys.exit(error.exit_code)
    except CliError as error:
        click.echo(f"ERROR: {_one_line(error.message)}", err=True)
        sys.exit(error.exit_code)
    except click.Abort:
        click.echo("ERROR: Operation cancelled.", err=True)
        sys.exit(EXIT_FAILURE)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as az does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    sys.exit(code if isinstance(code, int) else 0)
