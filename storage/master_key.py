"""Find, generate and verify the master key; the vault is only ever opened through here.

The key comes from COINWARDEN_MASTER_KEY, else COINWARDEN_MASTER_KEY_FILE, else
``$DATA_DIR/master.key``. A new key is generated only while the database holds no secrets:
generating one over existing secrets would make them unreadable for good.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from storage.database import StoredSecret
from storage.vault import (
    Vault,
    VaultError,
    generate_master_key,
    parse_master_key,
    token_key_id,
)

KEY_FILE_NAME = "master.key"


class MasterKeyError(Exception):
    """The vault cannot be opened safely; the message names the master key setting to fix."""


@dataclass(frozen=True)
class MasterKeyConfig:
    """Where the master key may come from (plain values: storage does not import settings)."""

    env_key: str | None
    key_file: Path | None
    data_dir: Path
    previous_keys: Sequence[str] = ()


def _read_key_file(path: Path, variable: str) -> bytes:
    try:
        return parse_master_key(path.read_text())
    except OSError as exc:
        raise MasterKeyError(f"{variable}: cannot read {path} ({exc.strerror})") from None
    except ValueError as exc:
        raise MasterKeyError(f"{variable}: {path} does not hold a valid key: {exc}") from None


def _configured_key(config: MasterKeyConfig) -> bytes | None:
    if config.env_key:
        try:
            return parse_master_key(config.env_key)
        except ValueError as exc:
            raise MasterKeyError(f"COINWARDEN_MASTER_KEY: {exc}") from None
    if config.key_file is not None:
        return _read_key_file(config.key_file, "COINWARDEN_MASTER_KEY_FILE")
    generated = config.data_dir / KEY_FILE_NAME
    if generated.exists():
        return _read_key_file(generated, f"master key file {generated}")
    return None


def _write_new_key(path: Path) -> bytes:
    text = generate_master_key()
    # O_EXCL: never overwrite a key file another process may just have written.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    return parse_master_key(text)


def _previous(config: MasterKeyConfig) -> list[bytes]:
    try:
        return [parse_master_key(text) for text in config.previous_keys]
    except ValueError as exc:
        raise MasterKeyError(f"COINWARDEN_PREVIOUS_MASTER_KEYS: {exc}") from None


def verify(vault: Vault, secrets: Sequence[StoredSecret]) -> None:
    """Decrypt one secret per key id in use; refuse if any cannot be read."""
    samples: dict[str, StoredSecret] = {}
    for secret in secrets:
        samples.setdefault(token_key_id(secret.token), secret)
    for kid, sample in samples.items():
        if not vault.knows(kid):
            raise MasterKeyError(
                f"the database holds secrets encrypted with master key {kid}, which is not the "
                "configured COINWARDEN_MASTER_KEY (or COINWARDEN_MASTER_KEY_FILE) nor one of "
                "COINWARDEN_PREVIOUS_MASTER_KEYS: start with the key the data was created with"
            )
        try:
            vault.decrypt(sample.token, sample.binding)
        except VaultError as exc:
            raise MasterKeyError(
                f"the master key does not decrypt the stored secrets: {exc}"
            ) from None


def open_vault(
    config: MasterKeyConfig, secrets: Sequence[StoredSecret], *, may_generate: bool = True
) -> Vault | None:
    """The vault for this database, generating a key file only for a database without secrets.

    None when no key exists yet and ``may_generate`` is False (a dry run such as ``doctor``).
    """
    key = _configured_key(config)
    if key is None:
        if not may_generate and not secrets:
            return None
        if secrets:
            raise MasterKeyError(
                "the database holds encrypted API keys but no master key was found: set "
                "COINWARDEN_MASTER_KEY or COINWARDEN_MASTER_KEY_FILE to the key it was created "
                f"with, or restore {config.data_dir / KEY_FILE_NAME}"
            )
        key = _write_new_key(config.data_dir / KEY_FILE_NAME)
    vault = Vault(key, _previous(config))
    verify(vault, secrets)
    return vault
