"""`haven repository|manifest|show-usage|check-health|deploy|configure` in a subprocess
against a real `haven serve`: ACR's `/acr/v1/` API, lock attributes, usage, and the FAQ's
recipes, the untagged-manifest purge run through a real shell."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .certificates import self_signed
from .test_against_server import (
    OWNER_PASSWORD,
    STRANGER_PASSWORD,
    Profile,
    Server,
    haven_serve,
    unique,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with haven_serve(tmp_path_factory.mktemp("repo-serve")) as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Profile:
    profile = Profile(tmp_path_factory.mktemp("repo-owner"))
    done = profile("account", "login", "--server", server.url, "-u", "owner", "-p", OWNER_PASSWORD)
    assert done.returncode == 0, done.stderr
    return profile


@pytest.fixture(scope="module")
def registry(owner: Profile) -> dict[str, Any]:
    return dict(owner.json("create", "-n", unique("repos"), "--sku", "Standard"))


class Pusher:
    """Pushes images and artifacts through a registry's login server (Host header)."""

    def __init__(self, server: Server, login_server: str) -> None:
        self.http = httpx.Client(
            base_url=server.url,
            auth=("owner", OWNER_PASSWORD),
            headers={"Host": login_server},
            timeout=30,
        )

    def blob(self, repository: str, content: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        pushed = self.http.post(f"/v2/{repository}/blobs/uploads/?digest={digest}", content=content)
        assert pushed.status_code == 201, pushed.text
        return {"digest": digest, "size": len(content)}

    def manifest(self, repository: str, reference: str, manifest: dict[str, Any]) -> str:
        put = self.http.put(
            f"/v2/{repository}/manifests/{reference}",
            content=json.dumps(manifest).encode(),
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert put.status_code == 201, put.text
        return str(put.headers["docker-content-digest"])

    def image(self, repository: str, tag: str, salt: str) -> str:
        platform = {"architecture": "amd64", "os": "linux", "salt": salt}
        config = {
            **self.blob(repository, json.dumps(platform).encode()),
            "mediaType": "application/vnd.oci.image.config.v1+json",
        }
        layer = {
            **self.blob(repository, f"layer {salt}".encode()),
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
        }
        return self.manifest(
            repository,
            tag,
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]},
        )

    def referrer(self, repository: str, subject: str, artifact_type: str) -> str:
        empty = {
            **self.blob(repository, b"{}"),
            "mediaType": "application/vnd.oci.empty.v1+json",
        }
        size = len(self.http.get(f"/v2/{repository}/manifests/{subject}").content)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": empty,
            "layers": [empty],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": size},
        }
        digest = "sha256:" + hashlib.sha256(json.dumps(manifest).encode()).hexdigest()
        return self.manifest(repository, digest, manifest)


@pytest.fixture(scope="module")
def pusher(server: Server, registry: dict[str, Any]) -> Pusher:
    return Pusher(server, registry["loginServer"])


