"""The CLI's own state: which Haven server it talks to, the tokens that sign it in, and the
defaults set with `haven configure --defaults`.

Kept in `$HAVEN_CONFIG_DIR/config.json` when that is set, else
`$XDG_CONFIG_HOME/haven/config.json`, else `~/.config/haven/config.json`; readable by its
owner only (0600, in a 0700 directory) because the refresh token in it is a credential.
The password given to `haven account login` is never written. A config left in the old
location, `~/.haven/config.json`, is read when there is none in the new one and moved
there on the next save.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from haven.cli.errors import CliError

CONFIG_FILE_NAME = "config.json"

# The JSON field that holds each attribute; other fields in the file are kept as they are.
_FIELDS = {
    "server": "server",
    "ca_file": "caFile",
    "username": "username",
    "refresh_token": "refreshToken",
    "access_token": "accessToken",
    "access_token_expires_at": "accessTokenExpiresAt",
}
_DEFAULTS_FIELD = "defaults"


LEGACY_DIRECTORY_NAME = ".haven"


def config_dir() -> Path:
    """Where the config lives: $HAVEN_CONFIG_DIR, else the XDG config directory's `haven`."""
    configured = os.environ.get("HAVEN_CONFIG_DIR")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    # The XDG base directory spec ignores a relative XDG_CONFIG_HOME.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "haven"


def legacy_config_path() -> Path | None:
    """The config file of CLI versions that kept it in ~/.haven, unless HAVEN_CONFIG_DIR is set."""
    if os.environ.get("HAVEN_CONFIG_DIR"):
        return None
    return Path.home() / LEGACY_DIRECTORY_NAME / CONFIG_FILE_NAME


@dataclass
class CliConfig:
    server: str | None = None
    ca_file: str | None = None
    username: str | None = None
    refresh_token: str | None = None
    access_token: str | None = None
    access_token_expires_at: float | None = None
    # `haven configure --defaults acr=NAME`: argument defaults, by az's names.
    defaults: dict[str, str] = field(default_factory=dict)
    # Fields this version does not know, written by another one: preserved on save.
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = dict(self.extra)
        for attribute, key in _FIELDS.items():
            value = getattr(self, attribute)
            if value is not None:
                data[key] = value
            else:
                data.pop(key, None)
        if self.defaults:
            data[_DEFAULTS_FIELD] = dict(sorted(self.defaults.items()))
        else:
            data.pop(_DEFAULTS_FIELD, None)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CliConfig:
        known = {attribute: data.get(key) for attribute, key in _FIELDS.items()}
        reserved = {*_FIELDS.values(), _DEFAULTS_FIELD}
        extra = {key: value for key, value in data.items() if key not in reserved}
        stored = data.get(_DEFAULTS_FIELD)
        defaults = (
            {k: v for k, v in stored.items() if isinstance(k, str) and isinstance(v, str) and v}
            if isinstance(stored, dict)
            else {}
        )
        expires = known["access_token_expires_at"]
        known["access_token_expires_at"] = (
            float(expires) if isinstance(expires, (int, float)) else None
        )
        for attribute in ("server", "ca_file", "username", "refresh_token", "access_token"):
            if not isinstance(known[attribute], str):
                known[attribute] = None
        return cls(**known, defaults=defaults, extra=extra)

    def forget_credentials(self) -> None:
        self.refresh_token = None
        self.access_token = None
        self.access_token_expires_at = None
        self.username = None


class ConfigStore:
    """Loads and atomically saves one `config.json`.

    A store made without a directory uses `config_dir()`, and reads the legacy
    `~/.haven/config.json` while the new file does not exist; saving what was read from it
    writes the new file and removes the legacy one, so the refresh token is kept in one
    place only.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else config_dir()
        self.legacy_path = legacy_config_path() if directory is None else None
        self._loaded_from: Path | None = None

    @property
    def path(self) -> Path:
        return self.directory / CONFIG_FILE_NAME

    def _source(self) -> Path:
        legacy = self.legacy_path
        if legacy is not None and not self.path.exists() and legacy.is_file():
            return legacy
        return self.path

    def load(self) -> CliConfig:
        """The stored configuration (empty when there is no file yet).

        Raises CliError when the file cannot be read or is not a JSON object, naming it, so
        that the user can repair or delete it; it is never silently overwritten.
        """
        source = self._loaded_from = self._source()
        try:
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError:
            return CliConfig()
        except OSError as error:
            raise CliError(f"Cannot read {source}: {error.strerror or error}") from error
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as error:
            raise CliError(
                f"{source} is not valid JSON ({error.msg}, line {error.lineno}); "
                "fix it, or delete it and run 'haven account login' again."
            ) from error
        if not isinstance(data, dict):
            raise CliError(f"{source} must hold a JSON object; delete it and log in again.")
        return CliConfig.from_json(data)

    def save(self, config: CliConfig) -> None:
        write_private_json(self.path, config.to_json())
        if self.legacy_path is not None and self._loaded_from == self.legacy_path:
            self._loaded_from = self.path
            with contextlib.suppress(OSError):
                self.legacy_path.unlink()
                self.legacy_path.parent.rmdir()  # only when nothing else is in it


def write_private_json(path: Path, data: Any) -> None:
    """Replace `path` atomically with `data` as JSON, readable by its owner only (0600).

    A new parent directory is created owner-only (0700). The file is written beside its
    destination, flushed to disk and renamed over it, so a crash leaves the old or the new
    file, never half of one.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as error:
        raise CliError(f"Cannot write {path}: {error.strerror or error}") from error
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise CliError(f"Cannot write {path}: {error.strerror or error}") from error
