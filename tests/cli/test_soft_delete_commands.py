"""`haven config soft-delete`, `haven repository list-deleted` and `haven manifest
list-deleted|list-deleted-tags|restore` against a real `haven serve`, through the CLI in a
subprocess."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_against_server import OWNER_PASSWORD, Profile, Server, haven_serve
from .test_repository_against_server import Pusher

REGISTRY = "softdeletereg"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with haven_serve(tmp_path_factory.mktemp("soft-delete-serve")) as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Profile:
    profile = Profile(tmp_path_factory.mktemp("soft-delete-owner"))
    done = profile("account", "login", "--server", server.url, "-u", "owner", "-p", OWNER_PASSWORD)
    assert done.returncode == 0, done.stderr
    profile.json("registry", "create", "-n", REGISTRY, "--sku", "Standard")
    enabled = profile.json(
        "config", "soft-delete", "update", "-r", REGISTRY, "--status", "Enabled", "--days", "30"
    )
    assert (enabled["status"], enabled["retentionDays"]) == ("enabled", 30)
    return profile


@pytest.fixture(scope="module")
def pusher(owner: Profile, server: Server) -> Pusher:
    return Pusher(server, owner.json("registry", "show", "-n", REGISTRY)["loginServer"])


def pulled_digest(owner: Profile, image: str) -> str:
    """The digest of what `haven manifest show --raw` prints for `image`."""
    shown = owner("manifest", "show", "-r", REGISTRY, "-n", image, "--raw")
    assert shown.returncode == 0, shown.stderr
    return "sha256:" + hashlib.sha256(shown.stdout.encode()).hexdigest()


def test_the_policy_commands_and_their_errors(owner: Profile) -> None:
    policy = ("config", "soft-delete")
    shown = owner.json(*policy, "show", "-r", REGISTRY)
    assert (shown["status"], shown["retentionDays"]) == ("enabled", 30)
    assert shown["lastUpdatedTime"]
    days = owner.json(*policy, "update", "-r", REGISTRY, "--days", "90")
    assert (days["status"], days["retentionDays"]) == ("enabled", 90)
    for bad in (("--days", "0"), ("--days", "91"), ("--status", "on"), ()):
        done = owner(*policy, "update", "-r", REGISTRY, *bad)
        assert done.returncode == 2, (bad, done.stderr)
    unknown = owner(*policy, "show", "-r", "nosuchregistry")
    assert unknown.returncode == 3 and "nosuchregistry" in unknown.error()

    # ACR's rule: never with the retention policy.
    refused = owner("config", "retention", "update", "-r", REGISTRY, "--status", "enabled")
    assert refused.returncode == 1 and "soft delete" in refused.error()
    assert owner.json("config", "retention", "show", "-r", REGISTRY)["status"] == "disabled"


def test_delete_list_and_restore(owner: Profile, pusher: Pusher) -> None:
    digest = pusher.image("app", "v1", "first")
    pusher.image("app", "latest", "other")
    before = owner.json("registry", "check-usage", "-n", REGISTRY)
    deleted = owner("repository", "delete", "-n", REGISTRY, "--image", "app:v1", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    gone = owner("manifest", "show", "-r", REGISTRY, "-n", "app:v1")
    assert gone.returncode == 3, gone.stderr
    after = owner.json("registry", "check-usage", "-n", REGISTRY)
    assert after["usedBytes"] == before["usedBytes"] and after["driftBytes"] == 0

    assert owner.json("repository", "list-deleted", "-n", REGISTRY) == ["app"]
    manifests = owner.json("manifest", "list-deleted", "-r", REGISTRY, "-n", "app")
    assert [(m["digest"], m["tags"]) for m in manifests] == [(digest, ["v1"])]
    assert manifests[0]["expiresAfter"] > manifests[0]["deletedAt"]
    tags = owner.json("manifest", "list-deleted-tags", "-r", REGISTRY, "-n", "app:v1")
    assert [(t["tag"], t["digest"]) for t in tags] == [("v1", digest)]
    assert owner.json("manifest", "list-deleted-tags", "-r", REGISTRY, "-n", "app:latest") == []
    assert len(owner.json("manifest", "list-deleted-tags", "-r", REGISTRY, "-n", "app")) == 1

    restored = owner.json("manifest", "restore", "-r", REGISTRY, "-n", "app:v1")
    assert (restored["digest"], restored["tag"]) == (digest, "v1")
    assert pulled_digest(owner, "app:v1") == digest
    assert owner.json("manifest", "list-deleted", "-r", REGISTRY, "-n", "app") == []
    assert owner.json("repository", "list-deleted", "-n", REGISTRY) == []
    again = owner("manifest", "restore", "-r", REGISTRY, "-n", "app:v1")
    assert again.returncode == 3 and "app:v1" in again.error()


def test_restore_needs_force_over_a_moved_tag_and_a_digest_among_several(
    owner: Profile, pusher: Pusher
) -> None:
    first = pusher.image("moved", "v1", "first")
    assert owner("manifest", "delete", "-r", REGISTRY, "-n", "moved:v1", "--yes").returncode == 0
    second = pusher.image("moved", "v1", "second")
    assert owner("manifest", "delete", "-r", REGISTRY, "-n", "moved:v1", "--yes").returncode == 0
    third = pusher.image("moved", "v1", "third")

    # Two soft-deleted manifests were tagged v1: without --digest, the latest, after asking.
    unasked = owner("manifest", "restore", "-r", REGISTRY, "-n", "moved:v1")
    assert unasked.returncode == 1 and "--yes" in unasked.error()
    refused = owner("manifest", "restore", "-r", REGISTRY, "-n", "moved:v1", "--yes")
    assert refused.returncode == 1 and "force" in refused.error() and third in refused.error()
    assert pulled_digest(owner, "moved:v1") == third

    chosen = owner.json("manifest", "restore", "-r", REGISTRY, "-n", "moved:v1", "-d", first, "-f")
    assert chosen["digest"] == first
    assert pulled_digest(owner, "moved:v1") == first
    left = owner.json("manifest", "list-deleted-tags", "-r", REGISTRY, "-n", "moved:v1")
    assert [t["digest"] for t in left] == [second]
    latest = owner.json("manifest", "restore", "-r", REGISTRY, "-n", "moved:v1", "--force")
    assert latest["digest"] == second
    assert pulled_digest(owner, "moved:v1") == second
    assert pulled_digest(owner, f"moved@{third}") == third  # untagged, not deleted


def test_restore_refuses_bad_names(owner: Profile) -> None:
    restore = ("manifest", "restore", "-r", REGISTRY)
    for name in ("moved", "moved@sha256:" + "0" * 64, "moved:", ":v1"):
        done = owner(*restore, "-n", name)
        assert done.returncode == 2, (name, done.stderr)
    not_a_digest = owner(*restore, "-n", "moved:v1", "-d", "latest")
    assert not_a_digest.returncode == 2, not_a_digest.stderr
    bad_digest = owner(*restore, "-n", "moved:v1", "-d", "sha256:xyz")  # the registry judges
    assert bad_digest.returncode == 1 and "invalid sha256 digest" in bad_digest.error()
    nothing = owner(*restore, "-n", "moved:never")
    assert nothing.returncode == 3 and "moved:never" in nothing.error()
    unknown = owner(*restore, "-n", "moved:v1", "-d", "sha256:" + "0" * 64)
    assert unknown.returncode == 3, unknown.stderr


def test_a_deleted_repository_is_listed_and_comes_back(owner: Profile, pusher: Pusher) -> None:
    digest = pusher.image("team/web", "v1", "web")
    done = owner("repository", "delete", "-n", REGISTRY, "--repository", "team/web", "--yes")
    assert done.returncode == 0, done.stderr
    assert "team/web" not in owner.json("repository", "list", "-n", REGISTRY)
    assert "team/web" in owner.json("repository", "list-deleted", "-n", REGISTRY)
    collected = owner.json("gc", "run", "--full")
    assert collected["blobsDeleted"] == 0, collected
    owner.json("manifest", "restore", "-r", REGISTRY, "-n", "team/web:v1")
    assert "team/web" in owner.json("repository", "list", "-n", REGISTRY)
    assert pulled_digest(owner, "team/web:v1") == digest
    assert owner.json("registry", "check-usage", "-n", REGISTRY)["driftBytes"] == 0


def test_callers_without_the_rights_are_refused(
    owner: Profile, server: Server, tmp_path: Path
) -> None:
    owner.json("identity", "create", "--name", "puller", "--password", "Puller-Password-1")
    owner.json(
        "role", "assignment", "create", "--role", "AcrPull", "--assignee", "puller",
        "--scope", REGISTRY,
    )  # fmt: skip
    puller = Profile(tmp_path / "puller")
    done = puller(
        "account", "login", "--server", server.url, "-u", "puller", "-p", "Puller-Password-1"
    )
    assert done.returncode == 0, done.stderr
    login_server = owner.json("registry", "show", "-n", REGISTRY)["loginServer"]
    listed = puller("manifest", "list-deleted", "-r", login_server, "-n", "app")
    assert listed.returncode == 1 and "deleted" in listed.error()
    restored = puller(
        "manifest", "restore", "-r", login_server, "-n", "app:v1", "-d", "sha256:" + "0" * 64
    )
    assert restored.returncode == 1, restored.stderr
    changed = puller("config", "soft-delete", "update", "-r", REGISTRY, "--status", "disabled")
    assert changed.returncode == 1, changed.stderr
