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
from bot.sandbox.exchanges.binanceusdm import BinanceUsdmServer
from bot.sandbox.exchanges.kraken import KrakenServer
from bot.sandbox.exchanges.okx import OkxServer

#: The local server standing in for each venue of the catalogue, by ccxt id.
SERVERS: dict[str, type[VenueServer]] = {
    "binance": BinanceServer,
    "binanceusdm": BinanceUsdmServer,
    "kraken": KrakenServer,
    "okx": OkxServer,
}

__all__ = [
    "SERVERS",
    "Balance",
    "BinanceServer",
    "BinanceUsdmServer",
    "DemoAccount",
    "DemoKey",
    "DemoPermissions",
    "KeyRecord",
    "KrakenServer",
    "LoggedRequest",
    "OkxServer",
    "VenueError",
    "VenueServer",
]
