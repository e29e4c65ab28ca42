"""`haven deploy -f registry.yaml [--what-if]`: make registries match a file, idempotently.

The answer to "can I create a registry from a template?": the file says which registries
exist and how they are set; `deploy` creates the missing ones and changes what differs,
through the management API, and prints each change it made. Run it again and it changes,
and prints, nothing. `--what-if` prints the changes without making them.

The file (YAML, or JSON, which is YAML too)::

    registries:
      - name: myregistry             # required: 5 to 50 letters and digits
        sku: Premium                 # Basic | Standard | Premium
        adminUserEnabled: true       # the admin user (haven registry update --admin-enabled)
        anonymousPullEnabled: false  # pulls without credentials (Standard, Premium)
        networkRuleSet:              # network rules (Deny and IP rules need Premium)
          defaultAction: Deny        # Allow | Deny
          ipRules:                   # the complete list: rules not listed are removed
            - 203.0.113.0/24
            - ipAddressOrRange: 198.51.100.7
              action: Allow          # the only action there is

Rules:
- A property left out is left as it is (a new registry gets the server's defaults);
  `ipRules` given, even `[]`, is the whole list.
- Names match case-insensitively (Haven stores them in lowercase). Registries that are not
  in the file are never touched: `deploy` does not delete.
- The whole file is checked before anything changes; an unknown key, a wrong type or value,
  or a name given twice is an error (exit 2) naming where it is.
- Per registry, changes are made in the order the SKU rules allow: create, remove IP rules,
  then one update of sku, admin user, anonymous pull and default action, then add IP rules.

Each change printed is `{"registry", "action", "property", "from", "to"}`, with action
`create` (property null), `set` (a setting), `add` or `remove` (an IP rule); `-o table`
shows them as a table. The result is the empty list when nothing differs.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

from haven.cli.command import HavenCommand, session, warn
from haven.cli.errors import ServerError
from haven.cli.progress import progress
from haven.cli.registry import SKUS, registry_path

REGISTRY_KEYS = frozenset(
    {"name", "sku", "adminUserEnabled", "anonymousPullEnabled", "networkRuleSet"}
)
RULE_SET_KEYS = frozenset({"defaultAction", "ipRules"})
DEFAULT_ACTIONS = ("Allow", "Deny")
SETTINGS = ("sku", "adminUserEnabled", "anonymousPullEnabled", "defaultAction")


@dataclass
class Desired:
    """One registry as the file wants it; None means 'leave as it is'."""

    name: str
    sku: str | None = None
    admin_user_enabled: bool | None = None
    anonymous_pull_enabled: bool | None = None
    default_action: str | None = None
    ip_rules: list[str] | None = None

    def settings(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "adminUserEnabled": self.admin_user_enabled,
            "anonymousPullEnabled": self.anonymous_pull_enabled,
            "defaultAction": self.default_action,
        }


class FileError(click.BadParameter):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}", param_hint="'--file' / '-f'")


def _choice(where: str, value: Any, choices: tuple[str, ...]) -> str:
    for choice in choices:
        if isinstance(value, str) and value.lower() == choice.lower():
            return choice
    raise FileError(where, f"must be one of {', '.join(choices)}, not {value!r}")


def _boolean(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FileError(where, f"must be true or false, not {value!r}")
    return value


def _ip_rule(where: str, value: Any) -> str:
    if isinstance(value, dict):
        unknown = set(value) - {"ipAddressOrRange", "action"}
        if unknown:
            raise FileError(where, f"unknown key {sorted(unknown)[0]!r}")
        if value.get("action", "Allow") != "Allow":
            raise FileError(f"{where}.action", "must be Allow, the only action there is")
        value = value.get("ipAddressOrRange")
        where = f"{where}.ipAddressOrRange"
    if not isinstance(value, str):
        raise FileError(where, f"must be an IP address or CIDR range, not {value!r}")
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise FileError(where, f"{value!r} is not an IP address or CIDR range") from None


def _registry(where: str, item: Any) -> Desired:
    if not isinstance(item, dict):
        raise FileError(where, "must be a mapping with at least 'name'")
    unknown = set(item) - REGISTRY_KEYS
    if unknown:
        raise FileError(where, f"unknown key {sorted(unknown)[0]!r}")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise FileError(f"{where}.name", "is required: the registry's name")
    desired = Desired(name=name.strip())
    if "sku" in item:
        desired.sku = _choice(f"{where}.sku", item["sku"], SKUS)
    if "adminUserEnabled" in item:
        desired.admin_user_enabled = _boolean(f"{where}.adminUserEnabled", item["adminUserEnabled"])
    if "anonymousPullEnabled" in item:
        desired.anonymous_pull_enabled = _boolean(
            f"{where}.anonymousPullEnabled", item["anonymousPullEnabled"]
        )
    rules = item.get("networkRuleSet")
    if "networkRuleSet" in item:
        place = f"{where}.networkRuleSet"
        if not isinstance(rules, dict):
            raise FileError(place, "must be a mapping with defaultAction and/or ipRules")
        unknown = set(rules) - RULE_SET_KEYS
        if unknown:
            raise FileError(place, f"unknown key {sorted(unknown)[0]!r}")
        if "defaultAction" in rules:
            desired.default_action = _choice(
                f"{place}.defaultAction", rules["defaultAction"], DEFAULT_ACTIONS
            )
        if "ipRules" in rules:
            listed = rules["ipRules"] if rules["ipRules"] is not None else []
            if not isinstance(listed, list):
                raise FileError(f"{place}.ipRules", "must be a list")
            normalized = [
                _ip_rule(f"{place}.ipRules[{index}]", rule) for index, rule in enumerate(listed)
            ]
            desired.ip_rules = list(dict.fromkeys(normalized))
    return desired


def parse_deployment(text: str, source: str) -> list[Desired]:
    """The registries a deployment file describes; raises FileError for any mistake."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise FileError(source, f"not valid YAML: {error}".replace("\n", " ")) from error
    if not isinstance(document, dict) or set(document) != {"registries"}:
        raise FileError(source, "must be a mapping with one key, 'registries'")
    items = document["registries"]
    if not isinstance(items, list):
        raise FileError(f"{source}: registries", "must be a list")
    registries = [_registry(f"registries[{index}]", item) for index, item in enumerate(items)]
    seen: set[str] = set()
    for index, registry in enumerate(registries):
        key = registry.name.lower()
        if key in seen:
            raise FileError(f"registries[{index}].name", f"'{registry.name}' is given twice")
        seen.add(key)
    return registries


