"""Every management command against a fake server: what it sends, what it prints, and its
failures (malformed arguments, not logged in, denied by the server, missing resource)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from haven.cli.auth_files import decode_auth

from .conftest import Haven
from .fake_haven import Answer, FakeHaven, Recorded, error

REGISTRY = {
    "id": "/registries/reg",
    "name": "reg",
    "loginServer": "reg.example.com",
    "sku": {"name": "Basic", "tier": "Basic"},
    "adminUserEnabled": False,
    "anonymousPullEnabled": False,
    "networkRuleSet": {"defaultAction": "Allow", "ipRules": []},
    "creationDate": "2024-01-02T03:04:05Z",
    "provisioningState": "Succeeded",
}
IDENTITY = {
    "id": "id-bob",
    "name": "bob",
    "kind": "user",
    "createdAt": "2024-01-01T00:00:00Z",
    "credentials": [{"id": "c1", "name": "default", "expiresAt": "2025-01-01T00:00:00Z"}],
}
SP = {**IDENTITY, "id": "id-ci", "name": "ci", "kind": "servicePrincipal"}
ASSIGNMENT = {
    "id": "a1",
    "role": "AcrPull",
    "assignee": "id-bob",
    "assigneeName": "bob",
    "scope": "reg",
}
SCOPE_MAP = {
    "name": "m",
    "description": "d",
    "actions": ["repositories/hello/content/read"],
    "creationDate": "2024-01-01T00:00:00Z",
    "type": "UserDefined",
}
TOKEN = {
    "name": "t",
    "scopeMapName": "m",
    "status": "enabled",
    "creationDate": "2024-01-01T00:00:00Z",
    "credentials": {
        "username": "t",
        "passwords": [
            {"name": "password1", "value": "p1", "expiry": None},
            {"name": "password2", "value": "p2", "expiry": None},
        ],
    },
}

# Each command, and the request it makes first (the one a denial or a 404 answers).
COMMANDS: list[tuple[list[str], str, str]] = [
    (["account", "show"], "GET", "/api/me"),
    (["identity", "create", "--name", "bob"], "POST", "/api/identities"),
    (["identity", "list"], "GET", "/api/identities"),
    (["identity", "show", "--id", "bob"], "GET", "/api/identities/bob"),
    (["identity", "delete", "--id", "bob"], "DELETE", "/api/identities/bob"),
    (["identity", "credential", "reset", "--id", "bob"], "POST", "/api/identities/bob/credentials"),
    (["ad", "sp", "create-for-rbac", "--name", "ci"], "POST", "/api/identities"),
    (["ad", "sp", "list"], "GET", "/api/identities"),
    (["ad", "sp", "show", "--id", "ci"], "GET", "/api/identities/ci"),
    (["ad", "sp", "delete", "--id", "ci"], "GET", "/api/identities/ci"),
    (["ad", "sp", "credential", "reset", "--id", "ci"], "GET", "/api/identities/ci"),
    (
        [
            "role",
            "assignment",
            "create",
            "--role",
            "AcrPull",
            "--assignee",
            "bob",
            "--scope",
            "reg",
        ],
        "POST",
        "/api/roleAssignments",
    ),
    (["role", "assignment", "list"], "GET", "/api/roleAssignments"),
    (["role", "assignment", "delete", "--ids", "a1"], "DELETE", "/api/roleAssignments/a1"),
    (["role", "assignment", "delete", "--assignee", "bob"], "GET", "/api/roleAssignments"),
    (["registry", "create", "-n", "reg"], "POST", "/api/registries"),
    (["registry", "show", "-n", "reg"], "GET", "/api/registries/reg"),
    (["registry", "list"], "GET", "/api/registries"),
    (["registry", "update", "-n", "reg", "--sku", "Premium"], "PATCH", "/api/registries/reg"),
    (["registry", "delete", "-n", "reg", "--yes"], "DELETE", "/api/registries/reg"),
    (["credential", "show", "-n", "reg"], "GET", "/api/registries/reg/credentials"),
    (
        ["credential", "renew", "-n", "reg", "--password-name", "password2"],
        "POST",
        "/api/registries/reg/credentials/renew",
    ),
    (
        ["network-rule", "add", "-n", "reg", "--ip-address", "203.0.113.0/24"],
        "POST",
        "/api/registries/reg/networkRules",
    ),
    (
        ["network-rule", "remove", "-n", "reg", "--ip-address", "203.0.113.0/24"],
        "DELETE",
        "/api/registries/reg/networkRules",
    ),
    (["network-rule", "list", "-n", "reg"], "GET", "/api/registries/reg/networkRules"),
    (
        ["scope-map", "create", "-n", "m", "-r", "reg", "--repository", "hello", "content/read"],
        "POST",
        "/api/registries/reg/scopeMaps",
    ),
    (
        ["scope-map", "update", "-n", "m", "-r", "reg", "--description", "x"],
        "PATCH",
        "/api/registries/reg/scopeMaps/m",
    ),
    (["scope-map", "show", "-n", "m", "-r", "reg"], "GET", "/api/registries/reg/scopeMaps/m"),
    (["scope-map", "list", "-r", "reg"], "GET", "/api/registries/reg/scopeMaps"),
    (
        ["scope-map", "delete", "-n", "m", "-r", "reg", "--yes"],
        "DELETE",
        "/api/registries/reg/scopeMaps/m",
    ),
    (
        ["token", "create", "-n", "t", "-r", "reg", "--scope-map", "m"],
        "POST",
        "/api/registries/reg/tokens",
    ),
    (
        ["token", "update", "-n", "t", "-r", "reg", "--status", "disabled"],
        "PATCH",
        "/api/registries/reg/tokens/t",
    ),
    (["token", "show", "-n", "t", "-r", "reg"], "GET", "/api/registries/reg/tokens/t"),
    (["token", "list", "-r", "reg"], "GET", "/api/registries/reg/tokens"),
    (
        ["token", "delete", "-n", "t", "-r", "reg", "--yes"],
        "DELETE",
        "/api/registries/reg/tokens/t",
    ),
    (
        ["token", "credential", "generate", "-n", "t", "-r", "reg"],
        "POST",
        "/api/registries/reg/tokens/t/credentials",
    ),
    (["login", "-n", "reg"], "GET", "/api/registries/reg"),
    (["login", "-n", "reg", "--expose-token"], "GET", "/api/registries/reg"),
]
COMMAND_IDS = [" ".join(arguments) for arguments, _, _ in COMMANDS]


def one_error_line(stderr: str) -> str:
    assert stderr.startswith("ERROR: "), stderr
    assert stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    return stderr.removeprefix("ERROR: ").rstrip("\n")


# ------------------------------------------------------------------------ every command


@pytest.mark.parametrize(("arguments", "method", "path"), COMMANDS, ids=COMMAND_IDS)
def test_every_command_without_login_asks_to_log_in(
    haven: Haven, fake: FakeHaven, arguments: list[str], method: str, path: str
) -> None:
    result = haven(*arguments)
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == "Please run 'haven account login' to set up an account."
    assert fake.requests == []


@pytest.mark.parametrize(("arguments", "method", "path"), COMMANDS, ids=COMMAND_IDS)
def test_every_command_prints_the_servers_403_message(
    haven: Haven, logged_in: FakeHaven, arguments: list[str], method: str, path: str
) -> None:
    message = "identity 'bob' lacks the Owner role at scope '/'"
    logged_in.route(method, path, error(403, "FORBIDDEN", message))
    result = haven(*arguments)
    assert result.exit_code == 1
    if arguments[0] == "login":  # the data plane may be reached without management rights
        assert one_error_line(result.stderr) == (
            f"{message}. Without the right to read the registry, name it by its login server "
            "instead: -n <login server>."
        )
    else:
        assert one_error_line(result.stderr) == message
    assert result.stdout == ""


@pytest.mark.parametrize(("arguments", "method", "path"), COMMANDS, ids=COMMAND_IDS)
def test_every_command_reports_a_missing_resource_with_exit_code_3(
    haven: Haven, logged_in: FakeHaven, arguments: list[str], method: str, path: str
) -> None:
    logged_in.route(method, path, error(404, "NOT_FOUND", "registry 'reg' not found"))
    result = haven(*arguments)
    assert result.exit_code == 3
    assert one_error_line(result.stderr) == "registry 'reg' not found"


MALFORMED: list[tuple[list[str], str]] = [
    (["account", "show", "--bogus"], "No such option"),
    (["account", "show", "-o", "xml"], "Invalid value for '-o' / '--output'"),
    (["account", "show", "--query", "[?"], "invalid JMESPath query"),
    (["identity", "create"], "Missing option '--name' / '-n'"),
    (["identity", "create", "-n", "x", "--kind", "robot"], "Invalid value for '--kind'"),
    (["identity", "create", "-n", "x", "--years", "0"], "Invalid value for '--years'"),
    (["identity", "list", "extra"], "Got unexpected extra argument"),
    (["identity", "show"], "Missing option '--id'"),
    (["identity", "delete"], "Missing option '--id'"),
    (["identity", "credential", "reset"], "Missing option '--id'"),
    (["identity", "credential", "reset", "--id", "x", "--years", "many"], "not a valid integer"),
    (
        ["ad", "sp", "create-for-rbac", "--role", "AcrPull"],
        "--role and --scopes must be given together",
    ),
    (
        ["ad", "sp", "create-for-rbac", "--scopes", "reg"],
        "--role and --scopes must be given together",
    ),
    (
        ["ad", "sp", "create-for-rbac", "--role", "AcrPull", "--scopes"],
        "'--scopes' requires an argument",
    ),
    (["ad", "sp", "show"], "Missing option '--id'"),
    (["ad", "sp", "delete"], "Missing option '--id'"),
    (["ad", "sp", "credential", "reset"], "Missing option '--id'"),
    (["ad", "sp", "list", "--display-name"], "'--display-name' requires an argument"),
    (
        ["role", "assignment", "create", "--role", "AcrPull", "--assignee", "bob"],
        "Missing option '--scope'",
    ),
    (
        ["role", "assignment", "create", "--assignee", "bob", "--scope", "/"],
        "Missing option '--role'",
    ),
    (["role", "assignment", "list", "--scope"], "'--scope' requires an argument"),
    (["role", "assignment", "delete"], "Give --ids, or --assignee"),
    (
        ["role", "assignment", "delete", "--ids", "a1", "--assignee", "bob"],
        "--ids cannot be combined",
    ),
    (["role", "assignment", "delete", "--ids"], "'--ids' requires an argument"),
    (["registry", "create"], "Missing option '--name' / '-n'"),
    (["registry", "create", "-n", "r", "--sku", "Gold"], "Invalid value for '--sku'"),
    (["registry", "show"], "Missing option '--name' / '-n'"),
    (["registry", "list", "-n", "x"], "No such option"),
    (["registry", "update", "-n", "r"], "Nothing to update"),
    (
        ["registry", "update", "-n", "r", "--admin-enabled", "maybe"],
        "Invalid value for '--admin-enabled'",
    ),
    (
        ["registry", "update", "-n", "r", "--default-action", "Block"],
        "Invalid value for '--default-action'",
    ),
    (["registry", "delete"], "Missing option '--name' / '-n'"),
    (["credential", "show"], "Missing option '--name' / '-n'"),
    (["credential", "renew", "-n", "r"], "Missing option '--password-name'"),
    (
        ["credential", "renew", "-n", "r", "--password-name", "password3"],
        "Invalid value for '--password-name'",
    ),
    (["network-rule", "add", "-n", "r"], "Missing option '--ip-address'"),
    (
        ["network-rule", "add", "-n", "r", "--ip-address", "10.0.0.300"],
        "is not an IP address or CIDR range",
    ),
    (
        ["network-rule", "remove", "-n", "r", "--ip-address", "nope"],
        "is not an IP address or CIDR range",
    ),
    (["network-rule", "list"], "Missing option '--name' / '-n'"),
    (["scope-map", "create", "-n", "m", "-r", "reg"], "Missing option '--repository'"),
    (
        ["scope-map", "create", "-n", "m", "--repository", "a", "content/read"],
        "Missing option '--registry' / '-r'",
    ),
    (
        ["scope-map", "create", "-n", "m", "-r", "reg", "--repository", "hello"],
        "needs at least one action",
    ),
    (
        ["scope-map", "create", "-n", "m", "-r", "reg", "--repository", "hello", "content/push"],
        "'content/push' is not an action",
    ),
    (["scope-map", "update", "-n", "m", "-r", "reg"], "Nothing to update"),
    (
        ["scope-map", "update", "-n", "m", "-r", "reg", "--add-repository", "x", "pull"],
        "'pull' is not an action",
    ),
    (["scope-map", "show", "-n", "m"], "Missing option '--registry' / '-r'"),
    (["scope-map", "list"], "Missing option '--registry' / '-r'"),
    (["scope-map", "delete", "-r", "reg"], "Missing option '--name' / '-n'"),
    (
        ["token", "create", "-n", "t", "-r", "reg"],
        "Give exactly one of --scope-map and --repository",
    ),
    (
        [
            "token",
            "create",
            "-n",
            "t",
            "-r",
            "reg",
            "--scope-map",
            "m",
            "--repository",
            "a",
            "content/read",
        ],
        "Give exactly one of --scope-map and --repository",
    ),
    (
        ["token", "create", "-n", "t", "-r", "reg", "--scope-map", "m", "--status", "on"],
        "Invalid value for '--status'",
    ),
    (
        [
            "token",
            "create",
            "-n",
            "t",
            "-r",
            "reg",
            "--scope-map",
            "m",
            "--expiration-in-days",
            "-1",
        ],
        "Invalid value for '--expiration-in-days'",
    ),
    (
        [
            "token",
            "create",
            "-n",
            "t",
            "-r",
            "reg",
            "--scope-map",
            "m",
            "--no-passwords",
            "--expiration-in-days",
            "3",
        ],
        "--expiration-in-days needs passwords",
    ),
    (["token", "update", "-n", "t", "-r", "reg"], "Nothing to update"),
    (["token", "show", "-r", "reg"], "Missing option '--name' / '-n'"),
    (["token", "list"], "Missing option '--registry' / '-r'"),
    (["token", "delete", "-n", "t"], "Missing option '--registry' / '-r'"),
    (["token", "credential", "generate", "-n", "t"], "Missing option '--registry' / '-r'"),
    (
        ["token", "credential", "generate", "-n", "t", "-r", "reg", "--expiration-in-days", "x"],
        "not a valid integer",
    ),
    (["login"], "Missing option '--name' / '-n'"),
    (["login", "-n", "reg", "-p", "secret"], "--password needs --username"),
    (
        ["login", "-n", "reg", "-u", "admin", "-p", "x", "--expose-token"],
        "--expose-token cannot be combined",
    ),
    (["registry", "shwo"], "No such command 'shwo'"),
    (["nonsense"], "No such command 'nonsense'"),
]


@pytest.mark.parametrize(
    ("arguments", "message"), MALFORMED, ids=[" ".join(a) for a, _ in MALFORMED]
)
def test_malformed_arguments_are_one_clear_error_with_exit_code_2(
    haven: Haven, logged_in: FakeHaven, arguments: list[str], message: str
) -> None:
    before = len(logged_in.requests)
    result = haven(*arguments)
    assert result.exit_code == 2, result.stderr
    assert message in one_error_line(result.stderr)
    assert result.stdout == ""
    assert len(logged_in.requests) == before, "nothing may be sent for malformed arguments"


def test_a_group_without_a_command_shows_its_help(haven: Haven) -> None:
    result = haven("registry")
    assert result.exit_code == 0
    assert "Commands:" in result.stdout and "create" in result.stdout


def test_haven_serve_keeps_clicks_own_usage_errors(haven: Haven) -> None:
    result = haven("serve", "--port", "nope")
    assert result.exit_code == 2
    assert "Usage: haven serve" in result.stderr


# ------------------------------------------------------------------------ identity


def test_identity_create_sends_the_contract_body_and_prints_the_password(
    haven: Haven, logged_in: FakeHaven
) -> None:
    created = {"id": "id-bob", "name": "bob", "kind": "servicePrincipal", "password": "gen"}
    logged_in.route("POST", "/api/identities", created, status=201)
    result = haven(
        "identity", "create", "--name", "bob", "--kind", "serviceprincipal", "--years", "2"
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout) == created
    assert logged_in.last("POST", "/api/identities").json() == {
        "name": "bob",
        "kind": "servicePrincipal",
        "years": 2,
    }
    assert "generated password" in result.stderr
    haven("identity", "create", "--name", "al", "--password", "pw", "--only-show-errors")
    assert logged_in.last("POST", "/api/identities").json() == {
        "name": "al",
        "kind": "user",
        "password": "pw",
    }


def test_identity_list_show_delete_and_reset(haven: Haven, logged_in: FakeHaven) -> None:
    logged_in.route("GET", "/api/identities", [IDENTITY, SP])
    logged_in.route("GET", "/api/identities/bob%40example.com", IDENTITY)
    logged_in.route("DELETE", "/api/identities/bob", Answer(204))
    reset = {
        "id": "id-bob",
        "name": "bob",
        "password": "new",
        "credentialId": "c2",
        "expiresAt": None,
    }
    logged_in.route("POST", "/api/identities/bob/credentials", reset)

    assert haven("identity", "list", "--query", "[].name", "-o", "tsv").stdout == "bob\nci\n"
    table = haven("identity", "list", "-o", "table").stdout.splitlines()
    assert table[0].split() == ["NAME", "KIND", "ID", "CREATED", "CREDENTIALS"]
    assert haven("identity", "show", "--id", "bob@example.com").exit_code == 0
    deleted = haven("identity", "delete", "--id", "bob")
    assert (deleted.exit_code, deleted.stdout) == (0, "")
    result = haven(
        "identity", "credential", "reset", "--id", "bob", "--append", "--years", "1",
        "--display-name", "laptop",
    )  # fmt: skip
    assert json.loads(result.stdout) == reset
    assert logged_in.last("POST", "/api/identities/bob/credentials").json() == {
        "append": True,
        "years": 1,
        "displayName": "laptop",
    }
    haven("identity", "credential", "reset", "--id", "bob")
    assert logged_in.last("POST", "/api/identities/bob/credentials").json() == {"append": False}


# ------------------------------------------------------------------------ ad sp


def test_create_for_rbac_creates_the_principal_assigns_the_role_and_prints_azs_shape(
    haven: Haven, logged_in: FakeHaven
) -> None:
    logged_in.route(
        "POST",
        "/api/identities",
        {"id": "id-ci", "name": "ci", "kind": "servicePrincipal", "password": "s"},
        201,
    )
    logged_in.route("POST", "/api/roleAssignments", ASSIGNMENT, 201)
    result = haven(
        "ad", "sp", "create-for-rbac", "--name", "ci", "--role", "AcrPush",
        "--scopes", "reg/a", "reg/b", "--years", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "appId": "id-ci",
        "displayName": "ci",
        "password": "s",
        "tenant": None,
    }
    assert "credentials that you must protect" in result.stderr
    assert logged_in.last("POST", "/api/identities").json() == {
        "name": "ci",
        "kind": "servicePrincipal",
        "years": 1,
    }
    assignments = [r.json() for r in logged_in.requests if r.path == "/api/roleAssignments"]
    assert assignments == [
        {"role": "AcrPush", "assignee": "id-ci", "scope": "reg/a"},
        {"role": "AcrPush", "assignee": "id-ci", "scope": "reg/b"},
    ]


def test_create_for_rbac_without_a_name_generates_one_and_assigns_nothing(
    haven: Haven, logged_in: FakeHaven
) -> None:
    logged_in.route(
        "POST", "/api/identities", lambda r: Answer(201, {"id": "x", **r.json(), "password": "s"})
    )
    result = haven("ad", "sp", "create-for-rbac")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["displayName"].startswith("haven-cli-")
    assert not [r for r in logged_in.requests if r.path == "/api/roleAssignments"]


def test_create_for_rbac_removes_the_principal_when_the_role_is_refused(
    haven: Haven, logged_in: FakeHaven
) -> None:
    logged_in.route("POST", "/api/identities", {"id": "id-ci", "name": "ci", "password": "s"}, 201)
    logged_in.route("POST", "/api/roleAssignments", error(400, "BAD_ROLE", "unknown role 'Boss'"))
    logged_in.route("DELETE", "/api/identities/id-ci", Answer(204))
    result = haven("ad", "sp", "create-for-rbac", "--name", "ci", "--role", "Boss", "--scopes", "/")
    assert result.exit_code == 1
    assert "unknown role 'Boss'" in one_error_line(result.stderr)
    assert logged_in.last("DELETE", "/api/identities/id-ci")
    assert result.stdout == ""


def test_sp_list_show_delete_and_credential_reset(haven: Haven, logged_in: FakeHaven) -> None:
    logged_in.route("GET", "/api/identities", [IDENTITY, SP])
    logged_in.route("GET", "/api/identities/ci", SP)
    logged_in.route("GET", "/api/identities/bob", IDENTITY)
    logged_in.route("DELETE", "/api/identities/id-ci", Answer(204))
    logged_in.route("POST", "/api/identities/id-ci/credentials", {"password": "new", "id": "id-ci"})

    listed = json.loads(haven("ad", "sp", "list").stdout)
    assert [(sp["appId"], sp["displayName"]) for sp in listed] == [("id-ci", "ci")]
    assert listed[0]["passwordCredentials"] == [
        {"keyId": "c1", "displayName": "default", "endDateTime": "2025-01-01T00:00:00Z"}
    ]
    assert json.loads(haven("ad", "sp", "list", "--display-name", "nope").stdout) == []
    assert json.loads(haven("ad", "sp", "show", "--id", "ci").stdout)["appId"] == "id-ci"
    not_sp = haven("ad", "sp", "show", "--id", "bob")
    assert (not_sp.exit_code, one_error_line(not_sp.stderr)) == (
        3,
        "Service principal 'bob' doesn't exist.",
    )
    assert haven("ad", "sp", "delete", "--id", "bob").exit_code == 3
    assert haven("ad", "sp", "delete", "--id", "ci").exit_code == 0
    reset = haven("ad", "sp", "credential", "reset", "--id", "ci", "--append")
    assert json.loads(reset.stdout) == {"appId": "id-ci", "password": "new", "tenant": None}
    assert logged_in.last("POST", "/api/identities/id-ci/credentials").json() == {"append": True}


# ------------------------------------------------------------------------ role assignments


def test_role_assignment_create_and_list_filters(haven: Haven, logged_in: FakeHaven) -> None:
    logged_in.route("POST", "/api/roleAssignments", ASSIGNMENT, 201)
    logged_in.route("GET", "/api/roleAssignments", [ASSIGNMENT])
    result = haven(
        "role",
        "assignment",
        "create",
        "--role",
        "AcrPull",
        "--assignee",
        "bob",
        "--scope",
        "reg/hello/world",
    )
    assert json.loads(result.stdout) == ASSIGNMENT
    assert logged_in.last("POST", "/api/roleAssignments").json() == {
        "role": "AcrPull",
        "assignee": "bob",
        "scope": "reg/hello/world",
    }
    haven("role", "assignment", "list")
    assert logged_in.last("GET", "/api/roleAssignments").query == {}
    table = haven(
        "role",
        "assignment",
        "list",
        "--assignee",
        "bob",
        "--scope",
        "/",
        "--role",
        "Owner",
        "-o",
        "table",
    )
    assert logged_in.last("GET", "/api/roleAssignments").query == {
        "assignee": ["bob"],
        "scope": ["/"],
        "role": ["Owner"],
    }
    assert table.stdout.splitlines()[0].split() == ["PRINCIPAL", "ROLE", "SCOPE", "ID"]
    assert table.stdout.splitlines()[2].split() == ["bob", "AcrPull", "reg", "a1"]


@pytest.mark.parametrize("ids", [["a1", "a2"], ["a1\na2\n"]], ids=["words", "lines"])
def test_role_assignment_delete_by_ids(haven: Haven, logged_in: FakeHaven, ids: list[str]) -> None:
    for name in ("a1", "a2"):
        logged_in.route("DELETE", f"/api/roleAssignments/{name}", Answer(204))
    result = haven("role", "assignment", "delete", "--ids", *ids, "-o", "json")
    assert (result.exit_code, result.stdout) == (0, "")
    assert [r.path for r in logged_in.requests if r.method == "DELETE"] == [
        "/api/roleAssignments/a1",
        "/api/roleAssignments/a2",
    ]


def test_role_assignment_delete_by_assignee_deletes_each_match(
    haven: Haven, logged_in: FakeHaven
) -> None:
    logged_in.route("GET", "/api/roleAssignments", [ASSIGNMENT, {**ASSIGNMENT, "id": "a9"}])
    logged_in.route("DELETE", "/api/roleAssignments/a1", Answer(204))
    logged_in.route("DELETE", "/api/roleAssignments/a9", Answer(204))
    result = haven("role", "assignment", "delete", "--assignee", "bob", "--role", "AcrPull")
    assert result.exit_code == 0
    assert logged_in.last("GET", "/api/roleAssignments").query == {
        "assignee": ["bob"],
        "role": ["AcrPull"],
    }
    assert [r.path for r in logged_in.requests if r.method == "DELETE"] == [
        "/api/roleAssignments/a1",
        "/api/roleAssignments/a9",
    ]


def test_role_assignment_delete_with_no_match_is_not_found(
    haven: Haven, logged_in: FakeHaven
) -> None:
    logged_in.route("GET", "/api/roleAssignments", [])
    result = haven("role", "assignment", "delete", "--assignee", "bob")
    assert result.exit_code == 3
    assert one_error_line(result.stderr) == "No matched assignments were found to delete."


# ------------------------------------------------------------------------ registries


def test_registry_create_show_list(haven: Haven, logged_in: FakeHaven) -> None:
    logged_in.route("POST", "/api/registries", REGISTRY, 201)
    logged_in.route("GET", "/api/registries/reg", REGISTRY)
    logged_in.route("GET", "/api/registries", [REGISTRY])
    assert json.loads(haven("registry", "create", "-n", "reg").stdout) == REGISTRY
    assert logged_in.last("POST", "/api/registries").json() == {"name": "reg", "sku": "Basic"}
    haven("registry", "create", "-n", "reg", "--sku", "premium")
    assert logged_in.last("POST", "/api/registries").json() == {"name": "reg", "sku": "Premium"}
    assert haven("registry", "show", "-n", "reg", "--query", "loginServer", "-o", "tsv").stdout == (
        "reg.example.com\n"
    )
    table = haven("registry", "list", "-o", "table").stdout.splitlines()
    assert table[2].split() == ["reg", "Basic", "reg.example.com", "2024-01-02T03:04:05Z", "False"]


def test_registry_update_sends_only_what_was_given(haven: Haven, logged_in: FakeHaven) -> None:
    logged_in.route("PATCH", "/api/registries/reg", REGISTRY)
    haven(
        "registry", "update", "-n", "reg", "--sku", "Standard", "--admin-enabled", "TRUE",
        "--anonymous-pull-enabled", "false", "--default-action", "deny",
    )  # fmt: skip
    assert logged_in.last("PATCH", "/api/registries/reg").json() == {
        "sku": "Standard",
        "adminUserEnabled": True,
        "anonymousPullEnabled": False,
        "networkRuleSet": {"defaultAction": "Deny"},
    }
    haven("registry", "update", "-n", "reg", "--admin-enabled", "false")
    assert logged_in.last("PATCH", "/api/registries/reg").json() == {"adminUserEnabled": False}


def test_registry_delete_without_yes_and_without_a_tty_is_refused(
    haven: Haven, logged_in: FakeHaven
) -> None:
    result = haven("registry", "delete", "-n", "reg")
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == (
        "Unable to prompt for confirmation as no tty available. Use --yes."
    )
    assert not [r for r in logged_in.requests if r.method == "DELETE"]


def test_registry_delete_with_yes(haven: Haven, logged_in: FakeHaven) -> None:
    logged_in.route("DELETE", "/api/registries/reg", Answer(204))
    result = haven("registry", "delete", "-n", "reg", "-y")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def _run_on_a_tty(arguments: list[str], answer: bytes, home: Path) -> tuple[int, str]:
    """`haven ARGUMENTS` in a subprocess whose stdin is a terminal; `answer` is typed."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "haven", *arguments],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(terminal)
    os.write(controller, answer)  # buffered by the terminal until the prompt reads it
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        os.close(controller)
    return process.returncode, stderr.decode()


