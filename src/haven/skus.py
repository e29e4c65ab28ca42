"""What each registry SKU includes, as ACR sets it (a limit of -1 means no limit)."""

from __future__ import annotations

GIB = 1024**3

SKU_LIMITS: dict[str, dict[str, int]] = {
    "Basic": {"Size": 10 * GIB, "Webhooks": 2, "Geo-replications": 0, "IPRules": 0,
              "Tokens": 100, "ScopeMaps": 100},
    "Standard": {"Size": 100 * GIB, "Webhooks": 10, "Geo-replications": 0, "IPRules": 0,
                 "Tokens": 500, "ScopeMaps": 500},
    "Premium": {"Size": 500 * GIB, "Webhooks": 500, "Geo-replications": -1, "IPRules": 200,
                "Tokens": 50_000, "ScopeMaps": 50_000},
}  # fmt: skip


def included_storage(sku: str) -> int:
    """The storage quota, in bytes, that a registry of `sku` has unless overridden."""
    return SKU_LIMITS.get(sku, SKU_LIMITS["Standard"])["Size"]
