"""In-process API tests: OCI distribution-spec v1.1 over httpx against the ASGI app."""