def test_registry_delete_asks_on_a_terminal(haven: Haven, logged_in: FakeHaven, home: Path) -> None:
    logged_in.route("DELETE", "/api/registries/reg", Answer(204))
    code, stderr = _run_on_a_tty(["registry", "delete", "-n", "reg"], b"n\n", home)
    assert code == 1
    assert "Are you sure you want to perform this operation? (y/n)" in stderr
    assert stderr.rstrip().endswith("ERROR: Operation cancelled.")
    assert not [r for r in logged_in.requests if r.method == "DELETE"]
    code, stderr = _run_on_a_tty(["registry", "delete", "-n", "reg"], b"y\n", home)
    assert code == 0, stderr
    assert logged_in.last("DELETE", "/api/registries/reg")


# ---------------------------------------------------- admin credentials, network rules


def test_credential_show_and_renew(haven: Haven, logged_in: FakeHaven) -> None:
    credentials = {
        "username": "reg",
        "passwords": [{"name": "password", "value": "a"}, {"name": "password2", "value": "b"}],
    }
    logged_in.route("GET", "/api/registries/reg/credentials", credentials)
    logged_in.route("POST", "/api/registries/reg/credentials/renew", credentials)
    assert json.loads(haven("credential", "show", "-n", "reg").stdout) == credentials
    table = haven("credential", "show", "-n", "reg", "-o", "table").stdout.splitlines()
    assert table[0].split() == ["USERNAME", "PASSWORD", "PASSWORD2"]
    assert table[2].split() == ["reg", "a", "b"]
    assert (
        haven(
            "credential", "show", "-n", "reg", "--query", "passwords[0].value", "-o", "tsv"
        ).stdout
        == "a\n"
    )
    haven("credential", "renew", "-n", "reg", "--password-name", "password")
    assert logged_in.last("POST", "/api/registries/reg/credentials/renew").json() == {
        "passwordName": "password"
    }


