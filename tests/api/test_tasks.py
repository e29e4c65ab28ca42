"""Tasks and runs: definitions, the run lifecycle, logs, cancellation, timeouts, timers
and the built-in `acr purge`, with container steps really run by buildah (chroot)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from haven.config import Settings
from haven.store import tasks as task_store

from .access_helpers import assert_api_error, caller, create_registry, member
from .conftest import store_settings
from .helpers import app_client, make_image, make_index, push_image
from .task_helpers import busybox_image, push_busybox, require_buildah, run_log, wait_for_run

API = "/api/registries/default"


@pytest.fixture
def settings(stores: tuple[str, str], tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    containers = request.node.get_closest_marker("no_containers") is None
    if containers:
        require_buildah()
    return store_settings(
        request, stores, tmp_path, gc_interval_seconds=0, task_containers=containers
    )


async def create_task(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    resp = await client.post(f"{API}/tasks", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def start(client: httpx.AsyncClient, task: str, **body: Any) -> dict[str, Any]:
    resp = await client.post(f"{API}/tasks/{task}/runs", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def quick_run(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    resp = await client.post(f"{API}/runs", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def processes_with(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in line and str(os.getpid()) != entry.name:
                found.append(line)
    return found


async def test_a_cmd_task_runs_its_image_and_keeps_the_log(client: httpx.AsyncClient) -> None:
    await push_busybox(client)
    task = await create_task(
        client,
        name="hello-task",
        cmd="$Registry/busybox:1 sh -c 'echo hi $IMAGE_SAYS from {{.Run.ID}}; echo oops >&2'",
    )
    assert task["status"] == "Enabled" and task["timeout"] == 3600
    assert "$Registry/busybox:1" in task["definition"]
    run = await start(client, "hello-task")
    assert (run["runId"], run["status"], run["task"]) == ("ca1", "Queued", "hello-task")
    assert (run["runType"], run["trigger"]) == ("AutoRun", "Manual")
    done = await wait_for_run(client, "ca1")
    assert done["status"] == "Succeeded", done
    assert done["startTime"] and done["finishTime"] and done["runErrorMessage"] is None
    log = await run_log(client, "ca1")
    assert "hi hello from ca1" in log  # the image's environment, the run's id
    assert "oops" in log  # stderr too
    assert "Run ca1 succeeded" in log


async def test_steps_run_in_order_in_parallel_and_stop_at_a_failure(
    client: httpx.AsyncClient,
) -> None:
    await push_busybox(client)
    definition = """
version: v1.1.0
env: [SHARED=everywhere]
steps:
  - id: first
    cmd: $Registry/busybox:1 sh -c 'echo first $SHARED $OWN; pwd'
    env: [OWN=mine]
    workingDirectory: /work
  - id: side
    cmd: $Registry/busybox:1 sh -c 'echo side {{.Values.word}}'
    when: ["-"]
  - id: tolerated
    cmd: $Registry/busybox:1 sh -c 'exit 4'
    when: [first, side]
    ignoreErrors: true
  - id: broken
    cmd: $Registry/busybox:1 sh -c 'echo breaking; exit 3'
  - id: never
    cmd: $Registry/busybox:1 sh -c 'echo never ran'
