"""`haven task …` and `haven run`: tasks and their runs, as `az acr task` and `az acr run`.

A task is ACR Tasks YAML (`--file`) or one `--cmd IMAGE [ARGS…]`; the server's agents run
it. `haven task run` and `haven run` follow the run's log until it ends (exit 1 unless it
succeeded), `--no-logs` waits quietly and prints the run, `--no-wait` prints the queued
run at once. The FAQ's batch cancel works as written:

    haven task list-runs -r R --run-status Running --query '[].runId' -o tsv \\
    | xargs -I% haven task cancel-run -r R --run-id %
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from haven.cli.arguments import drop_none, registry_option, yes_option
from haven.cli.client import HavenClient, segment
from haven.cli.command import HavenCommand, HavenGroup, confirm, session
from haven.cli.errors import CliError
from haven.cli.registry import registry_path
from haven.cli.tables import run_table, task_table

FINAL = ("Succeeded", "Failed", "Canceled", "Timeout")
RUN_STATUSES = (
    "Queued",
    "Started",
    "Running",
    "Succeeded",
    "Failed",
    "Canceled",
    "Error",
    "Timeout",
)
POLL_SECONDS = 0.5
NO_CONTEXT = "/dev/null"

task_name_option = click.option("--name", "-n", "name", required=True, help="The task's name.")
cmd_option = click.option("--cmd", help="A command to run: IMAGE [ARGS…] (e.g. acr purge …).")
file_option = click.option(
    "--file",
    "-f",
    "file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="A task YAML file ('-' reads standard input).",
)
context_option = click.option(
    "--context",
    "-c",
    "context",
    default=NO_CONTEXT,
    show_default=True,
    help="The source context; tasks of cmd steps need none: /dev/null.",
)
timeout_option = click.option(
    "--timeout", type=click.IntRange(1, 28_800), help="Seconds a run may take [default: 3600]."
)
set_option = click.option(
    "--set",
    "values",
    multiple=True,
    metavar="NAME=VALUE",
    help="A value for {{.Values.NAME}}; repeatable.",
)
follow_options = [
    click.option("--no-logs", is_flag=True, help="Do not follow the log; print the run when done."),
    click.option("--no-wait", is_flag=True, help="Print the queued run and return at once."),
]


def _source(cmd: str | None, file: str | None, required: bool) -> dict[str, str]:
    if cmd is not None and file is not None:
        raise click.UsageError("Give --cmd or --file, not both.")
    if cmd is not None:
        return {"cmd": cmd}
    if file is not None:
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read {file}: {exc}") from None
        return {"definition": text}
    if required:
        raise click.UsageError("Give --cmd IMAGE [ARGS…] or --file task.yaml.")
    return {}


def _context(context: str) -> None:
    if context != NO_CONTEXT:
        raise click.BadParameter(
            "this server runs cmd steps, which take no source context: pass /dev/null",
            param_hint="'--context'",
        )


def _values(pairs: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"'{pair}' is not NAME=VALUE", param_hint="'--set'")
        values[name] = value
    return values


def runs_path(registry: str) -> str:
    return f"{registry_path(registry)}/runs"


def follow(client: HavenClient, registry: str, run: dict[str, Any], logs: bool) -> dict[str, Any]:
    """Print a run's log as it is written (if `logs`) until the run ends; the final run."""
    path = f"{runs_path(registry)}/{segment(run['runId'])}"
    after = 0
    while True:
        if logs:
            chunk = client.get(f"{path}/logs", {"after": str(after)})
            if chunk["text"]:
                click.echo(chunk["text"], nl=False)
            after = chunk["next"]
            if chunk["finished"]:
                return dict(client.get(path))
            if chunk["text"]:
                continue
        else:
            current = client.get(path)
            if current["status"] in FINAL:
                return dict(current)
        time.sleep(POLL_SECONDS)


def finish(registry: str, run: dict[str, Any], no_logs: bool, no_wait: bool) -> Any:
    if no_wait:
        return run
    done = follow(session(), registry, run, logs=not no_logs)
    if no_logs:
        return done
    run_id, status = done["runId"], done["status"]
    if status != "Succeeded":
        reason = f": {done['runErrorMessage']}" if done.get("runErrorMessage") else ""
        raise CliError(f"Run {run_id} ended {status}{reason}")
    click.echo(f"Run ID: {run_id} was successful", err=True)
    return None


