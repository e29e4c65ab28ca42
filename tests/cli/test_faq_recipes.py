"""The FAQ's recipes, verbatim with `az acr` replaced by `haven`.

Each recipe runs the CLI in a subprocess against a real `haven serve`, the way an
operator following the FAQ would type it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.task_helpers import busybox_image

from .test_against_server import OWNER_PASSWORD, Profile, Server, haven_serve
from .test_repository_against_server import Pusher, haven_on_path

USER_PASSWORD = "faq-user-Password-1"
FINAL = ("Succeeded", "Failed", "Canceled", "Timeout")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    containers = {"HAVEN_TASK_CONTAINERS": "true", "HAVEN_TASK_CONCURRENCY": "4"}
    with haven_serve(tmp_path_factory.mktemp("faq-serve"), settings=containers) as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Profile:
    profile = Profile(tmp_path_factory.mktemp("faq-owner"))
    done = profile("account", "login", "--server", server.url, "-u", "owner", "-p", OWNER_PASSWORD)
    assert done.returncode == 0, done.stderr
    # The FAQ's registry, as `az acr create` would make it.
    profile.json("create", "-n", "myRegistry", "--sku", "Standard")
    return profile


def _login_server(owner: Profile, server: Server) -> str:
    return str(owner.json("show", "-n", "myRegistry")["loginServer"])


def _push_image(server: Server, host: str, repository: str) -> str:
    """Push a one-layer image through the registry's login server; returns its digest."""
    auth = ("owner", OWNER_PASSWORD)
    headers = {"Host": host}
    with httpx.Client(base_url=server.url, auth=auth, headers=headers, timeout=30) as http:
        config, layer = b"{}", b"faq layer"
        for blob in (config, layer):
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            pushed = http.post(f"/v2/{repository}/blobs/uploads/?digest={digest}", content=blob)
            assert pushed.status_code == 201, pushed.text
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        put = http.put(
            f"/v2/{repository}/manifests/latest",
            content=manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert put.status_code == 201, put.text
        return str(put.headers["docker-content-digest"])


def test_credential_show_prints_the_admin_users_two_passwords(owner: Profile) -> None:
    refused = owner("credential", "show", "-n", "myRegistry")
    assert "Run 'haven registry update -n myregistry --admin-enabled true'" in refused.error()

    owner.json("update", "-n", "myRegistry", "--admin-enabled", "true")
    shown: dict[str, Any] = owner.json("credential", "show", "-n", "myRegistry")
    assert shown["username"] == "myregistry"
    assert [p["name"] for p in shown["passwords"]] == ["password", "password2"]


def test_role_assignment_on_the_registrys_resource_id_lets_a_user_pull_but_not_manage(
    owner: Profile, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    owner.json("identity", "create", "--name", "user@example.com", "--password", USER_PASSWORD)
    sp = owner.json("ad", "sp", "create-for-rbac", "--name", "faq-pipeline")
    resource_id = owner("show", "-n", "myRegistry", "--query", "id", "-o", "tsv").stdout.strip()

    for assignee in ("user@example.com", sp["appId"]):
        done = owner(
            "role", "assignment", "create",
            "--scope", resource_id, "--role", "AcrPull", "--assignee", assignee,
        )  # fmt: skip
        assert done.json()["scope"] == "myregistry"

    host = _login_server(owner, server)
    _push_image(server, host, "hello-world")
    user = Profile(tmp_path_factory.mktemp("faq-user"))
    assert user("account", "login", "--server", server.url, "-u", "user@example.com",
                "-p", USER_PASSWORD).returncode == 0  # fmt: skip
    with httpx.Client(base_url=server.url, headers={"Host": host}, timeout=30) as http:
        pulled = http.get(
            "/v2/hello-world/manifests/latest", auth=("user@example.com", USER_PASSWORD)
        )
        assert pulled.status_code == 200
        pushed = http.post(
            "/v2/hello-world/blobs/uploads/", auth=("user@example.com", USER_PASSWORD)
        )
        assert pushed.status_code == 403
    # "With AcrPull or AcrPush alone, the assignee cannot manage the registry resource."
    assert user.json("list") == []
    assert "does not have authorization" in user("show", "-n", "myRegistry").error()


def test_login_writes_docker_credentials_for_the_login_server(
    owner: Profile, server: Server
) -> None:
    done = owner("login", "-n", "myRegistry")
    assert done.returncode == 0, done.stderr
    assert "Login Succeeded" in done.stdout
    host = _login_server(owner, server)
    user, password = owner.docker_auth(host)
    assert user == "00000000-0000-0000-0000-000000000000"
    with httpx.Client(base_url=server.url, headers={"Host": host}, timeout=30) as http:
        assert http.get("/v2/", auth=(user, password)).status_code == 200


def test_update_anonymous_pull_enabled_opens_pulls_and_false_closes_them(
    owner: Profile, server: Server
) -> None:
    host = _login_server(owner, server)
    _push_image(server, host, "public/hello")
    url = "/v2/public/hello/manifests/latest"
    with httpx.Client(base_url=server.url, headers={"Host": host}, timeout=30) as anonymous:
        assert anonymous.get(url).status_code == 401

        enabled = owner.json("update", "--name", "myregistry", "--anonymous-pull-enabled")
        assert enabled["anonymousPullEnabled"] is True
        assert anonymous.get(url).status_code == 200
        assert anonymous.post("/v2/public/hello/blobs/uploads/").status_code == 401
        assert anonymous.get("/v2/_catalog").status_code == 401

        owner.json("update", "--name", "myregistry", "--anonymous-pull-enabled", "false")
        assert anonymous.get(url).status_code == 401


def test_anonymous_pull_is_refused_on_the_basic_sku(owner: Profile) -> None:
    owner.json("create", "-n", "basicRegistry", "--sku", "Basic")
    refused = owner("update", "--name", "basicregistry", "--anonymous-pull-enabled")
    assert "Standard and Premium" in refused.error()


def test_basic_auth_header_of_the_admin_user_works_for_pull(owner: Profile, server: Server) -> None:
    owner.json("update", "-n", "myRegistry", "--admin-enabled", "true")
    shown = owner.json("credential", "show", "-n", "myRegistry")
    password = shown["passwords"][0]["value"]
    host = _login_server(owner, server)
    _push_image(server, host, "admin/pull")
    basic = base64.b64encode(f"myregistry:{password}".encode()).decode()
    with httpx.Client(base_url=server.url, headers={"Host": host}, timeout=30) as http:
        got = http.get(
            "/v2/admin/pull/manifests/latest", headers={"Authorization": f"Basic {basic}"}
        )
        assert got.status_code == 200


# ------------------------------------------------------------------ registry operations


def _pusher(owner: Profile, server: Server) -> Pusher:
    return Pusher(server, _login_server(owner, server))


def test_delete_all_manifests_not_referenced_by_any_tag_through_bash(
    owner: Profile, server: Server, tmp_path: Path
) -> None:
    """'Hoe kan ik alle manifesten verwijderen waarnaar niet wordt verwezen door een tag?'"""
    pusher = _pusher(owner, server)
    untagged = [pusher.image("myrepository", "v1", "old"), pusher.image("myrepository", "rc", "rc")]
    tagged = pusher.image("myrepository", "v1", "new")
    owner("repository", "untag", "-n", "myRegistry", "--image", "myrepository:rc")
    before = owner.json(
        "repository", "show-manifests", "-n", "myRegistry", "--repository", "myrepository"
    )
    assert sorted(m["digest"] for m in before if not m["tags"]) == sorted(untagged)

    # The FAQ's bash line with `haven` for `az acr`, and the `-y` its note mentions.
    recipe = (
        'haven repository show-manifests -n myRegistry --repository myrepository --query "[?tags[0]==null].digest" -o tsv'  # noqa: E501
        "  | xargs -I% haven repository delete -n myRegistry -t myrepository@% -y"
    )
    env = {**owner.env, "PATH": haven_on_path(tmp_path / "bin")}
    done = subprocess.run(
        ["bash", "-c", recipe], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")
    after = owner.json(
        "repository", "show-manifests", "-n", "myRegistry", "--repository", "myrepository"
    )
    assert [(m["digest"], m["tags"]) for m in after] == [(tagged, ["v1"])]


def test_quota_recipe_show_usage_and_delete_the_image_on_a_terminal(
    owner: Profile, server: Server
) -> None:
    """'Hoe kan ik opslagquotumwijzigingen valideren?': push, show-usage, delete --image 1gb."""
    pusher = _pusher(owner, server)
    pusher.image("1gb", "latest", "one gigabyte, in spirit")
    usage = owner("show-usage", "-n", "myregistry", "-o", "table")
    assert usage.stdout.splitlines()[0].split() == ["NAME", "LIMIT", "CURRENT", "VALUE", "UNIT"]
    assert owner.json("repository", "show-tags", "-n", "myregistry", "--repository", "1gb") == [
        "latest"
    ]
    # Verbatim: no -y, so the question is asked and answered on a terminal.
    code, stderr = _on_a_tty(
        owner, ["repository", "delete", "-n", "myregistry", "--image", "1gb"], b"y\n"
    )
    assert code == 0, stderr
    assert "This operation will delete the manifest 'sha256:" in stderr
    assert (
        "and all the following images: '1gb:latest'.\nAre you sure you want to continue? (y/n): "
        in stderr
    )
    assert owner("repository", "show", "-n", "myregistry", "--image", "1gb:latest").returncode == 3


def test_check_health_recipe(owner: Profile, tmp_path: Path) -> None:
    """'az acr check-health -n myRegistry' (docker left out of PATH: podman stands in)."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "podman").write_text("#!/bin/sh\necho 'podman version 5.0.0'\n")
    (tools / "podman").chmod(0o755)
    owner.env["PATH"] = str(tools)
    try:
        done = owner("check-health", "-n", "myRegistry")
    finally:
        owner.env["PATH"] = os.environ.get("PATH", "")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Fetch access token for registry" in done.stdout


def test_repository_show_for_the_disallowed_operation_question(
    owner: Profile, server: Server
) -> None:
    """'Waarom mislukt mijn pull- of pushaanvraag…': `az acr repository show` shows the locks."""
    _pusher(owner, server).image("locked", "v1", "lock")
    owner.json(
        "repository",
        "update",
        "-n",
        "myRegistry",
        "--repository",
        "locked",
        "--write-enabled",
        "false",
    )
    shown = owner.json("repository", "show", "-n", "myRegistry", "--repository", "locked")
    assert shown["changeableAttributes"]["writeEnabled"] is False


def test_an_acrpull_assignee_lists_repositories_by_registry_name(
    owner: Profile, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """'az acr login -n myRegistry' and 'az acr repository list -n myRegistry' as the assignee."""
    name = f"puller{os.getpid()}@example.com"
    owner.json("identity", "create", "--name", name, "--password", USER_PASSWORD)
    owner.json(
        "role",
        "assignment",
        "create",
        "--scope",
        "myregistry",
        "--role",
        "AcrPull",
        "--assignee",
        name,
    )
    user = Profile(tmp_path_factory.mktemp("faq-puller"))
    assert (
        user("account", "login", "-s", server.url, "-u", name, "-p", USER_PASSWORD).returncode == 0
    )
    login_server = _login_server(owner, server)
    assert isinstance(user.json("repository", "list", "-n", login_server), list)  # works today
    assert user("login", "-n", "myRegistry").returncode == 0
    assert isinstance(user.json("repository", "list", "-n", "myRegistry"), list)


def _on_a_tty(profile: Profile, arguments: list[str], answer: bytes) -> tuple[int, str]:
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "haven", *arguments],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=profile.env,
    )
    os.close(terminal)
    os.write(controller, answer)
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        os.close(controller)
    return process.returncode, stderr.decode()


# ------------------------------------------------------------------------------- tasks


def push_busybox(server: Server, host: str, repository: str = "busybox") -> None:
    """The test busybox image, pushed as `<host>/<repository>:1`."""
    image = busybox_image()
    auth = ("owner", OWNER_PASSWORD)
    with httpx.Client(base_url=server.url, auth=auth, headers={"Host": host}, timeout=30) as http:
        for blob in image.blobs:
            pushed = http.post(
                f"/v2/{repository}/blobs/uploads/?digest={blob.digest}", content=blob.data
            )
            assert pushed.status_code == 201, pushed.text
        put = http.put(
            f"/v2/{repository}/manifests/1",
            content=image.manifest,
            headers={"Content-Type": image.media_type},
        )
        assert put.status_code == 201, put.text


def wait_for_status(owner: Profile, registry: str, run_id: str, *statuses: str) -> dict[str, Any]:
    for _ in range(600):
        run: dict[str, Any] = owner.json("task", "show-run", "-r", registry, "--run-id", run_id)
        if run["status"] in statuses:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} stayed {run['status']}")


def test_batch_cancel_runs_through_bash(owner: Profile, server: Server, tmp_path: Path) -> None:
    """'Hoe kan ik batch annuleren?': every running run of the registry is canceled."""
    push_busybox(server, _login_server(owner, server))
    finished = owner.json(
        "run", "-r", "myRegistry", "--cmd", "$Registry/busybox:1 true", "/dev/null", "--no-logs"
    )
    assert finished["status"] == "Succeeded"
    owner.json(
        "task",
        "create",
        "-r",
        "myRegistry",
        "-n",
        "sleeper",
        "-c",
        "/dev/null",
        "--cmd",
        "$Registry/busybox:1 sleep 3598.5",
    )
    running = [owner.json("task", "run", "-r", "myRegistry", "-n", "sleeper", "--no-wait")]
    for _ in range(2):
        running.append(
            owner.json(
                "run",
                "-r",
                "myRegistry",
                "--no-wait",
                "--cmd",
                "$Registry/busybox:1 sleep 3598.5",
                "/dev/null",
            )
        )
    for run in running:
        wait_for_status(owner, "myRegistry", run["runId"], "Running")

    recipe = (
        "haven task list-runs -r myRegistry --run-status Running --query '[].runId' -o tsv \\\n"
        "| xargs -I% haven task cancel-run -r myRegistry --run-id %"
    )
    env = {**owner.env, "PATH": haven_on_path(tmp_path / "bin")}
    done = subprocess.run(
        ["bash", "-c", recipe], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")
    for run in running:
        assert wait_for_status(owner, "myRegistry", run["runId"], *FINAL)["status"] == "Canceled"
    shown = owner.json("task", "show-run", "-r", "myRegistry", "--run-id", finished["runId"])
    assert shown["status"] == "Succeeded"
    assert owner.json("task", "list-runs", "-r", "myRegistry", "--run-status", "Running") == []
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if b"3598.5" in _read(p)], (
        "a canceled run's process is still there"
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
