"""Running a task's steps: each `cmd` step is a container started with buildah.

An image of the run's own registry (`$Registry/repo:tag`) is exported from Haven's
store into an OCI layout that buildah reads directly, so a step never needs network
access or credentials to its own registry; any other reference is pulled by buildah.
The step's process runs in a chroot of the image's root filesystem (buildah's `chroot`
isolation: no container runtime needed), with vfs storage private to the run, which is
removed when the run ends.

The image `acr` is the built-in `acr purge` (as ACR's `acr` alias): it runs Haven's own
purge against the run's registry, which is how purging on a schedule is set up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from haven.errors import ApiError, RegistryError
from haven.oci.digest import is_digest
from haven.services.blobs import BlobBytes, BlobFile, BlobObject, BlobService
from haven.services.management import purge_request as management_purge_request
from haven.services.manifests import ManifestService
from haven.services.purge import PurgeRequest, PurgeService
from haven.store.tasks import FAILED, SUCCEEDED, TIMEOUT
from haven.tasks.definition import Definition, Step

INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}
KILL_GRACE_SECONDS = 5.0

Log = Callable[[str], None]


class StepFailed(Exception):
    """A step that did not succeed; `status` is Failed or Timeout."""

    def __init__(self, message: str, status: str = FAILED) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class RunTarget:
    """The registry a run belongs to, and where its scratch space is."""

    registry_id: int
    registry_name: str
    login_servers: tuple[str, ...]
    workdir: Path


def host_architecture() -> str:
    machine = platform.machine().lower()
    return ARCHITECTURES.get(machine, machine)


class ImageExporter:
    """Writes an image of a registry into an OCI layout, from Haven's own store."""

    def __init__(self, manifests: ManifestService, blobs: BlobService) -> None:
        self._manifests = manifests
        self._blobs = blobs

    async def export(self, registry_id: int, repository: str, reference: str, dest: Path) -> None:
        found = await self._manifests.get(registry_id, repository, reference)
        payload, media_type, digest = found.payload, found.media_type, found.digest
        document = json.loads(payload)
        if media_type in INDEX_TYPES:
            digest = _platform_instance(document, repository, reference)
            found = await self._manifests.get(registry_id, repository, digest)
            payload, media_type = found.payload, found.media_type
            document = json.loads(payload)
        digests = [document["config"]["digest"]] + [layer["digest"] for layer in document["layers"]]
        files: list[BlobFile | BlobObject] = []
        for blob_digest in digests:
            blob = await self._blobs.get(registry_id, repository, blob_digest)
            if isinstance(blob, BlobBytes):
                raise StepFailed(f"{repository}@{blob_digest} is not a blob")
            files.append(blob)
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": media_type,
                    "digest": digest,
                    "size": len(payload),
                    "annotations": {"org.opencontainers.image.ref.name": "image"},
                }
            ],
        }
        await asyncio.to_thread(self._write_layout, dest, digest, payload, files, index)

    def _write_layout(
        self,
        dest: Path,
        digest: str,
        payload: bytes,
        files: list[BlobFile | BlobObject],
        index: dict[str, Any],
    ) -> None:
        blobs = dest / "blobs" / "sha256"
        blobs.mkdir(parents=True, exist_ok=True)
        (blobs / digest.split(":", 1)[1]).write_bytes(payload)
        for blob in files:
            target = blobs / blob.digest.split(":", 1)[1]
            if target.exists():
                continue
            if isinstance(blob, BlobObject):  # in an object store: copied down
                with target.open("wb") as out:
                    for chunk in self._blobs.stream(blob.digest, 0, blob.size):
                        out.write(chunk)
                continue
            try:
                os.link(blob.path, target)
            except OSError:
                shutil.copyfile(blob.path, target)
        (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        (dest / "index.json").write_text(json.dumps(index))


def _platform_instance(index: dict[str, Any], repository: str, reference: str) -> str:
    wanted = host_architecture()
    for entry in index.get("manifests", []):
        system = entry.get("platform") or {}
        if system.get("os") == "linux" and system.get("architecture") == wanted:
            return str(entry["digest"])
    raise StepFailed(f"{repository}:{reference} has no image for linux/{wanted}")


class _PurgeArguments(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the process
        raise StepFailed(f"acr purge: {message}")


def purge_request(args: tuple[str, ...]) -> PurgeRequest:
    """`acr purge --filter R:T … --ago D [--untagged | --untagged-only] [--keep N]
    [--dry-run] [--include-locked] [--concurrency N]` as a purge request."""
    parser = _PurgeArguments(prog="acr purge", add_help=False)
    parser.add_argument("--filter", action="append", required=True)
    parser.add_argument("--ago", required=True)
    parser.add_argument("--untagged", action="store_true")
    parser.add_argument("--untagged-only", action="store_true")
    parser.add_argument("--keep", type=int, default=0)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--include-locked", action="store_true")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--registry")  # the run's registry, whatever it says
    options = parser.parse_args(list(args))
    body = {
        "filters": options.filter,
        "ago": options.ago,
        "untagged": options.untagged,
        "untaggedOnly": options.untagged_only,
        "keep": options.keep,
        "dryRun": options.dry_run,
        "includeLocked": options.include_locked,
        "concurrency": options.concurrency,
    }
    try:
        return management_purge_request(body)
    except ApiError as exc:
        raise StepFailed(f"acr purge: {exc.message}") from None


class TaskRunner:
    """Runs the steps of one run after another (or side by side, as `when` says)."""

    def __init__(self, exporter: ImageExporter, purger: PurgeService, buildah: str | None) -> None:
        """`buildah`: the command container steps run with; None refuses them."""
        self._exporter = exporter
        self._purger = purger
        self._buildah = buildah or "buildah"
        self._containers = buildah is not None

    async def run(self, target: RunTarget, definition: Definition, log: Log) -> tuple[str, str]:
        """Run every step; return the run's status and, if it did not succeed, why."""
        target.workdir.mkdir(parents=True, exist_ok=True)
        outcome: dict[str, asyncio.Future[bool]] = {
            s.id: asyncio.get_running_loop().create_future() for s in definition.steps
        }
        failures: list[StepFailed] = []

        async def step_when_ready(step: Step, after: tuple[str, ...]) -> None:
            ok = True
            for name in after:
                ok = await asyncio.shield(outcome[name]) and ok
            if not ok:
                log(f"Step {step.id} skipped: a step it waits for failed\n")
                outcome[step.id].set_result(False)
                return
            try:
                await self._step_with_retries(target, definition, step, log)
            except StepFailed as failed:
                log(f"Step {step.id} failed: {failed}\n")
                if step.ignore_errors:
                    outcome[step.id].set_result(True)
                    return
                failures.append(failed)
                outcome[step.id].set_result(False)
                return
            outcome[step.id].set_result(True)

        previous: Step | None = None
        workers = []
        for step in definition.steps:
            workers.append(asyncio.create_task(step_when_ready(step, step.after(previous))))
            previous = step
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await self._clean(target)
        if not failures:
            return SUCCEEDED, ""
        first = failures[0]
        return first.status, str(first)

    async def _step_with_retries(
        self, target: RunTarget, definition: Definition, step: Step, log: Log
    ) -> None:
        for attempt in range(step.retries + 1):
            try:
                await self._step(target, definition, step, log)
                return
            except StepFailed:
                if attempt == step.retries:
                    raise
                log(f"Step {step.id}: retrying in {step.retry_delay} s\n")
                await asyncio.sleep(step.retry_delay)

    async def _step(self, target: RunTarget, definition: Definition, step: Step, log: Log) -> None:
        command = " ".join(shlex.quote(w) for w in (step.image, *step.args))
        log(f"Step {step.id}: {command} (timeout {step.timeout} s)\n")
        started = time.monotonic()
        try:
            async with asyncio.timeout(step.timeout):
                if step.image == "acr":
                    await self._acr(target, step, log)
                else:
                    await self._container(target, definition, step, log)
        except TimeoutError:
            raise StepFailed(f"timed out after {step.timeout} s", TIMEOUT) from None
        log(f"Step {step.id} succeeded in {time.monotonic() - started:.1f} s\n")

    # The built-in `acr purge` --------------------------------------------------------

    async def _acr(self, target: RunTarget, step: Step, log: Log) -> None:
        if not step.args or step.args[0] != "purge":
            raise StepFailed("the acr image runs `acr purge …` only")
        request = purge_request(step.args[1:])
        report = await self._purger.run(target.registry_id, request)
        verb = "Would delete" if request.dry_run else "Deleted"
        for tag in report.deleted_tags:
            log(f"{verb} tag {tag}\n")
        for manifest in report.deleted_manifests:
            log(f"{verb} manifest {manifest}\n")
        for locked in report.skipped_locked:
            log(f"Skipped locked {locked}\n")
        log(
            f"Number of deleted tags: {len(report.deleted_tags)}\n"
            f"Number of deleted manifests: {len(report.deleted_manifests)}\n"
        )

    # Containers ----------------------------------------------------------------------

    def _storage(self, target: RunTarget) -> list[str]:
        store = target.workdir / "storage"
        return [
            self._buildah,
            "--root",
            str(store / "root"),
            "--runroot",
            str(store / "runroot"),
            "--storage-driver",
            "vfs",
        ]

    def _local_reference(self, target: RunTarget, image: str) -> tuple[str, str] | None:
        """(repository, tag or digest) when `image` is in the run's registry."""
        host, _, rest = image.partition("/")
        if not rest or host.lower() not in target.login_servers:
            return None
        if "@" in rest:
            repository, _, reference = rest.partition("@")
            if not is_digest(reference):
                raise StepFailed(f"{image}: {reference} is not a digest")
            return repository, reference
        repository, _, tag = rest.rpartition(":")
        if not repository or "/" in tag:
            return rest, "latest"
        return repository, tag

    async def _container(
        self, target: RunTarget, definition: Definition, step: Step, log: Log
    ) -> None:
        if not self._containers:
            raise StepFailed("container steps are disabled on this server")
        if shutil.which(self._buildah) is None:
            raise StepFailed(
                f"{self._buildah} is not installed on this server: install buildah to run "
                "container steps"
            )
        local = self._local_reference(target, step.image)
        if local is not None:
            layout = target.workdir / "images" / step.id
            try:
                await self._exporter.export(target.registry_id, *local, layout)
            except RegistryError as exc:
                raise StepFailed(f"{step.image}: {exc.message}") from None
            source = f"oci:{layout}:image"
        else:
            source = f"docker://{step.image}"
        container = f"{target.workdir.name}-{step.id}"
        storage = self._storage(target)
        await self._checked(
            [*storage, "from", "--quiet", "--name", container, source], log, "pulling"
        )
        try:
            config = await self._image_config(storage, container)
            argv = _argv(step, config)
            if not argv:
                raise StepFailed(f"{step.image} has no entrypoint or command to run")
            options = ["--isolation", "chroot"]
            for variable in (*definition.env, *step.env):
                options += ["--env", variable]
            if step.working_directory:
                options += ["--workingdir", step.working_directory]
            code = await self._stream([*storage, "run", *options, container, "--", *argv], log)
            if code != 0:
                raise StepFailed(f"the command exited with status {code}")
        finally:
            with contextlib.suppress(Exception):
                await self._quiet([*storage, "rm", container])

    async def _image_config(self, storage: list[str], container: str) -> dict[str, Any]:
        process = await asyncio.create_subprocess_exec(
            *storage,
            "inspect",
            "--type",
            "container",
            container,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise StepFailed("buildah could not read the image's configuration")
        config = json.loads(out).get("OCIv1", {}).get("config") or {}
        return dict(config)

    async def _checked(self, argv: list[str], log: Log, doing: str) -> None:
        """Run a buildah command whose failure fails the step, with buildah's last words."""
        said: list[str] = []

        def keep(text: str) -> None:
            said.append(text)
            del said[:-8]
            log(text)

        code = await self._stream(argv, keep)
        if code != 0:
            lines = "".join(said).strip().splitlines()
            reason = f": {lines[-1][:300]}" if lines else ""
            raise StepFailed(f"{doing} failed (buildah exited with status {code}){reason}")

    async def _quiet(self, argv: list[str]) -> None:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        await process.wait()

    async def _stream(self, argv: list[str], log: Log) -> int:
        """Run a process in its own process group, its output into the log; when the
        step is canceled or times out, the whole group is terminated, then killed."""
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "BUILDAH_ISOLATION": "chroot"},
        )
        assert process.stdout is not None
        try:
            while chunk := await process.stdout.read(65536):
                log(chunk.decode(errors="replace"))
            return await process.wait()
        except asyncio.CancelledError:
            await _stop_group(process)
            raise

    async def _clean(self, target: RunTarget) -> None:
        storage = self._storage(target)
        if (target.workdir / "storage").exists() and shutil.which(self._buildah):
            with contextlib.suppress(Exception):
                await self._quiet([*storage, "rm", "--all"])
                await self._quiet([*storage, "rmi", "--all", "--force"])
        await asyncio.to_thread(shutil.rmtree, target.workdir, True)


def _argv(step: Step, config: dict[str, Any]) -> list[str]:
    """Docker's rule: the entrypoint, then the step's arguments or else the image's
    command; an `entryPoint` in the step replaces the image's."""
    entrypoint = [step.entry_point] if step.entry_point else list(config.get("Entrypoint") or [])
    arguments = list(step.args) if step.args else list(config.get("Cmd") or [])
    if step.entry_point and not step.args:
        arguments = []
    return entrypoint + arguments


async def _stop_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), KILL_GRACE_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