def test_network_rules_add_remove_list(haven: Haven, logged_in: FakeHaven) -> None:
    rules = {
        "defaultAction": "Deny",
        "ipRules": [{"action": "Allow", "ipAddressOrRange": "203.0.113.0/24"}],
    }
    logged_in.route("POST", "/api/registries/reg/networkRules", rules)
    logged_in.route(
        "DELETE", "/api/registries/reg/networkRules", {"defaultAction": "Deny", "ipRules": []}
    )
    logged_in.route("GET", "/api/registries/reg/networkRules", rules)
    assert (
        json.loads(
            haven("network-rule", "add", "-n", "reg", "--ip-address", "203.0.113.0/24").stdout
        )
        == rules
    )
    assert logged_in.last("POST", "/api/registries/reg/networkRules").json() == {
        "ipAddressOrRange": "203.0.113.0/24"
    }
    haven("network-rule", "remove", "-n", "reg", "--ip-address", "198.51.100.7")
    assert logged_in.last("DELETE", "/api/registries/reg/networkRules").query == {
        "ipAddressOrRange": ["198.51.100.7"]
    }
    table = haven("network-rule", "list", "-n", "reg", "-o", "table").stdout.splitlines()
    assert table[2].split() == ["Allow", "203.0.113.0/24"]


