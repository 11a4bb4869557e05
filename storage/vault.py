"""AES-256-GCM encryption of every secret Coinwarden stores.

A token is ``v1.<key id>.<nonce>.<ciphertext>`` (base64url). The associated data binds it to
``(chat_id, connection_id, field)``, so a ciphertext copied to another row, chat or column fails
to decrypt instead of quietly becoming someone else's key. The key id names which master key
encrypted it, so rotation can tell old tokens from new ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TOKEN_VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12


class VaultError(Exception):
    """A token could not be decrypted: wrong key, edited or moved ciphertext, or bad format."""


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_master_key(text: str) -> bytes:
    """Decode a base64 master key and insist on 32 bytes (AES-256)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise ValueError("a master key is base64 of exactly 32 random bytes")
    return raw


def generate_master_key() -> str:
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def key_id(key: bytes) -> str:
    """A short public name for a key (not reversible to it)."""
    return hashlib.sha256(b"coinwarden-key-id:" + key).hexdigest()[:8]


def token_key_id(token: str) -> str:
    """The key id a token was encrypted with, without decrypting it."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != TOKEN_VERSION:
        raise VaultError("not a Coinwarden vault token")
    return parts[1]


@dataclass(frozen=True)
class Binding:
    """Where a secret belongs; it is the associated data, so a moved ciphertext fails."""

    chat_id: int
    connection_id: int
    field: str

    def associated_data(self) -> bytes:
        return (
            f"coinwarden:{TOKEN_VERSION}:{self.chat_id}:{self.connection_id}:{self.field}".encode()
        )


class Vault:
    """Encrypts with the current master key; decrypts with it or any previous one."""

    def __init__(self, current: bytes, previous: Iterable[bytes] = ()) -> None:
        self._current_id = key_id(current)
        self._keys = {key_id(key): AESGCM(key) for key in previous}
        self._keys[self._current_id] = AESGCM(current)
        # Keyed hashes use a key derived from each master key, never the master key itself.
        self._hash_keys = {
            key_id(key): hashlib.sha256(b"coinwarden-key-hash:" + key).digest()
            for key in (*previous, current)
        }

    def key_hash(self, value: str) -> str:
        """A keyed hash of ``value`` (an API key) under the current master key, tagged with
        its key id: equal API keys compare equal without decrypting anything, and nobody
        without the master key can test a guess against it."""
        return self._hash_under(self._current_id, value)

    def key_hashes(self, value: str) -> frozenset[str]:
        """``value``'s hash under every configured master key (stored hashes made before a
        rotation still match)."""
        return frozenset(self._hash_under(kid, value) for kid in self._hash_keys)

    def _hash_under(self, kid: str, value: str) -> str:
        digest = hmac.new(self._hash_keys[kid], value.encode(), hashlib.sha256).hexdigest()
        return f"{kid}.{digest}"

    @property
    def current_key_id(self) -> str:
        return self._current_id

    def knows(self, kid: str) -> bool:
        return kid in self._keys

    def encrypt(self, plaintext: str, binding: Binding) -> str:
        nonce = os.urandom(NONCE_BYTES)
        aad = binding.associated_data()
        ciphertext = self._keys[self._current_id].encrypt(nonce, plaintext.encode(), aad)
        return ".".join((TOKEN_VERSION, self._current_id, _b64e(nonce), _b64e(ciphertext)))

    def decrypt(self, token: str, binding: Binding) -> str:
        kid = token_key_id(token)
        aead = self._keys.get(kid)
        if aead is None:
            raise VaultError(f"encrypted with master key {kid}, which is not configured")
        _, _, nonce_text, ct_text = token.split(".")
        try:
            nonce, ciphertext = _b64d(nonce_text), _b64d(ct_text)
            plain = aead.decrypt(nonce, ciphertext, binding.associated_data())
        except (InvalidTag, ValueError, binascii.Error):
            raise VaultError(
                f"ciphertext of {binding.field} for connection {binding.connection_id} "
                "failed authentication"
            ) from None
        return plain.decode()
