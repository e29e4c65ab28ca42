"""Tasks and runs through the management API: what `haven task …` and `haven run` call.

Reading tasks, runs and logs needs read rights on the registry; creating, changing,
running and canceling need write rights (ACR's Contributor). Container steps run code on
the server's host, so they are refused unless the operator enabled them
(`HAVEN_TASK_CONTAINERS=true`); the built-in `acr purge` always runs.
"""

from __future__ import annotations

import re
from typing import Any

from haven.auth import roles
from haven.config import Settings
from haven.errors import ApiError
from haven.services.access import Principal
from haven.services.management import ManagementService, _int, bad_request, not_found
from haven.store import tasks as store
from haven.store.db import Database
from haven.store.metadata import now_ms
from haven.tasks import cron
from haven.tasks.agent import run_variables, stored_definition
from haven.tasks.definition import (
    MAX_TIMEOUT,
    DefinitionError,
    from_command,
    parse,
    render,
)
from haven.tasks.runner import host_architecture
from haven.timestamps import iso_or_none

TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{4,49}$")
TIMER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$")
VALUE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
STATUSES = {s.lower(): s for s in (store.QUEUED, store.RUNNING, *store.FINAL)}
# ACR's other run states, accepted in filters: Started is Running, Error is Failed.
STATUS_ALIASES = {"started": store.RUNNING, "error": store.FAILED}
DEFAULT_TIMEOUT = 3600
MAX_TOP = 1000