# ------------------------------------------------------------------------ scope maps


def test_scope_map_create_turns_repository_groups_into_actions(
    haven: Haven, logged_in: FakeHaven
) -> None:
    logged_in.route("POST", "/api/registries/reg/scopeMaps", SCOPE_MAP, 201)
    result = haven(
        "scope-map", "create", "-n", "m", "-r", "reg", "--description", "d",
        "--repository", "samples/hello", "content/read", "metadata/read",
        "--repository=other", "content/write", "content/read",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert logged_in.last("POST", "/api/registries/reg/scopeMaps").json() == {
        "name": "m",
        "description": "d",
        "actions": [
            "repositories/samples/hello/content/read",
            "repositories/samples/hello/metadata/read",
            "repositories/other/content/write",
            "repositories/other/content/read",
        ],
    }


def test_scope_map_update_show_list_delete(haven: Haven, logged_in: FakeHaven) -> None:
    for method, path, body in [
        ("PATCH", "/api/registries/reg/scopeMaps/m", SCOPE_MAP),
        ("GET", "/api/registries/reg/scopeMaps/m", SCOPE_MAP),
        ("GET", "/api/registries/reg/scopeMaps", [SCOPE_MAP]),
        ("DELETE", "/api/registries/reg/scopeMaps/m", None),
    ]:
        logged_in.route(method, path, body, 204 if body is None else 200)
    haven(
        "scope-map", "update", "-n", "m", "-r", "reg",
        "--add-repository", "a", "content/delete", "--remove-repository", "hello", "content/read",
    )  # fmt: skip
    assert logged_in.last("PATCH", "/api/registries/reg/scopeMaps/m").json() == {
        "addActions": ["repositories/a/content/delete"],
        "removeActions": ["repositories/hello/content/read"],
    }
    haven("scope-map", "update", "-n", "m", "-r", "reg", "--description", "")
    assert logged_in.last("PATCH", "/api/registries/reg/scopeMaps/m").json() == {"description": ""}
    assert json.loads(haven("scope-map", "show", "-n", "m", "-r", "reg").stdout) == SCOPE_MAP
    table = haven("scope-map", "list", "-r", "reg", "-o", "table").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "CREATION", "DATE", "DESCRIPTION"]
    refused = haven("scope-map", "delete", "-n", "m", "-r", "reg")
    assert refused.exit_code == 1 and "Use --yes" in refused.stderr
    assert haven("scope-map", "delete", "-n", "m", "-r", "reg", "--yes").exit_code == 0


