"""The Azure Blob content store against a real Azurite: the `BlobStore` protocol's
semantics, uploads continued across store instances, and bounded memory."""

from __future__ import annotations

import gc
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
from azure.core.exceptions import HttpResponseError

from haven.errors import BlobUnknown, BlobUploadUnknown, Conflict, RangeNotSatisfiable
from haven.store.azure import (
    BLOCK_SIZE,
    DEVELOPMENT_ACCOUNT,
    DEVELOPMENT_KEY,
    AzureBlobStore,
)
from haven.store.content import READ_CHUNK
from object_stores import OTHER_ACCOUNT, OTHER_KEY, Azurite

MiB = 1024 * 1024


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def write_session(store: AzureBlobStore, upload_id: str, data: bytes, call: int) -> None:
    """One request's worth of writes: open, write in `call`-sized pieces, close."""
    writer = store.open_upload_sync(upload_id)
    view = memoryview(data)
    for start in range(0, len(view), call):
        writer.write_sync(view[start : start + call])
    writer.close_sync()


def upload(store: AzureBlobStore, upload_id: str, data: bytes) -> None:
    store.create_upload_sync(upload_id)
    write_session(store, upload_id, data, 4 * MiB)


def read_all(
    store: AzureBlobStore, digest: str, offset: int = 0, length: int | None = None
) -> bytes:
    return b"".join(store.read_sync(digest, offset, length))


def committed_blocks(store: AzureBlobStore, upload_id: str) -> int:
    committed, _ = store._blob(store._upload_name(upload_id)).get_block_list("committed")
    return len(committed)


@pytest.fixture(scope="module")
def data_17m() -> bytes:
    return os.urandom(17 * MiB)


# Uploads ---------------------------------------------------------------------------

# (bytes in each writer session, size of each write call within it)
SESSIONS = {
    0: ([0, 0], 4 * MiB),
    1: ([0, 1, 0], 4 * MiB),
    17 * MiB: ([5, 3 * MiB, 1, BLOCK_SIZE + 3, 2 * MiB - 7], 3 * MiB + 1),
}


@pytest.mark.parametrize("size", sorted(SESSIONS), ids=["0B", "1B", "17MiB"])
def test_upload_continued_by_another_instance_holds_every_byte(
    store: AzureBlobStore, other_store: AzureBlobStore, data_17m: bytes, size: int
) -> None:
    plan, call = SESSIONS[size]
    plan = [*plan[:-1], size - sum(plan[:-1])] if size > 1 else plan
    data = data_17m[:size]
    store.create_upload_sync("u1")
    assert other_store.upload_size_sync("u1") == 0
    assert b"".join(other_store.read_upload_sync("u1")) == b""
    written = 0
    for number, count in enumerate(plan):
        writer_store, reader_store = (
            (store, other_store) if number % 2 == 0 else (other_store, store)
        )
        write_session(writer_store, "u1", data[written : written + count], call)
        written += count
        assert reader_store.upload_size_sync("u1") == written
        assert b"".join(reader_store.read_upload_sync("u1")) == data[:written]
    assert written == size
    # The hash state another node rebuilds from the stored bytes is the right one.
    rebuilt = hashlib.sha256()
    for chunk in store.read_upload_sync("u1"):
        assert len(chunk) <= READ_CHUNK
        rebuilt.update(chunk)
    assert rebuilt.hexdigest() == hashlib.sha256(data).hexdigest()

    digest = digest_of(data)
    assert store.stat_sync(digest) is None
    other_store.publish_sync("u1", digest)
    assert store.stat_sync(digest) == size
    assert read_all(store, digest) == data
    # The upload stays as the spare until dropped.
    assert store.upload_size_sync("u1") == size
    store.abort_sync("u1")
    with pytest.raises(BlobUploadUnknown):
        other_store.upload_size_sync("u1")
    assert read_all(other_store, digest) == data


def test_writes_are_staged_while_they_arrive(store: AzureBlobStore) -> None:
    store.create_upload_sync("u")
    writer = store.open_upload_sync("u")
    writer.write_sync(os.urandom(BLOCK_SIZE + 10))
    blob = store._blob(store._upload_name("u"))
    _, uncommitted = blob.get_block_list("all")
    assert [block.size for block in uncommitted] == [BLOCK_SIZE]
    # Nothing is visible before the writer is closed.
    assert store.upload_size_sync("u") == 0
    writer.close_sync()
    assert store.upload_size_sync("u") == BLOCK_SIZE + 10


