"""The `haven` CLI in a subprocess against a real `haven serve`, as an operator uses them.

One server per module (SQLite, one worker), started with a bootstrap owner password. Each
CLI "profile" is its own HOME and config directory, so the owner, an identity without
roles and a never-logged-in user are separate people.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from .certificates import self_signed

OWNER_PASSWORD = "cli-owner-Password-1"
STRANGER_PASSWORD = "cli-stranger-Password-1"
REFRESH_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique(prefix: str) -> str:
    """A resource name valid for registries (letters and digits, 5 to 50) and the rest."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@dataclass
class Server:
    url: str
    port: int
    log: Path


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.returncode == 0, self.stderr
        return json.loads(self.stdout)

    def error(self) -> str:
        """The one `ERROR:` line this failed run printed."""
        assert self.returncode != 0, self.stdout
        assert self.stderr.startswith("ERROR: "), self.stderr
        assert self.stderr.count("\n") == 1, self.stderr
        assert "Traceback" not in self.stderr
        return self.stderr.removeprefix("ERROR: ").rstrip("\n")


class Profile:
    """One user of the CLI: a home directory with its own config and credential files."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("HAVEN_")
            and key
            not in {"DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"}
        }
        self.env.update(
            HOME=str(home),
            HAVEN_CONFIG_DIR=str(home / ".haven"),
            XDG_RUNTIME_DIR=str(home / "run"),
        )

    def __call__(self, *args: str, input: str | None = None) -> Done:
        completed = subprocess.run(
            [sys.executable, "-m", "haven", *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Done(completed.returncode, completed.stdout, completed.stderr)

    def json(self, *args: str) -> Any:
        return self(*args).json()

    def docker_auth(self, server: str) -> tuple[str, str]:
        data = json.loads((self.home / ".docker" / "config.json").read_text())
        user, _, password = base64.b64decode(data["auths"][server]["auth"]).decode().partition(":")
        return user, password

    def podman_auth(self, server: str) -> tuple[str, str]:
        data = json.loads((self.home / "run" / "containers" / "auth.json").read_text())
        user, _, password = base64.b64decode(data["auths"][server]["auth"]).decode().partition(":")
        return user, password


@contextlib.contextmanager
def haven_serve(
    base: Path, tls: tuple[Path, Path] | None = None, settings: dict[str, str] | None = None
) -> Iterator[Server]:
    """`haven serve` on a free port with an empty data directory, until the block ends;
    `settings` are extra HAVEN_* environment variables."""
    port = _free_port()
    log = base / "haven.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("HAVEN_")}
    env["HAVEN_BOOTSTRAP_PASSWORD"] = OWNER_PASSWORD
    env.update(settings or {})
    command = [sys.executable, "-m", "haven", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--data-dir", str(base / "data"), "--workers", "1"]
    if tls is not None:
        command += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=base,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"haven serve exited early:\n{log.read_text()}", pytrace=False)
            try:
                verify = ssl.create_default_context(cafile=tls[0]) if tls else True
                if httpx.get(f"{url}/healthz", timeout=2, verify=verify).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"haven serve did not start:\n{log.read_text()}", pytrace=False)
            time.sleep(0.1)
        yield Server(url, port, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with haven_serve(tmp_path_factory.mktemp("haven-serve")) as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Profile:
    profile = Profile(tmp_path_factory.mktemp("owner"))
    result = profile(
        "account", "login", "--server", server.url, "-u", "owner", "-p", OWNER_PASSWORD
    )
    assert result.returncode == 0, result.stderr
    return profile


@pytest.fixture(scope="module")
def stranger(server: Server, owner: Profile, tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """Signed in as an identity that holds no role at all."""
    name = unique("stranger")
    owner.json("identity", "create", "--name", name, "--password", STRANGER_PASSWORD)
    profile = Profile(tmp_path_factory.mktemp("stranger"))
    result = profile(
        "account", "login", "--server", server.url, "-u", name, "-p", STRANGER_PASSWORD
    )
    assert result.returncode == 0, result.stderr
    return profile


@pytest.fixture
def nobody(tmp_path: Path) -> Profile:
    """Never logged in."""
    return Profile(tmp_path / "nobody")


@pytest.fixture(scope="module")
def registry(owner: Profile) -> dict[str, Any]:
    """A Premium registry (network rules need Premium), with the admin user enabled."""
    name = unique("cli")
    owner.json("registry", "create", "-n", name, "--sku", "Premium")
    return dict(owner.json("registry", "update", "-n", name, "--admin-enabled", "true"))


# ------------------------------------------------------------------------------- account


def test_account_login_show_logout(server: Server, tmp_path: Path) -> None:
    me = Profile(tmp_path / "me")
    login = me(
        "account",
        "login",
        "--server",
        server.url,
        "-u",
        "owner",
        "--password-stdin",
        input=OWNER_PASSWORD + "\n",
    )
    assert login.json()["name"] == "owner"
    config = (me.home / ".haven" / "config.json").read_text()
    assert OWNER_PASSWORD not in config
    assert json.loads(config)["server"] == server.url
    assert me("account", "show", "--query", "name", "-o", "tsv").stdout == "owner\n"
    assert me("account", "logout").returncode == 0
    assert me("account", "show").error() == "Please run 'haven account login' to set up an account."


def test_account_login_with_a_wrong_password_prints_the_servers_message(
    server: Server, tmp_path: Path
) -> None:
    result = Profile(tmp_path / "x")(
        "account", "login", "--server", server.url, "-u", "owner", "-p", "no"
    )
    assert result.returncode == 1
    assert result.error() == "incorrect username or password"


def test_debug_shows_the_exchange_with_the_token_redacted(owner: Profile, server: Server) -> None:
    result = owner("account", "show", "--debug")
    assert result.returncode == 0
    assert f"DEBUG: Request: GET {server.url}/api/me" in result.stderr
    assert "authorization: <redacted>" in result.stderr
    assert "eyJ" not in result.stderr.split("Response body")[0]


# ------------------------------------------------------------------------------- identities


def test_identity_lifecycle(owner: Profile, server: Server, tmp_path: Path) -> None:
    name = unique("ident")
    created = owner.json("identity", "create", "--name", name)
    assert created["name"] == name and created["kind"] == "user" and created["password"]
    assert name in owner.json("identity", "list", "--query", "[].name")
    shown = owner.json("identity", "show", "--id", name)
    assert shown["id"] == created["id"]
    assert owner.json("identity", "show", "--id", created["id"])["name"] == name
    reset = owner.json("identity", "credential", "reset", "--id", name, "--display-name", "laptop")
    assert reset["password"] and reset["password"] != created["password"]
    person = Profile(tmp_path / "person")
    signed_in = person(
        "account", "login", "--server", server.url, "-u", name, "-p", reset["password"]
    )
    assert signed_in.json()["name"] == name
    assert owner("identity", "delete", "--id", name).returncode == 0
    assert owner("identity", "show", "--id", name).returncode == 3
    assert person("account", "show").returncode != 0  # a removed identity stops at once


def test_identity_create_with_a_duplicate_name_prints_the_servers_message(owner: Profile) -> None:
    name = unique("dup")
    owner.json("identity", "create", "--name", name)
    again = owner("identity", "create", "--name", name)
    assert again.returncode == 1
    assert name in again.error()


# ------------------------------------------------------------------------------- ad sp


def test_service_principal_for_rbac(
    owner: Profile, registry: dict[str, Any], server: Server, tmp_path: Path
) -> None:
    name = unique("sp")
    created = owner(
        "ad",
        "sp",
        "create-for-rbac",
        "--name",
        name,
        "--role",
        "AcrPull",
        "--scopes",
        registry["name"],
    )
    sp = created.json()
    assert set(sp) == {"appId", "displayName", "password", "tenant"}
    assert "credentials that you must protect" in created.stderr
    assignments = owner.json("role", "assignment", "list", "--assignee", sp["appId"])
    assert [(a["role"], a["scope"]) for a in assignments] == [("AcrPull", registry["name"])]
    assert sp["appId"] in owner.json("ad", "sp", "list", "--query", "[].appId")
    assert owner.json("ad", "sp", "show", "--id", sp["appId"])["displayName"] == name
    robot = Profile(tmp_path / "robot")
    login = robot(
        "account", "login", "--server", server.url, "-u", sp["appId"], "-p", sp["password"]
    )
    assert login.returncode == 0, login.stderr
    reset = owner.json("ad", "sp", "credential", "reset", "--id", sp["appId"], "--append")
    assert reset["appId"] == sp["appId"] and reset["password"]
    assert owner("ad", "sp", "delete", "--id", sp["appId"]).returncode == 0
    assert owner("ad", "sp", "show", "--id", sp["appId"]).returncode == 3


def test_create_for_rbac_with_an_unknown_role_keeps_no_principal(owner: Profile) -> None:
    name = unique("badsp")
    result = owner("ad", "sp", "create-for-rbac", "--name", name, "--role", "Boss", "--scopes", "/")
    assert result.returncode == 1
    assert "Boss" in result.error()
    assert owner("ad", "sp", "list", "--display-name", name).json() == []


# ------------------------------------------------------------------------------- roles


def test_role_assignments_grant_and_revoke_access(
    owner: Profile, registry: dict[str, Any], server: Server, tmp_path: Path
) -> None:
    name = unique("reader")
    owner.json("identity", "create", "--name", name, "--password", STRANGER_PASSWORD)
    reader = Profile(tmp_path / "reader")
    reader("account", "login", "--server", server.url, "-u", name, "-p", STRANGER_PASSWORD).json()
    denied = reader("registry", "show", "-n", registry["name"])
    assert denied.returncode == 1 and "does not have authorization" in denied.error()

    made = owner.json(
        "role",
        "assignment",
        "create",
        "--role",
        "Reader",
        "--assignee",
        name,
        "--scope",
        registry["name"],
    )
    assert (made["role"], made["assigneeName"], made["scope"]) == ("Reader", name, registry["name"])
    assert reader.json("registry", "show", "-n", registry["name"])["name"] == registry["name"]
    listed = owner.json(
        "role",
        "assignment",
        "list",
        "--assignee",
        name,
        "--role",
        "Reader",
        "--scope",
        registry["name"],
    )
    assert [a["id"] for a in listed] == [made["id"]]
    table = owner("role", "assignment", "list", "--assignee", name, "-o", "table").stdout
    assert table.splitlines()[0].split() == ["PRINCIPAL", "ROLE", "SCOPE", "ID"]

    assert owner("role", "assignment", "delete", "--ids", made["id"]).returncode == 0
    assert reader("registry", "show", "-n", registry["name"]).returncode == 1
    owner.json(
        "role",
        "assignment",
        "create",
        "--role",
        "AcrPull",
        "--assignee",
        name,
        "--scope",
        f"{registry['name']}/samples/hello",
    )
    assert owner("role", "assignment", "delete", "--assignee", name).returncode == 0
    assert owner.json("role", "assignment", "list", "--assignee", name) == []
    nothing = owner("role", "assignment", "delete", "--assignee", name)
    assert (nothing.returncode, nothing.error()) == (
        3,
        "No matched assignments were found to delete.",
    )


def test_role_assignment_with_an_unknown_role_prints_the_servers_message(owner: Profile) -> None:
    result = owner(
        "role", "assignment", "create", "--role", "Boss", "--assignee", "owner", "--scope", "/"
    )
    assert result.returncode == 1
    assert result.error().startswith("unknown role; use one of Owner, ")


# ------------------------------------------------------------------------------- registries


def test_registry_lifecycle(owner: Profile, server: Server) -> None:
    name = unique("reg")
    created = owner.json("registry", "create", "-n", name)
    assert created["name"] == name and created["loginServer"]
    assert owner.json("registry", "show", "-n", name) == created
    assert name in owner("registry", "list", "--query", "[].name", "-o", "tsv").stdout.split()
    table = owner("registry", "list", "-o", "table").stdout.splitlines()
    assert re.split(r"\s{2,}", table[0]) == [
        "NAME",
        "SKU",
        "LOGIN SERVER",
        "CREATION DATE",
        "ADMIN ENABLED",
    ]
    updated = owner.json(
        "registry",
        "update",
        "-n",
        name,
        "--sku",
        "Premium",
        "--anonymous-pull-enabled",
        "true",
        "--default-action",
        "Deny",
    )
    assert updated["sku"]["name"] == "Premium"
    assert updated["anonymousPullEnabled"] is True
    assert updated["networkRuleSet"]["defaultAction"] == "Deny"
    refused = owner("registry", "delete", "-n", name)
    assert refused.error() == "Unable to prompt for confirmation as no tty available. Use --yes."
    assert owner("registry", "delete", "-n", name, "--yes").returncode == 0
    assert owner("registry", "show", "-n", name).returncode == 3


def test_registry_create_with_an_invalid_name_prints_the_servers_message(owner: Profile) -> None:
    result = owner("registry", "create", "-n", "x!")
    assert result.returncode == 1
    assert "invalid" in result.error()


def test_admin_credentials_show_and_renew(owner: Profile, registry: dict[str, Any]) -> None:
    shown = owner.json("credential", "show", "-n", registry["name"])
    assert shown["username"] == registry["name"]
    assert [p["name"] for p in shown["passwords"]] == ["password", "password2"]
    renewed = owner.json(
        "credential", "renew", "-n", registry["name"], "--password-name", "password2"
    )
    before, after = (
        dict((p["name"], p["value"]) for p in shown["passwords"]),
        dict((p["name"], p["value"]) for p in renewed["passwords"]),
    )
    assert after["password"] == before["password"]
    assert after["password2"] != before["password2"]


def test_network_rules(owner: Profile, registry: dict[str, Any]) -> None:
    name = registry["name"]
    added = owner.json("network-rule", "add", "-n", name, "--ip-address", "203.0.113.0/24")
    assert {"action": "Allow", "ipAddressOrRange": "203.0.113.0/24"} in added["ipRules"]
    listed = owner.json("network-rule", "list", "-n", name)
    assert "203.0.113.0/24" in [rule["ipAddressOrRange"] for rule in listed["ipRules"]]
    table = owner("network-rule", "list", "-n", name, "-o", "table").stdout
    assert "203.0.113.0/24" in table
    assert (
        owner("network-rule", "remove", "-n", name, "--ip-address", "203.0.113.0/24").returncode
        == 0
    )
    assert owner.json("network-rule", "list", "-n", name)["ipRules"] == []


# ------------------------------------------------------------------------------- scope maps, tokens


def test_scope_map_lifecycle(owner: Profile, registry: dict[str, Any]) -> None:
    name, reg = unique("map-"), registry["name"]
    created = owner.json(
        "scope-map",
        "create",
        "-n",
        name,
        "-r",
        reg,
        "--description",
        "ci",
        "--repository",
        "samples/hello",
        "content/read",
        "metadata/read",
    )
    assert created["actions"] == [
        "repositories/samples/hello/content/read",
        "repositories/samples/hello/metadata/read",
    ]
    updated = owner.json(
        "scope-map",
        "update",
        "-n",
        name,
        "-r",
        reg,
        "--add-repository",
        "samples/hello",
        "content/write",
        "--remove-repository",
        "samples/hello",
        "metadata/read",
    )
    assert sorted(updated["actions"]) == [
        "repositories/samples/hello/content/read",
        "repositories/samples/hello/content/write",
    ]
    assert owner.json("scope-map", "show", "-n", name, "-r", reg)["description"] == "ci"
    assert name in owner.json("scope-map", "list", "-r", reg, "--query", "[].name")
    assert owner("scope-map", "delete", "-n", name, "-r", reg, "--yes").returncode == 0
    assert owner("scope-map", "show", "-n", name, "-r", reg).returncode == 3


def test_token_lifecycle(owner: Profile, registry: dict[str, Any]) -> None:
    reg = registry["name"]
    scope_map = unique("map-")
    owner.json(
        "scope-map",
        "create",
        "-n",
        scope_map,
        "-r",
        reg,
        "--repository",
        "samples/hello",
        "content/read",
    )
    name = unique("token-")
    created = owner(
        "token",
        "create",
        "-n",
        name,
        "-r",
        reg,
        "--scope-map",
        scope_map,
        "--expiration-in-days",
        "30",
    )
    token = created.json()
    assert token["scopeMapName"] == scope_map
    assert [p["name"] for p in token["credentials"]["passwords"]] == ["password1", "password2"]
    assert all(p.get("value") for p in token["credentials"]["passwords"])
    assert "store the generated passwords" in created.stderr
    shown = owner.json("token", "show", "-n", name, "-r", reg)
    assert shown["status"] == "enabled"
    assert not any(p.get("value") for p in shown["credentials"]["passwords"])
    assert name in owner.json("token", "list", "-r", reg, "--query", "[].name")
    assert owner.json("token", "update", "-n", name, "-r", reg, "--status", "disabled")[
        "status"
    ] == ("disabled")
    generated = owner.json("token", "credential", "generate", "-n", name, "-r", reg, "--password2")
    assert [p["name"] for p in generated["passwords"]] == ["password2"]
    assert owner("token", "delete", "-n", name, "-r", reg, "--yes").returncode == 0
    assert owner("token", "show", "-n", name, "-r", reg).returncode == 3

    direct = unique("token-")
    made = owner.json(
        "token",
        "create",
        "-n",
        direct,
        "-r",
        reg,
        "--no-passwords",
        "--repository",
        "samples/other",
        "content/read",
        "content/write",
    )
    assert not any(p.get("value") for p in made["credentials"]["passwords"])


# ------------------------------------------------------------------------------- haven login


def _token_for(server: Server, login_server: str, username: str, password: str) -> int:
    """The status of the docker-style token request these credentials make for a registry."""
    return httpx.get(
        f"{server.url}/oauth2/token",
        params={"service": login_server, "scope": "repository:samples/hello:pull"},
        auth=(username, password),
        timeout=10,
    ).status_code


def test_login_writes_a_refresh_token_that_works_for_that_registry(
    owner: Profile, registry: dict[str, Any], server: Server
) -> None:
    result = owner("login", "-n", registry["name"])
    assert (result.returncode, result.stdout) == (0, "Login Succeeded\n"), result.stderr
    login_server = registry["loginServer"]
    user, password = owner.docker_auth(login_server)
    assert user == REFRESH_TOKEN_USER
    assert owner.podman_auth(login_server) == (user, password)
    assert _token_for(server, login_server, user, password) == 200


def test_login_expose_token_prints_it_and_writes_nothing(
    registry: dict[str, Any], server: Server, tmp_path: Path
) -> None:
    me = Profile(tmp_path / "me")
    me("account", "login", "--server", server.url, "-u", "owner", "-p", OWNER_PASSWORD).json()
    result = me("login", "-n", registry["name"], "--expose-token")
    shown = result.json()
    assert shown["loginServer"] == registry["loginServer"]
    assert "docker login loginServer" in result.stderr
    assert not (me.home / ".docker").exists() and not (me.home / "run").exists()
    assert _token_for(server, shown["loginServer"], REFRESH_TOKEN_USER, shown["accessToken"]) == 200


def test_login_with_admin_and_token_credentials(
    owner: Profile, registry: dict[str, Any], server: Server
) -> None:
    reg, login_server = registry["name"], registry["loginServer"]
    admin_password = owner(
        "credential", "show", "-n", reg, "--query", "passwords[0].value", "-o", "tsv"
    )
    admin = owner("login", "-n", reg, "-u", reg, "--password-stdin", input=admin_password.stdout)
    assert admin.returncode == 0, admin.stderr
    assert owner.docker_auth(login_server) == (reg, admin_password.stdout.strip())
    scope_map = unique("map-")
    owner.json(
        "scope-map",
        "create",
        "-n",
        scope_map,
        "-r",
        reg,
        "--repository",
        "samples/hello",
        "content/read",
    )
    token = unique("token-")
    password = owner(
        "token",
        "create",
        "-n",
        token,
        "-r",
        reg,
        "--scope-map",
        scope_map,
        "--query",
        "credentials.passwords[0].value",
        "-o",
        "tsv",
    ).stdout.strip()
    assert owner("login", "-n", reg, "-u", token, "-p", password).returncode == 0
    assert owner.podman_auth(login_server) == (token, password)
    wrong = owner("login", "-n", reg, "-u", token, "-p", "wrong-password")
    assert wrong.returncode == 1
    assert wrong.error().startswith(f"Unable to log in to {login_server}: ")


# ------------------------------------------------------------------------------- every command


def _commands(reg: str) -> list[list[str]]:
    """One invocation of every management command, naming resources that may not exist."""
    return [
        ["identity", "create", "--name", unique("denied")],
        ["identity", "list"],
        ["identity", "show", "--id", "owner"],
        ["identity", "delete", "--id", "owner"],
        ["identity", "credential", "reset", "--id", "owner"],
        ["ad", "sp", "create-for-rbac", "--name", unique("denied")],
        ["ad", "sp", "list"],
        ["role", "assignment", "create", "--role", "Owner", "--assignee", "owner", "--scope", "/"],
        ["registry", "create", "-n", unique("denied")],
        ["registry", "show", "-n", reg],
        ["registry", "update", "-n", reg, "--sku", "Basic"],
        ["registry", "delete", "-n", reg, "--yes"],
        ["credential", "show", "-n", reg],
        ["credential", "renew", "-n", reg, "--password-name", "password"],
        ["network-rule", "add", "-n", reg, "--ip-address", "198.51.100.1"],
        ["network-rule", "remove", "-n", reg, "--ip-address", "198.51.100.1"],
        ["network-rule", "list", "-n", reg],
        ["scope-map", "create", "-n", "denied-map", "-r", reg, "--repository", "a", "content/read"],
        ["scope-map", "update", "-n", "denied-map", "-r", reg, "--description", "x"],
        ["scope-map", "show", "-n", "denied-map", "-r", reg],
        ["scope-map", "list", "-r", reg],
        ["scope-map", "delete", "-n", "denied-map", "-r", reg, "--yes"],
        ["token", "create", "-n", "denied-token", "-r", reg, "--repository", "a", "content/read"],
        ["token", "update", "-n", "denied-token", "-r", reg, "--status", "disabled"],
        ["token", "show", "-n", "denied-token", "-r", reg],
        ["token", "list", "-r", reg],
        ["token", "delete", "-n", "denied-token", "-r", reg, "--yes"],
        ["token", "credential", "generate", "-n", "denied-token", "-r", reg],
        ["login", "-n", reg],
        ["login", "-n", reg, "--expose-token"],
    ]


# Lists show only what the caller may read: to an identity without roles, nothing.
FILTERED_LISTS = [["role", "assignment", "list"], ["registry", "list"]]


def test_every_command_without_login_asks_to_log_in(
    nobody: Profile, registry: dict[str, Any]
) -> None:
    for command in [["account", "show"], *FILTERED_LISTS, *_commands(registry["name"])]:
        result = nobody(*command)
        assert result.returncode == 1, command
        assert result.error() == "Please run 'haven account login' to set up an account.", command


def test_every_command_of_an_identity_without_roles_prints_the_servers_403(
    stranger: Profile, registry: dict[str, Any], owner: Profile
) -> None:
    owners_assignment = owner.json("role", "assignment", "list", "--assignee", "owner")[0]["id"]
    for command in [
        *_commands(registry["name"]),
        ["role", "assignment", "delete", "--ids", owners_assignment],
    ]:
        result = stranger(*command)
        assert result.returncode == 1, (command, result.stdout)
        assert "does not have authorization" in result.error(), command
    for command in FILTERED_LISTS:
        assert stranger.json(*command) == [], command
    # Deleting by assignee lists first, and the stranger sees no assignment to delete.
    hidden = stranger("role", "assignment", "delete", "--assignee", "owner")
    assert (hidden.returncode, hidden.error()) == (
        3,
        "No matched assignments were found to delete.",
    )
    assert owner.json("role", "assignment", "list", "--assignee", "owner")[0]["id"] == (
        owners_assignment
    )
    assert owner.json("registry", "show", "-n", registry["name"])["sku"]["name"] == "Premium"


MISSING = "nosuch0registry"


@pytest.mark.parametrize(
    "command",
    [
        ["identity", "show", "--id", "no-such-identity"],
        ["identity", "delete", "--id", "no-such-identity"],
        ["identity", "credential", "reset", "--id", "no-such-identity"],
        ["ad", "sp", "show", "--id", "no-such-identity"],
        ["ad", "sp", "delete", "--id", "no-such-identity"],
        ["ad", "sp", "credential", "reset", "--id", "no-such-identity"],
        [
            "role",
            "assignment",
            "create",
            "--role",
            "AcrPull",
            "--assignee",
            "no-such-identity",
            "--scope",
            "/",
        ],
        ["role", "assignment", "delete", "--ids", "00000000-0000-0000-0000-00000000dead"],
        ["role", "assignment", "delete", "--assignee", "no-such-identity"],
        ["registry", "show", "-n", MISSING],
        ["registry", "update", "-n", MISSING, "--sku", "Basic"],
        ["registry", "delete", "-n", MISSING, "--yes"],
        ["credential", "show", "-n", MISSING],
        ["credential", "renew", "-n", MISSING, "--password-name", "password"],
        ["network-rule", "add", "-n", MISSING, "--ip-address", "198.51.100.1"],
        ["network-rule", "list", "-n", MISSING],
        [
            "scope-map",
            "create",
            "-n",
            "some-map",
            "-r",
            MISSING,
            "--repository",
            "a",
            "content/read",
        ],
        ["scope-map", "show", "-n", "no-such-map", "-r", "REGISTRY"],
        ["scope-map", "update", "-n", "no-such-map", "-r", "REGISTRY", "--description", "x"],
        ["scope-map", "delete", "-n", "no-such-map", "-r", "REGISTRY", "--yes"],
        ["scope-map", "list", "-r", MISSING],
        ["token", "create", "-n", "some-token", "-r", "REGISTRY", "--scope-map", "no-such-map"],
        ["token", "show", "-n", "no-such-token", "-r", "REGISTRY"],
        ["token", "update", "-n", "no-such-token", "-r", "REGISTRY", "--status", "enabled"],
        ["token", "delete", "-n", "no-such-token", "-r", "REGISTRY", "--yes"],
        ["token", "credential", "generate", "-n", "no-such-token", "-r", "REGISTRY"],
        ["token", "list", "-r", MISSING],
        ["login", "-n", MISSING],
    ],
    ids=lambda command: " ".join(command[:3]),
)
def test_a_missing_resource_exits_with_code_3(
    owner: Profile, registry: dict[str, Any], command: list[str]
) -> None:
    arguments = [registry["name"] if word == "REGISTRY" else word for word in command]
    result = owner(*arguments)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert result.error()


def test_network_rule_removal_of_an_absent_rule_is_not_found(
    owner: Profile, registry: dict[str, Any]
) -> None:
    result = owner("network-rule", "remove", "-n", registry["name"], "--ip-address", "192.0.2.99")
    assert result.returncode == 3, result.stderr


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["identity", "create"], "Missing option"),
        (["ad", "sp", "create-for-rbac", "--role", "AcrPull"], "--role and --scopes"),
        (["role", "assignment", "delete"], "Give --ids, or --assignee"),
        (["registry", "update", "-n", "x"], "Nothing to update"),
        (["credential", "renew", "-n", "x", "--password-name", "p3"], "Invalid value"),
        (["network-rule", "add", "-n", "x", "--ip-address", "300.1.1.1"], "not an IP address"),
        (
            ["scope-map", "create", "-n", "m", "-r", "x", "--repository", "a", "pull"],
            "not an action",
        ),
        (["token", "create", "-n", "t", "-r", "x"], "exactly one of --scope-map and --repository"),
        (["login", "-n", "x", "-p", "y"], "--password needs --username"),
        (["account", "login", "--server", "ftp://x", "-u", "a", "-p", "b"], "server URL"),
    ],
)
def test_malformed_arguments_are_one_clear_error_with_exit_code_2(
    owner: Profile, command: list[str], message: str
) -> None:
    result = owner(*command)
    assert result.returncode == 2
    assert message in result.error()


# ------------------------------------------------------------------------------- HTTPS


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    base = tmp_path_factory.mktemp("haven-tls")
    certificate = self_signed(base)
    with haven_serve(base, tls=certificate) as running:
        yield running, certificate[0]


def test_https_server_with_a_private_ca(tls_server: tuple[Server, Path], tmp_path: Path) -> None:
    server, ca = tls_server
    me = Profile(tmp_path / "me")
    untrusted = me("account", "login", "--server", server.url, "-u", "owner", "-p", OWNER_PASSWORD)
    assert untrusted.returncode == 1
    assert "--ca-file" in untrusted.error()
    login = me(
        "account",
        "login",
        "--server",
        server.url,
        "-u",
        "owner",
        "-p",
        OWNER_PASSWORD,
        "--ca-file",
        str(ca),
    )
    assert login.json()["name"] == "owner"
    name = unique("tls")
    created = me.json("registry", "create", "-n", name)
    assert me("login", "-n", name).returncode == 0
    assert me.docker_auth(created["loginServer"])[0] == REFRESH_TOKEN_USER


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_https_server_trusted_through_the_environment(
    tls_server: tuple[Server, Path], tmp_path: Path, variable: str
) -> None:
    server, ca = tls_server
    me = Profile(tmp_path / "me")
    me.env[variable] = str(ca)
    login = me("account", "login", "--server", server.url, "-u", "owner", "-p", OWNER_PASSWORD)
    assert login.json()["name"] == "owner"
    assert me("registry", "list", "-o", "none").returncode == 0
