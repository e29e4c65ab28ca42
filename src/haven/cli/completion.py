"""`haven completion bash|zsh|fish`: the shell completion script click generates.

bash: echo 'eval "$(haven completion bash)"' >> ~/.bashrc
zsh:  echo 'eval "$(haven completion zsh)"' >> ~/.zshrc
fish: haven completion fish > ~/.config/fish/completions/haven.fish
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VARIABLE = "_HAVEN_COMPLETE"


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL; source it from the shell's startup file.

    \b
    bash: eval "$(haven completion bash)"
    zsh:  eval "$(haven completion zsh)"
    fish: haven completion fish | source
    """
    completer = get_completion_class(shell)
    assert completer is not None, f"click has no completion for {shell}"
    root = ctx.find_root().command
    click.echo(completer(root, {}, "haven", COMPLETE_VARIABLE).source())