def test_tiny_chunks_do_not_pile_up_blocks(
    store: AzureBlobStore, other_store: AzureBlobStore
) -> None:
    store.create_upload_sync("u")
    data = os.urandom(100 * 30)
    for number in range(30):
        instance = store if number % 2 else other_store
        write_session(instance, "u", data[number * 100 : (number + 1) * 100], 100)
    assert committed_blocks(store, "u") == 1
    assert b"".join(store.read_upload_sync("u")) == data


def test_a_large_last_block_is_kept_as_it_is(store: AzureBlobStore) -> None:
    store.create_upload_sync("u")
    first, second = os.urandom(2 * MiB), os.urandom(3)
    write_session(store, "u", first, MiB)
    write_session(store, "u", second, MiB)
    assert committed_blocks(store, "u") == 2
    assert b"".join(store.read_upload_sync("u")) == first + second


def test_an_empty_session_commits_nothing(store: AzureBlobStore) -> None:
    store.create_upload_sync("u")
    write_session(store, "u", b"abc", 1)
    before = store._blob(store._upload_name("u")).get_blob_properties().etag
    write_session(store, "u", b"", 1)
    assert store._blob(store._upload_name("u")).get_blob_properties().etag == before
    assert store.upload_size_sync("u") == 3


def test_concurrent_writers_on_one_upload_do_not_interleave(
    store: AzureBlobStore, other_store: AzureBlobStore
) -> None:
    store.create_upload_sync("u")
    write_session(store, "u", b"start", 5)
    first = store.open_upload_sync("u")
    second = other_store.open_upload_sync("u")
    first.write_sync(b"-first")
    second.write_sync(b"-second")
    first.close_sync()
    with pytest.raises(Conflict):
        second.close_sync()
    assert b"".join(store.read_upload_sync("u")) == b"start-first"


def test_a_writer_whose_upload_was_aborted_fails(store: AzureBlobStore) -> None:
    store.create_upload_sync("u")
    writer = store.open_upload_sync("u")
    writer.write_sync(os.urandom(100))
    store.abort_sync("u")
    with pytest.raises(BlobUploadUnknown):
        writer.close_sync()
    with pytest.raises(BlobUploadUnknown):
        store.upload_size_sync("u")


def test_creating_an_existing_upload_fails(store: AzureBlobStore) -> None:
    store.create_upload_sync("u")
    with pytest.raises(FileExistsError):
        store.create_upload_sync("u")


def test_unknown_upload(store: AzureBlobStore) -> None:
    with pytest.raises(BlobUploadUnknown):
        store.upload_size_sync("nope")
    with pytest.raises(BlobUploadUnknown):
        store.open_upload_sync("nope")
    with pytest.raises(BlobUploadUnknown):
        b"".join(store.read_upload_sync("nope"))
    with pytest.raises(BlobUploadUnknown):
        store.publish_sync("nope", digest_of(b"nothing"))
    with pytest.raises(BlobUploadUnknown):
        store.ensure_sync("nope", digest_of(b"nothing"))
    with pytest.raises(BlobUploadUnknown):
        store.upload_size_sync("../blobs")
    store.abort_sync("nope")


def test_abort_drops_the_upload_and_is_idempotent(store: AzureBlobStore) -> None:
    upload(store, "u", b"some bytes")
    store.abort_sync("u")
    with pytest.raises(BlobUploadUnknown):
        store.upload_size_sync("u")
    with pytest.raises(BlobUploadUnknown):
        store.open_upload_sync("u")
    with pytest.raises(BlobUploadUnknown):
        b"".join(store.read_upload_sync("u"))
    store.abort_sync("u")
    assert list(store.scan_sync()) == []


# Publishing ------------------------------------------------------------------------


def test_publish_is_a_server_side_copy_kept_beside_the_spare(store: AzureBlobStore) -> None:
    data = os.urandom(3 * MiB)
    digest = digest_of(data)
    upload(store, "u", data)
    store.publish_sync("u", digest)
    blob = store._blob(store._blob_name(digest)).get_blob_properties()
    assert blob.copy.status == "success"
    assert blob.copy.source is not None and blob.copy.source.endswith("/uploads/u")
    assert blob.name == f"blobs/sha256/{digest[7:9]}/{digest[7:]}"
    assert store.upload_size_sync("u") == len(data)


