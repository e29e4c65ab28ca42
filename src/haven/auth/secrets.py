"""Secrets: generated passwords, argon2 hashes, and the deployment's encryption key."""

from __future__ import annotations

import base64
import hmac
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

# OWASP's minimum argon2id profile (19 MiB, 2 passes): verification results are cached
# per process, so the cost is paid once per credential and per change, not per request.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def generate_password() -> str:
    """A 32-character secret, safe in URLs, shells and Basic credentials."""
    return secrets.token_urlsafe(24)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(hashed: str, secret: str) -> bool:
    try:
        return _hasher.verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class SecretBox:
    """Symmetric encryption for the few secrets that must be read back."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError(
                "a stored secret cannot be decrypted: the deployment's secret key changed"
            ) from None


def load_or_create_key(configured: str | None, path: Path) -> bytes:
    """The deployment's secret key: HAVEN_SECRET_KEY, else `<data-dir>/secret.key`
    (created on first start, readable by the owner only)."""
    if configured:
        key = configured.encode()
    else:
        try:
            key = path.read_bytes().strip()
        except FileNotFoundError:
            key = Fernet.generate_key()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, key)
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
    if len(base64.urlsafe_b64decode(key)) != 32:
        raise ValueError("the secret key must be 32 bytes, url-safe base64 encoded")
    return key
