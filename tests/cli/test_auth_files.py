"""docker's and podman's credential files: where they are and how logins merge into them."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from haven.cli.auth_files import (
    containers_auth_path,
    decode_auth,
    docker_config_path,
    encode_auth,
    save_containers_login,
    save_docker_login,
)
from haven.cli.errors import CliError


def test_docker_config_is_in_home_unless_docker_config_is_set(home: Path) -> None:
    assert docker_config_path({}) == home / ".docker" / "config.json"
    assert docker_config_path({"DOCKER_CONFIG": "/d"}) == Path("/d/config.json")


def test_containers_auth_file_follows_containers_auth_json_5(home: Path) -> None:
    assert containers_auth_path({"REGISTRY_AUTH_FILE": "/a.json", "XDG_RUNTIME_DIR": "/r"}) == Path(
        "/a.json"
    )
    assert containers_auth_path({"XDG_RUNTIME_DIR": "/run/user/7"}) == Path(
        "/run/user/7/containers/auth.json"
    )
    assert containers_auth_path({}) == home / ".config" / "containers" / "auth.json"


def test_auth_is_base64_of_user_colon_password() -> None:
    value = encode_auth("00000000-0000-0000-0000-000000000000", "tok:en")
    assert decode_auth(value) == ("00000000-0000-0000-0000-000000000000", "tok:en")


def test_login_creates_the_file_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "config.json"
    assert save_docker_login("reg.example.com", "u", "p", path) is None
    assert json.loads(path.read_text()) == {
        "auths": {"reg.example.com": {"auth": encode_auth("u", "p")}}
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_login_keeps_other_servers_and_settings_and_replaces_its_own_entry(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "other.example.com": {"auth": "b3RoZXI6c2VjcmV0"},
                    "reg.example.com": {"auth": "old", "identitytoken": "stale"},
                },
                "psFormat": "table {{.ID}}",
                "proxies": {"default": {"httpProxy": "http://proxy"}},
            }
        )
    )
    save_docker_login("reg.example.com", "u", "p", path)
    data = json.loads(path.read_text())
    assert data["auths"]["other.example.com"] == {"auth": "b3RoZXI6c2VjcmV0"}
    assert data["auths"]["reg.example.com"] == {"auth": encode_auth("u", "p")}
    assert data["psFormat"] == "table {{.ID}}"
    assert data["proxies"] == {"default": {"httpProxy": "http://proxy"}}


def test_containers_login_merges_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "containers" / "auth.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"auths": {"quay.io": {"auth": "eA=="}}}))
    save_containers_login("127.0.0.1:5000", "u", "p", path)
    assert json.loads(path.read_text())["auths"] == {
        "quay.io": {"auth": "eA=="},
        "127.0.0.1:5000": {"auth": encode_auth("u", "p")},
    }


def test_empty_file_is_treated_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text("")
    save_containers_login("r", "u", "p", path)
    assert json.loads(path.read_text()) == {"auths": {"r": {"auth": encode_auth("u", "p")}}}


@pytest.mark.parametrize("content", ["{oops", '["list"]'])
def test_a_corrupt_file_is_reported_and_not_overwritten(tmp_path: Path, content: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(CliError, match=str(path)):
        save_docker_login("r", "u", "p", path)
    assert path.read_text() == content


def _fake_helper(directory: Path, name: str, exit_code: int = 0) -> Path:
    received = directory / f"{name}.stdin"
    helper = directory / f"docker-credential-{name}"
    helper.write_text(
        f'#!/bin/sh\n[ "$1" = store ] || exit 9\ncat > {received}\nexit {exit_code}\n'
    )
    helper.chmod(0o755)
    return received


def test_a_configured_credential_helper_receives_the_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received = _fake_helper(tmp_path, "fake")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credsStore": "fake"}))
    assert save_docker_login("reg.example.com", "u", "p", path) is None
    assert json.loads(received.read_text()) == {
        "ServerURL": "reg.example.com",
        "Username": "u",
        "Secret": "p",
    }
    data = json.loads(path.read_text())
    assert data["auths"] == {"reg.example.com": {}}
    assert data["credsStore"] == "fake"


def test_a_per_server_helper_wins_over_the_default_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received = _fake_helper(tmp_path, "special")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credsStore": "absent", "credHelpers": {"r": "special"}}))
    save_docker_login("r", "u", "p", path)
    assert received.exists()


def test_a_failing_helper_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_helper(tmp_path, "broken", exit_code=1)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credsStore": "broken"}))
    with pytest.raises(CliError, match="docker-credential-broken"):
        save_docker_login("r", "u", "p", path)


def test_a_missing_helper_falls_back_to_the_file_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credsStore": "no-such-helper-here"}))
    warning = save_docker_login("r", "u", "p", path)
    assert warning is not None and "no-such-helper-here" in warning
    assert json.loads(path.read_text())["auths"]["r"] == {"auth": encode_auth("u", "p")}