# ------------------------------------------------------------------------ tokens


def test_token_create_from_a_scope_map_or_from_repositories(
    haven: Haven, logged_in: FakeHaven
) -> None:
    logged_in.route("POST", "/api/registries/reg/tokens", TOKEN, 201)
    result = haven("token", "create", "-n", "t", "-r", "reg", "--scope-map", "m")
    assert json.loads(result.stdout) == TOKEN
    assert "store the generated passwords" in result.stderr
    assert logged_in.last("POST", "/api/registries/reg/tokens").json() == {
        "name": "t",
        "scopeMap": "m",
        "generatePasswords": True,
    }
    haven(
        "token", "create", "-n", "t", "-r", "reg", "--repository", "hello", "content/read",
        "--status", "Disabled", "--expiration-in-days", "30",
    )  # fmt: skip
    assert logged_in.last("POST", "/api/registries/reg/tokens").json() == {
        "name": "t",
        "actions": ["repositories/hello/content/read"],
        "status": "disabled",
        "generatePasswords": True,
        "expirationInDays": 30,
    }
    haven("token", "create", "-n", "t", "-r", "reg", "--scope-map", "m", "--no-passwords")
    assert logged_in.last("POST", "/api/registries/reg/tokens").json()["generatePasswords"] is False


def test_token_update_show_list_delete(haven: Haven, logged_in: FakeHaven) -> None:
    logged_in.route("PATCH", "/api/registries/reg/tokens/t", TOKEN)
    logged_in.route("GET", "/api/registries/reg/tokens/t", TOKEN)
    logged_in.route("GET", "/api/registries/reg/tokens", [TOKEN])
    logged_in.route("DELETE", "/api/registries/reg/tokens/t", Answer(204))
    haven("token", "update", "-n", "t", "-r", "reg", "--scope-map", "m2", "--status", "enabled")
    assert logged_in.last("PATCH", "/api/registries/reg/tokens/t").json() == {
        "scopeMap": "m2",
        "status": "enabled",
    }
    assert json.loads(haven("token", "show", "-n", "t", "-r", "reg").stdout) == TOKEN
    table = haven("token", "list", "-r", "reg", "-o", "table").stdout.splitlines()
    assert table[2].split()[:3] == ["t", "m", "Never"]
    assert haven("token", "delete", "-n", "t", "-r", "reg").exit_code == 1
    assert haven("token", "delete", "-n", "t", "-r", "reg", "-y").exit_code == 0


