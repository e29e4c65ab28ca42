"""Change counters across nodes: PostgreSQL LISTEN/NOTIFY carries every bump.

The counters of `haven/epoch.py` are shared by the processes of one machine. Nodes that
share a PostgreSQL database but not a data directory learn of each other's changes here:
a bump is also sent as `NOTIFY haven_changes, '<counter> <node>'`, and every process
listens on its own connection and bumps its machine's counter when another node changed
something. Processes of one node share the node id (the data directory's), so they do
not bump for each other twice.

A notification arrives within milliseconds of the commit. When the listening connection
is lost, everything may have been missed: after reconnecting, every counter is bumped.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import queue
import socket
import threading
from pathlib import Path
from typing import Any

from haven.epoch import ChangeCounter

CHANNEL = "haven_changes"
RECONNECT_SECONDS = 1.0

log = logging.getLogger("haven.changes")


def node_id(data_dir: Path) -> str:
    """The same for every process of one node: its host and data directory."""
    where = f"{socket.gethostname()}:{data_dir.resolve()}"
    return hashlib.sha256(where.encode()).hexdigest()[:16]


class ChangeFeed:
    def __init__(self, url: str, node: str, counters: dict[str, ChangeCounter]) -> None:
        self._url = url
        self._node = node
        self._counters = counters
        self._outbox: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.connected = threading.Event()
        # Names the listening connection in pg_stat_activity.
        self.application_name = f"haven-changes-{node}"
        for name, counter in counters.items():
            counter.on_bump = functools.partial(self.publish, name)

    def publish(self, name: str) -> None:
        """Tell the other nodes that counter `name` moved (after a commit). It never
        blocks: a thread of the feed sends the notification."""
        self._outbox.put(name)

    def start(self) -> None:
        for target, label in ((self._listen, "listen"), (self._send, "send")):
            thread = threading.Thread(target=target, name=f"haven-changes-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        self._outbox.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    def _send(self) -> None:
        import psycopg

        conn: Any = None
        while True:
            name = self._outbox.get()
            if name is None:
                break
            for attempt in (1, 2):
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(self._url, autocommit=True)
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{name} {self._node}"))
                    break
                except psycopg.OperationalError:
                    conn = None
                    if attempt == 2:
                        log.exception("could not tell other nodes of a change")
        if conn is not None:
            conn.close()

    def _listen(self) -> None:
        import psycopg

        first = True
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    self._url, autocommit=True, application_name=self.application_name
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if not first:  # what happened while disconnected is unknown
                        for counter in self._counters.values():
                            counter.bump(local=True)
                    first = False
                    self.connected.set()
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._receive(note.payload)
            except psycopg.OperationalError:
                self.connected.clear()
                log.warning("change feed disconnected; reconnecting")
                self._stopping.wait(RECONNECT_SECONDS)

    def _receive(self, payload: str) -> None:
        name, _, origin = payload.partition(" ")
        counter = self._counters.get(name)
        if counter is not None and origin != self._node:
            counter.bump(local=True)