def _current(registry: dict[str, Any]) -> dict[str, Any]:
    sku = registry.get("sku")
    rules = registry.get("networkRuleSet")
    rules = rules if isinstance(rules, dict) else {}
    return {
        "sku": sku.get("name") if isinstance(sku, dict) else sku,
        "adminUserEnabled": registry.get("adminUserEnabled"),
        "anonymousPullEnabled": registry.get("anonymousPullEnabled"),
        "defaultAction": rules.get("defaultAction"),
        "ipRules": [
            str(rule.get("ipAddressOrRange"))
            for rule in rules.get("ipRules") or []
            if isinstance(rule, dict)
        ],
    }


def _change(
    registry: str, action: str, property_: str | None, old: Any = None, new: Any = None
) -> dict[str, Any]:
    return {"registry": registry, "action": action, "property": property_, "from": old, "to": new}


def plan(desired: Desired, existing: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The changes that make `existing` (None: absent) what `desired` says."""
    name = desired.name.lower()
    changes: list[dict[str, Any]] = []
    if existing is None:
        changes.append(_change(name, "create", None))
        current: dict[str, Any] = {key: None for key in SETTINGS}
        current["ipRules"] = []
    else:
        current = _current(existing)
    for key, value in desired.settings().items():
        if value is not None and value != current[key]:
            changes.append(_change(name, "set", key, current[key], value))
    if desired.ip_rules is not None:
        present = [_normalized(rule) for rule in current["ipRules"]]
        for rule in present:
            if rule not in desired.ip_rules:
                changes.append(_change(name, "remove", "networkRuleSet.ipRules", rule, None))
        for rule in desired.ip_rules:
            if rule not in present:
                changes.append(_change(name, "add", "networkRuleSet.ipRules", None, rule))
    return changes


def _normalized(rule: str) -> str:
    try:
        return str(ipaddress.ip_network(rule, strict=False))
    except ValueError:
        return rule


def apply(desired: Desired, changes: list[dict[str, Any]]) -> None:
    """Make the planned changes, in the order the SKU rules allow."""
    client = session()
    path = registry_path(desired.name.lower())
    if any(change["action"] == "create" for change in changes):
        body: dict[str, Any] = {"name": desired.name}
        if desired.sku is not None:
            body["sku"] = desired.sku
        client.post("/api/registries", body)
    for change in changes:
        if change["action"] == "remove":
            client.delete(f"{path}/networkRules", {"ipAddressOrRange": change["from"]})
    update: dict[str, Any] = {}
    for change in changes:
        if change["action"] != "set":
            continue
        if change["property"] == "defaultAction":
            update["networkRuleSet"] = {"defaultAction": change["to"]}
        elif not (change["property"] == "sku" and any(c["action"] == "create" for c in changes)):
            update[change["property"]] = change["to"]
    if update:
        client.patch(path, update)
    for change in changes:
        if change["action"] == "add":
            client.post(f"{path}/networkRules", {"ipAddressOrRange": change["to"]})


def _existing(name: str) -> dict[str, Any] | None:
    try:
        found = session().get(registry_path(name.lower()))
    except ServerError as error:
        if error.status == 404:
            return None
        raise
    return found if isinstance(found, dict) else None


def deployment_table(result: Any) -> list[dict[str, Any]]:
    return [
        {
            "REGISTRY": c.get("registry"),
            "ACTION": c.get("action"),
            "PROPERTY": c.get("property"),
            "FROM": c.get("from"),
            "TO": c.get("to"),
        }
        for c in result or []
        if isinstance(c, dict)
    ]


@click.command("deploy", cls=HavenCommand, table=deployment_table)
@click.option(
    "--file",
    "-f",
    "path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    help="The deployment file (YAML); '-' reads standard input.",
)
@click.option("--what-if", is_flag=True, help="Print the changes without making them.")
def deploy(path: Path, what_if: bool) -> Any:
    """Create or update registries to match a YAML file; print what changed."""
    text = sys.stdin.read() if str(path) == "-" else _read(path)
    registries = parse_deployment(text, str(path))
    done: list[dict[str, Any]] = []
    verb = "Planning" if what_if else "Deploying"
    with progress(f"{verb} registries", total=len(registries)) as step:
        for desired in registries:
            step.describe(f"{verb} {desired.name}")
            changes = plan(desired, _existing(desired.name))
            if changes and not what_if:
                apply(desired, changes)
            done.extend(changes)
            step.advance()
    if what_if:
        warn("What-if: nothing was changed.")
    return done


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise FileError(str(path), f"cannot be read: {error}") from error