def test_publish_of_a_stored_digest_keeps_the_first_copy(store: AzureBlobStore) -> None:
    data = b"layer"
    digest = digest_of(data)
    upload(store, "a", data)
    store.publish_sync("a", digest)
    before = store._blob(store._blob_name(digest)).get_blob_properties().etag
    upload(store, "b", data)
    store.publish_sync("b", digest)
    assert store._blob(store._blob_name(digest)).get_blob_properties().etag == before
    assert store.upload_size_sync("b") == len(data)


def test_concurrent_publishes_of_one_digest_from_two_uploads(
    store: AzureBlobStore, other_store: AzureBlobStore
) -> None:
    data = os.urandom(9 * MiB)
    digest = digest_of(data)
    for round_ in range(3):
        first, second = f"a{round_}", f"b{round_}"
        upload(store, first, data)
        upload(other_store, second, data)
        barrier = threading.Barrier(2)

        def publish(instance: AzureBlobStore, upload_id: str, barrier: threading.Barrier) -> None:
            barrier.wait()
            instance.publish_sync(upload_id, digest)

        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(publish, store, first, barrier),
                pool.submit(publish, other_store, second, barrier),
            ]
            for future in futures:
                future.result()
        assert store.stat_sync(digest) == len(data)
        assert read_all(other_store, digest) == data
        assert [entry[:2] for entry in store.scan_sync()] == [(digest, len(data))]
        # Either spare can put the blob back.
        store.abort_sync(first)
        assert other_store.delete_sync(digest) == len(data)
        store.ensure_sync(second, digest)
        assert read_all(store, digest) == data
        store.abort_sync(second)
        assert store.delete_sync(digest) == len(data)


def test_ensure_puts_the_spare_back_after_a_delete(store: AzureBlobStore) -> None:
    data = os.urandom(MiB + 1)
    digest = digest_of(data)
    upload(store, "u", data)
    store.publish_sync("u", digest)
    etag = store._blob(store._blob_name(digest)).get_blob_properties().etag
    store.ensure_sync("u", digest)  # there already: left alone
    assert store._blob(store._blob_name(digest)).get_blob_properties().etag == etag
    assert store.delete_sync(digest) == len(data)
    assert store.stat_sync(digest) is None
    store.ensure_sync("u", digest)
    assert store.stat_sync(digest) == len(data)
    assert read_all(store, digest) == data
    store.abort_sync("u")
    store.ensure_sync("u", digest)  # the blob is there: no spare needed
    store.delete_sync(digest)
    with pytest.raises(BlobUploadUnknown):
        store.ensure_sync("u", digest)


# Blobs -----------------------------------------------------------------------------


def test_delete_returns_the_bytes_freed_and_is_idempotent(store: AzureBlobStore) -> None:
    data = os.urandom(12345)
    digest = digest_of(data)
    upload(store, "u", data)
    store.publish_sync("u", digest)
    assert store.delete_sync(digest) == 12345
    assert store.delete_sync(digest) == 0
    assert store.stat_sync(digest) is None
    with pytest.raises(BlobUnknown):
        read_all(store, digest)
    assert store.delete_sync(digest_of(b"never stored")) == 0


def test_scan_lists_exactly_the_published_blobs(store: AzureBlobStore, container_url: str) -> None:
    started = time.time()
    contents = [b"", b"x", os.urandom(1000)]
    for number, data in enumerate(contents):
        upload(store, f"u{number}", data)
        store.publish_sync(f"u{number}", digest_of(data))
    upload(store, "unpublished", b"not a blob yet")
    sha512 = hashlib.sha512(b"other algorithm").hexdigest()
    upload(store, "u512", b"other algorithm")
    store.publish_sync("u512", f"sha512:{sha512}")
    # Another prefix in the same container is another store.
    neighbour = AzureBlobStore.from_url(f"{container_url}&prefix=elsewhere/deeper")
    upload(neighbour, "n", b"neighbour")
    neighbour.publish_sync("n", digest_of(b"neighbour"))

    scanned = list(store.scan_sync())
    expected = {(digest_of(data), len(data)) for data in contents}
    expected.add((f"sha512:{sha512}", len(b"other algorithm")))
    assert {(digest, size) for digest, size, _ in scanned} == expected
    assert len(scanned) == len(expected)
    for _, _, modified in scanned:
        assert started - 2 <= modified <= time.time() + 2
    assert [entry[:2] for entry in neighbour.scan_sync()] == [
        (digest_of(b"neighbour"), len(b"neighbour"))
    ]

    store.delete_sync(digest_of(b"x"))
    assert {digest for digest, _, _ in store.scan_sync()} == {digest for digest, _ in expected} - {
        digest_of(b"x")
    }
    neighbour.close()


