"""Set-up shared by several scenarios, built once per registry and never timed: the seed
config and layer, the repository with 10,000 tags, the 1,000 repositories of the catalog.
"""

from __future__ import annotations

import json
from typing import cast

from benchmarks.client import image_manifest, run_bounded
from benchmarks.payload import SmallBlob
from benchmarks.side import Side


class FixtureError(RuntimeError):
    """Set-up did not produce what the scenarios rely on."""


CONFIG = SmallBlob.of(
    json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
)
SEED_REPO = "bench/seed"


async def seed_layer(side: Side) -> SmallBlob:
    """The one small layer every seeded repository shares (made once per side)."""

    async def build() -> SmallBlob:
        return SmallBlob.new(side.profile.small_size)

    return cast(SmallBlob, await side.fixture("seed-layer", build))


async def seed_blobs(side: Side, repo: str) -> SmallBlob:
    """Config and layer present in `repo`, so manifests pushed there are complete: pushed
    into the seed repository, mounted from it everywhere else."""

    async def build() -> SmallBlob:
        layer = await seed_layer(side)
        if repo == SEED_REPO:
            await side.client.push_small(repo, CONFIG)
            await side.client.push_small(repo, layer)
        else:
            await seed_blobs(side, SEED_REPO)
            await side.client.mount_or_push(repo, CONFIG, SEED_REPO)
            await side.client.mount_or_push(repo, layer, SEED_REPO)
        return layer

    return cast(SmallBlob, await side.fixture(f"seed:{repo}", build))


TAG_REPO = "bench/tags"


def tag_name(i: int) -> str:
    return f"t{i:05d}"


async def populate_tags(side: Side) -> None:
    """One manifest tagged `tags` times (PUT by tag at concurrency), then checked by a walk."""

    async def build() -> None:
        layer = await seed_blobs(side, TAG_REPO)
        body = image_manifest(CONFIG, [layer])
        p = side.profile

        async def tag(i: int) -> None:
            await side.client.put_manifest(TAG_REPO, tag_name(i), body)

        await run_bounded(p.populate_concurrency, range(p.tags), tag)
        _, entries = await side.client.walk(f"/v2/{TAG_REPO}/tags/list?n={p.page}", "tags")
        if entries != p.tags:
            raise FixtureError(f"{TAG_REPO}: walked {entries} tags, pushed {p.tags}")

    await side.fixture("tags", build)


async def populate_repositories(side: Side) -> None:
    """`repos` repositories, each with a mounted config and layer and one tagged manifest."""

    async def build() -> None:
        layer = await seed_blobs(side, SEED_REPO)
        body = image_manifest(CONFIG, [layer])

        async def repo(i: int) -> None:
            name = f"catalog/r{i:04d}"
            await side.client.mount_or_push(name, CONFIG, SEED_REPO)
            await side.client.mount_or_push(name, layer, SEED_REPO)
            await side.client.put_manifest(name, "v1", body)

        await run_bounded(side.profile.populate_concurrency, range(side.profile.repos), repo)

    await side.fixture("repositories", build)
