"""Azure Blob Storage as the content store.

Objects: `<prefix>/blobs/<algorithm>/<2 hex>/<hex>` for blobs, `<prefix>/uploads/<id>` for
uploads, in one container (created if missing).

Uploads are block blobs whose committed block list always holds every byte received so
far, so any process of the deployment can continue one. A writer stages blocks of
`BLOCK_SIZE` as bytes arrive and commits the old block list plus its own blocks when it
is closed, on the condition that nobody committed in between (the ETag it opened with):
two requests writing one upload at once cannot interleave their bytes, the later one
fails with CONFLICT. Nothing is held in memory beyond one block per open writer, and
nothing touches the local disk.

Publishing is a server-side Copy Blob of the upload to the blob's name, created only if
the name is free: the bytes never come back through this process, and the upload stays
as the spare that `ensure_sync` copies again if garbage collection deleted the blob
meanwhile. `publish_sync` returns only once the copy has succeeded; a blob whose copy is
still pending or has failed counts as not stored.

Every method blocks and may run in any worker thread. The SDK's transport keeps one
`requests` session, which it does not promise to share safely between threads, so each
thread gets its own clients (and connections); writers look their clients up per call,
since consecutive calls on one writer may come from different threads.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import (
    BlobBlock,
    BlobClient,
    BlobProperties,
    BlobSasPermissions,
    BlockState,
    ContainerClient,
    ExponentialRetry,
    generate_blob_sas,
)

from haven.errors import BlobUnknown, BlobUploadUnknown, Conflict, RangeNotSatisfiable
from haven.oci.digest import parse_digest
from haven.store.content import READ_CHUNK, UploadWriter

# Blocks larger than 4 MiB take Azure's high-throughput path; 50,000 blocks of this
# size allow a blob of 390 GiB.
BLOCK_SIZE = 8 * 1024 * 1024
# Each request that writes to an upload commits its last, partial block. A following
# request restages a partial block smaller than this together with its own bytes, so a
# client sending tiny chunks cannot exhaust the 50,000 blocks a blob may have, while a
# client sending large ones is not made to move its last block twice.
MERGE_TAIL_BELOW = 1024 * 1024
# How long `publish_sync` waits for a pending server-side copy.
COPY_TIMEOUT_SECONDS = 600.0

DEVELOPMENT_ACCOUNT = "devstoreaccount1"
DEVELOPMENT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
DEVELOPMENT_ENDPOINT = f"http://127.0.0.1:10000/{DEVELOPMENT_ACCOUNT}"
_URL_OPTIONS = frozenset({"endpoint", "key", "prefix", "connection_string"})


class AzureBlobStore:
    """The `BlobStore` protocol on one container of an Azure storage account.

    Authenticated with the account key, which also signs the read-only URLs of
    `download_url_sync`. Raises azure.core's exceptions when the service fails.
    """

    def local_path(self, digest: str) -> None:
        """Blobs are not on this machine: they are read or handed out by URL."""
        return None

    def __init__(
        self,
        account_url: str,
        container: str,
        account_name: str,
        account_key: str,
        prefix: str = "",
        *,
        create_container: bool = True,
    ) -> None:
        self.account_url = account_url.rstrip("/")
        self.container = container
        self.account_name = account_name
        self._account_key = account_key
        prefix = prefix.strip("/")
        self._blob_root = f"{prefix}/blobs/" if prefix else "blobs/"
        self._upload_root = f"{prefix}/uploads/" if prefix else "uploads/"
        self._https = urlsplit(self.account_url).scheme == "https"
        self._local = threading.local()
        self._clients: list[ContainerClient] = []
        self._clients_lock = threading.Lock()
        if create_container:
            with contextlib.suppress(ResourceExistsError):
                self._container().create_container()

    @classmethod
    def from_url(cls, url: str) -> AzureBlobStore:
        """`azure://<account>/<container>?endpoint=…&key=…&prefix=…`, or
        `azure:///<container>?connection_string=…` (percent-encoded).

        The key is the `key` option, else the development account's well-known key for
        `devstoreaccount1` (Azurite), else AZURE_STORAGE_KEY. The endpoint defaults to
        `https://<account>.blob.core.windows.net`. Raises ValueError for a URL that
        names no container, an unknown option or no key.
        """
        parts = urlsplit(url)
        if parts.scheme != "azure":
            raise ValueError(f"not an azure:// URL: {url!r}")
        options = _query_options(parts.query)
        unknown = sorted(set(options) - _URL_OPTIONS)
        if unknown:
            raise ValueError(f"unknown option(s) in the azure:// URL: {', '.join(unknown)}")
        container = unquote(parts.path).strip("/")
        if not container or "/" in container:
            raise ValueError("the azure:// URL must name one container: azure://<account>/<c>")
        account = unquote(parts.netloc)
        prefix = options.get("prefix", "")
        if "connection_string" in options:
            name, secret, endpoint = _from_connection_string(options["connection_string"])
            if account and account != name:
                raise ValueError(
                    f"the URL names account {account!r} but the connection string {name!r}"
                )
            return cls(options.get("endpoint", endpoint), container, name, secret, prefix)
        if not account:
            raise ValueError("the azure:// URL must name the storage account")
        key = options.get("key") or (
            DEVELOPMENT_KEY
            if account == DEVELOPMENT_ACCOUNT
            else os.environ.get("AZURE_STORAGE_KEY")
        )
        if not key:
            raise ValueError(
                f"no key for storage account {account!r}: "
                "give key= in the URL or set AZURE_STORAGE_KEY"
            )
        endpoint = options.get("endpoint") or f"https://{account}.blob.core.windows.net"
        return cls(endpoint, container, account, key, prefix)

    # Clients -----------------------------------------------------------------------

    def _container(self) -> ContainerClient:
        client: ContainerClient | None = getattr(self._local, "client", None)
        if client is None:
            client = ContainerClient(
                self.account_url,
                self.container,
                credential={"account_name": self.account_name, "account_key": self._account_key},
                max_single_get_size=READ_CHUNK,
                max_chunk_get_size=READ_CHUNK,
                # The SDK's default first waits 15 s, too long for a request in flight.
                retry_policy=ExponentialRetry(
                    initial_backoff=1, increment_base=2, retry_total=4, random_jitter_range=1
                ),
            )
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _blob(self, name: str) -> BlobClient:
        return self._container().get_blob_client(name)

    def close(self) -> None:
        """Close every thread's connections; later calls open new ones."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
            self._local = threading.local()
        for client in clients:
            client.close()

    # Names -------------------------------------------------------------------------

    def _blob_name(self, digest: str) -> str:
        algorithm, encoded = parse_digest(digest)
        return f"{self._blob_root}{algorithm}/{encoded[:2]}/{encoded}"

    def _upload_name(self, upload_id: str) -> str:
        if not upload_id or "/" in upload_id:
            raise BlobUploadUnknown(f"upload {upload_id[:100]!r} is unknown")
        return f"{self._upload_root}{upload_id}"

    def _properties(self, name: str) -> BlobProperties | None:
        try:
            return self._blob(name).get_blob_properties()
        except ResourceNotFoundError:
            return None

    def _stored(self, name: str) -> BlobProperties | None:
        """The blob's properties if it is complete (not the target of an unfinished or
        failed copy)."""
        properties = self._properties(name)
        if properties is None or properties.copy.status not in (None, "success"):
            return None
        return properties

    # Uploads -----------------------------------------------------------------------

    def create_upload_sync(self, upload_id: str) -> None:
        """Raises FileExistsError if the upload exists already."""
        try:
            self._blob(self._upload_name(upload_id)).upload_blob(b"", overwrite=False)
        except ResourceExistsError:
            raise FileExistsError(upload_id) from None

    def upload_size_sync(self, upload_id: str) -> int:
        properties = self._properties(self._upload_name(upload_id))
        if properties is None:
            raise BlobUploadUnknown()
        return int(properties.size)

    def open_upload_sync(self, upload_id: str) -> UploadWriter:
        name = self._upload_name(upload_id)
        blob = self._blob(name)
        try:
            properties = blob.get_blob_properties()
            committed, _ = blob.get_block_list("committed")
        except ResourceNotFoundError:
            raise BlobUploadUnknown() from None
        if sum(block.size for block in committed) != properties.size:
            # Written by something else than a writer (Put Blob with content, say).
            raise Conflict(f"upload {upload_id} is not a block list this store wrote")
        return _BlockWriter(self, name, committed, properties.etag, int(properties.size))

    def read_upload_sync(self, upload_id: str) -> Iterator[bytes]:
        name = self._upload_name(upload_id)
        try:
            downloader = self._blob(name).download_blob()
        except ResourceNotFoundError:
            raise BlobUploadUnknown() from None
        yield from downloader.chunks()

    def abort_sync(self, upload_id: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self._blob(self._upload_name(upload_id)).delete_blob(delete_snapshots="include")

    # Publishing --------------------------------------------------------------------

    def publish_sync(self, upload_id: str, digest: str) -> None:
        """Raises BlobUploadUnknown if the blob must be copied and the upload is gone,
        TimeoutError if the copy stays pending, OSError if it fails."""
        self._copy(self._upload_name(upload_id), self._blob_name(digest))

    def ensure_sync(self, upload_id: str, digest: str) -> None:
        """Raises as `publish_sync`."""
        self._copy(self._upload_name(upload_id), self._blob_name(digest))

    def _copy(self, source: str, target: str) -> None:
        """Copy `source` to `target` on the server unless `target` is stored already.

        Of concurrent copies to one name the first creates it and the others wait for
        it; same name, same bytes. A failed earlier copy is replaced.
        """
        deadline = time.monotonic() + COPY_TIMEOUT_SECONDS
        blob = self._blob(target)
        started = False
        while True:
            properties = self._properties(target)
            status = None if properties is None else properties.copy.status
            if properties is not None and status in (None, "success"):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"copying {source} to {target}: still {status}")
            if status == "pending":
                time.sleep(0.2)
                continue
            if properties is not None and started:
                raise OSError(
                    f"copying {source} to {target}: {status} ({properties.copy.status_description})"
                )
            if properties is None:
                condition: dict[str, Any] = {"match_condition": MatchConditions.IfMissing}
            else:
                condition = {
                    "etag": properties.etag,
                    "match_condition": MatchConditions.IfNotModified,
                }
            try:
                blob.start_copy_from_url(self._blob(source).url, **condition)
            except (ResourceExistsError, ResourceModifiedError):
                continue  # another upload of the same bytes got there first
            except ResourceNotFoundError:
                if self._properties(source) is None:
                    raise BlobUploadUnknown() from None
                raise
            started = True

    # Blobs -------------------------------------------------------------------------

    def stat_sync(self, digest: str) -> int | None:
        properties = self._stored(self._blob_name(digest))
        return None if properties is None else int(properties.size)

    def read_sync(self, digest: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Up to `length` bytes of the blob from `offset`, in chunks of READ_CHUNK.

        Reading at the end gives nothing. Raises BlobUnknown if the blob is not stored
        and RangeNotSatisfiable if `offset` is past its end, before the first chunk is
        asked for.
        """
        if offset < 0 or (length is not None and length < 0):
            raise RangeNotSatisfiable(f"invalid range: offset {offset}, length {length}")
        name = self._blob_name(digest)
        if length == 0:
            if self._stored(name) is None:
                raise BlobUnknown(f"blob {digest} is not stored")
            return iter(())
        try:
            # Without a range the SDK reads an empty blob itself, rather than failing.
            start = None if offset == 0 and length is None else offset
            downloader = self._blob(name).download_blob(offset=start, length=length)
        except ResourceNotFoundError:
            raise BlobUnknown(f"blob {digest} is not stored") from None
        except HttpResponseError as error:
            if error.status_code != 416:
                raise
            # Past the end, or at the end (which Azure refuses and Azurite does not).
            size = self.stat_sync(digest)
            if size is None:
                raise BlobUnknown(f"blob {digest} is not stored") from None
            if offset == size:
                return iter(())
            raise RangeNotSatisfiable(
                f"offset {offset} is past the end of blob {digest} ({size} bytes)"
            ) from None
        return iter(downloader.chunks())

    def download_url_sync(self, digest: str, expires_in: float) -> str | None:
        """A URL that reads the blob (and nothing else) for `expires_in` seconds,
        signed with the account key; HTTPS only when the endpoint is."""
        name = self._blob_name(digest)
        expiry = datetime.now(UTC) + timedelta(seconds=expires_in)
        signature = generate_blob_sas(
            self.account_name,
            self.container,
            name,
            account_key=self._account_key,
            permission=BlobSasPermissions(read=True),
            expiry=expiry,
            protocol="https" if self._https else None,
        )
        return f"{self._blob(name).url}?{signature}"

    def delete_sync(self, digest: str) -> int:
        name = self._blob_name(digest)
        blob = self._blob(name)
        while True:
            properties = self._properties(name)
            if properties is None:
                return 0
            try:
                blob.delete_blob(
                    delete_snapshots="include",
                    etag=properties.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceNotFoundError:
                return 0
            except ResourceModifiedError:
                continue  # published again meanwhile: what is freed is the new one
            return int(properties.size)

    def scan_sync(self) -> Iterator[tuple[str, int, float]]:
        for item in self._container().list_blobs(name_starts_with=self._blob_root):
            parts = item.name[len(self._blob_root) :].split("/")
            if len(parts) != 3 or parts[2][:2] != parts[1]:
                continue
            modified = item.last_modified.timestamp() if item.last_modified else 0.0
            yield f"{parts[0]}:{parts[2]}", int(item.size), modified

    def check_sync(self) -> None:
        """Raises if the container cannot be reached now (no retries, 5 s timeouts)."""
        self._container().get_container_properties(
            retry_total=0, connection_timeout=5, read_timeout=5
        )


class _BlockWriter:
    """Appends to an upload: stages full blocks as bytes arrive, commits on close.

    A write that fails leaves the upload as it was when opened (nothing is committed);
    staged blocks nobody commits are removed by the service after a week, or when the
    upload is deleted.
    """

    def __init__(
        self,
        store: AzureBlobStore,
        name: str,
        committed: list[BlobBlock],
        etag: str,
        size: int,
    ) -> None:
        self._store = store
        self._name = name
        self._etag = etag
        self._kept = [block.id for block in committed]
        self._tail: BlobBlock | None = None
        if committed and committed[-1].size < MERGE_TAIL_BELOW:
            self._tail = committed[-1]
        self._tail_offset = size - (self._tail.size if self._tail else 0)
        self._staged: list[str] = []
        self._buffer = bytearray()
        self._failed = False
        self._closed = False

    def write_sync(self, data: bytes | memoryview) -> None:
        if self._closed:
            raise ValueError("write to a closed upload writer")
        try:
            self._write(memoryview(data))
        except BaseException:
            self._failed = True
            raise

    def _write(self, view: memoryview) -> None:
        if not view:
            return
        if self._tail is not None:
            self._take_tail()
        if self._buffer:
            room = BLOCK_SIZE - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) < BLOCK_SIZE:
                return
            self._stage(bytes(self._buffer))
            self._buffer.clear()
        while len(view) >= BLOCK_SIZE:
            self._stage(bytes(view[:BLOCK_SIZE]))
            view = view[BLOCK_SIZE:]
        self._buffer += view

    def _take_tail(self) -> None:
        """Start the buffer with the upload's small last block, which is then left out
        of the new block list."""
        assert self._tail is not None
        blob = self._store._blob(self._name)
        try:
            tail = blob.download_blob(
                offset=self._tail_offset,
                length=self._tail.size,
                etag=self._etag,
                match_condition=MatchConditions.IfNotModified,
            ).readall()
        except ResourceNotFoundError:
            raise BlobUploadUnknown() from None
        except ResourceModifiedError:
            raise Conflict("the upload was written by another request meanwhile") from None
        self._buffer += tail
        self._kept.pop()
        self._tail = None

    def _stage(self, data: bytes) -> None:
        block_id = uuid.uuid4().hex
        # The digest is computed over what was sent; MD5 makes the service check that
        # this is what it stored.
        self._store._blob(self._name).stage_block(block_id, data, validate_content="md5")
        self._staged.append(block_id)

    def close_sync(self) -> None:
        """Commit what was written; raises BlobUploadUnknown if the upload was dropped
        meanwhile and CONFLICT if another request committed to it meanwhile."""
        if self._closed:
            return
        self._closed = True
        if self._failed:
            return
        if self._buffer:
            self._stage(bytes(self._buffer))
            self._buffer.clear()
        if not self._staged:
            return
        blocks = [BlobBlock(block_id, BlockState.COMMITTED) for block_id in self._kept]
        blocks += [BlobBlock(block_id, BlockState.UNCOMMITTED) for block_id in self._staged]
        blob = self._store._blob(self._name)
        try:
            blob.commit_block_list(
                blocks, etag=self._etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            try:
                # Staging blocks creates an uncommitted blob, which has no properties.
                blob.get_blob_properties()
                committed, _ = blob.get_block_list("committed")
            except ResourceNotFoundError:
                raise BlobUploadUnknown() from None
            if [block.id for block in committed] != [block.id for block in blocks]:
                raise Conflict("the upload was written by another request meanwhile") from None
            # Our commit succeeded and its answer was lost; the retry found it done.


def _query_options(query: str) -> dict[str, str]:
    """Query options, percent-decoded; `+` is kept (account keys are base64)."""
    options: dict[str, str] = {}
    for pair in query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            options[unquote(name)] = unquote(value)
    return options


def _from_connection_string(text: str) -> tuple[str, str, str]:
    """(account name, account key, blob endpoint) of a connection string that holds an
    account key; raises ValueError otherwise."""
    settings: dict[str, str] = {}
    for part in text.split(";"):
        if part.strip():
            name, _, value = part.partition("=")
            settings[name.strip().lower()] = value.strip()
    if settings.get("usedevelopmentstorage", "").lower() == "true":
        return DEVELOPMENT_ACCOUNT, DEVELOPMENT_KEY, DEVELOPMENT_ENDPOINT
    account, key = settings.get("accountname"), settings.get("accountkey")
    if not account or not key:
        raise ValueError("the connection string must hold AccountName and AccountKey")
    endpoint = settings.get("blobendpoint")
    if not endpoint:
        protocol = settings.get("defaultendpointsprotocol", "https")
        suffix = settings.get("endpointsuffix", "core.windows.net")
        endpoint = f"{protocol}://{account}.blob.{suffix}"
    return account, key, endpoint
