"""Re-encrypt every stored secret under the current master key, and re-hash every API key
(the keyed hashes depend on the master key too), in one transaction."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select, update

from storage.database import Database
from storage.schema import connections
from storage.vault import Vault, token_key_id


async def rotate_master_key(database: Database, vault: Vault) -> int:
    """Return how many values were re-encrypted; all or nothing.

    The vault's current key encrypts; it and the previous keys decrypt. A value that no
    configured key opens aborts the whole rotation (VaultError) and changes nothing.
    """
    async with database.begin() as conn:
        # Held: a key replaced meanwhile must not be overwritten with the old one re-encrypted.
        await conn.execute(select(connections.c.id).with_for_update(key_share=True))
        changes: dict[int, dict[str, str]] = defaultdict(dict)
        for secret in await database.stored_secrets(conn):
            where = secret.binding
            current = token_key_id(secret.token) == vault.current_key_id
            if current and not where.field.endswith("_api_key"):
                continue
            plain = vault.decrypt(secret.token, where)
            if where.field.endswith("_api_key"):
                role = where.field.removesuffix("_api_key")
                changes[where.connection_id][f"{role}_key_hash"] = vault.key_hash(plain)
            if not current:
                changes[where.connection_id][where.field] = vault.encrypt(plain, where)
        for connection_id, values in changes.items():
            await conn.execute(
                update(connections).where(connections.c.id == connection_id).values(values)
            )
    return sum(
        sum(not field.endswith("_key_hash") for field in values) for values in changes.values()
    )