"""
    run = await quick_run(client, definition=definition, values={"word": "parallel"})
    assert (run["runType"], run["task"]) == ("QuickRun", None)
    done = await wait_for_run(client, run["runId"])
    assert done["status"] == "Failed"
    assert done["runErrorMessage"] == "the command exited with status 3"
    log = await run_log(client, run["runId"])
    assert "first everywhere mine\n/work" in log
    assert "side parallel" in log
    assert "Step tolerated failed: the command exited with status 4" in log
    assert "breaking" in log
    assert "never ran" not in log and "Step never skipped" in log


async def test_a_running_run_is_canceled_and_its_processes_stop(
    client: httpx.AsyncClient,
) -> None:
    await push_busybox(client)
    marker = "3599.25"
    run = await quick_run(
        client, cmd=f"$Registry/busybox:1 sh -c 'echo started; exec sleep {marker}'"
    )
    run_id = run["runId"]
    await wait_for_run(client, run_id, ("Running",))
    for _ in range(200):
        if processes_with(f"sleep {marker}"):
            break
        await asyncio.sleep(0.1)
    assert processes_with(f"sleep {marker}"), "the step never started"

    resp = await client.post(f"{API}/runs/{run_id}/cancel")
    assert resp.status_code == 200, resp.text
    assert resp.json()["cancelRequested"] is True
    done = await wait_for_run(client, run_id, seconds=20)
    assert done["status"] == "Canceled"
    assert processes_with(f"sleep {marker}") == []
    assert "Run canceled" in await run_log(client, run_id)
    again = await client.post(f"{API}/runs/{run_id}/cancel")
    assert_api_error(again, 409, "RunFinished")


async def test_a_run_or_step_over_its_timeout_ends_as_timeout(client: httpx.AsyncClient) -> None:
    await push_busybox(client)
    whole = await quick_run(client, cmd="$Registry/busybox:1 sleep 30", timeout=2)
    step = await quick_run(
        client,
        definition="steps:\n  - cmd: $Registry/busybox:1 sleep 30\n    timeout: 1\n",
    )
    for run, message in (
        (whole, "the run timed out after 2 s"),
        (step, "timed out after 1 s"),
    ):
        done = await wait_for_run(client, run["runId"], seconds=30)
        assert (done["status"], done["runErrorMessage"]) == ("Timeout", message)
    assert processes_with("sleep 30") == []


async def test_an_image_from_an_index_and_a_missing_image(client: httpx.AsyncClient) -> None:
    other = make_image("not-runnable")
    await push_image(client, "multi", make_index([busybox_image(), other]), "v1")
    ok = await quick_run(client, cmd="$Registry/multi:v1 echo from the index")
    missing = await quick_run(client, cmd="$Registry/nothing:here echo")
    assert (await wait_for_run(client, ok["runId"]))["status"] == "Succeeded"
    assert "from the index" in await run_log(client, ok["runId"])
    failed = await wait_for_run(client, missing["runId"])
    assert failed["status"] == "Failed"
    assert "nothing" in failed["runErrorMessage"]


async def test_runs_are_listed_newest_first_and_filtered(client: httpx.AsyncClient) -> None:
    await push_busybox(client)
    await create_task(client, name="quick-one", cmd="$Registry/busybox:1 true")
    first = await start(client, "quick-one")
    await wait_for_run(client, first["runId"])
    failing = await quick_run(client, cmd="$Registry/busybox:1 false")
    await wait_for_run(client, failing["runId"])

    listed = (await client.get(f"{API}/runs")).json()
    assert [r["runId"] for r in listed] == ["ca2", "ca1"]
    by_status = (await client.get(f"{API}/runs", params={"status": "Failed,Canceled"})).json()
    assert [r["runId"] for r in by_status] == ["ca2"]
    error_alias = (await client.get(f"{API}/runs", params={"status": "error"})).json()
    assert [r["runId"] for r in error_alias] == ["ca2"]
    by_task = (await client.get(f"{API}/runs", params={"task": "quick-one"})).json()
    assert [r["runId"] for r in by_task] == ["ca1"]
    top = (await client.get(f"{API}/runs", params={"top": "1"})).json()
    assert [r["runId"] for r in top] == ["ca2"]
    for params in ({"status": "Sleeping"}, {"top": "0"}, {"top": "x"}, {"top": "100000"}):
        assert_api_error(await client.get(f"{API}/runs", params=params), 400, "InvalidArgument")
    assert_api_error(await client.get(f"{API}/runs/ca99"), 404, "RunNotFound")
    assert_api_error(await client.get(f"{API}/runs/ca99/logs"), 404, "RunNotFound")


async def test_a_timer_runs_acr_purge_on_schedule(client: httpx.AsyncClient, clock: Any) -> None:
    for tag in ("old-1", "old-2"):
        await push_image(client, "app", make_image(f"purge-{tag}"), tag)
    await push_image(client, "keep", make_image("kept"), "old-3")
    task = await create_task(
        client,
        name="nightly-purge",
        cmd="acr purge --filter 'app:.*' --ago 1d --untagged",
        timers=[{"name": "t1", "schedule": "0 3 * * *"}],
    )
    (timer,) = task["trigger"]["timerTriggers"]
    assert (timer["name"], timer["schedule"], timer["status"]) == ("t1", "0 3 * * *", "Enabled")
    assert timer["nextRunTime"].endswith("T03:00:00Z")

    clock.offset_ms = 2 * 86_400_000  # two days on: the timer is due, the tags are old
    for _ in range(150):
        runs = (await client.get(f"{API}/runs")).json()
        if runs:
            break
        await asyncio.sleep(0.1)
    (run,) = runs
    assert (run["trigger"], run["task"]) == ("Timer", "nightly-purge")
    done = await wait_for_run(client, run["runId"])
    assert done["status"] == "Succeeded", done
    log = await run_log(client, run["runId"])
    assert "Deleted tag app:old-1" in log and "Number of deleted tags: 2" in log
    assert (await client.get("/v2/app/tags/list")).json().get("tags") in (None, [])
    assert (await client.get("/v2/keep/tags/list")).json()["tags"] == ["old-3"]
    # The timer moved on to its next time, and fired once.
    shown = (await client.get(f"{API}/tasks/nightly-purge")).json()
    assert shown["trigger"]["timerTriggers"][0]["nextRunTime"] > timer["nextRunTime"]
    await asyncio.sleep(3)
    assert len((await client.get(f"{API}/runs")).json()) == 1


async def test_task_definitions_are_checked_before_anything_runs(
    client: httpx.AsyncClient,
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "abc", "cmd": "acr purge --filter a:b --ago 1d"}, "name must be"),
        ({"name": "bad name!", "cmd": "x"}, "name must be"),
        ({"name": "no-source"}, "give cmd"),
        ({"name": "both-given", "cmd": "x", "definition": "steps: []"}, "not both"),
        ({"name": "empty-cmd", "cmd": "   "}, "cmd must be"),
        ({"name": "quoting", "cmd": "img 'unclosed"}, "No closing quotation"),
        ({"name": "not-yaml", "definition": "steps: [\n"}, "not valid YAML"),
        ({"name": "no-steps", "definition": "steps: []"}, "1 to 64 steps"),
        ({"name": "a-build", "definition": "steps:\n  - build: -t x ."}, "build steps"),
        ({"name": "unknown", "definition": "steps:\n  - cmd: x\n    shell: y"}, "unknown key"),
        ({"name": "top-key", "definition": "secrets: []\nsteps:\n  - cmd: x"}, "unknown key"),
        ({"name": "bad-when", "definition": "steps:\n  - cmd: x\n    when: [later]"}, "earlier"),
        (
            {"name": "twice-id", "definition": "steps:\n  - {id: a, cmd: x}\n  - {id: a, cmd: y}"},
            "twice",
        ),
        ({"name": "template", "cmd": "x {{.Run.Nope}}"}, "unknown template value"),
        ({"name": "timeout-0", "cmd": "x", "timeout": 0}, "timeout must be"),
        ({"name": "timeout-s", "cmd": "x", "timeout": "60"}, "timeout must be"),
        ({"name": "bad-cron", "cmd": "x", "timers": [{"name": "t", "schedule": "* *"}]}, "five"),
        (
            {"name": "never-cron", "cmd": "x", "timers": [{"name": "t", "schedule": "0 0 30 2 *"}]},
            "never",
        ),
        (
            {"name": "cron-range", "cmd": "x", "timers": [{"name": "t", "schedule": "61 * * * *"}]},
            "outside",
        ),
        ({"name": "status-x", "cmd": "x", "status": "Paused"}, "status must be"),
    ]
    for body, message in cases:
        text = assert_api_error(await client.post(f"{API}/tasks", json=body), 400)
        assert message in text, (body, text)
    assert (await client.get(f"{API}/tasks")).json() == []
    big = await client.post(f"{API}/tasks", json={"name": "too-big", "cmd": "x" * 300_000})
    assert_api_error(big, 413)
    await create_task(client, name="only-once", cmd="acr purge --filter a:b --ago 1d")
    twice = await client.post(f"{API}/tasks", json={"name": "only-once", "cmd": "x"})
    assert_api_error(twice, 409, "TaskExists")
    bad_values = await client.post(f"{API}/tasks/only-once/runs", json={"values": {"a b": "c"}})
    assert_api_error(bad_values, 400)
    assert_api_error(await client.post(f"{API}/tasks/missing-task/runs", json={}), 404)


@pytest.mark.no_containers
async def test_container_steps_are_refused_unless_the_operator_enables_them(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.post(f"{API}/runs", json={"cmd": "$Registry/busybox:1 true"})
    assert "HAVEN_TASK_CONTAINERS=true" in assert_api_error(resp, 400, "ContainerStepsDisabled")
    # acr purge is built in and runs anyway.
    run = await quick_run(client, cmd="acr purge --filter 'x:.*' --ago 0d --dry-run")
    assert (await wait_for_run(client, run["runId"]))["status"] == "Succeeded"
    bad = await quick_run(client, cmd="acr purge --ago 1d")
    failed = await wait_for_run(client, bad["runId"])
    assert failed["status"] == "Failed"
    assert "--filter" in failed["runErrorMessage"]


async def test_tasks_can_be_updated_disabled_and_deleted(client: httpx.AsyncClient) -> None:
    await create_task(client, name="change-me", cmd="acr purge --filter a:b --ago 1d")
    resp = await client.patch(
        f"{API}/tasks/change-me",
        json={
            "timeout": 600,
            "status": "Disabled",
            "timers": [{"name": "t2", "schedule": "*/5 * * * *"}],
        },
    )
    assert resp.status_code == 200, resp.text
    changed = resp.json()
    assert (changed["timeout"], changed["status"]) == (600, "Disabled")
    assert [t["name"] for t in changed["trigger"]["timerTriggers"]] == ["t2"]
    run = await start(client, "change-me")
    assert (await wait_for_run(client, run["runId"]))["status"] == "Succeeded"
    assert (await client.delete(f"{API}/tasks/change-me")).status_code == 204
    assert_api_error(await client.get(f"{API}/tasks/change-me"), 404, "TaskNotFound")
    assert_api_error(await client.delete(f"{API}/tasks/change-me"), 404, "TaskNotFound")
    # The run stays listed after its task is gone.
    assert (await client.get(f"{API}/runs/{run['runId']}")).json()["task"] == "change-me"


async def test_rights_and_registries_are_kept_apart(client: httpx.AsyncClient, app: Any) -> None:
    await create_registry(client, "otherreg")
    await create_task(client, name="default-task", cmd="acr purge --filter a:b --ago 1d")
    mine = await start(client, "default-task")
    theirs = await client.post(
        "/api/registries/otherreg/runs", json={"cmd": "acr purge --filter a:b --ago 1d"}
    )
    assert theirs.status_code == 201 and theirs.json()["runId"] == "ca1" == mine["runId"]
    assert (await client.get("/api/registries/otherreg/tasks")).json() == []

    reader = await member(client, "reader-one", "Reader", "default")
    async with caller(app, reader.auth) as as_reader:
        assert (await as_reader.get(f"{API}/runs")).status_code == 200
        assert (await as_reader.get(f"{API}/runs/ca1/logs")).status_code == 200
        for method, path, body in (
            ("POST", f"{API}/tasks", {"name": "sneaky", "cmd": "x"}),
            ("POST", f"{API}/tasks/default-task/runs", {}),
            ("POST", f"{API}/runs/ca1/cancel", None),
            ("DELETE", f"{API}/tasks/default-task", None),
        ):
            resp = await as_reader.request(method, path, json=body)
            assert_api_error(resp, 403, "AuthorizationFailed")
        assert_api_error(await as_reader.get("/api/registries/otherreg/runs"), 403)
    async with app_client(app) as nobody:
        assert_api_error(await nobody.get(f"{API}/runs"), 401)


async def test_concurrent_runs_get_distinct_ids(client: httpx.AsyncClient) -> None:
    await create_task(client, name="many-runs", cmd="acr purge --filter a:b --ago 1d")
    results = await asyncio.gather(*(start(client, "many-runs") for _ in range(12)))
    assert sorted(int(r["runId"][2:]) for r in results) == list(range(1, 13))
    for run in results:
        assert (await wait_for_run(client, run["runId"]))["status"] == "Succeeded"


async def test_a_run_whose_agent_died_is_failed_by_another(
    client: httpx.AsyncClient, app: Any, clock: Any
) -> None:
    registry_id = app.services.registries.default_registry_id

    def orphan(c: Any) -> int:
        run = task_store.enqueue(
            c, registry_id, None, None, "QuickRun", "Manual", "{}", 60, clock()
        )
        task_store.claim(c, run.id, "gone-host:1:dead", clock())
        return run.id

    await app.db.write(orphan)
    clock.offset_ms = 120_000
    done = await wait_for_run(client, "ca1", seconds=20)
    assert (done["status"], done["runErrorMessage"]) == (
        "Failed",
        "the server process running it stopped",
    )


def test_the_busybox_fixture_runs_outside_haven_too(tmp_path: Path) -> None:
    """The test image is a working one: unpacked, its entrypoint runs."""
    require_buildah()
    image = busybox_image()
    layer = image.layers[0].data
    (tmp_path / "layer.tgz").write_bytes(layer)
    subprocess.run(["tar", "-xzf", "layer.tgz"], cwd=tmp_path, check=True)
    out = subprocess.run(
        [str(tmp_path / "bin/busybox"), "echo", "ok"], capture_output=True, text=True, check=True
    )
    assert out.stdout == "ok\n"


async def test_a_read_locked_image_does_not_run(client: httpx.AsyncClient) -> None:
    await push_busybox(client)
    resp = await client.patch("/acr/v1/busybox", json={"readEnabled": False})
    assert resp.status_code == 200, resp.text
    run = await quick_run(client, cmd="$Registry/busybox:1 echo should not run")
    failed = await wait_for_run(client, run["runId"])
    assert failed["status"] == "Failed"
    assert "readEnabled is false" in failed["runErrorMessage"]
    assert "should not run\n" not in await run_log(client, run["runId"])