@pytest.mark.parametrize(
    ("flags", "name"),
    [
        ([], None),
        (["--password1"], "password1"),
        (["--password2"], "password2"),
        (["--password1", "--password2"], None),
    ],
)
def test_token_credential_generate(
    haven: Haven, logged_in: FakeHaven, flags: list[str], name: str | None
) -> None:
    answer = {"username": "t", "passwords": [{"name": "password1", "value": "v", "expiry": None}]}
    logged_in.route("POST", "/api/registries/reg/tokens/t/credentials", answer)
    result = haven("token", "credential", "generate", "-n", "t", "-r", "reg", *flags)
    assert json.loads(result.stdout) == answer
    assert logged_in.last("POST", "/api/registries/reg/tokens/t/credentials").json() == {
        "name": name
    }
    haven("token", "credential", "generate", "-n", "t", "-r", "reg", "--expiration-in-days", "7")
    assert logged_in.last("POST", "/api/registries/reg/tokens/t/credentials").json() == {
        "name": None,
        "expirationInDays": 7,
    }


# ------------------------------------------------------------------------ haven login


def _exchange(fake: FakeHaven) -> None:
    def answer(request: Recorded) -> Answer:
        form = request.form()
        if (
            form.get("grant_type") != "access_token"
            or form.get("access_token") not in fake.access_tokens
        ):
            return error(401, "UNAUTHORIZED", "bad exchange")
        return Answer(200, {"refresh_token": f"registry-refresh-for-{form['service']}"})

    fake.route("POST", "/oauth2/exchange", answer)


