"""Content stores: where blob bytes live.

A store is content-addressed and immutable: an upload is written to a private temporary
object, and published under its digest only after the digest has been verified. A
published blob is never rewritten. Stores know nothing of registries or repositories;
which repository may read a blob is the metadata's business.

Methods named `*_sync` block and are called from worker threads only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from haven.errors import BlobUnknown, BlobUploadUnknown

READ_CHUNK = 4 * 1024 * 1024


class UploadWriter(Protocol):
    def write_sync(self, data: bytes | memoryview) -> None: ...

    def close_sync(self) -> None: ...


class BlobStore(Protocol):
    """The content store protocol (filesystem now; object stores behind the same calls)."""

    def create_upload_sync(self, upload_id: str) -> None:
        """Start an empty upload object."""

    def upload_size_sync(self, upload_id: str) -> int:
        """Bytes received so far; raises BlobUploadUnknown if the upload is gone."""

    def open_upload_sync(self, upload_id: str) -> UploadWriter:
        """A writer appending to the upload; raises BlobUploadUnknown."""

    def read_upload_sync(self, upload_id: str) -> Iterator[bytes]:
        """The upload's bytes so far, to rebuild a hash state."""

    def publish_sync(self, upload_id: str, digest: str) -> None:
        """Make the (verified) upload durable and readable under `digest`. The upload
        stays as a spare for `ensure_sync` (garbage collection may be deleting the
        published copy) until the caller drops it with `abort_sync` after linking."""

    def ensure_sync(self, upload_id: str, digest: str) -> None:
        """Make sure the blob exists, publishing the upload's spare copy if it does not.
        Called inside the transaction that links the blob, which garbage collection
        cannot interleave with."""

    def delete_sync(self, digest: str) -> int:
        """Delete a blob; returns the bytes freed (0 if it was not there)."""

    def scan_sync(self) -> Iterator[tuple[str, int, float]]:
        """Every stored blob: digest, size and modification time (Unix seconds)."""

    def abort_sync(self, upload_id: str) -> None:
        """Drop an upload; no error if it is gone."""

    def local_path(self, digest: str) -> Path | None:
        """Where the blob's bytes are on this machine (for zero-copy responses), or None
        for a store whose blobs are elsewhere."""

    def stat_sync(self, digest: str) -> int | None:
        """The stored blob's size, or None if it is not stored."""

    def read_sync(self, digest: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream (a range of) a stored blob in chunks of a few MiB."""

    def download_url_sync(self, digest: str, expires_in: float) -> str | None:
        """A short-lived URL that reads the blob without credentials, or None when the
        store has none to give (the filesystem)."""

    def check_sync(self) -> None:
        """Raise if the store cannot be written now (the readiness probe)."""


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FileWriter:
    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    def write_sync(self, data: bytes | memoryview) -> None:
        self._handle.write(data)

    def close_sync(self) -> None:
        self._handle.close()


class FilesystemBlobStore:
    """Blobs as files under `<root>/blobs/<algorithm>/<first two hex>/<hex>`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blob_root = root / "blobs"
        self.upload_root = root / "uploads"
        self.blob_root.mkdir(parents=True, exist_ok=True)
        self.upload_root.mkdir(parents=True, exist_ok=True)

    def _upload_path(self, upload_id: str) -> Path:
        return self.upload_root / upload_id

    def local_path(self, digest: str) -> Path:
        algorithm, _, encoded = digest.partition(":")
        return self.blob_root / algorithm / encoded[:2] / encoded

    def stat_sync(self, digest: str) -> int | None:
        try:
            return self.local_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def read_sync(self, digest: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        try:
            handle = self.local_path(digest).open("rb")
        except FileNotFoundError:
            raise BlobUnknown(f"blob {digest} is missing from storage") from None
        with handle:
            handle.seek(offset)
            left = length
            while left is None or left > 0:
                chunk = handle.read(READ_CHUNK if left is None else min(READ_CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    def download_url_sync(self, digest: str, expires_in: float) -> str | None:
        return None

    def check_sync(self) -> None:
        probe = self.upload_root / f".ready-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()

    def create_upload_sync(self, upload_id: str) -> None:
        self._upload_path(upload_id).touch(exist_ok=False)

    def upload_size_sync(self, upload_id: str) -> int:
        try:
            return self._upload_path(upload_id).stat().st_size
        except FileNotFoundError:
            raise BlobUploadUnknown() from None

    def open_upload_sync(self, upload_id: str) -> UploadWriter:
        try:
            handle = open(self._upload_path(upload_id), "r+b", buffering=0)  # noqa: SIM115
        except FileNotFoundError:
            raise BlobUploadUnknown() from None
        handle.seek(0, os.SEEK_END)
        return _FileWriter(handle)

    def read_upload_sync(self, upload_id: str) -> Iterator[bytes]:
        try:
            handle = open(self._upload_path(upload_id), "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise BlobUploadUnknown() from None
        with handle:
            while chunk := handle.read(READ_CHUNK):
                yield chunk

    def publish_sync(self, upload_id: str, digest: str) -> None:
        if self.local_path(digest).exists():
            # Same digest, same bytes: the first copy stays; this one waits as a spare.
            return
        self._publish(upload_id, digest)

    def ensure_sync(self, upload_id: str, digest: str) -> None:
        if not self.local_path(digest).exists():
            self._publish(upload_id, digest)

    def delete_sync(self, digest: str) -> int:
        path = self.local_path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def scan_sync(self) -> Iterator[tuple[str, int, float]]:
        for algorithm in sorted(p for p in self.blob_root.iterdir() if p.is_dir()):
            for fan_out in sorted(p for p in algorithm.iterdir() if p.is_dir()):
                for entry in os.scandir(fan_out):
                    try:
                        stat = entry.stat()
                    except FileNotFoundError:
                        continue
                    yield f"{algorithm.name}:{entry.name}", stat.st_size, stat.st_mtime

    def _publish(self, upload_id: str, digest: str) -> None:
        source = self._upload_path(upload_id)
        target = self.local_path(digest)
        fd = os.open(source, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            # The new fan-out directories must survive a crash too.
            _fsync_directory(target.parent.parent)
            _fsync_directory(target.parent.parent.parent)
        # Its age is that of the publication, not of the last chunk: garbage collection
        # leaves files younger than its grace period alone until their rows appear.
        os.utime(source)
        # A second name for the upload's file: the upload keeps its own as the spare
        # that `ensure_sync` needs, until `abort_sync` drops it.
        with contextlib.suppress(FileExistsError):  # another upload of the same bytes won
            os.link(source, target)
        _fsync_directory(target.parent)

    def abort_sync(self, upload_id: str) -> None:
        self._upload_path(upload_id).unlink(missing_ok=True)
