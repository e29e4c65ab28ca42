"""What a deployment needs before its first request: a signing key and an owner."""

from __future__ import annotations

import uuid

from haven.auth.jwts import new_key
from haven.auth.secrets import SecretBox, generate_password, hash_secret
from haven.store.access import AccessStore, CredentialRecord, IdentityRecord
from haven.store.metadata import now_ms

OWNER = "owner"


def ensure_signing_key(store: AccessStore, box: SecretBox) -> None:
    if not store.has_signing_key_sync():
        store.add_signing_key_sync(new_key(box, now_ms()), retire_before_ms=None)


def ensure_owner(store: AccessStore, password: str | None) -> str | None:
    """Create the deployment owner on first start. Returns the password to show once
    when one was generated; None when the owner existed or the configured one was used."""
    if store.has_identities_sync():
        return None  # every start after the first: no password to hash
    secret = password or generate_password()
    stamp = now_ms()
    identity = IdentityRecord(str(uuid.uuid4()), OWNER, "user", 1, stamp)
    credential = CredentialRecord(
        str(uuid.uuid4()), identity.id, "bootstrap", hash_secret(secret), None, stamp
    )
    created = store.create_owner_sync(identity, credential)
    return secret if created and not password else None
