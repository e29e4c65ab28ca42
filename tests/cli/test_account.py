"""`haven account login|show|logout`, the token cache, `--debug` and TLS, against a fake server."""

from __future__ import annotations

import importlib
import json
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from .certificates import self_signed
from .conftest import Haven
from .fake_haven import OWNER, OWNER_PASSWORD, Answer, FakeHaven, error, running

ME = {"id": "id-owner", "name": OWNER, "kind": "user"}


def config(home: Path) -> dict[str, object]:
    return json.loads((home / ".config" / "haven" / "config.json").read_text())


def login(haven: Haven, fake: FakeHaven, *extra: str, password: str = OWNER_PASSWORD):  # type: ignore[no-untyped-def]
    return haven("account", "login", "--server", fake.url, "-u", OWNER, "-p", password, *extra)


# ------------------------------------------------------------------------------ login


def test_login_keeps_server_and_refresh_token_never_the_password(
    haven: Haven, fake: FakeHaven, home: Path
) -> None:
    fake.route("GET", "/api/me", ME)
    result = login(haven, fake)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == ME
    token_request = fake.last("POST", "/oauth2/token").form()
    assert token_request == {
        "grant_type": "password",
        "username": OWNER,
        "password": OWNER_PASSWORD,
        "service": "management",
        "access_type": "offline",
    }
    stored = config(home)
    assert stored["server"] == fake.url
    assert stored["refreshToken"] == "refresh-1"
    assert OWNER_PASSWORD not in (home / ".config" / "haven" / "config.json").read_text()
    assert stat.S_IMODE((home / ".config" / "haven" / "config.json").stat().st_mode) == 0o600


