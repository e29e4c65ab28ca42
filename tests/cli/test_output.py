"""`-o json|jsonc|tsv|table|yaml|none` and `--query`, as az renders results."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from haven.cli.errors import CliError
from haven.cli.output import colorize_json, compile_query, render
from haven.cli.tables import format_date, registry_table, token_table

REGISTRIES = [
    {
        "name": "prod",
        "loginServer": "prod.example.com",
        "sku": {"name": "Premium", "tier": "Premium"},
        "adminUserEnabled": False,
        "creationDate": "2024-05-01T10:20:30.123456+00:00",
        "id": "/registries/prod",
    },
    {
        "name": "dev",
        "loginServer": "dev.example.com",
        "sku": {"name": "Basic", "tier": "Basic"},
        "adminUserEnabled": True,
        "creationDate": "2024-06-02T00:00:00Z",
        "id": "/registries/dev",
    },
]

MANIFESTS = [
    {"digest": "sha256:aaa", "tags": ["v1"]},
    {"digest": "sha256:bbb", "tags": []},
    {"digest": "sha256:ccc", "tags": None},
]


def q(expression: str):  # type: ignore[no-untyped-def]
    return compile_query(expression)


def test_json_is_indented_with_sorted_keys_and_unicode_kept() -> None:
    text = render({"b": 1, "a": "é"}, "json")
    assert text == '{\n  "a": "é",\n  "b": 1\n}\n'


def test_jsonc_without_a_terminal_is_plain_json() -> None:
    assert render({"a": 1}, "jsonc", color=False) == render({"a": 1}, "json")


def test_jsonc_on_a_terminal_colours_keys_and_values_but_stays_json_underneath() -> None:
    text = render({"a": "x", "b": True, "c": 1.5, "d": None}, "jsonc", color=True)
    assert "\x1b[" in text
    stripped = text
    for code in ("\x1b[94m", "\x1b[33m", "\x1b[36m", "\x1b[32m", "\x1b[39m"):
        stripped = stripped.replace(code, "")
    assert json.loads(stripped) == {"a": "x", "b": True, "c": 1.5, "d": None}
    assert colorize_json('"k": "v"') == '\x1b[94m"k"\x1b[39m: \x1b[33m"v"\x1b[39m'


def test_yaml_round_trips_and_keeps_query_order() -> None:
    assert yaml.safe_load(render(REGISTRIES, "yaml")) == REGISTRIES
    text = render(REGISTRIES[0], "yaml", query=q("{z: name, a: loginServer}"))
    assert text == "z: prod\na: prod.example.com\n"


def test_none_prints_nothing() -> None:
    assert render(REGISTRIES, "none") == ""


def test_tsv_of_a_list_of_scalars_prints_one_per_line() -> None:
    assert render(["a", "b", 3], "tsv") == "a\nb\n3\n"


def test_tsv_of_a_list_of_objects_prints_each_object_on_one_line_in_key_order() -> None:
    rows = [{"name": "x", "id": "1", "kind": "user"}, {"name": "y", "id": "2", "kind": "sp"}]
    assert render(rows, "tsv") == "1\tuser\tx\n2\tsp\ty\n"


def test_tsv_keeps_the_column_order_of_a_query() -> None:
    text = render(REGISTRIES, "tsv", query=q("[].{name: name, server: loginServer}"))
    assert text == "prod\tprod.example.com\ndev\tdev.example.com\n"


def test_tsv_nested_lists_give_their_length_objects_nothing_null_empty_bools_lowercase() -> None:
    row = {"a": [1, 2, 3], "b": {"x": 1}, "c": None, "d": True, "e": False, "f": 2}
    assert render(row, "tsv") == "3\t\t\ttrue\tfalse\t2\n"


def test_tsv_of_a_scalar_result() -> None:
    assert render(REGISTRIES, "tsv", query=q("[0].adminUserEnabled")) == "false\n"
    assert render(REGISTRIES, "tsv", query=q("[0].name")) == "prod\n"


def test_tsv_of_a_list_of_lists_prints_rows() -> None:
    assert (
        render(REGISTRIES, "tsv", query=q("[].[name, sku.name]")) == "prod\tPremium\ndev\tBasic\n"
    )


def test_faq_recipe_untagged_manifest_digests_one_per_line() -> None:
    text = render(MANIFESTS, "tsv", query=q("[?tags[0]==null].digest"))
    assert text == "sha256:bbb\nsha256:ccc\n"


def test_query_runs_before_every_format() -> None:
    assert json.loads(render(REGISTRIES, "json", query=q("[].name"))) == ["prod", "dev"]
    assert render(REGISTRIES, "json", query=q("[?name=='nope'] | [0]")) == "null\n"


def test_query_error_at_evaluation_is_a_cli_error() -> None:
    with pytest.raises(CliError):
        render({"a": "text"}, "json", query=q("abs(a)"))


def test_invalid_query_is_rejected_when_compiled() -> None:
    with pytest.raises(ValueError, match="Incomplete"):
        compile_query("[?")


def test_table_uses_the_command_columns_like_az_acr_list() -> None:
    text = render(REGISTRIES, "table", table=registry_table)
    lines = text.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [
        "NAME",
        "SKU",
        "LOGIN SERVER",
        "CREATION DATE",
        "ADMIN ENABLED",
    ]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == [
        "prod",
        "Premium",
        "prod.example.com",
        "2024-05-01T10:20:30Z",
        "False",
    ]
    assert lines[3].split() == ["dev", "Basic", "dev.example.com", "2024-06-02T00:00:00Z", "True"]
    # Every column starts where its header starts.
    assert lines[2].index("prod.example.com") == lines[0].index("LOGIN SERVER")


def test_table_with_a_query_shows_the_query_columns_not_the_command_ones() -> None:
    text = render(
        REGISTRIES, "table", query=q("[].{Name:name, Server:loginServer}"), table=registry_table
    )
    assert text.splitlines()[0].split() == ["Name", "Server"]


def test_generic_table_capitalises_keys_and_drops_nested_and_id_fields() -> None:
    text = render({"name": "x", "id": "1", "kind": "user", "credentials": [], "x": None}, "table")
    assert text.splitlines() == ["Kind  Name", "----  ----", "user  x"]


def test_table_of_scalars_has_a_result_column() -> None:
    assert render(["a", "bb"], "table").splitlines() == ["Result", "------", "a", "bb"]


def test_table_of_an_empty_list_is_empty() -> None:
    assert render([], "table", table=registry_table) == ""


def test_table_of_objects_without_scalars_is_refused_with_az_advice() -> None:
    with pytest.raises(CliError, match="--query"):
        render([{"a": [1]}], "table")


def test_token_table_shows_password_expiries() -> None:
    token = {
        "name": "ci",
        "scopeMapName": "ci-map",
        "status": "enabled",
        "creationDate": "2024-01-01T00:00:00Z",
        "credentials": {
            "username": "ci",
            "passwords": [
                {"name": "password1", "expiry": "2025-01-01T00:00:00Z"},
                {"name": "password2", "expiry": None},
            ],
        },
    }
    lines = render([token], "table", table=token_table).splitlines()
    assert re.split(r"\s{2,}", lines[0])[0:2] == ["NAME", "SCOPE MAP"]
    assert "2025-01-01T00:00:00Z" in lines[2]
    assert "Never" in lines[2]


def test_dates_are_shown_in_utc_to_the_second() -> None:
    assert format_date("2024-05-01T12:00:00.5+02:00") == "2024-05-01T10:00:00Z"
    assert format_date("not a date") == "not a date"
    assert format_date(None) is None
