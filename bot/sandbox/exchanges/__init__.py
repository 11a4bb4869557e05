"""Local venue servers: real HTTP on 127.0.0.1 that ccxt talks to as if it were the exchange."""

from bot.exchanges.book import BookLevel, OrderBook
from bot.sandbox.exchanges.activity import DemoOrder, DemoPosition, DemoTrade
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
from bot.sandbox.exchanges.bitget import BitgetServer
from bot.sandbox.exchanges.bybit import BybitServer
from bot.sandbox.exchanges.coinbase import CoinbaseServer
from bot.sandbox.exchanges.kraken import KrakenServer
from bot.sandbox.exchanges.kucoin import KucoinServer
from bot.sandbox.exchanges.matching import (
    BookShape,
    OrderRejected,
    OrderRules,
    RejectReason,
)
from bot.sandbox.exchanges.okx import OkxServer

#: The local server standing in for each venue of the catalogue, by ccxt id.
SERVERS: dict[str, type[VenueServer]] = {
    "binance": BinanceServer,
    "binanceusdm": BinanceUsdmServer,
    "bitget": BitgetServer,
    "bybit": BybitServer,
    "coinbase": CoinbaseServer,
    "kraken": KrakenServer,
    "kucoin": KucoinServer,
    "okx": OkxServer,
}

__all__ = [
    "SERVERS",
    "Balance",
    "BinanceServer",
    "BinanceUsdmServer",
    "BitgetServer",
    "BookLevel",
    "BookShape",
    "BybitServer",
    "CoinbaseServer",
    "DemoAccount",
    "DemoKey",
    "DemoOrder",
    "DemoPermissions",
    "DemoPosition",
    "DemoTrade",
    "KeyRecord",
    "KrakenServer",
    "KucoinServer",
    "LoggedRequest",
    "OkxServer",
    "OrderBook",
    "OrderRejected",
    "OrderRules",
    "RejectReason",
    "VenueError",
    "VenueServer",
]