def _with_follow_options(command: Any) -> Any:
    for option in reversed(follow_options):
        command = option(command)
    return command


@click.group("task", cls=HavenGroup)
def task() -> None:
    """Manage tasks and their runs."""


@task.command("create", table=task_table)
@registry_option
@task_name_option
@cmd_option
@file_option
@context_option
@click.option(
    "--schedule",
    metavar="CRON",
    help="Run on this cron schedule (UTC), as a timer named t1: e.g. '0 3 * * *'.",
)
@timeout_option
@click.option(
    "--status",
    type=click.Choice(["Enabled", "Disabled"], case_sensitive=False),
    help="Whether the task runs on its triggers [default: Enabled].",
)
def create(
    registry: str,
    name: str,
    cmd: str | None,
    file: str | None,
    context: str,
    schedule: str | None,
    timeout: int | None,
    status: str | None,
) -> Any:
    """Create a task from --cmd or a task YAML --file."""
    _context(context)
    body: dict[str, Any] = {"name": name, **_source(cmd, file, required=True)}
    if schedule is not None:
        body["timers"] = [{"name": "t1", "schedule": schedule}]
    body.update(drop_none(timeout=timeout, status=status))
    return session().post(f"{registry_path(registry)}/tasks", body)


@task.command("list", table=task_table)
@registry_option
def list_tasks(registry: str) -> Any:
    """List the registry's tasks."""
    return session().get(f"{registry_path(registry)}/tasks")


@task.command("show", table=task_table)
@registry_option
@task_name_option
def show(registry: str, name: str) -> Any:
    """Show a task."""
    return session().get(f"{registry_path(registry)}/tasks/{segment(name)}")


@task.command("update", table=task_table)
@registry_option
@task_name_option
@cmd_option
@file_option
@timeout_option
@click.option("--status", type=click.Choice(["Enabled", "Disabled"], case_sensitive=False))
def update(
    registry: str,
    name: str,
    cmd: str | None,
    file: str | None,
    timeout: int | None,
    status: str | None,
) -> Any:
    """Change a task's command or file, timeout or status."""
    body = {**_source(cmd, file, required=False), **drop_none(timeout=timeout, status=status)}
    if not body:
        raise click.UsageError("Nothing to change: give --cmd, --file, --timeout or --status.")
    return session().patch(f"{registry_path(registry)}/tasks/{segment(name)}", body)


@task.command("delete")
@registry_option
@task_name_option
@yes_option
def delete(registry: str, name: str, yes: bool) -> Any:
    """Delete a task; its past runs stay listed."""
    confirm(f"Are you sure you want to delete the task '{name}'?", yes)
    session().delete(f"{registry_path(registry)}/tasks/{segment(name)}")
    return None


@task.command("run")
@registry_option
@task_name_option
@set_option
@_with_follow_options
def run_task(
    registry: str, name: str, values: tuple[str, ...], no_logs: bool, no_wait: bool
) -> Any:
    """Run a task now, following its log."""
    body = {"values": _values(values)}
    queued = session().post(f"{registry_path(registry)}/tasks/{segment(name)}/runs", body)
    return finish(registry, queued, no_logs, no_wait)


@task.command("list-runs", table=run_table)
@registry_option
@click.option("--name", "-n", "name", help="Only runs of this task.")
@click.option(
    "--run-status",
    type=click.Choice(RUN_STATUSES, case_sensitive=False),
    help="Only runs in this state.",
)
@click.option(
    "--top", type=click.IntRange(1, 1000), default=15, show_default=True, help="How many runs."
)
def list_runs(registry: str, name: str | None, run_status: str | None, top: int) -> Any:
    """List runs, newest first."""
    params = drop_none(task=name, status=run_status)
    params["top"] = str(top)
    return session().get(runs_path(registry), params)


run_id_option = click.option("--run-id", required=True, help="The run's id (e.g. ca1).")


@task.command("show-run", table=run_table)
@registry_option
@run_id_option
def show_run(registry: str, run_id: str) -> Any:
    """Show a run."""
    return session().get(f"{runs_path(registry)}/{segment(run_id)}")


@task.command("cancel-run", table=run_table)
@registry_option
@run_id_option
def cancel_run(registry: str, run_id: str) -> Any:
    """Cancel a queued or running run."""
    return session().post(f"{runs_path(registry)}/{segment(run_id)}/cancel", {})


