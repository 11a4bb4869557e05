"""Local venue servers: real HTTP on 127.0.0.1 that ccxt talks to as if it were the exchange."""

from bot.sandbox.exchanges.base import (
    Balance,
    DemoAccount,
    DemoKey,
    DemoPermissions,
    KeyRecord,
    LoggedRequest,
    VenueError,
    VenueServer,
)
from bot.sandbox.exchanges.binance import BinanceServer

__all__ = [
    "Balance",
    "BinanceServer",
    "DemoAccount",
    "DemoKey",
    "DemoPermissions",
    "KeyRecord",
    "LoggedRequest",
    "VenueError",
    "VenueServer",
]