def test_login_reads_the_password_from_stdin(haven: Haven, fake: FakeHaven) -> None:
    fake.route("GET", "/api/me", ME)
    result = haven(
        "account", "login", "--server", fake.url, "-u", OWNER, "--password-stdin",
        input=OWNER_PASSWORD + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert fake.last("POST", "/oauth2/token").form()["password"] == OWNER_PASSWORD


def test_login_with_a_wrong_password_prints_the_server_message_and_stores_nothing(
    haven: Haven, fake: FakeHaven, home: Path
) -> None:
    result = login(haven, fake, password="wrong")
    assert result.exit_code == 1
    assert result.stderr == "ERROR: invalid username or password\n"
    assert result.stdout == ""
    assert not (home / ".config" / "haven" / "config.json").exists()


def test_a_failed_login_keeps_the_previous_one(
    haven: Haven, logged_in: FakeHaven, home: Path
) -> None:
    before = config(home)
    assert login(haven, logged_in, password="wrong").exit_code == 1
    assert config(home) == before
    assert haven("account", "show").exit_code == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["-u", OWNER, "-p", "x"], "Missing option '--server'"),
        (["--server", "http://h", "-p", "x"], "Missing option '--username'"),
        (["--server", "http://h", "-u", OWNER], "no tty to prompt on"),
        (
            ["--server", "http://h", "-u", OWNER, "-p", "x", "--password-stdin"],
            "mutually exclusive",
        ),
        (["--server", "ftp://h", "-u", OWNER, "-p", "x"], "not an http:// or https:// server URL"),
        (["--server", "http://", "-u", OWNER, "-p", "x"], "not an http:// or https:// server URL"),
        (["--server", "http://h", "-u", OWNER, "-p", ""], "must not be empty"),
        (
            ["--server", "http://h", "-u", OWNER, "-p", "x", "--ca-file", "/no/such.pem"],
            "does not exist",
        ),
        (["--server", "http://h", "-u", OWNER, "-p", "x", "--bogus"], "No such option"),
    ],
)
def test_login_rejects_malformed_arguments(
    haven: Haven, arguments: list[str], message: str
) -> None:
    result = haven("account", "login", *arguments, input="")
    assert result.exit_code == 2
    assert result.stderr.startswith("ERROR: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_login_to_an_unreachable_server_is_one_error_line(haven: Haven) -> None:
    result = haven("account", "login", "--server", "http://127.0.0.1:9", "-u", "u", "-p", "p")
    assert result.exit_code == 1
    assert result.stderr.startswith("ERROR: Cannot connect to http://127.0.0.1:9")
    assert result.stderr.count("\n") == 1


def test_a_server_url_without_scheme_means_https(haven: Haven, fake: FakeHaven) -> None:
    result = haven("account", "login", "--server", fake.address, "-u", OWNER, "-p", "x")
    # The fake speaks plain HTTP, so an https:// attempt must fail at the TLS layer.
    assert result.exit_code == 1
    assert f"https://{fake.address}" in result.stderr


# ------------------------------------------------------------------------------ show, tokens


def test_show_without_login_asks_to_log_in(haven: Haven) -> None:
    result = haven("account", "show")
    assert result.exit_code == 1
    assert result.stderr == "ERROR: Please run 'haven account login' to set up an account.\n"


def test_the_access_token_is_cached_between_commands(haven: Haven, logged_in: FakeHaven) -> None:
    before = len([r for r in logged_in.requests if r.path == "/oauth2/token"])
    for _ in range(3):
        assert haven("account", "show").exit_code == 0
    assert len([r for r in logged_in.requests if r.path == "/oauth2/token"]) == before
    assert logged_in.last("GET", "/api/me").headers["authorization"] == "Bearer access-1"


def test_an_expired_access_token_is_renewed_with_the_refresh_token(
    haven: Haven, logged_in: FakeHaven, home: Path
) -> None:
    path = home / ".config" / "haven" / "config.json"
    stored = config(home)
    stored["accessTokenExpiresAt"] = 0
    path.write_text(json.dumps(stored))
    assert haven("account", "show").exit_code == 0
    assert logged_in.last("POST", "/oauth2/token").form() == {
        "grant_type": "refresh_token",
        "refresh_token": "refresh-1",
        "service": "management",
    }
    assert logged_in.last("GET", "/api/me").headers["authorization"] == "Bearer access-2"
    assert config(home)["accessToken"] == "access-2"
    assert config(home)["refreshToken"] == "refresh-1"


def test_a_rejected_cached_token_is_renewed_and_the_request_retried_once(
    haven: Haven, logged_in: FakeHaven
) -> None:
    logged_in.revoke_access_tokens()
    result = haven("account", "show")
    assert result.exit_code == 0, result.stderr
    assert [r.headers.get("authorization") for r in logged_in.api_requests()][-2:] == [
        "Bearer access-1",
        "Bearer access-2",
    ]


def test_a_revoked_refresh_token_asks_to_log_in_again(haven: Haven, logged_in: FakeHaven) -> None:
    logged_in.revoke_access_tokens()
    logged_in.refresh_tokens.clear()
    result = haven("account", "show")
    assert result.exit_code == 1
    assert "run 'haven account login' again" in result.stderr
    assert "the refresh token is expired or revoked" in result.stderr


def test_logout_forgets_the_tokens(haven: Haven, logged_in: FakeHaven, home: Path) -> None:
    result = haven("account", "logout")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert config(home) == {"server": logged_in.url}
    assert haven("account", "show").exit_code == 1
    again = haven("account", "logout")
    assert again.exit_code == 1
    assert again.stderr.startswith("ERROR: There is no active account")


# ------------------------------------------------------------------------------ errors, output


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (error(403, "DENIED", "owner lacks Owner at /"), "owner lacks Owner at /"),
        (Answer(400, {"error": "invalid_request", "error_description": "bad scope"}), "bad scope"),
        (Answer(403, {"errors": [{"code": "DENIED", "message": "no push"}]}), "no push"),
        (Answer(500, None), "500 Internal Server Error"),
        (Answer(200, None, {"Content-Type": "text/html"}), None),
    ],
)
def test_server_errors_print_the_server_message(
    haven: Haven, logged_in: FakeHaven, answer: Answer, message: str | None
) -> None:
    logged_in.route("GET", "/api/me", answer)
    result = haven("account", "show")
    if message is None:
        assert result.exit_code == 0 and result.stdout == ""
        return
    assert result.exit_code == 1
    assert result.stderr == f"ERROR: {message}\n"


