"""Task definitions: ACR Tasks' YAML (cmd steps) or a single `--cmd`, rendered and checked.

A definition is a template first: `{{.Run.ID}}`, `{{.Run.Registry}}`,
`{{.Run.RegistryName}}`, `{{.Run.Date}}`, `{{.Run.OS}}`, `{{.Run.Architecture}}` and
`{{.Values.NAME}}` (from `--set NAME=VALUE`) are replaced in the text before it is read
as YAML, as are the aliases `$ID`, `$Registry`, `$RegistryName`, `$Date`, `$OS` and
`$Architecture` (`$$` is a literal `$`). Any other `$word` is left alone for the shell of
a step.

Steps run one after another unless `when` says otherwise: `when: ["-"]` starts a step at
once, `when: ["a", "b"]` after steps `a` and `b`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_SOURCE_BYTES = 64 * 1024
MAX_STEPS = 64
DEFAULT_STEP_TIMEOUT = 600
MAX_TIMEOUT = 28_800
ALIASES = {
    "ID": "Run.ID",
    "Registry": "Run.Registry",
    "RegistryName": "Run.RegistryName",
    "Date": "Run.Date",
    "OS": "Run.OS",
    "Architecture": "Run.Architecture",
}
STEP_KEYS = {
    "id",
    "cmd",
    "env",
    "entryPoint",
    "workingDirectory",
    "when",
    "timeout",
    "ignoreErrors",
    "retries",
    "retryDelay",
}
TOP_KEYS = {"version", "stepTimeout", "env", "steps"}
STEP_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
TEMPLATE = re.compile(r"\{\{\s*\.([A-Za-z]+)\.([A-Za-z0-9_]+)\s*\}\}")
ALIAS = re.compile(r"\$(\$|[A-Za-z]+)")


class DefinitionError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    image: str
    args: tuple[str, ...]
    entry_point: str | None = None
    working_directory: str | None = None
    env: tuple[str, ...] = ()
    # () runs after the previous step; ("-",) at once; otherwise after the named steps.
    when: tuple[str, ...] = ()
    timeout: int = DEFAULT_STEP_TIMEOUT
    ignore_errors: bool = False
    retries: int = 0
    retry_delay: int = 0

    def after(self, previous: Step | None) -> tuple[str, ...]:
        """The ids of the steps this one waits for."""
        if self.when == ("-",):
            return ()
        if self.when:
            return self.when
        return (previous.id,) if previous is not None else ()


@dataclass(frozen=True, slots=True)
class Definition:
    steps: tuple[Step, ...]
    env: tuple[str, ...] = field(default=())


def render(source: str, run: dict[str, str], values: dict[str, str] | None) -> str:
    """Replace template values and aliases in a definition's text. With `values` None
    (checking a task before any run gives it values) every `.Values` name is accepted."""

    def template(match: re.Match[str]) -> str:
        scope, name = match.group(1), match.group(2)
        if scope == "Values" and values is None:
            return "value"
        table = {"Run": run, "Values": values or {}}.get(scope)
        if table is None or name not in table:
            raise DefinitionError(f"unknown template value {match.group(0)}")
        return table[name]

    def alias(match: re.Match[str]) -> str:
        word = match.group(1)
        if word == "$":
            return "$"
        target = ALIASES.get(word)
        return run[target.split(".", 1)[1]] if target else match.group(0)

    return ALIAS.sub(alias, TEMPLATE.sub(template, source))


def _timeout(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TIMEOUT:
        raise DefinitionError(f"{where} must be a number of seconds from 1 to {MAX_TIMEOUT}")
    return value


def _env(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(v, str) and "=" in v and not v.startswith("=") for v in value
    ):
        raise DefinitionError(f"{where} must be a list of NAME=VALUE strings")
    return tuple(value)


def _optional_text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise DefinitionError(f"{where} must be a non-empty string")
    return value


def _count(value: Any, where: str, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise DefinitionError(f"{where} must be a whole number from 0 to {high}")
    return value


def split_command(text: str, where: str) -> tuple[str, tuple[str, ...]]:
    """`IMAGE ARGS…` into the image and its arguments, split as a shell would."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise DefinitionError(f"{where}: {exc}") from None
    if not words:
        raise DefinitionError(f"{where} names no image")
    return words[0], tuple(words[1:])