def test_read_sync_ranges(store: AzureBlobStore, data_17m: bytes) -> None:
    digest = digest_of(data_17m)
    upload(store, "u", data_17m)
    store.publish_sync("u", digest)
    size = len(data_17m)
    ranges = [
        (0, None),
        (0, 1),
        (5, 10),
        (READ_CHUNK - 1, 3),
        (BLOCK_SIZE - 2, READ_CHUNK + 4),
        (1000, 9 * MiB),
        (size - 1, None),
        (size - 1, 1),
        (size - 10, 1000),  # past the end: what there is
        (123, 0),
    ]
    for offset, length in ranges:
        expected = data_17m[offset : None if length is None else offset + length]
        assert read_all(store, digest, offset, length) == expected, (offset, length)
    chunks = list(store.read_sync(digest))
    assert len(chunks) >= 5
    assert all(len(chunk) <= READ_CHUNK for chunk in chunks)
    assert read_all(store, digest, size) == b""
    for offset in (size + 1, size + 5 * MiB):
        with pytest.raises(RangeNotSatisfiable):
            store.read_sync(digest, offset)
    with pytest.raises(RangeNotSatisfiable):
        store.read_sync(digest, -1)
    with pytest.raises(BlobUnknown):
        store.read_sync(digest_of(b"unknown"))
    with pytest.raises(BlobUnknown):
        store.read_sync(digest_of(b"unknown"), 0, 0)


def test_empty_blob_reads_empty(store: AzureBlobStore) -> None:
    digest = digest_of(b"")
    upload(store, "u", b"")
    store.publish_sync("u", digest)
    assert store.stat_sync(digest) == 0
    assert read_all(store, digest) == b""
    assert read_all(store, digest, 0, 0) == b""
    assert read_all(store, digest, 0, 10) == b""
    with pytest.raises(RangeNotSatisfiable):
        store.read_sync(digest, 1)


def test_download_url_reads_the_blob_until_it_expires(store: AzureBlobStore) -> None:
    data, other = os.urandom(5 * MiB + 3), b"another blob"
    digest = digest_of(data)
    for upload_id, content in (("u", data), ("o", other)):
        upload(store, upload_id, content)
        store.publish_sync(upload_id, digest_of(content))

    url = store.download_url_sync(digest, expires_in=3)
    assert url is not None
    signed_until = datetime.now(UTC).timestamp() + 3
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == data

    # The signature is for this blob only, and only for reading.
    other_name = store._blob_name(digest_of(other))
    elsewhere = url.replace(quote(store._blob_name(digest), safe="/"), quote(other_name, safe="/"))
    assert elsewhere != url
    assert httpx.get(elsewhere).status_code == 403
    assert httpx.delete(url).status_code == 403
    assert httpx.put(url, content=b"x", headers={"x-ms-blob-type": "BlockBlob"}).status_code == 403
    assert store.stat_sync(digest) == len(data)

    time.sleep(max(0.0, signed_until - datetime.now(UTC).timestamp()) + 1.5)
    assert httpx.get(url).status_code == 403
    fresh = store.download_url_sync(digest, expires_in=60)
    assert fresh is not None
    assert httpx.get(fresh).content == data


# Configuration and readiness -------------------------------------------------------


def test_check_passes_while_the_container_is_reachable(store: AzureBlobStore) -> None:
    store.check_sync()
    store._container().delete_container()
    with pytest.raises(HttpResponseError):
        store.check_sync()


def test_check_fails_when_the_service_is_down() -> None:
    store = AzureBlobStore(
        "http://127.0.0.1:9/devstoreaccount1",  # nothing listens there
        "ready",
        DEVELOPMENT_ACCOUNT,
        DEVELOPMENT_KEY,
        create_container=False,
    )
    started = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 (a transport error of azure.core)
        store.check_sync()
    assert time.monotonic() - started < 10


