"""ACR's lock attributes: their API names and the columns that hold them."""

from __future__ import annotations

LOCK_COLUMNS = ("write_enabled", "delete_enabled", "read_enabled", "list_enabled")
LOCK_NAMES = dict(
    zip(("writeEnabled", "deleteEnabled", "readEnabled", "listEnabled"), LOCK_COLUMNS, strict=True)
)
