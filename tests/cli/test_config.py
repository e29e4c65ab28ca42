"""The CLI's config file: where it lives, what it holds, how it is written."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from haven.cli.config import CliConfig, ConfigStore, config_dir
from haven.cli.errors import CliError


def test_default_location_is_the_xdg_config_directory(home: Path) -> None:
    assert config_dir() == home / ".config" / "haven"
    assert ConfigStore().path == home / ".config" / "haven" / "config.json"


def test_xdg_config_home_is_honoured_when_absolute(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert ConfigStore().path == tmp_path / "xdg" / "haven" / "config.json"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")  # ignored, as the XDG spec says
    assert ConfigStore().path == home / ".config" / "haven" / "config.json"


def test_a_config_in_the_old_location_is_read_then_moved(home: Path) -> None:
    legacy = home / ".haven" / "config.json"
    legacy.parent.mkdir()
    legacy.write_text(json.dumps({"server": "https://h", "refreshToken": "r"}))
    store = ConfigStore()
    config = store.load()
    assert (config.server, config.refresh_token) == ("https://h", "r")
    store.save(config)
    assert json.loads(store.path.read_text())["refreshToken"] == "r"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert not legacy.exists() and not legacy.parent.exists()


def test_the_new_location_wins_over_the_old_one(home: Path) -> None:
    legacy = home / ".haven" / "config.json"
    legacy.parent.mkdir()
    legacy.write_text(json.dumps({"server": "https://old"}))
    ConfigStore().save(CliConfig(server="https://new"))
    assert ConfigStore().load().server == "https://new"
    assert legacy.exists()  # not the file the new one came from: left alone


def test_defaults_round_trip_and_bad_ones_are_dropped(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.save(CliConfig(defaults={"acr": "myregistry"}))
    assert json.loads(store.path.read_text()) == {"defaults": {"acr": "myregistry"}}
    assert store.load().defaults == {"acr": "myregistry"}
    store.path.write_text(json.dumps({"defaults": {"acr": 5, "x": "", "y": "z"}}))
    assert store.load().defaults == {"y": "z"}


def test_haven_config_dir_overrides_the_location(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAVEN_CONFIG_DIR", str(tmp_path / "elsewhere"))
    assert ConfigStore().path == tmp_path / "elsewhere" / "config.json"


def test_missing_file_is_an_empty_config(tmp_path: Path) -> None:
    assert ConfigStore(tmp_path / "none").load() == CliConfig()


def test_saved_file_is_owner_only_in_an_owner_only_directory(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "cfg")
    store.save(CliConfig(server="https://h", refresh_token="r"))
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert json.loads(store.path.read_text()) == {"server": "https://h", "refreshToken": "r"}


def test_round_trip_keeps_every_field_and_unknown_ones(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.path.write_text(json.dumps({"server": "https://h", "futureField": [1, 2]}))
    config = store.load()
    config.refresh_token = "r"
    config.access_token = "a"
    config.access_token_expires_at = 12.5
    config.ca_file = "/ca.pem"
    config.username = "owner"
    store.save(config)
    assert store.load() == config
    assert json.loads(store.path.read_text())["futureField"] == [1, 2]


def test_forgetting_credentials_keeps_the_server(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    config = CliConfig(server="https://h", refresh_token="r", access_token="a", username="u")
    config.forget_credentials()
    store.save(config)
    assert json.loads(store.path.read_text()) == {"server": "https://h"}


def test_wrongly_typed_fields_are_ignored(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.path.write_text(json.dumps({"server": 5, "accessTokenExpiresAt": "soon"}))
    assert store.load() == CliConfig()


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_corrupt_file_is_reported_and_left_alone(tmp_path: Path, content: str) -> None:
    store = ConfigStore(tmp_path)
    store.path.write_text(content)
    with pytest.raises(CliError, match=str(store.path)):
        store.load()
    assert store.path.read_text() == content


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    for number in range(3):
        store.save(CliConfig(server=f"https://h{number}"))
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