def test_from_url_with_a_connection_string(azurite: Azurite) -> None:
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={DEVELOPMENT_ACCOUNT};"
        f"AccountKey={DEVELOPMENT_KEY};BlobEndpoint={azurite.endpoint()};"
    )
    store = AzureBlobStore.from_url(f"azure:///viaconn?connection_string={quote(connection)}")
    upload(store, "u", b"abc")
    assert store.upload_size_sync("u") == 3
    store.abort_sync("u")
    store.close()


def test_from_url_with_an_account_key(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = azurite.endpoint(OTHER_ACCOUNT)
    # Unencoded in the URL: `+` and `/` of a base64 key survive.
    store = AzureBlobStore.from_url(
        f"azure://{DEVELOPMENT_ACCOUNT}/plainkey?endpoint={azurite.endpoint()}&key={DEVELOPMENT_KEY}"
    )
    store.check_sync()
    store.close()
    monkeypatch.delenv("AZURE_STORAGE_KEY", raising=False)
    with pytest.raises(ValueError, match="AZURE_STORAGE_KEY"):
        AzureBlobStore.from_url(f"azure://{OTHER_ACCOUNT}/ccc?endpoint={endpoint}")
    monkeypatch.setenv("AZURE_STORAGE_KEY", OTHER_KEY)
    from_env = AzureBlobStore.from_url(f"azure://{OTHER_ACCOUNT}/ccc?endpoint={endpoint}")
    upload(from_env, "u", b"other account")
    assert b"".join(from_env.read_upload_sync("u")) == b"other account"
    url = from_env.download_url_sync(digest_of(b"x"), 60)
    assert url is not None and url.startswith(f"{endpoint}/ccc/blobs/sha256/")
    from_env.close()
    with pytest.raises(HttpResponseError) as refused:
        AzureBlobStore.from_url(
            f"azure://{OTHER_ACCOUNT}/ccc?endpoint={endpoint}&key={quote(DEVELOPMENT_KEY)}"
        )
    assert refused.value.status_code == 403


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://bucket", "not an azure"),
        ("azure://acct", "one container"),
        ("azure://acct/a/b", "one container"),
        ("azure://acct/ccc?endpoint=http://x&colour=blue", "colour"),
        ("azure:///c", "storage account"),
        ("azure:///c?connection_string=AccountName%3Dx", "AccountKey"),
    ],
)
def test_from_url_refuses(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AzureBlobStore.from_url(url)


# Memory ----------------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """The largest resident set seen while the block runs, sampled every 5 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.005)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _chunks(count: int, base: bytes) -> Iterator[bytes]:
    for number in range(count):
        yield number.to_bytes(8, "big") + base[8:]


def test_a_256_mib_upload_and_read_stay_within_64_mib(store: AzureBlobStore) -> None:
    count, size = 64, 4 * MiB
    base = os.urandom(size)
    expected = hashlib.sha256()
    for chunk in _chunks(count, base):
        expected.update(chunk)
    digest = f"sha256:{expected.hexdigest()}"
    store.create_upload_sync("big")
    gc.collect()
    baseline = _rss()
    # As the upload service does: one request in batches of 4 MiB, from a thread pool.
    with PeakRss() as writing, ThreadPoolExecutor(2) as pool:
        writer = pool.submit(store.open_upload_sync, "big").result()
        for chunk in _chunks(count, base):
            pool.submit(writer.write_sync, memoryview(chunk)).result()
        pool.submit(writer.close_sync).result()
    assert writing.peak - baseline < 64 * MiB, (writing.peak - baseline) / MiB
    assert store.upload_size_sync("big") == count * size
    store.publish_sync("big", digest)

    gc.collect()
    baseline = _rss()
    actual = hashlib.sha256()
    with PeakRss() as reading:
        for chunk in store.read_sync(digest):
            actual.update(chunk)
        rebuilt = hashlib.sha256()
        for chunk in store.read_upload_sync("big"):
            rebuilt.update(chunk)
    assert reading.peak - baseline < 64 * MiB, (reading.peak - baseline) / MiB
    assert actual.hexdigest() == expected.hexdigest() == rebuilt.hexdigest()
