"""A minimal keep-alive HTTP/1.1 load loop for the manifest HEAD+GET scenario.

Why not wrk: wrk 4.1 does not know that a HEAD response carries no body, so after the first
HEAD it waits forever for the bytes announced by Content-Length and the run stalls. Why not
aiohttp: a general client spends most of a core per few thousand requests, and on a 2-core
machine the load generator would then measure itself. This loop pre-encodes both requests,
speaks plain HTTP/1.1 over uvloop transports and parses only the status line and
Content-Length, so its cost per request is a few tens of microseconds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import cast


@dataclass
class LoadResult:
    """What one timed run produced; `errors` counts non-2xx answers and broken connections."""

    requests: int
    seconds: float
    errors: int
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


class _Conn(asyncio.Protocol):
    """One connection that sends HEAD and GET in turn, one request in flight at a time."""

    def __init__(self, requests: list[tuple[bytes, bool]], shared: _Shared) -> None:
        self._requests = requests
        self._shared = shared
        self._turn = 0
        self._buf = bytearray()
        self._need = -1  # bytes still expected for the current response; -1: headers pending
        self._status = 0
        self._transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence a cast, not a check.
        self._transport = cast(asyncio.Transport, transport)
        self._send()

    def _send(self) -> None:
        assert self._transport is not None
        if time.perf_counter() >= self._shared.deadline:
            self._transport.close()
            return
        raw, _ = self._requests[self._turn % len(self._requests)]
        self._transport.write(raw)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while True:
            if self._need < 0:
                end = self._buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self._buf[:end]).lower()
                del self._buf[: end + 4]
                self._status = int(head[9:12])
                is_head = self._requests[self._turn % len(self._requests)][1]
                self._need = 0 if is_head else _content_length(head)
            if len(self._buf) < self._need:
                return
            del self._buf[: self._need]
            self._need = -1
            self._finish()
            if self._transport is None or self._transport.is_closing():
                return
            if not self._buf:
                return

    def _finish(self) -> None:
        shared = self._shared
        if time.perf_counter() <= shared.deadline:
            shared.count += 1
            shared.statuses[self._status] = shared.statuses.get(self._status, 0) + 1
            if not 200 <= self._status < 300:
                shared.errors += 1
        self._turn += 1
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if time.perf_counter() < self._shared.deadline:
            self._shared.errors += 1
        if not self.closed.done():
            self.closed.set_result(None)


def _content_length(head: bytes) -> int:
    marker = b"\r\ncontent-length:"
    at = head.find(marker)
    if at < 0:
        return 0
    end = head.find(b"\r\n", at + len(marker))
    return int(head[at + len(marker) : end if end >= 0 else None].strip())


@dataclass
class _Shared:
    deadline: float
    count: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


def build_requests(
    host: str, port: int, path: str, accept: str, headers: dict[str, str] | None = None
) -> list[tuple[bytes, bool]]:
    """The HEAD and the GET, encoded once; the bool marks a HEAD (no body in the answer)."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    common = f"Host: {host}:{port}\r\nAccept: {accept}\r\nUser-Agent: haven-bench\r\n{extra}\r\n"
    return [
        (f"HEAD {path} HTTP/1.1\r\n{common}".encode(), True),
        (f"GET {path} HTTP/1.1\r\n{common}".encode(), False),
    ]


async def run_load(
    host: str,
    port: int,
    path: str,
    accept: str,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Keep `connections` requests in flight for `seconds`; count answers that arrive in time."""
    loop = asyncio.get_running_loop()
    requests = build_requests(host, port, path, accept, headers)
    shared = _Shared(deadline=float("inf"))
    conns: list[_Conn] = []
    # Connect everything first so that connection set-up is not part of the timed window.
    for _ in range(connections):
        _, proto = await loop.create_connection(lambda: _Conn(requests, shared), host, port)
        conns.append(proto)
    # connection_made already sent one request per connection; count from now on.
    start = time.perf_counter()
    shared.deadline = start + seconds
    await asyncio.sleep(seconds)
    await asyncio.wait([c.closed for c in conns], timeout=10)
    return LoadResult(shared.count, seconds, shared.errors, dict(shared.statuses))