def haven_on_path(directory: Path) -> str:
    """A PATH whose `haven` runs this checkout's CLI, for recipes run through bash."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "haven"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m haven "$@"\n')
    script.chmod(0o755)
    return f"{directory}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"


# ------------------------------------------------------------------------------ the FAQ


def test_the_faq_pipeline_deletes_the_untagged_manifests_through_bash(
    owner: Profile, registry: dict[str, Any], pusher: Pusher, tmp_path: Path
) -> None:
    name, repository = registry["name"], "faq/purge"
    first = pusher.image(repository, "v1", "a")  # untagged by the next push of v1
    tagged_v1 = pusher.image(repository, "v1", "b")
    tagged_v2 = pusher.image(repository, "v2", "c")
    untag_me = pusher.image(repository, "tmp", "d")
    assert owner("repository", "untag", "-n", name, "--image", f"{repository}:tmp").returncode == 0
    before = owner.json("repository", "show-manifests", "-n", name, "--repository", repository)
    assert {m["digest"] for m in before if m["tags"] == []} == {first, untag_me}

    # The FAQ's line, with haven for az acr, its registry and repository, and --yes.
    recipe = (
        f"haven repository show-manifests -n {name} --repository {repository} "
        '--query "[?tags[0]==null].digest" -o tsv  '
        f"| xargs -I% haven repository delete -n {name} -t {repository}@% --yes"
    )
    env = {**owner.env, "PATH": haven_on_path(tmp_path / "bin")}
    done = subprocess.run(
        ["bash", "-c", recipe], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")

    after = owner.json("repository", "show-manifests", "-n", name, "--repository", repository)
    assert {m["digest"]: m["tags"] for m in after} == {tagged_v1: ["v1"], tagged_v2: ["v2"]}
    shown = owner.json("repository", "show", "-n", name, "--repository", repository)
    assert (shown["manifestCount"], shown["tagCount"]) == (2, 2)


def _size(owner: Profile, name: str) -> int:
    query = "value[?name=='Size'].currentValue | [0]"
    return int(owner("show-usage", "-n", name, "--query", query, "-o", "tsv").stdout)


def test_the_faqs_quota_recipe_show_usage_grows_with_a_push(
    owner: Profile, registry: dict[str, Any], pusher: Pusher
) -> None:
    name = registry["name"]
    start = _size(owner, name)
    pusher.image("quota/grow", "latest", "grow")
    assert _size(owner, name) > start
    table = owner("show-usage", "-n", name, "-o", "table").stdout.splitlines()
    assert table[0].split() == ["NAME", "LIMIT", "CURRENT", "VALUE", "UNIT"]
    assert [line.split()[0] for line in table[2:]] == [
        "Size", "Webhooks", "Geo-replications", "IPRules", "Tokens", "ScopeMaps",
    ]  # fmt: skip
    # Deleting the repository unlinks its layers: the usage is back where it was.
    assert (
        owner("repository", "delete", "-n", name, "--repository", "quota/grow", "-y").returncode
        == 0
    )
    assert _size(owner, name) == start


def test_the_faqs_quota_recipe_delete_image_lowers_usage_at_once(
    owner: Profile, registry: dict[str, Any], pusher: Pusher
) -> None:
    name = registry["name"]
    start = _size(owner, name)
    pusher.image("quota/1gb", "latest", "big")
    assert _size(owner, name) > start
    # `az acr repository delete -n myregistry --image 1gb`: no tag means :latest.
    deleted = owner("repository", "delete", "-n", name, "--image", "quota/1gb", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert _size(owner, name) == start


# ------------------------------------------------------------------------------ repository


def test_repository_commands_end_to_end(
    owner: Profile, registry: dict[str, Any], pusher: Pusher
) -> None:
    name, repository = registry["name"], "e2e/hello"
    v1 = pusher.image(repository, "v1", "e1")
    v2 = pusher.image(repository, "v2", "e2")
    pusher.image(repository, "latest", "e2")  # the same manifest as v2

    assert repository in owner.json("repository", "list", "-n", name)
    assert (
        owner("repository", "list", "-n", name, "--top", "1", "-o", "tsv").stdout.count("\n") == 1
    )
    shown = owner.json("repository", "show", "-n", name, "--repository", repository)
    assert shown["imageName"] == repository
    assert shown["registry"] == registry["loginServer"]
    assert (shown["manifestCount"], shown["tagCount"]) == (2, 3)
    assert shown["changeableAttributes"] == {
        "deleteEnabled": True, "listEnabled": True, "readEnabled": True, "writeEnabled": True,
    }  # fmt: skip

    tags = ["repository", "show-tags", "-n", name, "--repository", repository]
    assert sorted(owner.json(*tags)) == ["latest", "v1", "v2"]
    newest = owner.json(
        "repository", "show-tags", "-n", name, "--repository", repository,
        "--orderby", "time_desc", "--top", "1", "--detail",
    )  # fmt: skip
    assert [t["name"] for t in newest] == ["latest"] and newest[0]["digest"] == v2
    tag = owner.json("repository", "show", "-n", name, "--image", f"{repository}:v1")
    assert (tag["name"], tag["digest"], tag["signed"]) == ("v1", v1, False)
    manifest = owner.json("repository", "show", "-n", name, "-t", f"{repository}@{v2}")
    assert sorted(manifest["tags"]) == ["latest", "v2"]
    assert (manifest["architecture"], manifest["os"]) == ("amd64", "linux")
    detail = owner.json(
        "repository", "show-manifests", "-n", name, "--repository", repository, "--detail"
    )
    assert {m["digest"] for m in detail} == {v1, v2}
    assert owner.json("manifest", "list-metadata", "-r", name, "-n", repository) == detail

    # Untag removes one tag; delete by tag removes the manifest and all its tags.
    assert owner("repository", "untag", "-n", name, "-t", f"{repository}:latest").returncode == 0
    assert sorted(owner.json(*tags)) == ["v1", "v2"]
    refused = owner("repository", "delete", "-n", name, "-t", f"{repository}:v2")
    assert refused.error() == "Unable to prompt for confirmation as no tty available. Use --yes."
    assert owner("repository", "delete", "-n", name, "-t", f"{repository}:v2", "-y").returncode == 0
    assert owner.json("repository", "show-tags", "-n", name, "--repository", repository) == ["v1"]
    gone = owner("repository", "show", "-n", name, "-t", f"{repository}@{v2}")
    assert gone.returncode == 3, gone.stderr

    assert (
        owner("repository", "delete", "-n", name, "--repository", repository, "--yes").returncode
        == 0
    )
    missing = owner("repository", "show", "-n", name, "--repository", repository)
    assert missing.returncode == 3
    assert repository in missing.error()


def test_lock_attributes_refuse_writes_and_deletes(
    owner: Profile, registry: dict[str, Any], pusher: Pusher
) -> None:
    name, repository = registry["name"], "locked/app"
    digest = pusher.image(repository, "prod", "l1")
    locked = owner.json(
        "repository", "update", "-n", name, "--image", f"{repository}:prod",
        "--write-enabled", "false", "--delete-enabled", "false",
    )  # fmt: skip
    assert locked["name"] == "prod"
    assert locked["changeableAttributes"]["writeEnabled"] is False
    assert locked["changeableAttributes"]["deleteEnabled"] is False
    shown = owner(
        "repository", "show", "-n", name, "--image", f"{repository}:prod",
        "--query", "changeableAttributes.writeEnabled", "-o", "tsv",
    )  # fmt: skip
    assert shown.stdout == "false\n"
    with pytest.raises(AssertionError):  # overwriting a locked tag is refused
        pusher.image(repository, "prod", "l2")
    untag = owner("repository", "untag", "-n", name, "-t", f"{repository}:prod")
    assert untag.returncode == 1 and "locked" in untag.error()

    manifest = owner.json(
        "repository",
        "update",
        "-n",
        name,
        "-t",
        f"{repository}@{digest}",
        "--delete-enabled",
        "false",
    )
    assert (
        manifest["digest"] == digest and manifest["changeableAttributes"]["deleteEnabled"] is False
    )
    whole = owner.json(
        "repository", "update", "-n", name, "--repository", repository, "--delete-enabled", "false"
    )
    assert whole["imageName"] == repository
    refused = owner("repository", "delete", "-n", name, "--repository", repository, "--yes")
    assert refused.returncode == 1 and "locked" in refused.error()

    for flags in (
        ["--repository", repository],
        ["-t", f"{repository}@{digest}"],
        ["-t", f"{repository}:prod"],
    ):
        owner.json("repository", "update", "-n", name, *flags, "--delete-enabled", "true",
                   "--write-enabled", "true")  # fmt: skip
    assert (
        owner("repository", "delete", "-n", name, "--repository", repository, "-y").returncode == 0
    )


# ------------------------------------------------------------------------------ manifest


def test_manifest_show_raw_referrers_and_delete(
    owner: Profile, registry: dict[str, Any], pusher: Pusher
) -> None:
    name, repository = registry["name"], "artifacts/app"
    digest = pusher.image(repository, "v1", "m1")
    show = ["manifest", "show", "-r", name, "-n", f"{repository}:v1", "--raw"]
    raw = subprocess.run(
        [sys.executable, "-m", "haven", *show],
        env=owner.env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert raw.returncode == 0, raw.stderr
    assert "sha256:" + hashlib.sha256(raw.stdout).hexdigest() == digest
    parsed = owner.json("manifest", "show", "-r", name, "-n", f"{repository}@{digest}")
    assert parsed == json.loads(raw.stdout)

    sbom = pusher.referrer(repository, digest, "application/vnd.example.sbom.v1")
    signature = pusher.referrer(repository, digest, "application/vnd.example.signature.v1")
    listed = owner.json("manifest", "list-referrers", "-r", name, "-n", f"{repository}:v1")
    assert {m["digest"] for m in listed["manifests"]} == {sbom, signature}
    only = owner.json(
        "manifest", "list-referrers", "-r", name, "-n", f"{repository}:v1",
        "--artifact-type", "application/vnd.example.sbom.v1",
    )  # fmt: skip
    assert [m["digest"] for m in only["manifests"]] == [sbom]
    table = owner("manifest", "list-referrers", "-r", name, "-n", f"{repository}:v1", "-o", "table")
    assert sbom in table.stdout

    assert (
        owner("manifest", "delete", "-r", name, "-n", f"{repository}@{sbom}", "--yes").returncode
        == 0
    )
    assert (
        owner("manifest", "delete", "-r", name, "-n", f"{repository}:v1", "--yes").returncode == 0
    )
    assert owner("manifest", "show", "-r", name, "-n", f"{repository}:v1").returncode == 3


# ------------------------------------------------------------------------------ rights


def test_an_acrpull_identity_lists_by_name_or_login_server_but_cannot_delete(
    owner: Profile, registry: dict[str, Any], pusher: Pusher, server: Server, tmp_path: Path
) -> None:
    name, login_server = registry["name"], registry["loginServer"]
    pusher.image("pull/only", "v1", "p1")
    puller = unique("puller")
    owner.json("identity", "create", "--name", puller, "--password", STRANGER_PASSWORD)
    owner.json(
        "role", "assignment", "create", "--role", "AcrPull", "--assignee", puller, "--scope", name
    )
    me = Profile(tmp_path / "puller")
    assert (
        me("account", "login", "-s", server.url, "-u", puller, "-p", STRANGER_PASSWORD).returncode
        == 0
    )

    assert "pull/only" in me.json("repository", "list", "-n", name)
    assert "pull/only" in me.json("repository", "list", "-n", login_server)
    assert me.json("repository", "show-tags", "-n", login_server, "--repository", "pull/only") == [
        "v1"
    ]
    denied = me("repository", "delete", "-n", login_server, "-t", "pull/only:v1", "--yes")
    assert denied.returncode == 1, denied.stdout
    assert denied.error()
    assert owner.json("repository", "show-tags", "-n", name, "--repository", "pull/only") == ["v1"]


def test_an_identity_without_roles_and_unknown_names(
    owner: Profile, registry: dict[str, Any], server: Server, tmp_path: Path
) -> None:
    stranger = unique("nobody")
    owner.json("identity", "create", "--name", stranger, "--password", STRANGER_PASSWORD)
    me = Profile(tmp_path / "stranger")
    assert (
        me("account", "login", "-s", server.url, "-u", stranger, "-p", STRANGER_PASSWORD).returncode
        == 0
    )
    for command in (
        ["repository", "list", "-n", registry["name"]],
        ["repository", "show-manifests", "-n", registry["name"], "--repository", "x"],
        ["manifest", "show", "-r", registry["name"], "-n", "x:y"],
        ["show-usage", "-n", registry["name"]],
    ):
        result = me(*command)
        assert result.returncode == 1, command
        assert "does not have authorization" in result.error(), command
    nothing = me("repository", "list", "-n", registry["loginServer"])
    assert nothing.returncode == 1 and nothing.error()
    for command in (
        ["repository", "list", "-n", "nosuch0registry"],
        ["show-usage", "-n", "nosuch0registry"],
        ["repository", "show", "-n", registry["name"], "--repository", "no/such/repo"],
        ["repository", "show", "-n", registry["name"], "-t", "no/such/repo:v1"],
        ["manifest", "show", "-r", registry["name"], "-n", "no/such/repo:v1"],
    ):
        assert owner(*command).returncode == 3, command


def test_a_server_that_is_down(tmp_path: Path) -> None:
    me = Profile(tmp_path / "me")
    with haven_serve(tmp_path) as gone:
        assert (
            me("account", "login", "-s", gone.url, "-u", "owner", "-p", OWNER_PASSWORD).returncode
            == 0
        )
        assert me("create", "-n", "downregistry").returncode == 0
    result = me("repository", "list", "-n", "downregistry")
    assert result.returncode == 1
    assert result.error().startswith(f"Cannot connect to {gone.url}")


# ------------------------------------------------------------------------------ check-health


def test_check_health_against_the_server(
    owner: Profile, registry: dict[str, Any], pusher: Pusher, tmp_path: Path
) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool, line in (
        ("podman", "podman version 5.0.0"),
        ("helm", "v3.17.0"),
        ("notary", "notary"),
    ):
        (tools / tool).write_text(f"#!/bin/sh\necho '{line}'\n")
        (tools / tool).chmod(0o755)
    owner.env["PATH"] = str(tools)
    try:
        pusher.image("health/check", "v1", "h1")
        result = owner("check-health", "-n", registry["name"], "--image", "health/check:v1")
        assert result.returncode == 0, result.stdout + result.stderr
        login_server = registry["loginServer"]
        for line in (
            "Challenge endpoint ",
            f"Fetch refresh token for registry '{login_server}' : OK",
            f"Fetch access token for registry '{login_server}' : OK",
            f"Pull of '{login_server}/health/check:v1' : OK",
        ):
            assert line in result.stdout
        assert (
            "WARNING: DOCKER_COMMAND_ERROR: docker was not found on PATH; podman was."
            in result.stderr
        )
        missing = owner(
            "check-health", "-n", registry["name"], "-t", "health/check:nope", "--only-show-errors"
        )
        assert missing.returncode == 1
        assert missing.error().startswith("DOCKER_PULL_ERROR: ")
    finally:
        owner.env["PATH"] = os.environ.get("PATH", "")


# ------------------------------------------------------------------------------ deploy


def test_deploy_is_idempotent_against_the_server(owner: Profile, tmp_path: Path) -> None:
    team, public = unique("team"), unique("public")
    path = tmp_path / "registry.yaml"
    path.write_text(
        f"""registries:
  - name: {team}
    sku: Premium
    adminUserEnabled: true
    networkRuleSet:
      defaultAction: Allow
      ipRules: [203.0.113.0/24, 198.51.100.7]
  - name: {public}
    sku: Standard
    anonymousPullEnabled: true