def _step(raw: Any, index: int, step_timeout: int, seen: set[str]) -> Step:
    where = f"step {index + 1}"
    if not isinstance(raw, dict):
        raise DefinitionError(f"{where} must be a mapping with a cmd")
    for kind in ("build", "push"):
        if kind in raw:
            raise DefinitionError(
                f"{where}: {kind} steps are not supported by this server; use cmd steps"
            )
    unknown = sorted(set(raw) - STEP_KEYS)
    if unknown:
        raise DefinitionError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
    if not isinstance(raw.get("cmd"), str):
        raise DefinitionError(f"{where} needs a cmd: IMAGE [ARGS…]")
    step_id = raw.get("id", f"acb_step_{index}")
    if not isinstance(step_id, str) or not STEP_ID.match(step_id):
        raise DefinitionError(f"{where}: id must be 1-64 letters, digits, '.', '_' or '-'")
    if step_id in seen:
        raise DefinitionError(f"{where}: id {step_id} is used twice")
    when = raw.get("when", [])
    if not isinstance(when, list) or not all(isinstance(w, str) for w in when):
        raise DefinitionError(f'{where}: when must be a list of step ids, or ["-"]')
    if "-" in when and len(when) > 1:
        raise DefinitionError(f'{where}: when ["-"] cannot be combined with step ids')
    for name in when:
        if name != "-" and name not in seen:
            raise DefinitionError(f"{where}: when names {name}, which is not an earlier step")
    image, args = split_command(raw["cmd"], f"{where}: cmd")
    seen.add(step_id)
    return Step(
        id=step_id,
        image=image,
        args=args,
        entry_point=_optional_text(raw.get("entryPoint"), f"{where}: entryPoint"),
        working_directory=_optional_text(raw.get("workingDirectory"), f"{where}: workingDirectory"),
        env=_env(raw.get("env"), f"{where}: env"),
        when=tuple(when),
        timeout=_timeout(raw.get("timeout", step_timeout), f"{where}: timeout"),
        ignore_errors=bool(raw.get("ignoreErrors", False)),
        retries=_count(raw.get("retries", 0), f"{where}: retries", 10),
        retry_delay=_count(raw.get("retryDelay", 0), f"{where}: retryDelay", 3600),
    )


def parse(text: str) -> Definition:
    """Read rendered task YAML; raise DefinitionError saying what is wrong."""
    if len(text.encode()) > MAX_SOURCE_BYTES:
        raise DefinitionError(f"the task definition is larger than {MAX_SOURCE_BYTES} bytes")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DefinitionError(f"the task definition is not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("steps"), list):
        raise DefinitionError("the task definition must be a mapping with a list of steps")
    unknown = sorted(set(document) - TOP_KEYS)
    if unknown:
        raise DefinitionError(f"unknown key(s) {', '.join(map(str, unknown))}")
    steps_raw = document["steps"]
    if not 1 <= len(steps_raw) <= MAX_STEPS:
        raise DefinitionError(f"a task has 1 to {MAX_STEPS} steps")
    step_timeout = _timeout(document.get("stepTimeout", DEFAULT_STEP_TIMEOUT), "stepTimeout")
    seen: set[str] = set()
    steps = tuple(_step(raw, i, step_timeout, seen) for i, raw in enumerate(steps_raw))
    return Definition(steps, _env(document.get("env"), "env"))


def from_command(command: str) -> str:
    """The task YAML of a single `--cmd`."""
    split_command(command, "cmd")
    document = {"version": "v1.1.0", "steps": [{"cmd": command}]}
    return str(yaml.safe_dump(document, sort_keys=False))