class TaskService:
    def __init__(self, db: Database, management: ManagementService, settings: Settings) -> None:
        self._db = db
        self._m = management
        self._settings = settings

    # Definitions ---------------------------------------------------------------------

    def _check(self, registry: str, source: str, values: dict[str, str] | None) -> None:
        """Render and read a definition now, so that a mistake is refused before a run;
        `values` None for a task, whose runs bring their own."""
        variables = run_variables(
            f"{store.RUN_PREFIX}0", registry, self._settings.login_server(registry), now_ms()
        )
        try:
            definition = parse(render(source, variables, values))
        except DefinitionError as exc:
            raise bad_request(str(exc)) from None
        if not self._settings.task_containers:
            for step in definition.steps:
                if step.image != "acr":
                    raise ApiError(
                        400,
                        "ContainerStepsDisabled",
                        f"step {step.id} runs the image {step.image}, but container steps "
                        "are disabled on this server (they run code on its host); an "
                        "operator enables them with HAVEN_TASK_CONTAINERS=true",
                    )

    @staticmethod
    def _source(body: dict[str, Any], required: bool) -> str | None:
        command, definition = body.get("cmd"), body.get("definition")
        if command is not None and definition is not None:
            raise bad_request("give cmd or definition, not both")
        if command is not None:
            if not isinstance(command, str) or not command.strip() or len(command) > 8192:
                raise bad_request("cmd must be a non-empty string of at most 8192 characters")
            try:
                return from_command(command)
            except DefinitionError as exc:
                raise bad_request(str(exc)) from None
        if definition is not None:
            if not isinstance(definition, str) or not definition.strip():
                raise bad_request("definition must be task YAML text")
            return definition
        if required:
            raise bad_request("give cmd (IMAGE [ARGS…]) or definition (task YAML)")
        return None

    @staticmethod
    def _values(body: dict[str, Any]) -> dict[str, str]:
        values = body.get("values", {})
        if (
            not isinstance(values, dict)
            or len(values) > 100
            or not all(
                isinstance(k, str) and VALUE_NAME.match(k) and isinstance(v, str) and len(v) <= 4096
                for k, v in values.items()
            )
        ):
            raise bad_request(
                "values must map up to 100 names (letters, digits, _) to strings of at most "
                "4096 characters"
            )
        return dict(values)

    @staticmethod
    def _enabled(body: dict[str, Any], default: bool) -> bool:
        status = body.get("status")
        if status is None:
            return default
        if not isinstance(status, str) or status.lower() not in ("enabled", "disabled"):
            raise bad_request("status must be Enabled or Disabled")
        return status.lower() == "enabled"

    @staticmethod
    def _timers(body: dict[str, Any], now: int) -> list[store.Timer] | None:
        raw = body.get("timers")
        if raw is None:
            return None
        if not isinstance(raw, list) or len(raw) > 10:
            raise bad_request("timers must be a list of at most 10 {name, schedule, status}")
        timers: list[store.Timer] = []
        for entry in raw:
            if not isinstance(entry, dict):
                raise bad_request("each timer is an object {name, schedule, status}")
            name, schedule = entry.get("name"), entry.get("schedule")
            if not isinstance(name, str) or not TIMER_NAME.match(name):
                raise bad_request("a timer's name is 1-50 letters, digits, '-' or '_'")
            if any(t.name == name for t in timers):
                raise bad_request(f"timer {name} is given twice")
            if not isinstance(schedule, str) or len(schedule) > 200:
                raise bad_request(f"timer {name} needs a cron schedule")
            try:
                parsed = cron.parse(schedule)
            except cron.CronError as exc:
                raise bad_request(f"timer {name}: {exc}") from None
            enabled = TaskService._enabled(entry, True)
            timers.append(store.Timer(name, parsed.text, enabled, parsed.next_after_ms(now)))
        return timers

    # Tasks ---------------------------------------------------------------------------

    def describe(self, registry: str, task: store.Task) -> dict[str, Any]:
        return {
            "id": f"/registries/{registry}/tasks/{task.name}",
            "name": task.name,
            "status": "Enabled" if task.enabled else "Disabled",
            "timeout": task.timeout,
            "definition": task.definition,
            "trigger": {
                "timerTriggers": [
                    {
                        "name": t.name,
                        "schedule": t.schedule,
                        "status": "Enabled" if t.enabled else "Disabled",
                        "nextRunTime": iso_or_none(t.next_run_at),
                    }
                    for t in task.timers
                ]
            },
            "platform": {"os": "linux", "architecture": host_architecture()},
            "creationDate": iso_or_none(task.created_at),
            "lastUpdatedTime": iso_or_none(task.updated_at),
        }

    async def _task(self, registry_id: int, name: str) -> store.Task:
        found = await self._db.read(lambda c: store.task(c, registry_id, name))
        if found is None:
            raise not_found("Task", name)
        return found

    async def list_tasks(self, caller: Principal, name: str) -> list[dict[str, Any]]:
        registry = await self._m.registry(caller, name, roles.MANAGE_READ)
        found = await self._db.read(lambda c: store.tasks(c, registry.id))
        return [self.describe(registry.name, t) for t in found]

    async def show_task(self, caller: Principal, name: str, task: str) -> dict[str, Any]:
        registry = await self._m.registry(caller, name, roles.MANAGE_READ)
        return self.describe(registry.name, await self._task(registry.id, task))

    async def create_task(self, caller: Principal, name: str, body: Any) -> dict[str, Any]:
        registry = await self._m.registry(caller, name, roles.MANAGE_WRITE)
        body = _object(body)
        task_name = body.get("name")
        if not isinstance(task_name, str) or not TASK_NAME.match(task_name):
            raise bad_request(
                "name must be 5-50 letters, digits, '-' or '_', starting with a letter or digit"
            )
        source = self._source(body, required=True)
        assert source is not None
        self._check(registry.name, source, None)
        now = now_ms()
        timers = self._timers(body, now) or []
        timeout = _int(body, "timeout", DEFAULT_TIMEOUT, 1, MAX_TIMEOUT)
        enabled = self._enabled(body, True)
        created = await self._db.write(
            lambda c: store.create_task(
                c, registry.id, task_name, source, timeout, enabled, timers, now
            ),
            content=False,
        )
        if not created:
            raise ApiError(409, "TaskExists", f"registry {registry.name} has a task {task_name}")
        return await self.show_task(caller, name, task_name)

    async def update_task(
        self, caller: Principal, name: str, task: str, body: Any
    ) -> dict[str, Any]:
        registry = await self._m.registry(caller, name, roles.MANAGE_WRITE)
        body = _object(body)
        current = await self._task(registry.id, task)
        source = self._source(body, required=False) or current.definition
        self._check(registry.name, source, None)
        now = now_ms()
        timers = self._timers(body, now)
        if timers is None:
            timers = list(current.timers)
        timeout = _int(body, "timeout", current.timeout, 1, MAX_TIMEOUT)
        enabled = self._enabled(body, current.enabled)
        await self._db.write(
            lambda c: store.update_task(c, current.id, source, timeout, enabled, timers, now),
            content=False,
        )
        return await self.show_task(caller, name, task)

    async def delete_task(self, caller: Principal, name: str, task: str) -> None:
        registry = await self._m.registry(caller, name, roles.MANAGE_WRITE)
        if not await self._db.write(
            lambda c: store.delete_task(c, registry.id, task), content=False
        ):
            raise not_found("Task", task)

    # Runs ----------------------------------------------------------------------------

    def describe_run(self, registry: str, run: store.Run) -> dict[str, Any]:
        finished = run.finished_at
        return {
            "id": f"/registries/{registry}/runs/{run.run_id}",
            "runId": run.run_id,
            "status": run.status,
            "task": run.task_name,
            "runType": run.run_type,
            "trigger": run.trigger,
            "timeout": run.timeout,
            "createTime": iso_or_none(run.created_at),
            "startTime": iso_or_none(run.started_at),
            "finishTime": iso_or_none(finished),
            "lastUpdatedTime": iso_or_none(finished or run.started_at or run.created_at),
            "runErrorMessage": run.error,
            "cancelRequested": run.cancel_requested,
        }

    async def run_task(self, caller: Principal, name: str, task: str, body: Any) -> dict[str, Any]:
        registry = await self._m.registry(caller, name, roles.MANAGE_WRITE)
        body = _object(body)
        found = await self._task(registry.id, task)
        values = self._values(body)
        self._check(registry.name, found.definition, values)
        now = now_ms()
        run = await self._db.write(
            lambda c: store.enqueue(
                c,
                registry.id,
                found.id,
                found.name,
                "AutoRun",
                "Manual",
                stored_definition(found.definition, values),
                found.timeout,
                now,
            ),
            content=False,
        )
        return self.describe_run(registry.name, run)

    async def quick_run(self, caller: Principal, name: str, body: Any) -> dict[str, Any]:
        registry = await self._m.registry(caller, name, roles.MANAGE_WRITE)
        body = _object(body)
        source = self._source(body, required=True)
        assert source is not None
        values = self._values(body)
        self._check(registry.name, source, values)
        timeout = _int(body, "timeout", DEFAULT_TIMEOUT, 1, MAX_TIMEOUT)
        now = now_ms()
        run = await self._db.write(
            lambda c: store.enqueue(
                c,
                registry.id,
                None,
                None,
                "QuickRun",
                "Manual",
                stored_definition(source, values),
                timeout,
                now,
            ),
            content=False,
        )
        return self.describe_run(registry.name, run)

    async def list_runs(
        self, caller: Principal, name: str, query: dict[str, str]
    ) -> list[dict[str, Any]]:
        registry = await self._m.registry(caller, name, roles.MANAGE_READ)
        statuses = None
        if query.get("status"):
            statuses = []
            for word in query["status"].split(","):
                key = word.strip().lower()
                status = STATUSES.get(key) or STATUS_ALIASES.get(key)
                if status is None:
                    raise bad_request(
                        f"unknown run status {word!r}: Queued, Started, Running, Succeeded, "
                        "Failed, Canceled, Error or Timeout"
                    )
                statuses.append(status)
        top_text = query.get("top", "15")
        if not top_text.isdigit() or not 1 <= int(top_text) <= MAX_TOP:
            raise bad_request(f"top must be a number from 1 to {MAX_TOP}")
        task = query.get("task") or None
        found = await self._db.read(
            lambda c: store.runs(c, registry.id, statuses, task, int(top_text))
        )
        return [self.describe_run(registry.name, r) for r in found]

    async def _run(self, registry_id: int, run_id: str) -> store.Run:
        found = await self._db.read(lambda c: store.run(c, registry_id, run_id))
        if found is None:
            raise not_found("Run", run_id)
        return found

    async def show_run(self, caller: Principal, name: str, run_id: str) -> dict[str, Any]:
        registry = await self._m.registry(caller, name, roles.MANAGE_READ)
        return self.describe_run(registry.name, await self._run(registry.id, run_id))

    async def cancel_run(self, caller: Principal, name: str, run_id: str) -> dict[str, Any]:
        """Cancel a queued or running run; one that has finished is left as it is."""
        registry = await self._m.registry(caller, name, roles.MANAGE_WRITE)
        found = await self._run(registry.id, run_id)
        if found.status in store.FINAL:
            raise ApiError(
                409, "RunFinished", f"run {run_id} has finished ({found.status}): nothing to cancel"
            )
        now = now_ms()
        await self._db.write(lambda c: store.cancel(c, found.id, now), content=False)
        return await self.show_run(caller, name, run_id)

    async def logs(
        self, caller: Principal, name: str, run_id: str, query: dict[str, str]
    ) -> dict[str, Any]:
        """A run's log after chunk `after`; `finished` once the run has ended and every
        chunk has been read."""
        registry = await self._m.registry(caller, name, roles.MANAGE_READ)
        after_text = query.get("after", "0")
        if not after_text.isdigit() or len(after_text) > 9:
            raise bad_request("after must be a chunk number")
        found = await self._run(registry.id, run_id)
        chunks = await self._db.read(lambda c: store.log_chunks(c, found.id, int(after_text)))
        following = chunks[-1][0] if chunks else int(after_text)
        finished = found.status in store.FINAL and len(chunks) < store.LOG_CHUNK_LIMIT
        return {
            "runId": run_id,
            "status": found.status,
            "text": "".join(text for _, text in chunks),
            "next": following,
            "finished": finished,
        }


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body
