"""`haven configure --defaults acr=REGISTRY`: argument defaults, as `az configure`.

Defaults are kept in the CLI's config file. With `acr` set, every command's registry
option (`-n/--name` of `haven repository …`, `-r/--registry` of `haven manifest …`,
`haven token …`, …) may be left out, as az lets `az acr` commands do.
`--defaults acr=''` removes the default again.
"""

from __future__ import annotations

from typing import Any

import click

from haven.cli.arguments import DEFAULT_REGISTRY_KEY
from haven.cli.command import WORDS, HavenCommand, warn
from haven.cli.config import ConfigStore

KNOWN_DEFAULTS = (DEFAULT_REGISTRY_KEY,)


def _pairs(words: tuple[str, ...]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for word in (part for text in words for part in text.split()):
        key, equals, value = word.partition("=")
        if not equals or not key:
            raise click.BadParameter(
                f"'{word}' is not KEY=VALUE (e.g. acr=myregistry)", param_hint="'--defaults'"
            )
        pairs[key] = value.strip("'\"")
    return pairs


def _listing(store: ConfigStore) -> list[dict[str, str]]:
    defaults = store.load().defaults
    return [
        {"name": key, "source": str(store.path), "value": value}
        for key, value in sorted(defaults.items())
    ]


@click.command("configure", cls=HavenCommand, words=("--defaults",))
@click.option(
    "--defaults",
    "-d",
    type=WORDS,
    metavar="KEY=VALUE [KEY=VALUE ...]",
    help="Space-separated defaults, e.g. acr=myregistry; an empty value removes one.",
)
@click.option("--list-defaults", "-l", is_flag=True, help="List the defaults.")
def configure(defaults: tuple[str, ...] | None, list_defaults: bool) -> Any:
    """Set or list argument defaults (the default registry: acr=NAME)."""
    store = ConfigStore()
    if defaults is None:
        return _listing(store)
    pairs = _pairs(defaults)
    config = store.load()
    for key, value in pairs.items():
        if key not in KNOWN_DEFAULTS:
            known = ", ".join(KNOWN_DEFAULTS)
            warn(f"'{key}' is stored, but no haven command uses it (known: {known}).")
        if value:
            config.defaults[key] = value
        else:
            config.defaults.pop(key, None)
    store.save(config)
    return _listing(store) if list_defaults else None
