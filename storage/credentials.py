"""API credentials as the user pasted them, and the two roles a key can play.

They live in storage because the vault is where they rest; the exchange layer builds clients
from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class KeyRole(StrEnum):
    """A connection holds a key to read (monitoring) and optionally a separate key to trade."""

    READ = "read"
    TRADE = "trade"


def mask(value: str) -> str:
    """Show a public identifier the way cards do: first 4 … last 4 (never used for secrets).
    A path-like key name (Coinbase's ``organizations/<org>/apiKeys/<id>``) is shown by its
    last part, the one that tells its keys apart."""
    value = value.rstrip("/").rsplit("/", 1)[-1]
    if len(value) <= 10:
        return value[:2] + "…"
    return f"{value[:4]}…{value[-4:]}"


@dataclass(frozen=True)
class Credentials:
    """One API key; ``repr`` never shows the secret or passphrase."""

    api_key: str
    secret: str
    passphrase: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(api_key={mask(self.api_key)!r}, secret=***, passphrase=***)"

    __str__ = __repr__

    def secrets(self) -> list[str]:
        """Every value never to be logged or shown (the key id too: it is a credential)."""
        return [v for v in (self.api_key, self.secret, self.passphrase) if v]
