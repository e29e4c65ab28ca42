"""Request rate limits: per anonymous client address, per principal, per registry.

Token buckets held by each worker process; a limit configured for the deployment is
shared evenly among the workers, so the whole deployment allows about that rate.
A refused request answers 429 TOOMANYREQUESTS with Retry-After.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from haven.errors import TooManyRequests

MAX_BUCKETS = 50_000


class Buckets:
    def __init__(self, rate: float, burst_seconds: float = 2.0) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * burst_seconds)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """Take one request from `key`'s bucket; returns 0, or the seconds to wait."""
        now = time.monotonic()
        tokens, stamp = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens - 1.0, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return 0.0


class RateLimiter:
    def __init__(self, anonymous: float, principal: float, registry: float, workers: int) -> None:
        share = max(1, workers)
        self._anonymous = Buckets(anonymous / share) if anonymous > 0 else None
        self._principal = Buckets(principal / share) if principal > 0 else None
        self._registry = Buckets(registry / share) if registry > 0 else None

    def check(self, registry_id: int, principal_key: str | None, address: str | None) -> None:
        """Raise TooManyRequests when any applicable limit is exhausted."""
        waits = []
        if principal_key is None and self._anonymous is not None:
            waits.append(
                ("anonymous clients from this address", self._anonymous.take(address or "-"))
            )
        if principal_key is not None and self._principal is not None:
            waits.append(("this identity", self._principal.take(principal_key)))
        if self._registry is not None:
            waits.append(("this registry", self._registry.take(str(registry_id))))
        for who, wait in waits:
            if wait > 0:
                raise TooManyRequests(
                    f"too many requests for {who}; retry after {math.ceil(wait)} s",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