def test_a_404_exits_with_code_3(haven: Haven, logged_in: FakeHaven) -> None:
    logged_in.route("GET", "/api/me", error(404, "NOT_FOUND", "no such identity"))
    result = haven("account", "show")
    assert (result.exit_code, result.stderr) == (3, "ERROR: no such identity\n")


def test_a_non_json_success_body_is_an_error_not_a_traceback(
    haven: Haven, logged_in: FakeHaven
) -> None:
    logged_in.route("GET", "/api/me", lambda _r: Answer(200, "just a string"))
    assert json.loads(haven("account", "show").stdout) == "just a string"


def test_output_format_from_haven_core_output(
    haven: Haven, logged_in: FakeHaven, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAVEN_CORE_OUTPUT", "tsv")
    assert haven("account", "show").stdout == "id-owner\tuser\towner\n"
    assert haven("account", "show", "-o", "json", "--query", "name").stdout == '"owner"\n'


def test_debug_prints_each_exchange_on_stderr_with_secrets_redacted(
    haven: Haven, fake: FakeHaven
) -> None:
    fake.route("GET", "/api/me", ME)
    result = login(haven, fake, "--debug")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == ME
    log = result.stderr
    assert f"DEBUG: Request: POST {fake.url}/oauth2/token" in log
    assert f"DEBUG: Request: GET {fake.url}/api/me" in log
    assert "DEBUG: Response status: 200 OK" in log
    assert "authorization: <redacted>" in log
    assert "password=%3Credacted%3E" in log
    assert '"refresh_token": "<redacted>"' in log
    assert OWNER_PASSWORD.replace(" ", "+") not in log and OWNER_PASSWORD not in log
    assert "refresh-1" not in log and "access-1" not in log
    assert '"name": "owner"' in log


def test_an_unexpected_failure_is_one_line_and_a_traceback_only_under_debug(
    haven: Haven, logged_in: FakeHaven, monkeypatch: pytest.MonkeyPatch
) -> None:
    account_module = importlib.import_module("haven.cli.account")

    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(account_module, "session", explode)
    result = haven("account", "show")
    assert result.exit_code == 1
    assert (
        result.stderr == "ERROR: The command failed with an unexpected error: RuntimeError: boom\n"
    )
    debug = haven("account", "show", "--debug")
    assert "Traceback" in debug.stderr and debug.stderr.endswith("RuntimeError: boom\n")


# ------------------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_fake(certificate: tuple[Path, Path]) -> Iterator[FakeHaven]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    for fake in running(context):
        fake.route("GET", "/api/me", ME)
        yield fake


def test_https_with_an_unknown_ca_says_how_to_trust_it(haven: Haven, tls_fake: FakeHaven) -> None:
    result = login(haven, tls_fake)
    assert result.exit_code == 1
    assert "--ca-file" in result.stderr and "REQUESTS_CA_BUNDLE" in result.stderr


def test_ca_file_is_used_and_remembered(
    haven: Haven, tls_fake: FakeHaven, certificate: tuple[Path, Path], home: Path
) -> None:
    result = login(haven, tls_fake, "--ca-file", str(certificate[0]))
    assert result.exit_code == 0, result.stderr
    assert config(home)["caFile"] == str(certificate[0])
    assert haven("account", "show").exit_code == 0


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_ca_bundle_variables_are_honoured(
    haven: Haven,
    tls_fake: FakeHaven,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    monkeypatch.setenv(variable, str(certificate[0]))
    assert login(haven, tls_fake).exit_code == 0
