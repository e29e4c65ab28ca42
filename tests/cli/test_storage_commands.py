"""`haven show-usage`, `haven registry check-usage`, quota overrides and `haven gc run`
against a real `haven serve`, through the CLI in a subprocess."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_against_server import OWNER_PASSWORD, Profile, Server, haven_serve
from .test_repository_against_server import Pusher

GIB = 1024**3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with haven_serve(tmp_path_factory.mktemp("storage-serve")) as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Profile:
    profile = Profile(tmp_path_factory.mktemp("storage-owner"))
    done = profile("account", "login", "--server", server.url, "-u", "owner", "-p", OWNER_PASSWORD)
    assert done.returncode == 0, done.stderr
    profile.json("registry", "create", "-n", "storagereg", "--sku", "Basic")
    return profile


def size_row(owner: Profile) -> dict[str, int]:
    rows = owner.json("show-usage", "-n", "storagereg")["value"]
    return next(row for row in rows if row["name"] == "Size")  # type: ignore[no-any-return]


def test_usage_is_exact_at_once_and_gc_returns_the_bytes(owner: Profile, server: Server) -> None:
    pusher = Pusher(server, owner.json("registry", "show", "-n", "storagereg")["loginServer"])
    before = size_row(owner)
    assert before["limit"] == 10 * GIB  # Basic
    pusher.image("app", "v1", "the first")
    pushed = size_row(owner)["currentValue"]
    assert pushed > before["currentValue"]
    assert owner.json("registry", "check-usage", "-n", "storagereg")["driftBytes"] == 0

    deleted = owner("repository", "delete", "-n", "storagereg", "--image", "app:v1", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert size_row(owner)["currentValue"] == before["currentValue"]  # at once

    preview = owner.json("gc", "run", "--full", "--dry-run")
    assert preview["dryRun"] is True and preview["blobsDeleted"] >= 2
    freed = owner.json("gc", "run", "--full")
    assert (freed["blobsDeleted"], freed["bytesFreed"]) == (
        preview["blobsDeleted"],
        preview["bytesFreed"],
    )
    assert owner.json("gc", "run", "-n", "storagereg")["registry"] == "storagereg"


def test_a_quota_override_refuses_a_push_and_can_be_reset(owner: Profile, server: Server) -> None:
    pusher = Pusher(server, owner.json("registry", "show", "-n", "storagereg")["loginServer"])
    pusher.image("quota", "v1", "fits")
    shown = owner.json("registry", "update", "-n", "storagereg", "--storage-quota-gib", "0")
    assert shown["storageQuota"] == {"bytes": 0, "source": "override"}
    data = b"one byte too many"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    refused = pusher.http.post(f"/v2/quota/blobs/uploads/?digest={digest}", content=data)
    assert refused.status_code == 403, refused.text
    assert "storage quota exceeded" in refused.text
    reset = owner.json("registry", "update", "-n", "storagereg", "--reset-storage-quota")
    assert reset["storageQuota"] == {"bytes": 10 * GIB, "source": "sku"}
    assert pusher.http.post(f"/v2/quota/blobs/uploads/?digest={digest}", content=data).is_success


def test_storage_commands_refuse_bad_input(owner: Profile, tmp_path: Path, server: Server) -> None:
    update = ("registry", "update", "-n", "storagereg")
    both = owner(*update, "--storage-quota-gib", "5", "--reset-storage-quota")
    assert both.returncode == 2 and "not both" in both.stderr
    negative = owner(*update, "--storage-quota-gib", "-1")
    assert negative.returncode == 2
    unknown = owner("gc", "run", "-n", "nosuchregistry")
    assert unknown.returncode != 0 and "nosuchregistry" in unknown.stderr
    missing = owner("registry", "check-usage", "-n", "nosuchregistry")
    assert missing.returncode != 0

    stranger = Profile(tmp_path / "stranger")
    owner.json("identity", "create", "--name", "stranger", "--password", "Stranger-Password-1")
    done = stranger(
        "account", "login", "--server", server.url, "-u", "stranger", "-p", "Stranger-Password-1"
    )
    assert done.returncode == 0, done.stderr
    refused = stranger("gc", "run")
    assert refused.returncode == 1 and "ERROR:" in refused.stderr


def test_purge_recipe_and_its_errors(owner: Profile, server: Server) -> None:
    pusher = Pusher(server, owner.json("registry", "show", "-n", "storagereg")["loginServer"])
    pusher.image("purged", "v1", "one")
    pusher.image("purged", "v2", "two")
    pusher.image("kept", "v1", "kept")
    purge = ("purge", "-r", "storagereg", "--filter", "purged:.*", "--ago", "0")
    preview = owner.json(*purge, "--dry-run", "--untagged")
    assert preview["deletedTags"] == ["purged:v1", "purged:v2"]
    assert len(preview["deletedManifests"]) == 2  # what the deleted tags would leave
    done = owner.json(*purge, "--untagged")
    assert done["deletedTags"] == ["purged:v1", "purged:v2"]
    assert done["deletedManifests"] == preview["deletedManifests"]
    assert owner.json("repository", "show-tags", "-n", "storagereg", "--repository", "kept") == [
        "v1"
    ]
    assert owner.json("registry", "check-usage", "-n", "storagereg")["driftBytes"] == 0

    bad = owner("purge", "-r", "storagereg", "--filter", "purged:.*", "--ago", "1 week")
    assert bad.returncode == 1 and "invalid duration" in bad.stderr
    both = owner(*purge, "--untagged", "--untagged-only")
    assert both.returncode == 2 and "not both" in both.stderr
    unfiltered = owner("purge", "-r", "storagereg", "--ago", "1d")
    assert unfiltered.returncode == 2


def test_retention_policy_commands(owner: Profile) -> None:
    retention = ("config", "retention")
    assert owner.json(*retention, "show", "-r", "storagereg")["status"] == "disabled"
    enabled = owner.json(
        *retention, "update", "-r", "storagereg", "--status", "Enabled", "--days", "30"
    )
    assert (enabled["status"], enabled["days"], enabled["type"]) == (
        "enabled",
        30,
        "UntaggedManifests",
    )
    assert owner.json(*retention, "show", "-r", "storagereg")["days"] == 30
    too_long = owner(
        *retention, "update", "-r", "storagereg", "--status", "enabled", "--days", "400"
    )
    assert too_long.returncode == 2
    unknown = owner(*retention, "show", "-r", "nosuchregistry")
    assert unknown.returncode != 0 and "nosuchregistry" in unknown.stderr
    disabled = owner.json(*retention, "update", "-r", "storagereg", "--status", "disabled")
    assert disabled["status"] == "disabled"
