"""Fixtures for the CLI's tests: an isolated home directory, a fake server, an invoker."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from haven.cli import cli
from haven.cli.command import run

from .fake_haven import OWNER, OWNER_PASSWORD, FakeHaven, running

ISOLATED_VARIABLES = (
    "HAVEN_CONFIG_DIR",
    "XDG_CONFIG_HOME",
    "HAVEN_SERVER",
    "HAVEN_USERNAME",
    "HAVEN_PASSWORD",
    "HAVEN_CORE_OUTPUT",
    "DOCKER_CONFIG",
    "REGISTRY_AUTH_FILE",
    "XDG_RUNTIME_DIR",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
)

Haven = Callable[..., Result]


class _Main(click.Command):
    """Runs `haven` as the console script does (az-style errors and exit codes)."""

    def main(self, args: Sequence[str] | None = None, *_: Any, **__: Any) -> Any:  # type: ignore[override]
        run(cli, list(args or ()))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME; no variable from the caller redirects the CLI's files."""
    directory = tmp_path / "home"
    directory.mkdir()
    monkeypatch.setenv("HOME", str(directory))
    for variable in ISOLATED_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return directory


@pytest.fixture
def fake() -> Iterator[FakeHaven]:
    yield from running()


@pytest.fixture
def haven(home: Path) -> Haven:
    """`haven(*args, input=None)`: run the CLI in-process; stdout and stderr kept apart."""

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(_Main("haven"), list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def registry(logged_in: FakeHaven) -> FakeHaven:
    """`logged_in`, serving registry `reg` as login server `reg.example.com` (which does not
    resolve, so the CLI reaches it through the server URL with a Host header)."""
    logged_in.serve_registry("reg", "reg.example.com")
    return logged_in


@pytest.fixture
def logged_in(fake: FakeHaven, haven: Haven) -> FakeHaven:
    """The CLI signed in to `fake` as the owner."""
    fake.route("GET", "/api/me", {"id": "id-owner", "name": OWNER, "kind": "user"})
    result = haven("account", "login", "--server", fake.url, "-u", OWNER, "-p", OWNER_PASSWORD)
    assert result.exit_code == 0, result.stderr
    return fake
