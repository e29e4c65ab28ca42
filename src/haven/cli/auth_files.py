"""Registry credentials for docker and podman, written the way `docker login` writes them.

- docker: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`;
  `auths[<login server>] = {"auth": base64("user:password")}`. When the file names a
  credential helper (`credHelpers[<server>]`, else `credsStore`), docker reads credentials
  from that helper only, so they are handed to `docker-credential-<helper> store`.
- podman, buildah, skopeo (containers-auth.json(5)): `$REGISTRY_AUTH_FILE`, else
  `$XDG_RUNTIME_DIR/containers/auth.json`, else `~/.config/containers/auth.json`; same
  `auths` layout.

Every other entry and setting in those files is kept; only the login server's entry is
replaced. A file that is not valid JSON is reported, never overwritten.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from haven.cli.config import write_private_json
from haven.cli.errors import CliError


def docker_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    directory = env.get("DOCKER_CONFIG")
    base = Path(directory).expanduser() if directory else Path.home() / ".docker"
    return base / "config.json"


def containers_auth_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("REGISTRY_AUTH_FILE"):
        return Path(env["REGISTRY_AUTH_FILE"]).expanduser()
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
    return Path.home() / ".config" / "containers" / "auth.json"


def encode_auth(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def decode_auth(value: str) -> tuple[str, str]:
    username, _, password = base64.b64decode(value).decode().partition(":")
    return username, password


def read_auth_file(path: Path) -> dict[str, Any]:
    """The JSON object in `path` ({} when it does not exist or is empty).

    Raises CliError when it cannot be read or holds anything but a JSON object.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise CliError(f"Cannot read {path}: {error.strerror or error}") from error
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(
            f"{path} is not valid JSON ({error.msg}, line {error.lineno}); "
            "fix it or move it away, then log in again."
        ) from error
    if not isinstance(data, dict):
        raise CliError(f"{path} must hold a JSON object; fix it or move it away.")
    return data


def merge_auth(data: dict[str, Any], server: str, auth_entry: dict[str, Any]) -> dict[str, Any]:
    """`data` with `auths[server]` replaced by `auth_entry` and everything else kept."""
    auths = data.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    merged = dict(data)
    merged["auths"] = {**auths, server: auth_entry}
    return merged


def credential_helper(data: Mapping[str, Any], server: str) -> str | None:
    """The credential helper docker would use for `server`, if the file names one."""
    helpers = data.get("credHelpers")
    if isinstance(helpers, dict) and isinstance(helpers.get(server), str) and helpers[server]:
        return str(helpers[server])
    store = data.get("credsStore")
    return store if isinstance(store, str) and store else None


def store_with_helper(helper: str, server: str, username: str, password: str) -> bool:
    """Hand the credentials to `docker-credential-<helper> store`; False if it is absent.

    Raises CliError when the helper exists but refuses them.
    """
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        return False
    request = json.dumps({"ServerURL": server, "Username": username, "Secret": password})
    try:
        completed = subprocess.run(
            [program, "store"],
            input=request.encode(),
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise CliError(f"docker-credential-{helper} failed: {error}") from error
    if completed.returncode != 0:
        reason = (completed.stdout or completed.stderr).decode(errors="replace").strip()
        raise CliError(f"docker-credential-{helper} could not store the credentials: {reason}")
    return True


def save_docker_login(
    server: str, username: str, password: str, path: Path | None = None
) -> str | None:
    """Make docker use these credentials for `server`.

    Returns a warning to show the user, or None. Raises CliError when the file cannot be
    read or written.
    """
    target = path or docker_config_path()
    data = read_auth_file(target)
    helper = credential_helper(data, server)
    warning = None
    if helper is not None:
        if store_with_helper(helper, server, username, password):
            # docker leaves an empty entry beside the helper's, so that the server is listed.
            write_private_json(target, merge_auth(data, server, {}))
            return None
        warning = (
            f"{target} names the credential helper '{helper}', but docker-credential-{helper} "
            "is not installed; the credentials were written to the file instead."
        )
    write_private_json(target, merge_auth(data, server, {"auth": encode_auth(username, password)}))
    return warning


def save_containers_login(
    server: str, username: str, password: str, path: Path | None = None
) -> None:
    """Make podman, buildah and skopeo use these credentials for `server`."""
    target = path or containers_auth_path()
    data = read_auth_file(target)
    write_private_json(target, merge_auth(data, server, {"auth": encode_auth(username, password)}))
