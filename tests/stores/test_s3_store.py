"""The S3 content store against a real S3 server (Ceph's RADOS Gateway, `tests/object_stores.py`).

Each test has a bucket of its own and two store instances on it, standing for two server
processes: an upload written in sessions alternating between them must read, size and
publish the same as one written in a single session.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from haven.errors import BlobUnknown, BlobUploadUnknown, RangeNotSatisfiable
from haven.store.s3 import MIN_PART, READ_CHUNK, S3BlobStore
from object_stores import S3Server

MiB = 1024 * 1024


@pytest.fixture
def s3_store(bucket_url: str) -> S3BlobStore:
    return S3BlobStore.from_url(bucket_url)


@pytest.fixture
def s3_other(bucket_url: str, s3_store: S3BlobStore) -> S3BlobStore:
    """A second instance on the same bucket, as another process or node would have."""
    return S3BlobStore.from_url(bucket_url)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _write_sessions(
    stores: Sequence[S3BlobStore], upload_id: str, sessions: Sequence[bytes]
) -> None:
    """One writer session per item, alternating between `stores`, each written in pieces
    of up to 4 MiB as the upload service does; each next session checks the size first,
    as a PATCH landing on another process would."""
    expected = 0
    for number, data in enumerate(sessions):
        store = stores[number % len(stores)]
        assert store.upload_size_sync(upload_id) == expected
        writer = store.open_upload_sync(upload_id)
        view = memoryview(data)
        for start in range(0, len(data), 4 * MiB):
            writer.write_sync(view[start : start + 4 * MiB])
        writer.close_sync()
        expected += len(data)


def _upload(
    stores: Sequence[S3BlobStore], sessions: Sequence[bytes], upload_id: str | None = None
) -> tuple[str, str, bytes]:
    upload_id = upload_id or str(uuid.uuid4())
    stores[0].create_upload_sync(upload_id)
    _write_sessions(stores, upload_id, sessions)
    data = b"".join(sessions)
    return upload_id, _digest(data), data


def _pending_multipart_uploads(store: S3BlobStore) -> list[str]:
    answer = store.client.list_multipart_uploads(Bucket=store.bucket)
    return [str(upload["Key"]) for upload in answer.get("Uploads", ())]


def _keys(store: S3BlobStore) -> list[str]:
    answer = store.client.list_objects_v2(Bucket=store.bucket)
    return sorted(str(entry["Key"]) for entry in answer.get("Contents", ()))


LAYOUTS = {
    "empty": [],
    "empty-session": [0],
    "one-byte": [1],
    "17MiB-one-session": [17 * MiB],
    "17MiB-small-sessions-joined": [3 * MiB, 1 * MiB, 9 * MiB, 4 * MiB],
    "17MiB-large-sessions-copied": [9 * MiB, 8 * MiB],
    "17MiB-small-then-more": [2 * MiB, 15 * MiB],
    "small-sessions-only": [1, 2 * MiB, 1],
}


@pytest.mark.parametrize("sizes", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_upload_written_from_two_instances_reads_back_and_publishes_exact_bytes(
    s3_store: S3BlobStore, s3_other: S3BlobStore, sizes: list[int]
) -> None:
    sessions = [os.urandom(size) for size in sizes]
    upload_id, digest, data = _upload([s3_store, s3_other], sessions)

    for store in (s3_store, s3_other):
        assert store.upload_size_sync(upload_id) == len(data)
        assert b"".join(store.read_upload_sync(upload_id)) == data
    assert s3_store.stat_sync(digest) is None

    s3_other.publish_sync(upload_id, digest)

    for store in (s3_store, s3_other):
        assert store.stat_sync(digest) == len(data)
        chunks = list(store.read_sync(digest))
        assert b"".join(chunks) == data
        assert all(len(chunk) <= READ_CHUNK for chunk in chunks)
    assert [(d, size) for d, size, _ in s3_store.scan_sync()] == [(digest, len(data))]
    # Publishing left the upload as the spare and nothing half-written behind.
    assert s3_store.upload_size_sync(upload_id) == len(data)
    assert _pending_multipart_uploads(s3_store) == []


def test_session_under_five_mib_then_more_is_readable_after_each_close(
    s3_store: S3BlobStore, s3_other: S3BlobStore
) -> None:
    upload_id = str(uuid.uuid4())
    s3_store.create_upload_sync(upload_id)
    written = b""
    for number, size in enumerate([MIN_PART - 1, 1, 9 * MiB, 1, MIN_PART]):
        chunk = os.urandom(size)
        writer = (s3_store, s3_other)[number % 2].open_upload_sync(upload_id)
        writer.write_sync(chunk)
        writer.close_sync()
        written += chunk
        reader = (s3_other, s3_store)[number % 2]
        assert reader.upload_size_sync(upload_id) == len(written)
        assert hashlib.sha256(b"".join(reader.read_upload_sync(upload_id))).digest() == (
            hashlib.sha256(written).digest()
        )
    digest = _digest(written)
    s3_store.publish_sync(upload_id, digest)
    assert b"".join(s3_other.read_sync(digest)) == written


def test_keys_follow_the_layout_under_the_prefix(s3_store: S3BlobStore) -> None:
    upload_id, digest, _ = _upload([s3_store], [b"layer"])
    s3_store.publish_sync(upload_id, digest)
    hex_digest = digest.removeprefix("sha256:")
    assert _keys(s3_store) == [
        f"registry/one/blobs/sha256/{hex_digest[:2]}/{hex_digest}",
        f"registry/one/uploads/{upload_id}/0000000000",
        f"registry/one/uploads/{upload_id}/created",
    ]
    s3_store.abort_sync(upload_id)
    assert _keys(s3_store) == [f"registry/one/blobs/sha256/{hex_digest[:2]}/{hex_digest}"]


@pytest.fixture
def published(s3_store: S3BlobStore) -> tuple[str, bytes]:
    upload_id, digest, data = _upload([s3_store], [os.urandom(3 * MiB), os.urandom(7 * MiB)])
    s3_store.publish_sync(upload_id, digest)
    s3_store.abort_sync(upload_id)
    return digest, data


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (0, None),
        (0, 1),
        (5, 100),
        (READ_CHUNK - 3, 10),
        (1, 2 * READ_CHUNK + 5),
        (9 * MiB, None),
        (10 * MiB - 1, None),
        (10 * MiB - 10, 10),
        (10 * MiB - 10, 1000),
        (10 * MiB, None),
        (123, 0),
    ],
)
def test_read_sync_streams_a_range(
    s3_store: S3BlobStore, published: tuple[str, bytes], offset: int, length: int | None
) -> None:
    digest, data = published
    chunks = list(s3_store.read_sync(digest, offset, length))
    end = None if length is None else offset + length
    assert b"".join(chunks) == data[offset:end]
    assert all(0 < len(chunk) <= READ_CHUNK for chunk in chunks)


def test_read_sync_refuses_a_range_past_the_end_and_an_unknown_blob(
    s3_store: S3BlobStore, published: tuple[str, bytes]
) -> None:
    digest, data = published
    with pytest.raises(RangeNotSatisfiable):
        list(s3_store.read_sync(digest, len(data) + 1))
    with pytest.raises(BlobUnknown):
        list(s3_store.read_sync(_digest(b"never stored")))
    assert s3_store.stat_sync(_digest(b"never stored")) is None


def test_download_url_serves_exact_bytes_and_refuses_tampering(
    s3_store: S3BlobStore, published: tuple[str, bytes]
) -> None:
    digest, data = published
    url = s3_store.download_url_sync(digest, 60)
    assert url is not None
    answer = httpx.get(url)
    assert answer.status_code == 200
    assert answer.content == data
    ranged = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert (ranged.status_code, ranged.content) == (206, data[10:20])

    signature = url.rsplit("X-Amz-Signature=", 1)[1][:64]
    forged = "0" if signature[0] != "0" else "1"
    tampered = url.replace(signature, forged + signature[1:])
    assert httpx.get(tampered).status_code == 403
    other = _digest(b"other")
    hex_digest, other_hex = digest.split(":")[1], other.split(":")[1]
    elsewhere = url.replace(f"{hex_digest[:2]}/{hex_digest}", f"{other_hex[:2]}/{other_hex}")
    assert httpx.get(elsewhere).status_code == 403
    longer = url.replace("X-Amz-Expires=60", "X-Amz-Expires=600")
    assert longer != url
    assert httpx.get(longer).status_code == 403
    assert httpx.get(url.split("?")[0]).status_code == 403

    short = s3_store.download_url_sync(digest, 1)
    assert short is not None
    time.sleep(2.5)
    assert httpx.get(short).status_code == 403


def test_delete_frees_the_size_once_and_ensure_republishes_from_the_spare(
    s3_store: S3BlobStore, s3_other: S3BlobStore
) -> None:
    upload_id, digest, data = _upload([s3_store, s3_other], [os.urandom(MiB), os.urandom(6 * MiB)])
    s3_store.publish_sync(upload_id, digest)

    assert s3_other.delete_sync(digest) == len(data)
    assert s3_store.stat_sync(digest) is None
    assert s3_store.delete_sync(digest) == 0
    assert list(s3_store.scan_sync()) == []

    s3_other.ensure_sync(upload_id, digest)
    assert s3_store.stat_sync(digest) == len(data)
    assert b"".join(s3_store.read_sync(digest)) == data

    # Present already: ensure leaves the blob as it is.
    before = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store._blob_key(digest))
    s3_store.ensure_sync(upload_id, digest)
    after = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store._blob_key(digest))
    assert after["LastModified"] == before["LastModified"]

    s3_store.abort_sync(upload_id)
    assert b"".join(s3_other.read_sync(digest)) == data


def test_publish_of_a_stored_digest_keeps_the_first_copy(s3_store: S3BlobStore) -> None:
    data = os.urandom(2 * MiB)
    first, digest, _ = _upload([s3_store], [data])
    second, _, _ = _upload([s3_store], [data[:MiB], data[MiB:]])
    s3_store.publish_sync(first, digest)
    stored = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store._blob_key(digest))
    s3_store.publish_sync(second, digest)
    again = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store._blob_key(digest))
    assert again["ETag"] == stored["ETag"]
    # The second upload is the spare now: the blob comes back from it.
    s3_store.abort_sync(first)
    s3_store.delete_sync(digest)
    s3_store.ensure_sync(second, digest)
    assert b"".join(s3_store.read_sync(digest)) == data


def test_scan_lists_exactly_the_published_blobs(
    s3_store: S3BlobStore, s3_other: S3BlobStore
) -> None:
    started = time.time()
    published = {}
    for sessions in ([b""], [b"x"], [os.urandom(MiB), os.urandom(5 * MiB)]):
        upload_id, digest, data = _upload([s3_store, s3_other], sessions)
        s3_other.publish_sync(upload_id, digest)
        published[digest] = len(data)
    _upload([s3_store], [os.urandom(MiB)])  # an upload in progress is no blob
    scanned = {digest: (size, mtime) for digest, size, mtime in s3_store.scan_sync()}
    assert {digest: size for digest, (size, _) in scanned.items()} == published
    for _, mtime in scanned.values():
        assert started - 5 <= mtime <= time.time() + 5

    gone = _digest(b"x")
    assert s3_store.delete_sync(gone) == 1
    assert {digest for digest, _, _ in s3_other.scan_sync()} == set(published) - {gone}


def test_scan_ignores_other_prefixes_of_the_bucket(bucket_url: str, rgw: S3Server) -> None:
    store = S3BlobStore.from_url(bucket_url)
    upload_id, digest, _ = _upload([store], [b"here"])
    store.publish_sync(upload_id, digest)
    bucket = bucket_url.split("/")[2]
    neighbour = S3BlobStore.from_url(rgw.url(bucket, "registry/two"))
    assert list(neighbour.scan_sync()) == []
    assert [d for d, _, _ in store.scan_sync()] == [digest]


def test_abort_drops_the_upload_and_any_unfinished_session(
    s3_store: S3BlobStore, s3_other: S3BlobStore
) -> None:
    upload_id, _, _ = _upload([s3_store], [os.urandom(MiB)])
    crashed = s3_other.open_upload_sync(upload_id)
    crashed.write_sync(os.urandom(9 * MiB))  # a part is out; the writer never closes
    assert _pending_multipart_uploads(s3_store) != []
    assert s3_store.upload_size_sync(upload_id) == MiB

    s3_store.abort_sync(upload_id)

    assert _keys(s3_store) == []
    assert _pending_multipart_uploads(s3_store) == []
    with pytest.raises(BlobUploadUnknown):
        s3_other.upload_size_sync(upload_id)
    s3_store.abort_sync(upload_id)
    s3_store.abort_sync(str(uuid.uuid4()))


def test_unknown_upload_is_blob_upload_unknown(s3_store: S3BlobStore) -> None:
    unknown = str(uuid.uuid4())
    with pytest.raises(BlobUploadUnknown):
        s3_store.upload_size_sync(unknown)
    with pytest.raises(BlobUploadUnknown):
        s3_store.open_upload_sync(unknown)
    with pytest.raises(BlobUploadUnknown):
        list(s3_store.read_upload_sync(unknown))
    with pytest.raises(BlobUploadUnknown):
        s3_store.publish_sync(unknown, _digest(b""))
    with pytest.raises(BlobUploadUnknown):
        s3_store.ensure_sync(unknown, _digest(b""))
    with pytest.raises(BlobUploadUnknown):
        s3_store.upload_size_sync("../escape")
    assert s3_store.stat_sync(_digest(b"")) is None


def _publish_together(uploads: Sequence[tuple[S3BlobStore, str]], digest: str) -> None:
    """Publish each upload from its own thread, all let go at the same moment."""
    barrier = threading.Barrier(len(uploads))

    def publish(store: S3BlobStore, upload_id: str) -> None:
        barrier.wait()
        store.publish_sync(upload_id, digest)

    with ThreadPoolExecutor(len(uploads)) as pool:
        for future in [pool.submit(publish, *upload) for upload in uploads]:
            future.result()


def test_concurrent_publishes_of_one_digest_from_two_uploads(
    s3_store: S3BlobStore, s3_other: S3BlobStore
) -> None:
    data = os.urandom(12 * MiB)
    digest = _digest(data)
    for layouts in (
        [[data], [data]],
        [[data[:MiB], data[MiB:]], [data[: 7 * MiB], data[7 * MiB :]]],
    ):
        first, _, _ = _upload([s3_store], layouts[0])
        second, _, _ = _upload([s3_other], layouts[1])
        _publish_together([(s3_store, first), (s3_other, second)], digest)
        assert s3_store.stat_sync(digest) == len(data)
        assert hashlib.sha256(b"".join(s3_other.read_sync(digest))).digest() == (
            hashlib.sha256(data).digest()
        )
        s3_store.abort_sync(first)
        s3_other.abort_sync(second)
        assert [(d, size) for d, size, _ in s3_store.scan_sync()] == [(digest, len(data))]
        assert _pending_multipart_uploads(s3_store) == []
        assert s3_store.delete_sync(digest) == len(data)


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class _PeakRss:
    """The largest resident set seen while the block runs, sampled every 5 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            self._stop.wait(0.005)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def test_uploading_publishing_and_reading_256_mib_stays_within_64_mib_of_memory(
    s3_store: S3BlobStore, s3_other: S3BlobStore
) -> None:
    block = os.urandom(4 * MiB)
    total = 256 * MiB
    upload_id = str(uuid.uuid4())
    s3_store.create_upload_sync(upload_id)
    hasher = hashlib.sha256()
    # Warm the connection pool and the allocator first, so that only the transfer counts.
    list(s3_store.read_upload_sync(upload_id))
    baseline = _rss()
    with _PeakRss() as writing:
        for count in (40 * MiB, total - 40 * MiB):  # two sessions: a copy of several parts
            writer = s3_store.open_upload_sync(upload_id)
            for _ in range(count // len(block)):
                writer.write_sync(memoryview(block))
                hasher.update(block)
            writer.close_sync()
    assert s3_other.upload_size_sync(upload_id) == total
    digest = "sha256:" + hasher.hexdigest()
    with _PeakRss() as publishing:
        s3_other.publish_sync(upload_id, digest)
    with _PeakRss() as reading:
        check = hashlib.sha256()
        for chunk in s3_other.read_sync(digest):
            check.update(chunk)
    assert "sha256:" + check.hexdigest() == digest
    for name, probe in (("upload", writing), ("publish", publishing), ("read", reading)):
        grown = probe.peak - baseline
        assert grown <= 64 * MiB, f"{name} grew RSS by {grown / MiB:.1f} MiB"


def test_from_url_creates_the_bucket_and_takes_keys_from_the_environment(
    rgw: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = f"haven-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", rgw.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", rgw.secret_key)
    url = f"s3://{bucket}?endpoint={rgw.endpoint}&region={rgw.region}"
    store = S3BlobStore.from_url(url)
    store.check_sync()
    assert store.prefix == ""
    upload_id, digest, _ = _upload([store], [b"unprefixed"])
    store.publish_sync(upload_id, digest)
    assert _keys(store)[0].startswith("blobs/sha256/")
    # Again, with the bucket there already.
    assert [d for d, _, _ in S3BlobStore.from_url(url).scan_sync()] == [digest]


def test_check_sync_raises_for_wrong_keys_and_a_missing_bucket(rgw: S3Server) -> None:
    bucket = f"haven-{uuid.uuid4().hex[:12]}"
    wrong = S3BlobStore.from_url(
        rgw.url(bucket, secret_key="not-" + rgw.secret_key), create_bucket=False
    )
    with pytest.raises(Exception, match=r"SignatureDoesNotMatch|403"):
        wrong.check_sync()
    absent = S3BlobStore.from_url(rgw.url(bucket), create_bucket=False)
    with pytest.raises(Exception, match=r"404|NoSuchBucket|Not Found"):
        absent.check_sync()
    S3BlobStore.from_url(rgw.url(bucket)).check_sync()


def test_check_sync_raises_when_the_server_is_unreachable() -> None:
    store = S3BlobStore.from_url(
        "s3://bucket?endpoint=http://127.0.0.1:9&access_key=a&secret_key=b", create_bucket=False
    )
    with pytest.raises(Exception, match=r"(?i)connect"):
        store.check_sync()


@pytest.mark.parametrize(
    "url",
    ["http://bucket/prefix", "s3:///prefix", "s3://bucket?endpoint=x&colour=blue"],
)
def test_from_url_refuses_a_malformed_url(url: str) -> None:
    with pytest.raises(ValueError):
        S3BlobStore.from_url(url, create_bucket=False)


@pytest.mark.parametrize(
    ("sizes", "parts"), [([17 * MiB], 3), ([2 * MiB, 15 * MiB], 3), ([MiB, MiB, 6 * MiB], 2)]
)
def test_segments_larger_than_one_copy_are_copied_in_pieces(
    s3_store: S3BlobStore, monkeypatch: pytest.MonkeyPatch, sizes: list[int], parts: int
) -> None:
    monkeypatch.setattr("haven.store.s3.MAX_COPY", 6 * MiB)
    upload_id, digest, data = _upload([s3_store], [os.urandom(size) for size in sizes])
    s3_store.publish_sync(upload_id, digest)
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store._blob_key(digest))
    assert str(head["ETag"]).strip('"').endswith(f"-{parts}")
    assert b"".join(s3_store.read_sync(digest)) == data
