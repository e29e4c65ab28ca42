"""`haven task …` and `haven run` against a real `haven serve` whose task steps run in
buildah chroots: logs followed to stdout, exit codes, timers, and every error path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.task_helpers import require_buildah

from .test_against_server import OWNER_PASSWORD, Profile, Server, haven_serve
from .test_faq_recipes import push_busybox


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_buildah()
    settings = {"HAVEN_TASK_CONTAINERS": "true"}
    with haven_serve(tmp_path_factory.mktemp("task-serve"), settings=settings) as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Profile:
    profile = Profile(tmp_path_factory.mktemp("task-owner"))
    done = profile("account", "login", "--server", server.url, "-u", "owner", "-p", OWNER_PASSWORD)
    assert done.returncode == 0, done.stderr
    profile.json("create", "-n", "taskreg", "--sku", "Standard")
    push_busybox(server, profile.json("show", "-n", "taskreg")["loginServer"])
    return profile


def test_run_follows_the_log_to_stdout_and_exits_by_the_runs_status(owner: Profile) -> None:
    done = owner(
        "run",
        "-r",
        "taskreg",
        "/dev/null",
        "--cmd",
        "$Registry/busybox:1 sh -c 'echo first line; sleep 1; echo second line'",
    )
    assert done.returncode == 0, done.stderr
    assert "first line\n" in done.stdout and "second line\n" in done.stdout
    assert done.stdout.index("first line") < done.stdout.index("second line")
    assert done.stderr.startswith("Run ID: ca") and "was successful" in done.stderr

    failed = owner("run", "-r", "taskreg", "--cmd", "$Registry/busybox:1 sh -c 'exit 7'")
    assert failed.returncode == 1
    assert "ended Failed: the command exited with status 7" in failed.error()

    quiet = owner.json("run", "-r", "taskreg", "--cmd", "$Registry/busybox:1 true", "--no-logs")
    assert quiet["status"] == "Succeeded"
    queued = owner.json("run", "-r", "taskreg", "--cmd", "$Registry/busybox:1 true", "--no-wait")
    assert queued["status"] in ("Queued", "Running", "Succeeded")


def test_a_task_from_a_file_with_values_and_its_logs(owner: Profile, tmp_path: Path) -> None:
    definition = tmp_path / "task.yaml"
    definition.write_text(
        "version: v1.1.0\n"
        "steps:\n"
        "  - id: greet\n"
        "    cmd: $Registry/busybox:1 echo hello {{.Values.who}} from {{.Run.RegistryName}}\n"
    )
    created = owner.json("task", "create", "-r", "taskreg", "-n", "greeter", "-f", str(definition))
    assert created["name"] == "greeter"
    done = owner("task", "run", "-r", "taskreg", "-n", "greeter", "--set", "who=operators")
    assert done.returncode == 0, done.stderr
    assert "hello operators from taskreg" in done.stdout

    listed = owner.json("task", "list-runs", "-r", "taskreg", "-n", "greeter")
    (run,) = listed
    logs = owner("task", "logs", "-r", "taskreg", "--run-id", run["runId"])
    assert logs.returncode == 0 and "hello operators from taskreg" in logs.stdout
    latest = owner("task", "logs", "-r", "taskreg", "-n", "greeter")
    assert latest.stdout == logs.stdout

    table = owner("task", "list-runs", "-r", "taskreg", "-n", "greeter", "-o", "table")
    header = table.stdout.splitlines()[0].split()
    assert header[:4] == ["RUN", "ID", "TASK", "STATUS"]
    assert run["runId"] in table.stdout and "Succeeded" in table.stdout

    from_stdin = owner(
        "task",
        "update",
        "-r",
        "taskreg",
        "-n",
        "greeter",
        "-f",
        "-",
        input="steps:\n  - cmd: $Registry/busybox:1 echo replaced\n",
    )
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert "replaced" in owner.json("task", "show", "-r", "taskreg", "-n", "greeter")["definition"]


def test_timers_are_added_changed_listed_and_removed(owner: Profile) -> None:
    owner.json(
        "task",
        "create",
        "-r",
        "taskreg",
        "-n",
        "cleaner",
        "--schedule",
        "0 3 * * *",
        "--cmd",
        "acr purge --filter 'tmp/.*:.*' --ago 7d --untagged",
    )
    added = owner.json(
        "task",
        "timer",
        "add",
        "-r",
        "taskreg",
        "-n",
        "cleaner",
        "--timer-name",
        "weekly",
        "--schedule",
        "30 4 * * SUN",
    )
    assert [t["name"] for t in added] == ["t1", "weekly"]
    changed = owner.json(
        "task",
        "timer",
        "update",
        "-r",
        "taskreg",
        "-n",
        "cleaner",
        "--timer-name",
        "t1",
        "--enabled",
        "false",
    )
    assert [t["status"] for t in changed] == ["Disabled", "Enabled"]
    owner.json("task", "timer", "remove", "-r", "taskreg", "-n", "cleaner", "--timer-name", "t1")
    listed = owner.json("task", "timer", "list", "-r", "taskreg", "-n", "cleaner")
    assert [(t["name"], t["schedule"]) for t in listed] == [("weekly", "30 4 * * SUN")]
    missing = owner(
        "task", "timer", "remove", "-r", "taskreg", "-n", "cleaner", "--timer-name", "nope"
    )
    assert missing.returncode == 3 and "no timer nope" in missing.error()
    bad = owner(
        "task",
        "timer",
        "add",
        "-r",
        "taskreg",
        "-n",
        "cleaner",
        "--timer-name",
        "bad",
        "--schedule",
        "every day",
    )
    assert bad.returncode == 1 and "five" in bad.error()


def test_error_paths(owner: Profile, server: Server, tmp_path: Path) -> None:
    unknown_task = owner("task", "show", "-r", "taskreg", "-n", "missing-task")
    assert unknown_task.returncode == 3 and "missing-task" in unknown_task.error()
    unknown_registry = owner("task", "list", "-r", "noregistry")
    assert unknown_registry.returncode == 3 and "noregistry" in unknown_registry.error()
    unknown_run = owner("task", "cancel-run", "-r", "taskreg", "--run-id", "ca999")
    assert unknown_run.returncode == 3 and "ca999" in unknown_run.error()
    both = owner("run", "-r", "taskreg", "--cmd", "x", "-f", "task.yaml")
    assert both.returncode == 2 and "not both" in both.error()
    neither = owner("run", "-r", "taskreg")
    assert neither.returncode == 2 and "--cmd" in neither.error()
    context = owner("run", "-r", "taskreg", "--cmd", "acr purge", "https://example.com/r.git")
    assert context.returncode == 2 and "/dev/null" in context.error()
    bad_flag = owner("task", "list-runs", "-r", "taskreg", "--run-status", "Sleeping")
    assert bad_flag.returncode == 2
    bad_set = owner("task", "run", "-r", "taskreg", "-n", "greeter", "--set", "novalue")
    assert bad_set.returncode == 2 and "NAME=VALUE" in bad_set.error()
    unreadable = owner("run", "-r", "taskreg", "-f", str(tmp_path / "absent.yaml"))
    assert unreadable.returncode == 1 and "absent.yaml" in unreadable.error()
    build = tmp_path / "build.yaml"
    build.write_text("steps:\n  - build: -t x .\n")
    refused = owner("run", "-r", "taskreg", "-f", str(build))
    assert refused.returncode == 1 and "build steps" in refused.error()
    finished = owner.json("run", "-r", "taskreg", "--cmd", "$Registry/busybox:1 true", "--no-logs")
    again = owner("task", "cancel-run", "-r", "taskreg", "--run-id", finished["runId"])
    assert again.returncode == 1 and "has finished" in again.error()

    # A user without rights on the registry.
    owner.json("identity", "create", "-n", "outsider", "--password", "outsider-Password-1")
    outsider = Profile(tmp_path / "outsider")
    login = outsider(
        "account", "login", "--server", server.url, "-u", "outsider", "-p", "outsider-Password-1"
    )
    assert login.returncode == 0, login.stderr
    denied = outsider("task", "create", "-r", "taskreg", "-n", "sneaky", "--cmd", "x")
    assert denied.returncode in (1, 3) and "authorization" in denied.error()

    # The server is down.
    down = Profile(tmp_path / "down")
    down.env["HAVEN_SERVER"] = "http://127.0.0.1:9"
    down.env["HAVEN_USERNAME"], down.env["HAVEN_PASSWORD"] = "owner", OWNER_PASSWORD
    unreachable = down("task", "list-runs", "-r", "taskreg")
    assert unreachable.returncode == 1 and "127.0.0.1:9" in unreachable.error()