@task.command("logs")
@registry_option
@click.option("--run-id", help="The run whose log to show [default: the latest run].")
@click.option("--name", "-n", "name", help="With no --run-id: the latest run of this task.")
def logs(registry: str, run_id: str | None, name: str | None) -> Any:
    """Show a run's log, following it while the run goes on."""
    client = session()
    if run_id is None:
        latest = client.get(runs_path(registry), {**drop_none(task=name), "top": "1"})
        if not latest:
            raise CliError("no runs found" + (f" of task {name}" if name else ""), 3)
        run_id = str(latest[0]["runId"])
    run = client.get(f"{runs_path(registry)}/{segment(run_id)}")
    follow(client, registry, run, logs=True)
    return None


@task.group("timer", cls=HavenGroup)
def timer() -> None:
    """Manage a task's cron timers."""


timer_name_option = click.option("--timer-name", required=True, help="The timer's name.")


def _timers(registry: str, name: str) -> list[dict[str, Any]]:
    shown = session().get(f"{registry_path(registry)}/tasks/{segment(name)}")
    return [
        {"name": t["name"], "schedule": t["schedule"], "status": t["status"]}
        for t in shown["trigger"]["timerTriggers"]
    ]


def _set_timers(registry: str, name: str, timers: list[dict[str, Any]]) -> Any:
    path = f"{registry_path(registry)}/tasks/{segment(name)}"
    return session().patch(path, {"timers": timers})["trigger"]["timerTriggers"]


@timer.command("add")
@registry_option
@task_name_option
@timer_name_option
@click.option("--schedule", required=True, metavar="CRON", help="Cron schedule, in UTC.")
@click.option("--enabled", type=click.Choice(["true", "false"]), default="true")
def timer_add(registry: str, name: str, timer_name: str, schedule: str, enabled: str) -> Any:
    """Add a timer to a task."""
    timers = _timers(registry, name)
    if any(t["name"] == timer_name for t in timers):
        raise CliError(f"task {name} already has a timer {timer_name}")
    status = "Enabled" if enabled == "true" else "Disabled"
    return _set_timers(
        registry, name, [*timers, {"name": timer_name, "schedule": schedule, "status": status}]
    )


@timer.command("update")
@registry_option
@task_name_option
@timer_name_option
@click.option("--schedule", metavar="CRON", help="New cron schedule, in UTC.")
@click.option("--enabled", type=click.Choice(["true", "false"]))
def timer_update(
    registry: str, name: str, timer_name: str, schedule: str | None, enabled: str | None
) -> Any:
    """Change a timer's schedule or switch it on or off."""
    timers = _timers(registry, name)
    found = [t for t in timers if t["name"] == timer_name]
    if not found:
        raise CliError(f"task {name} has no timer {timer_name}", 3)
    if schedule is not None:
        found[0]["schedule"] = schedule
    if enabled is not None:
        found[0]["status"] = "Enabled" if enabled == "true" else "Disabled"
    return _set_timers(registry, name, timers)


@timer.command("remove")
@registry_option
@task_name_option
@timer_name_option
def timer_remove(registry: str, name: str, timer_name: str) -> Any:
    """Remove a timer from a task."""
    timers = _timers(registry, name)
    kept = [t for t in timers if t["name"] != timer_name]
    if len(kept) == len(timers):
        raise CliError(f"task {name} has no timer {timer_name}", 3)
    return _set_timers(registry, name, kept)


@timer.command("list")
@registry_option
@task_name_option
def timer_list(registry: str, name: str) -> Any:
    """List a task's timers."""
    shown = session().get(f"{registry_path(registry)}/tasks/{segment(name)}")
    return shown["trigger"]["timerTriggers"]


@click.command("run", cls=HavenCommand)
@registry_option
@cmd_option
@file_option
@set_option
@timeout_option
@_with_follow_options
@click.argument("source", required=False, default=NO_CONTEXT, metavar="[SOURCE_LOCATION]")
def run(
    registry: str,
    cmd: str | None,
    file: str | None,
    values: tuple[str, ...],
    timeout: int | None,
    no_logs: bool,
    no_wait: bool,
    source: str,
) -> Any:
    """Run a command or a task YAML file once, without saving a task (as `az acr run`);
    the source location is /dev/null."""
    _context(source)
    body = {**_source(cmd, file, required=True), "values": _values(values)}
    body.update(drop_none(timeout=timeout))
    queued = session().post(runs_path(registry), body)
    return finish(registry, queued, no_logs, no_wait)