def _auth(path: Path, server: str) -> tuple[str, str]:
    return decode_auth(json.loads(path.read_text())["auths"][server]["auth"])


def test_login_writes_docker_and_podman_credentials(
    haven: Haven, logged_in: FakeHaven, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / "run"))
    logged_in.route("GET", "/api/registries/reg", REGISTRY)
    _exchange(logged_in)
    docker = home / ".docker" / "config.json"
    docker.parent.mkdir()
    docker.write_text(json.dumps({"auths": {"other": {"auth": "eA=="}}, "detachKeys": "ctrl-x"}))
    result = haven("login", "-n", "reg")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Login Succeeded\n"
    assert logged_in.last("POST", "/oauth2/exchange").form() == {
        "grant_type": "access_token",
        "service": "reg.example.com",
        "access_token": "access-1",
    }
    expected = ("00000000-0000-0000-0000-000000000000", "registry-refresh-for-reg.example.com")
    assert _auth(docker, "reg.example.com") == expected
    assert json.loads(docker.read_text())["detachKeys"] == "ctrl-x"
    assert json.loads(docker.read_text())["auths"]["other"] == {"auth": "eA=="}
    assert _auth(home / "run" / "containers" / "auth.json", "reg.example.com") == expected


def test_login_honours_docker_config_and_registry_auth_file(
    haven: Haven, logged_in: FakeHaven, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dockercfg"))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "podman-auth.json"))
    logged_in.route("GET", "/api/registries/reg", REGISTRY)
    _exchange(logged_in)
    assert haven("login", "-n", "reg").exit_code == 0
    assert _auth(tmp_path / "dockercfg" / "config.json", "reg.example.com")[0].startswith("0000")
    assert _auth(tmp_path / "podman-auth.json", "reg.example.com")[0].startswith("0000")


def test_login_expose_token_writes_nothing_and_prints_the_token(
    haven: Haven, logged_in: FakeHaven, home: Path
) -> None:
    logged_in.route("GET", "/api/registries/reg", REGISTRY)
    _exchange(logged_in)
    result = haven("login", "-n", "reg", "--expose-token")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "accessToken": "registry-refresh-for-reg.example.com",
        "loginServer": "reg.example.com",
    }
    assert "docker login loginServer -u 00000000-0000-0000-0000-000000000000" in result.stderr
    assert not (home / ".docker").exists()
    assert not (home / ".config" / "containers").exists()
    tsv = haven("login", "-n", "reg", "-t", "--query", "accessToken", "-o", "tsv")
    assert tsv.stdout == "registry-refresh-for-reg.example.com\n"


