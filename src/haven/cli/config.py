"""The CLI's own state: which Haven server it talks to, and the tokens that sign it in.

Kept in `~/.haven/config.json` (`$HAVEN_CONFIG_DIR/config.json` when set), readable by its
owner only because the refresh token in it is a credential. The password given to
`haven account login` is never written.
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


def config_dir() -> Path:
    configured = os.environ.get("HAVEN_CONFIG_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".haven"


@dataclass
class CliConfig:
    server: str | None = None
    ca_file: str | None = None
    username: str | None = None
    refresh_token: str | None = None
    access_token: str | None = None
    access_token_expires_at: float | None = None
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
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CliConfig:
        known = {attribute: data.get(key) for attribute, key in _FIELDS.items()}
        extra = {key: value for key, value in data.items() if key not in _FIELDS.values()}
        expires = known["access_token_expires_at"]
        known["access_token_expires_at"] = (
            float(expires) if isinstance(expires, (int, float)) else None
        )
        for attribute in ("server", "ca_file", "username", "refresh_token", "access_token"):
            if not isinstance(known[attribute], str):
                known[attribute] = None
        return cls(**known, extra=extra)

    def forget_credentials(self) -> None:
        self.refresh_token = None
        self.access_token = None
        self.access_token_expires_at = None
        self.username = None


class ConfigStore:
    """Loads and atomically saves one `config.json`."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else config_dir()

    @property
    def path(self) -> Path:
        return self.directory / CONFIG_FILE_NAME

    def load(self) -> CliConfig:
        """The stored configuration (empty when there is no file yet).

        Raises CliError when the file cannot be read or is not a JSON object, naming it, so
        that the user can repair or delete it; it is never silently overwritten.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return CliConfig()
        except OSError as error:
            raise CliError(f"Cannot read {self.path}: {error.strerror or error}") from error
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as error:
            raise CliError(
                f"{self.path} is not valid JSON ({error.msg}, line {error.lineno}); "
                "fix it, or delete it and run 'haven account login' again."
            ) from error
        if not isinstance(data, dict):
            raise CliError(f"{self.path} must hold a JSON object; delete it and log in again.")
        return CliConfig.from_json(data)

    def save(self, config: CliConfig) -> None:
        write_private_json(self.path, config.to_json())


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
