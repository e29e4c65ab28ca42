"""Blob uploads: monolithic, chunked and streamed, verified before they are published.

Bytes go to the content store as they arrive, batched into a few MiB and written and
hashed in a worker thread, so a large push neither holds the event loop nor holds the
blob in memory. The sha256 state of an upload is kept by the process that received its
last chunk and saved beside the upload's row after each chunk, so a chunk that lands in
another worker or on another node resumes from it (`oci/resumable.py`). Only where that
state is missing or stale (libcrypto unavailable; a node died between storing a chunk and
saving the state) is it rebuilt from the bytes stored so far.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from haven.errors import BlobUploadUnknown, Denied, DigestInvalid, RangeNotSatisfiable
from haven.oci import resumable
from haven.oci.digest import Digest, new_hasher, parse_digest
from haven.store.content import BlobStore, UploadWriter
from haven.store.metadata import MetadataStore, Upload

T = TypeVar("T")
BATCH_BYTES = 4 * 1024 * 1024
MAX_CACHED_STATES = 4096


def _new_sha256() -> Any:
    return resumable.Sha256() if resumable.AVAILABLE else new_hasher("sha256")


@dataclass(slots=True)
class HashState:
    hasher: Any = field(default_factory=_new_sha256)
    offset: int = 0

    def saved(self) -> bytes | None:
        """The hash state to save with the upload, if it can be resumed elsewhere."""
        return self.hasher.state() if isinstance(self.hasher, resumable.Sha256) else None

    def consume(self, writer: UploadWriter, data: bytearray) -> None:
        view = memoryview(data)
        writer.write_sync(view)
        self.hasher.update(view)
        self.offset += len(data)


class UploadService:
    def __init__(self, metadata: MetadataStore, store: BlobStore, pool: ThreadPoolExecutor) -> None:
        self._metadata = metadata
        self._store = store
        self._pool = pool
        self._states: OrderedDict[str, HashState] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # Sessions --------------------------------------------------------------------

    async def start(self, registry_id: int, repository: str) -> str:
        upload_id = str(uuid.uuid4())
        await self._run(self._store.create_upload_sync, upload_id)
        await self._metadata.create_upload(upload_id, registry_id, repository)
        return upload_id

    async def _check(self, registry_id: int, repository: str, upload_id: str) -> Upload:
        try:
            uuid.UUID(upload_id)
        except ValueError:
            raise BlobUploadUnknown(f"upload {upload_id[:100]!r} is unknown") from None
        upload = await self._metadata.get_upload(upload_id)
        if upload is None or upload.registry_id != registry_id or upload.repository != repository:
            raise BlobUploadUnknown(f"upload {upload_id} is unknown to repository {repository}")
        return upload

    async def status(self, registry_id: int, repository: str, upload_id: str) -> int:
        await self._check(registry_id, repository, upload_id)
        return await self._run(self._store.upload_size_sync, upload_id)

    async def cancel(self, registry_id: int, repository: str, upload_id: str) -> None:
        await self._check(registry_id, repository, upload_id)
        await self._discard(upload_id)

    async def _discard(self, upload_id: str) -> None:
        self._states.pop(upload_id, None)
        await self._metadata.delete_upload(upload_id)
        await self._run(self._store.abort_sync, upload_id)

    def _lock(self, upload_id: str) -> asyncio.Lock:
        lock = self._locks.get(upload_id)
        if lock is None:
            lock = self._locks[upload_id] = asyncio.Lock()
        return lock

    # Writing ---------------------------------------------------------------------

    def _rebuild_sync(self, upload_id: str) -> HashState:
        state = HashState()
        for chunk in self._store.read_upload_sync(upload_id):
            state.hasher.update(chunk)
            state.offset += len(chunk)
        return state

    async def _state(self, upload: Upload) -> HashState:
        upload_id = upload.id
        size = await self._run(self._store.upload_size_sync, upload_id)
        state = self._states.get(upload_id)
        if state is None or state.offset != size:
            saved = upload.hash_state
            resumed = resumable.Sha256.resume(saved, size) if saved and size else None
            if size == 0:
                state = HashState()
            elif resumed is not None:
                state = HashState(resumed, size)
            else:
                state = await self._run(self._rebuild_sync, upload_id)
        self._states[upload_id] = state
        self._states.move_to_end(upload_id)
        while len(self._states) > MAX_CACHED_STATES:
            self._states.popitem(last=False)
        return state

    async def _write(self, upload_id: str, state: HashState, body: AsyncIterator[bytes]) -> None:
        """Stream `body` into the upload, hashing as it goes; one batch is written
        while the next is received."""
        writer = await self._run(self._store.open_upload_sync, upload_id)
        loop = asyncio.get_running_loop()
        pending: asyncio.Future[None] | None = None
        buffer = bytearray()
        try:
            async for chunk in body:
                buffer += chunk
                if len(buffer) >= BATCH_BYTES:
                    if pending is not None:
                        await pending
                    pending = loop.run_in_executor(self._pool, state.consume, writer, buffer)
                    buffer = bytearray()
            if pending is not None:
                await pending
                pending = None
            if buffer:
                await self._run(state.consume, writer, buffer)
        except BaseException:
            if pending is not None:
                await asyncio.wait([pending])
            # The stored bytes may run ahead of the hash now: rebuild next time.
            self._states.pop(upload_id, None)
            raise
        finally:
            await self._run(writer.close_sync)

    async def append(
        self,
        registry_id: int,
        repository: str,
        upload_id: str,
        body: AsyncIterator[bytes],
        content_range: tuple[int, int] | None,
        content_length: int | None,
    ) -> int:
        """Append a chunk; returns the upload's size afterwards.

        Raises RangeNotSatisfiable when the chunk does not start where the upload ends,
        or when its range and length disagree.
        """
        upload = await self._check(registry_id, repository, upload_id)
        async with self._lock(upload_id):
            state = await self._state(upload)
            _check_range(state.offset, content_range, content_length)
            await self._write(upload_id, state, body)
            saved = state.saved()
            if saved is not None:
                await self._metadata.save_upload_hash(upload_id, saved)
            return state.offset

    async def complete(
        self,
        registry_id: int,
        repository: str,
        upload_id: str,
        digest: str,
        body: AsyncIterator[bytes],
        content_range: tuple[int, int] | None,
        content_length: int | None,
    ) -> int:
        """Take the last chunk, verify the digest, publish the blob; returns its size."""
        expected = parse_digest(digest)
        upload = await self._check(registry_id, repository, upload_id)
        async with self._lock(upload_id):
            state = await self._state(upload)
            if content_range is not None or content_length:
                _check_range(state.offset, content_range, content_length)
            await self._write(upload_id, state, body)
            await self._verify(upload_id, state, expected)
            try:
                await self._metadata.require_room(registry_id, digest, state.offset)
            except Denied:
                await self._discard(upload_id)
                raise
            await self._run(self._store.publish_sync, upload_id, digest)
            self._states.pop(upload_id, None)
            self._locks.pop(upload_id, None)
            try:
                await self._metadata.complete_upload(
                    upload_id,
                    registry_id,
                    repository,
                    digest,
                    state.offset,
                    self._ensure(upload_id, digest),
                )
            finally:
                await self._run(self._store.abort_sync, upload_id)
            return state.offset

    async def monolithic(
        self, registry_id: int, repository: str, digest: str, body: AsyncIterator[bytes]
    ) -> int:
        """POST with `?digest=`: the whole blob in one request, no session kept."""
        expected = parse_digest(digest)
        upload_id = str(uuid.uuid4())
        await self._run(self._store.create_upload_sync, upload_id)
        try:
            state = HashState()
            await self._write(upload_id, state, body)
            await self._verify(upload_id, state, expected)
            await self._metadata.require_room(registry_id, digest, state.offset)
            await self._run(self._store.publish_sync, upload_id, digest)
            await self._metadata.link_blob(
                registry_id, repository, digest, state.offset, self._ensure(upload_id, digest)
            )
        finally:
            self._states.pop(upload_id, None)
            await self._run(self._store.abort_sync, upload_id)
        return state.offset

    def _ensure(self, upload_id: str, digest: str) -> Callable[[], None]:
        """Run inside the linking transaction: the blob is there, whatever garbage
        collection did since it was published."""
        return lambda: self._store.ensure_sync(upload_id, digest)

    async def _verify(self, upload_id: str, state: HashState, expected: Digest) -> None:
        if expected.algorithm == "sha256":
            actual = state.hasher.hexdigest()
        else:
            actual = await self._run(self._hash_upload_sync, upload_id, expected.algorithm)
        if actual != expected.hex:
            await self._discard(upload_id)
            raise DigestInvalid(
                f"digest {expected} does not match the uploaded content "
                f"({expected.algorithm}:{actual}); nothing was stored"
            )

    def _hash_upload_sync(self, upload_id: str, algorithm: str) -> str:
        hasher = new_hasher(algorithm)
        for chunk in self._store.read_upload_sync(upload_id):
            hasher.update(chunk)
        return str(hasher.hexdigest())


def _check_range(offset: int, content_range: tuple[int, int] | None, length: int | None) -> None:
    if content_range is None:
        return
    start, end = content_range
    if start != offset or end < start:
        raise RangeNotSatisfiable(
            f"chunk range {start}-{end} does not continue the upload, which has {offset} bytes",
        )
    if length is not None and length != end - start + 1:
        raise RangeNotSatisfiable(
            f"Content-Range {start}-{end} announces {end - start + 1} bytes "
            f"but Content-Length is {length}"
        )
