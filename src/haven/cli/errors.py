"""Failures the command line reports as one `ERROR: …` line, with az's exit codes.

az exits 1 for a failed operation, 2 for arguments it cannot parse and 3 when the resource
named does not exist; scripts rely on that, so Haven's CLI does the same.
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3


class CliError(Exception):
    """A failure to report as `ERROR: <message>` and exit with `exit_code`."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class NotLoggedInError(CliError):
    """No account is configured: `haven account login` has not run (or was undone)."""

    def __init__(self) -> None:
        super().__init__("Please run 'haven account login' to set up an account.")


class ResourceNotFoundError(CliError):
    """The server answered 404 for the resource the command named."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_NOT_FOUND)


class ServerError(CliError):
    """The server refused or failed a request; `message` is the server's own message."""

    def __init__(self, message: str, status: int, code: str | None = None) -> None:
        super().__init__(message, EXIT_NOT_FOUND if status == 404 else EXIT_FAILURE)
        self.status = status
        self.code = code
