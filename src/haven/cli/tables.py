"""The `-o table` columns of each resource, like az's table formats for `az acr`.

Each function turns a command's result (one object or a list of them) into table rows;
missing fields leave a blank cell rather than fail, so a newer server's answers still print.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Row = dict[str, Any]


def format_date(value: Any) -> Any:
    """An ISO 8601 time as `YYYY-MM-DDTHH:MM:SSZ` in UTC; anything else unchanged."""
    if not isinstance(value, str) or not value:
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rows(result: Any, row: Callable[[dict[str, Any]], Row]) -> list[Row]:
    items = result if isinstance(result, list) else [result]
    return [row(item) for item in items if isinstance(item, dict)]


def _get(item: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(item, dict):
            return None
        item = item.get(key)
    return item


def registry_table(result: Any) -> list[Row]:
    return _rows(
        result,
        lambda r: {
            "NAME": r.get("name"),
            "SKU": _get(r, "sku", "name"),
            "LOGIN SERVER": r.get("loginServer"),
            "CREATION DATE": format_date(r.get("creationDate")),
            "ADMIN ENABLED": r.get("adminUserEnabled"),
        },
    )


def registry_credentials_table(result: Any) -> list[Row]:
    def row(r: dict[str, Any]) -> Row:
        passwords = {
            p.get("name"): p.get("value") for p in r.get("passwords") or [] if isinstance(p, dict)
        }
        return {
            "USERNAME": r.get("username"),
            "PASSWORD": passwords.get("password"),
            "PASSWORD2": passwords.get("password2"),
        }

    return _rows(result, row)


def network_rules_table(result: Any) -> list[Row]:
    rules = _get(result, "ipRules") if isinstance(result, dict) else result
    return _rows(
        rules or [],
        lambda r: {"ACTION": r.get("action"), "IP ADDRESS OR RANGE": r.get("ipAddressOrRange")},
    )


def scope_map_table(result: Any) -> list[Row]:
    return _rows(
        result,
        lambda r: {
            "NAME": r.get("name"),
            "TYPE": r.get("type"),
            "CREATION DATE": format_date(r.get("creationDate")),
            "DESCRIPTION": r.get("description"),
        },
    )


def _password_expiry(token: dict[str, Any], name: str) -> Any:
    for password in _get(token, "credentials", "passwords") or []:
        if isinstance(password, dict) and password.get("name") == name:
            return format_date(password.get("expiry")) or "Never"
    return None


def token_table(result: Any) -> list[Row]:
    return _rows(
        result,
        lambda r: {
            "NAME": r.get("name"),
            "SCOPE MAP": r.get("scopeMapName"),
            "PASSWORD1 EXPIRY": _password_expiry(r, "password1"),
            "PASSWORD2 EXPIRY": _password_expiry(r, "password2"),
            "STATUS": r.get("status"),
            "CREATION DATE": format_date(r.get("creationDate")),
        },
    )


def token_credentials_table(result: Any) -> list[Row]:
    def rows(r: dict[str, Any]) -> list[Row]:
        return [
            {
                "USERNAME": r.get("username"),
                "PASSWORD NAME": p.get("name"),
                "VALUE": p.get("value"),
                "EXPIRY": format_date(p.get("expiry")) or "Never",
            }
            for p in r.get("passwords") or []
            if isinstance(p, dict)
        ]

    items = result if isinstance(result, list) else [result]
    return [row for item in items if isinstance(item, dict) for row in rows(item)]


def _count(value: Any) -> int | None:
    return len(value) if isinstance(value, list) else None


def identity_table(result: Any) -> list[Row]:
    return _rows(
        result,
        lambda r: {
            "NAME": r.get("name"),
            "KIND": r.get("kind"),
            "ID": r.get("id"),
            "CREATED": format_date(r.get("createdAt")),
            "CREDENTIALS": _count(r.get("credentials")),
            "PASSWORD": r.get("password"),
        },
    )


def role_assignment_table(result: Any) -> list[Row]:
    return _rows(
        result,
        lambda r: {
            "PRINCIPAL": r.get("assigneeName") or r.get("assignee"),
            "ROLE": r.get("role"),
            "SCOPE": r.get("scope"),
            "ID": r.get("id"),
        },
    )


def service_principal_table(result: Any) -> list[Row]:
    return _rows(
        result,
        lambda r: {
            "DISPLAY NAME": r.get("displayName"),
            "APP ID": r.get("appId"),
            "CREATED": format_date(r.get("createdDateTime")),
            "PASSWORD": r.get("password"),
        },
    )


def usage_table(result: Any) -> list[Row]:
    """`show-usage -o table`: one row per usage, as az prints `az acr show-usage`."""
    usages = _get(result, "value") if isinstance(result, dict) else result
    return _rows(
        usages or [],
        lambda r: {
            "NAME": r.get("name"),
            "LIMIT": r.get("limit"),
            "CURRENT VALUE": r.get("currentValue"),
            "UNIT": r.get("unit"),
        },
    )


def referrers_table(result: Any) -> list[Row]:
    """`manifest list-referrers -o table`: the descriptors of the referrers index."""
    manifests = _get(result, "manifests") if isinstance(result, dict) else result
    return _rows(
        manifests or [],
        lambda r: {
            "DIGEST": r.get("digest"),
            "ARTIFACT TYPE": r.get("artifactType"),
            "MEDIA TYPE": r.get("mediaType"),
            "SIZE": r.get("size"),
        },
    )


def task_table(result: Any) -> list[Row]:
    """`task list -o table`: name, platform, status and timers, as `az acr task list`."""

    def row(r: dict[str, Any]) -> Row:
        timers = _get(r, "trigger", "timerTriggers") or []
        return {
            "NAME": r.get("name"),
            "PLATFORM": "/".join(
                filter(None, [_get(r, "platform", "os"), _get(r, "platform", "architecture")])
            ),
            "STATUS": r.get("status"),
            "TIMEOUT": r.get("timeout"),
            "TIMERS": ", ".join(
                f"{t.get('name')}: {t.get('schedule')}" for t in timers if isinstance(t, dict)
            ),
        }

    return _rows(result, row)


def _duration(start: Any, finish: Any) -> str:
    try:
        began = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        ended = datetime.fromisoformat(str(finish).replace("Z", "+00:00"))
    except ValueError:
        return ""
    seconds = int((ended - began).total_seconds())
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run_table(result: Any) -> list[Row]:
    """`task list-runs -o table`: RUN ID, TASK, STATUS, TRIGGER, STARTED, DURATION."""
    return _rows(
        result,
        lambda r: {
            "RUN ID": r.get("runId"),
            "TASK": r.get("task"),
            "STATUS": r.get("status"),
            "TRIGGER": r.get("trigger"),
            "STARTED": format_date(r.get("startTime")),
            "DURATION": _duration(r.get("startTime"), r.get("finishTime")),
        },
    )
