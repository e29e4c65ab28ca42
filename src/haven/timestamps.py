"""Timestamps as the APIs show them: ISO 8601 in UTC with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_from_ms(epoch_ms: int) -> str:
    """Milliseconds since the epoch (how the metadata stores time) as ISO 8601."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def iso_or_none(epoch_ms: int | None) -> str | None:
    return None if epoch_ms is None else iso_from_ms(epoch_ms)