"""
    )
    planned = owner.json("deploy", "-f", str(path), "--what-if")
    assert [c["action"] for c in planned if c["registry"] == public] == ["create", "set", "set"]
    assert owner("show", "-n", team).returncode == 3, "--what-if must not create anything"
    applied = owner.json("deploy", "-f", str(path))
    assert applied == planned
    shown = owner.json("show", "-n", team)
    assert shown["sku"]["name"] == "Premium" and shown["adminUserEnabled"] is True
    assert sorted(r["ipAddressOrRange"] for r in shown["networkRuleSet"]["ipRules"]) == [
        "198.51.100.7/32", "203.0.113.0/24",
    ]  # fmt: skip
    assert owner.json("show", "-n", public)["anonymousPullEnabled"] is True
    again = owner("deploy", "-f", str(path))
    assert (again.returncode, again.stdout) == (0, "[]\n")

    path.write_text(
        f"registries:\n  - name: {team}\n    networkRuleSet:\n      ipRules: [203.0.113.0/24]\n"
    )
    changed = owner.json("deploy", "-f", str(path))
    assert changed == [
        {"registry": team, "action": "remove", "property": "networkRuleSet.ipRules",
         "from": "198.51.100.7/32", "to": None},
    ]  # fmt: skip
    assert [
        r["ipAddressOrRange"] for r in owner.json("show", "-n", team)["networkRuleSet"]["ipRules"]
    ] == ["203.0.113.0/24"]


# ------------------------------------------------------------------------------ defaults, env


def test_configure_defaults_and_environment_sign_in(
    owner: Profile, registry: dict[str, Any], server: Server, tmp_path: Path
) -> None:
    me = Profile(tmp_path / "configured")
    assert me("configure", "--defaults", f"acr={registry['name']}").returncode == 0
    config = me.home / ".haven" / "config.json"  # HAVEN_CONFIG_DIR of the profile
    assert json.loads(config.read_text())["defaults"] == {"acr": registry["name"]}
    me.env.update(HAVEN_SERVER=server.url, HAVEN_USERNAME="owner", HAVEN_PASSWORD=OWNER_PASSWORD)
    listed = me("repository", "list")
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)
    assert me.json("show-usage")["value"][0]["name"] == "Size"
    assert "refreshToken" not in json.loads(config.read_text())
    me.env["HAVEN_PASSWORD"] = "wrong"
    assert me("repository", "list").error().startswith(f"{server.url} refused HAVEN_USERNAME")


def test_service_principal_login(owner: Profile, server: Server, tmp_path: Path) -> None:
    sp = owner.json("ad", "sp", "create-for-rbac", "--name", unique("sp"))
    me = Profile(tmp_path / "sp")
    done = me(
        "account",
        "login",
        "--service-principal",
        "-s",
        server.url,
        "-u",
        sp["appId"],
        "-p",
        sp["password"],
    )
    assert done.json()["kind"] == "servicePrincipal"
    user = Profile(tmp_path / "user")
    refused = user(
        "account",
        "login",
        "--service-principal",
        "-s",
        server.url,
        "-u",
        "owner",
        "-p",
        OWNER_PASSWORD,
    )
    assert "not a service principal" in refused.error()
    assert user("account", "show").returncode == 1


# ------------------------------------------------------------------------------ TLS


def test_the_data_plane_over_https(tmp_path: Path) -> None:
    certificate = self_signed(tmp_path)
    with haven_serve(tmp_path, tls=certificate) as tls:
        me = Profile(tmp_path / "me")
        login = me(
            "account",
            "login",
            "-s",
            tls.url,
            "-u",
            "owner",
            "-p",
            OWNER_PASSWORD,
            "--ca-file",
            str(certificate[0]),
        )
        assert login.returncode == 0, login.stderr
        created = me.json("create", "-n", "tlsregistry")
        with httpx.Client(
            base_url=tls.url,
            verify=ssl.create_default_context(cafile=str(certificate[0])),
            auth=("owner", OWNER_PASSWORD),
            headers={"Host": created["loginServer"]},
            timeout=30,
        ) as http:
            blob = b"{}"
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            assert (
                http.post(f"/v2/tls/app/blobs/uploads/?digest={digest}", content=blob).status_code
                == 201
            )
            empty = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest, "size": 2}
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": empty,
                "layers": [],
            }
            put = http.put("/v2/tls/app/manifests/v1", content=json.dumps(manifest).encode(),
                           headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
            assert put.status_code == 201, put.text
        assert me.json("repository", "list", "-n", "tlsregistry") == ["tls/app"]
        assert me.json(
            "repository", "show-tags", "-n", "tlsregistry", "--repository", "tls/app"
        ) == ["v1"]
        stranger = Profile(tmp_path / "untrusting")
        stranger.env.update(
            HAVEN_SERVER=tls.url, HAVEN_USERNAME="owner", HAVEN_PASSWORD=OWNER_PASSWORD
        )
        untrusted = stranger("repository", "list", "-n", "tlsregistry")
        assert untrusted.returncode == 1
        assert untrusted.error().startswith(f"Cannot verify the TLS certificate of {tls.url}")


def test_listings_follow_the_servers_link_paging(
    owner: Profile, registry: dict[str, Any], pusher: Pusher
) -> None:
    """More tags than one page (the CLI asks for 100 at a time) come back complete."""
    name, repository = registry["name"], "paging/many"
    digest = pusher.image(repository, "t000", "paging")
    manifest = pusher.http.get(
        f"/v2/{repository}/manifests/{digest}", headers={"Accept": OCI_MANIFEST}
    ).content
    for number in range(1, 130):
        put = pusher.http.put(
            f"/v2/{repository}/manifests/t{number:03d}",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert put.status_code == 201, put.text
    tags = owner.json("repository", "show-tags", "-n", name, "--repository", repository)
    assert sorted(tags) == [f"t{number:03d}" for number in range(130)]
    assert len(owner.json("repository", "show-tags", "-n", name, "--repository", repository,
                          "--top", "110")) == 110  # fmt: skip
    manifests = owner.json("repository", "show-manifests", "-n", name, "--repository", repository)
    assert len(manifests) == 1 and len(manifests[0]["tags"]) == 130
