"""Azure Blob stores on the session's Azurite (`azurite` in tests/conftest.py), each on a
container of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from haven.store.azure import AzureBlobStore


@pytest.fixture
def store(container_url: str) -> Iterator[AzureBlobStore]:
    store = AzureBlobStore.from_url(container_url)
    yield store
    store.close()


@pytest.fixture
def other_store(container_url: str, store: AzureBlobStore) -> Iterator[AzureBlobStore]:
    """A second, independent instance on the same container: another server process."""
    other = AzureBlobStore.from_url(container_url)
    yield other
    other.close()
