"""The content store on S3 or an S3-compatible object store.

Blobs are objects under `<prefix>/blobs/<algorithm>/<first two hex>/<hex>`. An upload is
a folder `<prefix>/uploads/<id>/`: an empty `created` object saying it exists, and one
segment object per writer session (`<id>/0000000000`, `<id>/0000000001`, …). A writer
streams its bytes to its segment as a multipart upload of 8 MiB parts and completes it
on close, so whatever a PATCH wrote is durable when it returns, and the next PATCH may
land on any process of any node: the upload's size is the sum of its segments and its
bytes are the segments in order.

Publishing copies the segments to the blob's key on the server side (one CopyObject, or
UploadPartCopy of each segment into a multipart upload), so blob bytes do not pass
through Haven. S3 refuses parts under 5 MiB except the last; where a segment smaller than
that has to be joined to the next one, those few MiB are read and uploaded again. The
segments stay as the spare copy that `ensure_sync` republishes from until `abort_sync`.

Blocking throughout (boto3): every method runs in a worker thread. S3's strong
read-after-write consistency is assumed, as AWS and Ceph RGW provide.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from haven.errors import BlobUnknown, BlobUploadUnknown, RangeNotSatisfiable

READ_CHUNK = 4 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024
# S3's limits: the smallest part but the last, the largest part or copied object, the
# number of parts of a multipart upload.
MIN_PART = 5 * 1024 * 1024
MAX_COPY = 5 * 1024 * 1024 * 1024
MAX_PARTS = 10_000
# A writer's part size grows by PART_SIZE every so many parts, so that a segment may
# reach 240 GiB within MAX_PARTS while a writer holds at most 40 MiB.
PARTS_PER_STEP = 2_000

_CREATED = "created"
_SEGMENT_DIGITS = 10
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


def _missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in _MISSING


@dataclass(frozen=True, slots=True)
class _Segment:
    key: str
    size: int


class _SegmentWriter:
    """One writer session: a segment object written as a multipart upload, part by part
    as the bytes arrive, or with one PUT when it stays under a part."""

    def __init__(self, store: S3BlobStore, key: str) -> None:
        self._store = store
        self._key = key
        self._buffer = bytearray()
        self._multipart_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._closed = False

    def _part_size(self) -> int:
        return PART_SIZE * (1 + len(self._parts) // PARTS_PER_STEP)

    def write_sync(self, data: bytes | memoryview) -> None:
        if self._closed:
            raise ValueError("write to a closed upload writer")
        self._buffer += data
        if len(self._buffer) >= self._part_size():
            self._flush_part()

    def _flush_part(self) -> None:
        client, bucket = self._store.client, self._store.bucket
        try:
            if self._multipart_id is None:
                started = client.create_multipart_upload(
                    Bucket=bucket, Key=self._key, ContentType="application/octet-stream"
                )
                self._multipart_id = str(started["UploadId"])
            number = len(self._parts) + 1
            if number > MAX_PARTS:
                raise ValueError(f"an upload session may not exceed {MAX_PARTS} parts")
            answer = client.upload_part(
                Bucket=bucket,
                Key=self._key,
                UploadId=self._multipart_id,
                PartNumber=number,
                Body=bytes(self._buffer),
            )
        except BaseException:
            self._abandon()
            raise
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self._buffer = bytearray()

    def close_sync(self) -> None:
        if self._closed:
            return
        self._closed = True
        client, bucket = self._store.client, self._store.bucket
        if self._multipart_id is None:
            if self._buffer:
                client.put_object(
                    Bucket=bucket,
                    Key=self._key,
                    Body=bytes(self._buffer),
                    ContentType="application/octet-stream",
                )
            self._buffer = bytearray()
            return
        if self._buffer:
            self._flush_part()
        try:
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=self._key,
                UploadId=self._multipart_id,
                MultipartUpload={"Parts": self._parts},
            )
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """Drop the parts of a segment that will never be completed (they cost storage
        until aborted; `abort_sync` also sweeps those of a writer that crashed)."""
        self._closed = True
        self._buffer = bytearray()
        if self._multipart_id is None:
            return
        with contextlib.suppress(ClientError, BotoCoreError):
            self._store.client.abort_multipart_upload(
                Bucket=self._store.bucket, Key=self._key, UploadId=self._multipart_id
            )


_session: boto3.session.Session | None = None
_session_lock = threading.Lock()


def _new_client(service: str, **options: Any) -> Any:
    """A client from this process's one boto3 session: a session parses botocore's
    service descriptions (half a second of JSON) once, and is not safe to make clients
    from in two threads at once."""
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(service, **options)


class S3BlobStore:
    """Blobs and uploads as objects in one bucket, under an optional key prefix."""

    def local_path(self, digest: str) -> None:
        """Blobs are not on this machine: they are read or handed out by URL."""
        return None

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def from_url(cls, url: str, *, create_bucket: bool = True) -> S3BlobStore:
        """`s3://<bucket>[/<prefix>]?endpoint=…&region=…&access_key=…&secret_key=…`.

        Every parameter is optional: without keys, boto3's usual sources apply
        (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, profiles, instance roles); with an
        endpoint (MinIO, Ceph RGW, …) keys are addressed path-style. The bucket is
        created if it is missing and the credentials may create it; otherwise
        `check_sync` reports it. Raises ValueError for a malformed URL.
        """
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://<bucket>/<prefix> URL: {url!r}")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"endpoint", "region", "access_key", "secret_key"}
        if unknown:
            raise ValueError(f"unknown S3 URL parameters: {', '.join(sorted(unknown))}")
        endpoint = query.get("endpoint")
        region = (
            query.get("region")
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint else "auto"},
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=64,
            connect_timeout=10,
            read_timeout=120,
            # Checksums only where S3 requires them: S3-compatible servers do not all
            # accept boto3's newer default trailing checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = _new_client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=query.get("access_key"),
            aws_secret_access_key=query.get("secret_key"),
            config=config,
        )
        store = cls(client, parts.netloc, parts.path)
        if create_bucket:
            store._create_bucket_sync(region)
        return store

    def _create_bucket_sync(self, region: str) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as error:
            if not _missing(error):
                return  # forbidden to look, say: check_sync tells the operator
        arguments: dict[str, Any] = {"Bucket": self.bucket}
        if region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**arguments)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists", "AccessDenied"}:
                raise

    # Keys --------------------------------------------------------------------------

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _blob_key(self, digest: str) -> str:
        algorithm, _, encoded = digest.partition(":")
        return self._key(f"blobs/{algorithm}/{encoded[:2]}/{encoded}")

    def _upload_folder(self, upload_id: str) -> str:
        if not upload_id or "/" in upload_id:
            raise BlobUploadUnknown()
        return self._key(f"uploads/{upload_id}/")

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            yield from page.get("Contents", ())

    def _segments(self, upload_id: str) -> list[_Segment]:
        """The upload's segments in order; raises BlobUploadUnknown if it is gone."""
        folder = self._upload_folder(upload_id)
        created = False
        segments = []
        for entry in self._list(folder):
            name = entry["Key"][len(folder) :]
            if name == _CREATED:
                created = True
            elif name.isdigit():
                segments.append(_Segment(entry["Key"], int(entry["Size"])))
        if not created:
            raise BlobUploadUnknown()
        segments.sort(key=lambda segment: segment.key)
        return segments

    # Uploads ----------------------------------------------------------------------

    def create_upload_sync(self, upload_id: str) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self._upload_folder(upload_id) + _CREATED, Body=b""
        )

    def upload_size_sync(self, upload_id: str) -> int:
        return sum(segment.size for segment in self._segments(upload_id))

    def open_upload_sync(self, upload_id: str) -> _SegmentWriter:
        segments = self._segments(upload_id)
        number = int(segments[-1].key.rsplit("/", 1)[1]) + 1 if segments else 0
        key = f"{self._upload_folder(upload_id)}{number:0{_SEGMENT_DIGITS}d}"
        return _SegmentWriter(self, key)

    def read_upload_sync(self, upload_id: str) -> Iterator[bytes]:
        for segment in self._segments(upload_id):
            yield from self._read_object(segment.key, None)

    def abort_sync(self, upload_id: str) -> None:
        folder = self._upload_folder(upload_id)
        # The marker first: from then on the upload is unknown, whatever else remains.
        self.client.delete_object(Bucket=self.bucket, Key=folder + _CREATED)
        for key in [entry["Key"] for entry in self._list(folder)]:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=folder
        )
        for page in pages:
            for pending in page.get("Uploads", ()):
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=pending["Key"], UploadId=pending["UploadId"]
                    )
                except ClientError as error:
                    if not _missing(error):
                        raise

    # Publishing ---------------------------------------------------------------------

    def publish_sync(self, upload_id: str, digest: str) -> None:
        if self.stat_sync(digest) is not None:
            # Same digest, same bytes: the first copy stays; this one waits as a spare.
            return
        self._publish(upload_id, digest)

    def ensure_sync(self, upload_id: str, digest: str) -> None:
        if self.stat_sync(digest) is None:
            self._publish(upload_id, digest)

    def _publish(self, upload_id: str, digest: str) -> None:
        """Copy the upload's segments to the blob's key. The blob appears whole or not at
        all; concurrent publishers of one digest write the same bytes, the last one
        staying. Its modification time is the publication's, which the garbage
        collector's grace period counts from."""
        segments = self._segments(upload_id)
        target = self._blob_key(digest)
        if not segments:
            self.client.put_object(
                Bucket=self.bucket, Key=target, Body=b"", ContentType="application/octet-stream"
            )
        elif len(segments) == 1 and segments[0].size <= MAX_COPY:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=target,
                CopySource={"Bucket": self.bucket, "Key": segments[0].key},
                MetadataDirective="REPLACE",
                ContentType="application/octet-stream",
            )
        else:
            self._publish_parts(segments, target)

    def _publish_parts(self, segments: list[_Segment], target: str) -> None:
        started = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=target, ContentType="application/octet-stream"
        )
        multipart_id = str(started["UploadId"])
        parts: list[dict[str, Any]] = []

        def copy(segment: _Segment, start: int, end: int) -> None:
            answer = self.client.upload_part_copy(
                Bucket=self.bucket,
                Key=target,
                UploadId=multipart_id,
                PartNumber=len(parts) + 1,
                CopySource={"Bucket": self.bucket, "Key": segment.key},
                CopySourceRange=f"bytes={start}-{end - 1}",
            )
            parts.append({"PartNumber": len(parts) + 1, "ETag": answer["CopyPartResult"]["ETag"]})

        def send(data: bytearray) -> None:
            answer = self.client.upload_part(
                Bucket=self.bucket,
                Key=target,
                UploadId=multipart_id,
                PartNumber=len(parts) + 1,
                Body=bytes(data),
            )
            parts.append({"PartNumber": len(parts) + 1, "ETag": answer["ETag"]})

        try:
            # Bytes of small segments waiting to be joined into a part of MIN_PART:
            # never more than that, so publishing holds a few MiB at most.
            pending = bytearray()
            for segment in segments:
                position = 0
                if pending:
                    position = min(MIN_PART - len(pending), segment.size)
                    for chunk in self._read_object(segment.key, (0, position)):
                        pending += chunk
                    if len(pending) >= MIN_PART:
                        send(pending)
                        pending = bytearray()
                remaining = segment.size - position
                if remaining >= MIN_PART:
                    pieces = math.ceil(remaining / MAX_COPY)
                    piece = math.ceil(remaining / pieces)
                    for start in range(position, segment.size, piece):
                        copy(segment, start, min(start + piece, segment.size))
                elif remaining > 0:
                    for chunk in self._read_object(segment.key, (position, segment.size)):
                        pending += chunk
            if pending:
                send(pending)
            if len(parts) > MAX_PARTS:
                raise ValueError(f"the upload needs more than {MAX_PARTS} parts to publish")
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=target,
                UploadId=multipart_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=target, UploadId=multipart_id
                )
            raise

    # Blobs --------------------------------------------------------------------------

    def stat_sync(self, digest: str) -> int | None:
        """The stored blob's size, or None if it is not stored."""
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=self._blob_key(digest))
        except ClientError as error:
            if _missing(error):
                return None
            raise
        return int(answer["ContentLength"])

    def read_sync(self, digest: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The blob's bytes from `offset`, `length` of them or up to its end, in chunks of
        a few MiB. Raises BlobUnknown if it is not stored, RangeNotSatisfiable if the
        range starts past its end."""
        if offset < 0 or (length is not None and length < 0):
            raise RangeNotSatisfiable(f"invalid range: offset {offset}, length {length}")
        if length == 0:
            return
        end = None if length is None else offset + length
        try:
            yield from self._read_object(self._blob_key(digest), (offset, end))
        except ClientError as error:
            if _missing(error):
                raise BlobUnknown(f"blob {digest} is not stored") from None
            raise

    def _read_object(self, key: str, span: tuple[int, int | None] | None) -> Iterator[bytes]:
        """An object's bytes, all of them or those of [start, end) (to the end when end is
        None). Raises RangeNotSatisfiable if start lies past the end of a non-empty object;
        reading from the very end yields nothing."""
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if span is not None and span != (0, None):
            start, end = span
            arguments["Range"] = f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"
        try:
            answer = self.client.get_object(**arguments)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "InvalidRange":
                raise
            # Past the end, or at the end of the object (S3 refuses both).
            size = int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
            if span is not None and span[0] == size:
                return
            raise RangeNotSatisfiable(
                f"range starting at {span[0] if span else 0} is past the end ({size} bytes)"
            ) from None
        body = answer["Body"]
        try:
            yield from body.iter_chunks(READ_CHUNK)
        finally:
            body.close()

    def download_url_sync(self, digest: str, expires_in: float) -> str | None:
        """A presigned GET of the blob, valid for `expires_in` seconds (at least one),
        for a redirect that takes the bytes off Haven. Does not check that it exists."""
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._blob_key(digest)},
                ExpiresIn=max(1, math.ceil(expires_in)),
            )
        )

    def delete_sync(self, digest: str) -> int:
        size = self.stat_sync(digest)
        if size is None:
            return 0
        self.client.delete_object(Bucket=self.bucket, Key=self._blob_key(digest))
        return size

    def scan_sync(self) -> Iterator[tuple[str, int, float]]:
        root = self._key("blobs/")
        for entry in self._list(root):
            names = entry["Key"][len(root) :].split("/")
            if len(names) != 3 or not names[0] or names[1] != names[2][:2] or not names[2]:
                continue  # not a blob's key
            algorithm, _, encoded = names
            yield f"{algorithm}:{encoded}", int(entry["Size"]), entry["LastModified"].timestamp()

    def check_sync(self) -> None:
        """Raises (botocore's ClientError or a connection error) unless the bucket can be
        reached with these credentials."""
        self.client.head_bucket(Bucket=self.bucket)
