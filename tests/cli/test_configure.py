"""`haven configure --defaults`, signing in through HAVEN_SERVER/HAVEN_USERNAME/HAVEN_PASSWORD,
`account login --service-principal`, and `haven completion`."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Haven
from .fake_haven import OWNER, OWNER_PASSWORD, FakeHaven
from .test_commands import one_error_line


def config_path(home: Path) -> Path:
    return home / ".config" / "haven" / "config.json"


# ------------------------------------------------------------------------ configure


def test_a_default_registry_lets_every_registry_option_be_left_out(
    haven: Haven, registry: FakeHaven, home: Path
) -> None:
    registry.route("GET", "/acr/v1/_catalog", {"repositories": ["a"]})
    registry.route("GET", "/api/registries/reg/usages", {"value": []})
    registry.route("GET", "/api/registries/reg/tokens", [])
    done = haven("configure", "--defaults", "acr=reg")
    assert (done.exit_code, done.stdout, done.stderr) == (0, "", "")
    assert json.loads(config_path(home).read_text())["defaults"] == {"acr": "reg"}
    assert stat.S_IMODE(config_path(home).stat().st_mode) == 0o600
    assert json.loads(haven("repository", "list").stdout) == ["a"]
    assert haven("show-usage").exit_code == 0
    assert haven("token", "list").exit_code == 0
    assert haven("registry", "show").exit_code == 0
    assert registry.last("GET", "/api/registries/reg/tokens")
    # An explicit name still wins.
    assert haven("repository", "list", "-n", "other").exit_code == 3
    listed = haven("configure", "--list-defaults")
    assert json.loads(listed.stdout) == [
        {"name": "acr", "source": str(config_path(home)), "value": "reg"}
    ]
    assert json.loads(haven("configure").stdout) == json.loads(listed.stdout)
    # az's way to remove a default: an empty value.
    assert haven("configure", "-d", "acr=").exit_code == 0
    refused = haven("repository", "list")
    assert refused.exit_code == 2
    assert "Missing option '--name' / '-n'" in one_error_line(refused.stderr)
    assert "defaults" not in json.loads(config_path(home).read_text())


def test_configure_keeps_the_login_and_warns_about_unknown_keys(
    haven: Haven, logged_in: FakeHaven, home: Path
) -> None:
    before = json.loads(config_path(home).read_text())
    result = haven("configure", "--defaults", "acr=reg", "group=rg")
    assert "WARNING: 'group' is stored, but no haven command uses it" in result.stderr
    after = json.loads(config_path(home).read_text())
    assert after["refreshToken"] == before["refreshToken"]
    assert after["defaults"] == {"acr": "reg", "group": "rg"}
    bad = haven("configure", "--defaults", "acr")
    assert bad.exit_code == 2
    assert "'acr' is not KEY=VALUE" in one_error_line(bad.stderr)


def test_configure_works_before_any_login(haven: Haven, home: Path) -> None:
    assert haven("configure", "--defaults", "acr=reg").exit_code == 0
    result = haven("repository", "list")
    assert one_error_line(result.stderr) == "Please run 'haven account login' to set up an account."


# ------------------------------------------------------------------------ environment login


@pytest.fixture
def environment(fake: FakeHaven, monkeypatch: pytest.MonkeyPatch) -> FakeHaven:
    fake.route("GET", "/api/me", {"id": "id-owner", "name": OWNER, "kind": "user"})
    monkeypatch.setenv("HAVEN_SERVER", fake.url)
    monkeypatch.setenv("HAVEN_USERNAME", OWNER)
    monkeypatch.setenv("HAVEN_PASSWORD", OWNER_PASSWORD)
    return fake


def test_the_environment_signs_a_script_in_and_writes_nothing(
    haven: Haven, environment: FakeHaven, home: Path
) -> None:
    environment.serve_registry()
    environment.route("GET", "/acr/v1/_catalog", {"repositories": ["x"]})
    result = haven("account", "show")
    assert json.loads(result.stdout)["name"] == OWNER
    assert json.loads(haven("repository", "list", "-n", "reg").stdout) == ["x"]
    grants = [r.form() for r in environment.requests if r.path == "/oauth2/token"]
    assert grants[0] == {
        "grant_type": "password",
        "username": OWNER,
        "password": OWNER_PASSWORD,
        "service": "management",
    }
    assert not config_path(home).exists()


def test_the_environment_wins_over_a_stored_login(
    haven: Haven, environment: FakeHaven, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAVEN_PASSWORD", "wrong")
    stored = haven(
        "account", "login", "--server", environment.url, "-u", OWNER, "-p", OWNER_PASSWORD
    )
    assert stored.exit_code == 0, stored.stderr  # an explicit login ignores the environment
    result = haven("account", "show")
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == (
        f"{environment.url} refused HAVEN_USERNAME and HAVEN_PASSWORD: invalid username or password"
    )
    monkeypatch.delenv("HAVEN_SERVER")
    monkeypatch.delenv("HAVEN_USERNAME")
    monkeypatch.delenv("HAVEN_PASSWORD")
    assert haven("account", "show").exit_code == 0  # the stored login is still there


@pytest.mark.parametrize("missing", ["HAVEN_SERVER", "HAVEN_USERNAME", "HAVEN_PASSWORD"])
def test_a_partial_environment_is_refused(
    haven: Haven, environment: FakeHaven, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.delenv(missing)
    result = haven("account", "show")
    assert result.exit_code == 1
    assert one_error_line(result.stderr).startswith(f"{missing} not set: set HAVEN_SERVER,")
    assert environment.requests == []


def test_a_bad_haven_server_is_refused(
    haven: Haven, environment: FakeHaven, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAVEN_SERVER", "ftp://x")
    assert one_error_line(haven("account", "show").stderr).startswith("HAVEN_SERVER: ")


# ------------------------------------------------------------------------ service principal


def test_service_principal_login(haven: Haven, fake: FakeHaven, home: Path) -> None:
    fake.route("GET", "/api/me", {"id": "id-owner", "name": OWNER, "kind": "servicePrincipal"})
    args = ["account", "login", "--service-principal", "-s", fake.url, "-u", OWNER]
    result = haven(*args, "-p", OWNER_PASSWORD)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["kind"] == "servicePrincipal"


def test_service_principal_login_of_a_user_is_refused_and_keeps_the_old_login(
    haven: Haven, logged_in: FakeHaven, home: Path
) -> None:
    before = config_path(home).read_text()
    result = haven(
        "account", "login", "--service-principal", "-s", logged_in.url, "-u", OWNER,
        "-p", OWNER_PASSWORD,
    )  # fmt: skip
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == (
        "'owner' is a user, not a service principal; drop --service-principal to sign in as it."
    )
    assert config_path(home).read_text() == before


# ------------------------------------------------------------------------ completion


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "complete -o nosort -F"), ("zsh", "#compdef haven"), ("fish", "complete --no-files")],
)
def test_completion_prints_clicks_script(haven: Haven, shell: str, marker: str) -> None:
    result = haven("completion", shell)
    assert result.exit_code == 0
    assert marker in result.stdout and "_HAVEN_COMPLETE" in result.stdout


def test_completion_of_an_unknown_shell(haven: Haven) -> None:
    result = haven("completion", "tcsh")
    assert result.exit_code == 2
    assert "Invalid value for '{bash|zsh|fish}'" in result.stderr


def test_the_completion_script_completes_commands_and_options(home: Path) -> None:
    env = {
        **os.environ,
        "HOME": str(home),
        "_HAVEN_COMPLETE": "bash_complete",
        "COMP_WORDS": "haven repository show-m",
        "COMP_CWORD": "2",
    }
    done = subprocess.run(
        [sys.executable, "-c", "from haven.cli import main; main()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.split() == ["plain,show-manifests"], done.stderr
    env["COMP_WORDS"], env["COMP_CWORD"] = "haven repository delete --ima", "3"
    done = subprocess.run(
        [sys.executable, "-c", "from haven.cli import main; main()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.split() == ["plain,--image"]
