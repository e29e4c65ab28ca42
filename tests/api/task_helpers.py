"""A runnable image for task tests: busybox (Debian's static build) as /bin/busybox, the
entrypoint, so that `cmd: $Registry/busybox sh -c '…'` runs a shell."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .helpers import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Blob, Manifest, canonical, push_image

BUSYBOX = Path("/bin/busybox")


def require_buildah() -> None:
    """Container steps need buildah and a static busybox; CI installs both."""
    missing = [n for n in ("buildah",) if shutil.which(n) is None]
    if not BUSYBOX.exists():
        missing.append(str(BUSYBOX))
    if missing:
        pytest.fail(f"task tests need {', '.join(missing)}: run scripts/install-e2e-deps.sh")


def busybox_image() -> Manifest:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for directory in ("bin", "tmp", "work"):
            entry = tarfile.TarInfo(directory)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            archive.addfile(entry)
        data = BUSYBOX.read_bytes()
        entry = tarfile.TarInfo("bin/busybox")
        entry.size, entry.mode = len(data), 0o755
        archive.addfile(entry, io.BytesIO(data))
    tar = raw.getvalue()
    layer = Blob(gzip.compress(tar, mtime=0), OCI_LAYER)
    config = Blob(
        canonical(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {
                    "Entrypoint": ["/bin/busybox"],
                    "Cmd": ["sh"],
                    "Env": ["PATH=/bin", "IMAGE_SAYS=hello"],
                },
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [f"sha256:{hashlib.sha256(tar).hexdigest()}"],
                },
            }
        ),
        OCI_CONFIG,
    )
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    }
    return Manifest(
        canonical(document), OCI_MANIFEST, (config, layer), config=config, layers=(layer,)
    )


async def push_busybox(client: httpx.AsyncClient, repo: str = "busybox", tag: str = "1") -> None:
    await push_image(client, repo, busybox_image(), tag)


async def wait_for_run(
    client: httpx.AsyncClient,
    run_id: str,
    statuses: tuple[str, ...] = ("Succeeded", "Failed", "Canceled", "Timeout"),
    registry: str = "default",
    seconds: float = 60,
) -> dict[str, Any]:
    """Poll a run until its status is one of `statuses`."""
    deadline = time.monotonic() + seconds
    while True:
        resp = await client.get(f"/api/registries/{registry}/runs/{run_id}")
        assert resp.status_code == 200, resp.text
        run: dict[str, Any] = resp.json()
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, f"run {run_id} stayed {run['status']}"
        await asyncio.sleep(0.1)


async def run_log(client: httpx.AsyncClient, run_id: str, registry: str = "default") -> str:
    """A finished run's whole log, chunk by chunk."""
    text, after = "", 0
    while True:
        resp = await client.get(
            f"/api/registries/{registry}/runs/{run_id}/logs", params={"after": after}
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        text += body["text"]
        after = body["next"]
        if body["finished"]:
            return text