def test_login_with_username_and_password_checks_and_stores_them(
    haven: Haven, logged_in: FakeHaven, home: Path
) -> None:
    logged_in.route("GET", "/api/registries/reg", REGISTRY)

    def token(request: Recorded) -> Answer:
        if request.headers.get("authorization") == "Basic cmVnOmFkbWluLXB3":  # reg:admin-pw
            return Answer(200, {"token": "x", "access_token": "x"})
        return Answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})

    logged_in.route("GET", "/oauth2/token", token)
    result = haven("login", "-n", "reg", "-u", "reg", "-p", "admin-pw")
    assert result.exit_code == 0, result.stderr
    assert logged_in.last("GET", "/oauth2/token").query == {
        "service": ["reg.example.com"],
        "account": ["reg"],
    }
    assert _auth(home / ".docker" / "config.json", "reg.example.com") == ("reg", "admin-pw")
    refused = haven("login", "-n", "reg", "-u", "reg", "-p", "wrong")
    assert refused.exit_code == 1
    assert one_error_line(refused.stderr) == "Unable to log in to reg.example.com: bad credentials"
    assert _auth(home / ".docker" / "config.json", "reg.example.com") == ("reg", "admin-pw")


def test_login_with_credentials_to_a_login_server_needs_no_account(
    haven: Haven, fake: FakeHaven, home: Path
) -> None:
    fake.route("GET", "/oauth2/token", Answer(200, {"token": "x"}))
    result = haven("login", "-n", fake.address, "-u", "t", "--password-stdin", input="pw\n")
    assert result.exit_code == 0, result.stderr
    assert _auth(home / ".docker" / "config.json", fake.address) == ("t", "pw")
