"""Signed JWTs for access and refresh tokens (ES256), with rotatable keys.

Keys live in the metadata store, the private half sealed with the deployment's secret
key. The newest key signs; every key not yet retired verifies, so rotation never cuts
off tokens already issued. Verified tokens are cached until they expire: a client
reuses one token for many requests, and signature checks cost ~150 µs each.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from haven.auth.secrets import SecretBox

ISSUER = "haven"
ALGORITHM = "ES256"
MAX_CACHED = 20_000


class TokenInvalid(Exception):
    """A token that is malformed, forged, expired, or not meant for this audience."""


@dataclass(frozen=True, slots=True)
class StoredKey:
    kid: str
    sealed_private: str
    public_pem: str
    created_at: int


def new_key(box: SecretBox, now_ms: int) -> StoredKey:
    private = ec.generate_private_key(ec.SECP256R1())
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return StoredKey(secrets.token_hex(8), box.seal(private_pem), public_pem, now_ms)


class KeyRing:
    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._signing: tuple[str, Any] | None = None
        self._public: dict[str, Any] = {}
        self._verified: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    def load(self, keys: list[StoredKey]) -> None:
        """Use these keys (the newest signs); forget what was verified with others."""
        if not keys:
            raise ValueError("no signing key: run `haven serve` once to create one")
        newest = max(keys, key=lambda k: (k.created_at, k.kid))
        self._signing = (
            newest.kid,
            serialization.load_pem_private_key(
                self._box.open(newest.sealed_private).encode(), None
            ),
        )
        self._public = {
            k.kid: serialization.load_pem_public_key(k.public_pem.encode()) for k in keys
        }
        self._verified.clear()

    def sign(self, claims: dict[str, Any], audience: str, lifetime_s: int) -> tuple[str, int]:
        """A token for `audience` valid for `lifetime_s`; returns it and its issue time."""
        assert self._signing is not None, "keys not loaded"
        kid, key = self._signing
        now = int(time.time())
        payload = {
            **claims,
            "iss": ISSUER,
            "aud": audience,
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": kid}), now

    def verify(self, token: str, audience: str) -> dict[str, Any]:
        cache_key = (token, audience)
        claims = self._verified.get(cache_key)
        if claims is not None:
            if claims["exp"] > time.time():
                return claims
            del self._verified[cache_key]
            raise TokenInvalid("the token has expired")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._public.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise TokenInvalid("the token was not signed by this deployment")
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise TokenInvalid("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise TokenInvalid("the token was issued for another registry") from None
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"invalid token: {exc}") from None
        self._verified[cache_key] = claims
        if len(self._verified) > MAX_CACHED:
            self._verified.popitem(last=False)
        return claims
