"""Login servers: `<registry>.<domain>`, with the port clients reach Haven on."""

from __future__ import annotations

import pytest

from haven.config import Settings


@pytest.mark.parametrize(
    ("domain", "port", "expected"),
    [
        ("localhost", 5000, "default.localhost:5000"),
        ("registry.example.com", 443, "default.registry.example.com"),
        # Behind a proxy the domain names the proxy's port, not the node's.
        ("registry.example.com:8443", 5001, "default.registry.example.com:8443"),
        ("Registry.Example.com:443", 5001, "default.registry.example.com"),
    ],
)
def test_login_server_carries_the_port_clients_use(domain: str, port: int, expected: str) -> None:
    assert Settings(domain=domain, port=port).login_server("default") == expected
