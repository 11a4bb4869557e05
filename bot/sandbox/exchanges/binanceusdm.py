"""A local Binance USDⓈ-M futures API (``/fapi``) that checks requests the way Binance does.

Signing, error shapes and the wallet (``/sapi``) endpoints are the spot server's
(:class:`BinanceApiServer`): ccxt's binanceusdm reads a key's restrictions there, on the spot host.
Every signed ``/fapi`` call, reads included, refuses a key without "Enable Futures" with -2015, as
Binance does for a key made without futures access (or before the futures account was opened),
and fapi's -2015 names the caller's IP. Markets are the recorded USDT-margined perpetuals of ccxt's
static test data. Positions are the base's (:meth:`VenueServer.open_position`, or fills of
contract orders), valued here at the walking last price with Binance's tiered maintenance margin.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.sandbox.exchanges.activity import DemoOrder, DemoPosition, DemoTrade
from bot.sandbox.exchanges.base import (
    Balance,
    DemoAccount,
    FeeRates,
    KeyRecord,
    Permission,
    PriceStats,
    VenueError,
)
from bot.sandbox.exchanges.binance import (
    BinanceApiServer,
    BinanceMarket,
    binance_error,
    eight_decimals,
)

FAPI_RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
]

#: What exchangeInfo lists as usable margin (Multi-Assets mode), with its auto-exchange threshold.
MARGIN_ASSETS = {
    "USDT": "-10000",
    "USDC": "-10000",
    "BTC": "-0.10000000",
    "ETH": "-5",
    "BNB": "-10",
}

#: The asset every recorded perpetual settles in, where positions book their margin and profit.
SETTLE_ASSET = "USDT"

_FAPI = "/fapi/"
_BREAK_EVEN_FEES = Decimal("0.0005")  # a round trip at taker fees, as Binance's break-even price
_LEVERAGES = (125, 100, 75, 50, 25, 20, 10, 5, 4, 3, 2, 1)
#: Perpetuals ccxt recorded no bracket ladder for get this altcoin's ladder.
_DEFAULT_LADDER = "ADA/USDT:USDT"


@dataclass(frozen=True)
class Bracket:
    """One notional tier of a perpetual, as ``leverageBracket`` reports it."""

    number: int
    floor: Decimal
    cap: Decimal
    maint_margin_ratio: Decimal
    cum: Decimal  # maintenance amount that makes the tiered margin continuous
    max_leverage: int


def brackets_from(ladder: tuple[tuple[Decimal, Decimal], ...]) -> tuple[Bracket, ...]:
    """Complete a (notional floor, maintenance margin ratio) ladder the way Binance derives it."""
    brackets: list[Bracket] = []
    cum = Decimal(0)
    for number, (floor, ratio) in enumerate(ladder, start=1):
        if brackets:
            cum += floor * (ratio - brackets[-1].maint_margin_ratio)
        cap = ladder[number][0] if number < len(ladder) else floor * 2  # top cap: unrecorded
        # The initial margin rate is twice the maintenance ratio; leverage is its inverse.
        leverage = next(x for x in _LEVERAGES if x <= 1 / (2 * ratio))
        brackets.append(Bracket(number, floor, cap, ratio, cum, leverage))
    return tuple(brackets)


@functools.cache
def load_brackets(reference_dir: Path) -> Mapping[str, tuple[Bracket, ...]]:
    """The bracket ladders ccxt recorded (``response/binance.json`` options), by unified symbol."""
    recorded = json.loads((reference_dir / "response" / "binance.json").read_text())
    ladders = recorded["options"]["leverageBrackets"]
    return {
        symbol: brackets_from(tuple((Decimal(floor), Decimal(ratio)) for floor, ratio in ladder))
        for symbol, ladder in ladders.items()
    }


@dataclass(frozen=True)
class PositionRisk:
    """A position valued at the current mark price."""

    market: BinanceMarket
    position: DemoPosition
    mark: Decimal
    notional: Decimal
    unrealized: Decimal
    initial_margin: Decimal
    maint_margin: Decimal
    liquidation: Decimal

    @property
    def isolated_wallet(self) -> Decimal:
        """Margin put into an isolated position (0 for cross, as Binance reports it)."""
        isolated = self.position.margin_mode == "isolated"
        return self.position.isolated_margin if isolated else Decimal(0)

    @property
    def isolated_margin(self) -> Decimal:
        """An isolated position's margin with its unrealised profit (0 for cross)."""
        if self.position.margin_mode != "isolated":
            return Decimal(0)
        return self.isolated_wallet + self.unrealized


def _plain(value: Decimal) -> str:
    """A decimal without exponent, as fapi writes prices and quantities at their precision."""
    return f"{value:f}"


class BinanceUsdmServer(BinanceApiServer):
    """Binance USDⓈ-M futures (``/fapi``) plus the wallet ``/sapi`` endpoints ccxt needs."""

    venue_id = "binanceusdm"
    market_kind = "linear"
    fee_rates = FeeRates(maker=Decimal("0.0002"), taker=Decimal("0.0005"))

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, reference_dir: Path | None = None
    ) -> None:
        super().__init__(host=host, port=port, reference_dir=reference_dir)
        recorded = load_brackets(self.reference_dir)
        self.brackets = {
            market.symbol: recorded.get(market.symbol, recorded[_DEFAULT_LADDER])
            for market in self.markets
        }

    def add_routes(self, router: web.UrlDispatcher) -> None:
        routes: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
            "/fapi/v1/ping": self.public(self._ping),
            "/fapi/v1/time": self.public(self._time),
            "/fapi/v1/exchangeInfo": self.public(self._exchange_info),
            "/fapi/v1/ticker/24hr": self.public(self._tickers(self._ticker_24hr)),
            "/fapi/v1/ticker/bookTicker": self.public(self._tickers(self._book_ticker)),
            # ccxt's fetch_last_prices (what the bot prices with) reads v2.
            "/fapi/v2/ticker/price": self.public(self._tickers(self._ticker_price)),
            "/fapi/v1/accountConfig": self.private(self._account_config),
            "/fapi/v1/leverageBracket": self.private(self._leverage_brackets),
            "/fapi/v3/account": self.private(self._account),
            "/fapi/v3/positionRisk": self.private(self._position_risk),
            "/fapi/v1/openOrders": self.private(self._open_orders(_futures_order)),
            "/fapi/v1/userTrades": self.private(self._account_trades(_futures_trade)),
            **self.wallet_routes(),
        }
        for path, endpoint in routes.items():
            router.add_get(path, endpoint)

    # ----- positions ------------------------------------------------------------------------

    def _risks(self, account: DemoAccount) -> list[PositionRisk]:
        wallet = account.balance(SETTLE_ASSET).total
        return [
            self._risk(self._markets_by_symbol[symbol], position, wallet)
            for symbol, position in account.positions.items()
        ]

    def _risk(self, market: BinanceMarket, position: DemoPosition, wallet: Decimal) -> PositionRisk:
        """Value a position at the mark. A cross position's liquidation price is computed as if
        it were the account's only one, against the whole wallet; an isolated one's against
        its own margin."""
        mark = market.price(self.mark_price(market.symbol))
        notional = position.notional(mark)
        bracket = next(
            b for b in reversed(self.brackets[market.symbol]) if b.floor <= abs(notional)
        )
        collateral = wallet if position.margin_mode == "cross" else position.isolated_margin
        return PositionRisk(
            market=market,
            position=position,
            mark=mark,
            notional=notional,
            unrealized=position.unrealized_pnl(mark),
            initial_margin=position.initial_margin(mark),
            maint_margin=abs(notional) * bracket.maint_margin_ratio - bracket.cum,
            liquidation=position.liquidation_price(
                collateral + bracket.cum, bracket.maint_margin_ratio
            ),
        )

    # ----- authentication and errors ---------------------------------------------------------

    def authorize(self, record: KeyRecord | None, request: web.Request, needs: Permission) -> bool:
        """Binance's futures API refuses a key without "Enable Futures", for reads too."""
        if record is None or not super().authorize(record, request, needs):
            return False
        return not request.path.startswith(_FAPI) or record.permissions.futures_trade

    def rejected(self, request: web.Request) -> VenueError:
        if not request.path.startswith(_FAPI):
            return super().rejected(request)
        return binance_error(
            401,
            -2015,
            f"Invalid API-key, IP, or permissions for action, request ip: {request.remote}",
        )

    def fault(self, status: int) -> VenueError:
        """fapi's gateway answers 503 without a Binance code: ccxt sees ExchangeNotAvailable."""
        if status == 503:
            return VenueError(
                503,
                {
                    "timestamp": self.server_time_ms(),
                    "msg": "Unknown error, please check your request or try again later.",
                },
            )
        return super().fault(status)

    # ----- public endpoints ------------------------------------------------------------------

    async def _exchange_info(self, request: web.Request) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": self.server_time_ms(),
            "futuresType": "U_MARGINED",
            "rateLimits": FAPI_RATE_LIMITS,
            "exchangeFilters": [],
            "assets": [
                {"asset": asset, "marginAvailable": True, "autoAssetExchange": threshold}
                for asset, threshold in MARGIN_ASSETS.items()
            ],
            "symbols": [market.info for market in self.markets],
        }

    def _ticker_24hr(self, market: BinanceMarket, stats: PriceStats) -> dict[str, Any]:
        """fapi's 24 h ticker: no bid/ask or previous close, unlike spot's."""
        now = self.server_time_ms()
        last, opened = market.price(stats.last), market.price(stats.open)
        first_id = 5_000_000_000
        return {
            "symbol": market.id,
            "priceChange": _plain(last - opened),
            "priceChangePercent": f"{(last - opened) / opened * 100:.3f}",
            "weightedAvgPrice": _plain(market.price((stats.open + stats.last) / 2)),
            "lastPrice": _plain(last),
            "lastQty": _plain(market.amount(stats.volume / 300000)),
            "openPrice": _plain(opened),
            "highPrice": _plain(market.price(stats.high)),
            "lowPrice": _plain(market.price(stats.low)),
            "volume": _plain(market.amount(stats.volume)),
            "quoteVolume": eight_decimals(stats.quote_volume),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": first_id,
            "lastId": first_id + stats.trades - 1,
            "count": stats.trades,
        }

    def _book_ticker(self, market: BinanceMarket, stats: PriceStats) -> dict[str, Any]:
        return {"symbol": market.id, **self._book(market, stats), "time": self.server_time_ms()}

    # ----- signed endpoints ------------------------------------------------------------------

    async def _account_config(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """``canTrade``/``canWithdraw`` follow the calling key, as on the spot account endpoint."""
        return {
            "feeTier": 0,
            "canTrade": record.permissions.futures_trade,
            "canDeposit": True,
            "canWithdraw": record.permissions.withdraw,
            "dualSidePosition": False,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
        }

    async def _leverage_brackets(self, request: web.Request, record: KeyRecord) -> Any:
        """Every perpetual's ladder, or one object when ``symbol`` is sent (as Binance does)."""
        markets = self.markets
        if "symbol" in request.query:
            markets = (self._market(request.query["symbol"]),)
        entries = [
            {
                "symbol": market.id,
                "notionalCoef": 1.0,
                "brackets": [
                    {
                        "bracket": b.number,
                        "initialLeverage": b.max_leverage,
                        "notionalCap": int(b.cap),
                        "notionalFloor": int(b.floor),
                        "maintMarginRatio": float(b.maint_margin_ratio),
                        "cum": float(b.cum),
                    }
                    for b in self.brackets[market.symbol]
                ],
            }
            for market in markets
        ]
        return entries[0] if "symbol" in request.query else entries

    async def _account(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """Account V3 in single-asset mode: positions weigh on the settlement asset only.

        The account totals are that asset's figures, as Binance reports them in this mode.
        """
        account = record.account
        risks = self._risks(account)
        assets = [
            _asset_entry(asset, balance, risks if asset == SETTLE_ASSET else [], account)
            for asset, balance in account.balances.items()
        ]
        settle = next(
            (entry for entry in assets if entry["asset"] == SETTLE_ASSET),
            _asset_entry(SETTLE_ASSET, Balance(Decimal(0)), risks, account),
        )
        return {
            "totalInitialMargin": settle["initialMargin"],
            "totalMaintMargin": settle["maintMargin"],
            "totalWalletBalance": settle["walletBalance"],
            "totalUnrealizedProfit": settle["unrealizedProfit"],
            "totalMarginBalance": settle["marginBalance"],
            "totalPositionInitialMargin": settle["positionInitialMargin"],
            "totalOpenOrderInitialMargin": settle["openOrderInitialMargin"],
            "totalCrossWalletBalance": settle["crossWalletBalance"],
            "totalCrossUnPnl": settle["crossUnPnl"],
            "availableBalance": settle["availableBalance"],
            "maxWithdrawAmount": settle["maxWithdrawAmount"],
            "assets": assets,
            "positions": [
                {
                    "symbol": r.market.id,
                    "positionSide": "BOTH",
                    "positionAmt": _plain(r.position.amount),
                    "unrealizedProfit": eight_decimals(r.unrealized),
                    "isolatedMargin": eight_decimals(r.isolated_margin),
                    "notional": eight_decimals(r.notional),
                    "isolatedWallet": eight_decimals(r.isolated_wallet),
                    "initialMargin": eight_decimals(r.initial_margin),
                    "maintMargin": eight_decimals(r.maint_margin),
                    "updateTime": r.position.updated_ms,
                }
                for r in risks
            ],
        }

    async def _position_risk(self, request: web.Request, record: KeyRecord) -> list[dict[str, Any]]:
        """Position Information V3: only symbols with a position, so empty for a fresh account."""
        risks = self._risks(record.account)
        if "symbol" in request.query:
            wanted = self._market(request.query["symbol"])
            risks = [r for r in risks if r.market is wanted]
        return [_position_entry(r) for r in risks]


def _asset_entry(
    asset: str, balance: Balance, risks: list[PositionRisk], account: DemoAccount
) -> dict[str, Any]:
    """One margin asset of the account.

    ccxt reads ``availableBalance`` as free, ``initialMargin`` as used and ``marginBalance`` as
    total, so they add up; ``used`` of a demo balance is margin held by open orders.
    """
    unrealized = sum((r.unrealized for r in risks), Decimal(0))
    position_margin = sum((r.initial_margin for r in risks), Decimal(0))
    margin_balance = balance.total + unrealized
    initial = balance.used + position_margin
    available = margin_balance - initial
    return {
        "asset": asset,
        "walletBalance": eight_decimals(balance.total),
        "unrealizedProfit": eight_decimals(unrealized),
        "marginBalance": eight_decimals(margin_balance),
        "maintMargin": eight_decimals(sum((r.maint_margin for r in risks), Decimal(0))),
        "initialMargin": eight_decimals(initial),
        "positionInitialMargin": eight_decimals(position_margin),
        "openOrderInitialMargin": eight_decimals(balance.used),
        "crossWalletBalance": eight_decimals(balance.total),
        "crossUnPnl": eight_decimals(unrealized),
        "availableBalance": eight_decimals(available),
        "maxWithdrawAmount": eight_decimals(min(balance.total, available)),
        # ccxt skips assets whose updateTime is 0 (never funded), as Binance lists them.
        "updateTime": account.updated_ms,
    }


def _position_entry(risk: PositionRisk) -> dict[str, Any]:
    position = risk.position
    fees = 1 + _BREAK_EVEN_FEES if position.amount > 0 else 1 - _BREAK_EVEN_FEES
    return {
        "symbol": risk.market.id,
        "positionSide": "BOTH",
        "positionAmt": _plain(position.amount),
        "entryPrice": _plain(position.entry_price),
        "breakEvenPrice": _plain(position.entry_price * fees),
        "markPrice": eight_decimals(risk.mark),
        "unRealizedProfit": eight_decimals(risk.unrealized),
        "liquidationPrice": eight_decimals(risk.liquidation),
        "isolatedMargin": eight_decimals(risk.isolated_margin),
        "notional": eight_decimals(risk.notional),
        "marginAsset": SETTLE_ASSET,
        "isolatedWallet": eight_decimals(risk.isolated_wallet),
        "initialMargin": eight_decimals(risk.initial_margin),
        "maintMargin": eight_decimals(risk.maint_margin),
        "positionInitialMargin": eight_decimals(risk.initial_margin),
        "openOrderInitialMargin": "0",
        "adl": 1,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": position.updated_ms,
    }


def _futures_order(order: DemoOrder, market: BinanceMarket) -> dict[str, Any]:
    """An ``openOrders`` entry of the futures API (one-way mode)."""
    return {
        "orderId": int(order.id),
        "symbol": market.id,
        "status": order.state.upper(),
        "clientOrderId": order.client_order_id,
        "price": _plain(order.price),
        "avgPrice": _plain(order.price if order.filled else Decimal(0)),
        "origQty": _plain(order.amount),
        "executedQty": _plain(order.filled),
        "cumQuote": _plain(order.cost),
        "timeInForce": "GTC",
        "type": order.type.upper(),
        "reduceOnly": False,
        "closePosition": False,
        "side": order.side.upper(),
        "positionSide": "BOTH",
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": order.type.upper(),
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "time": order.created_ms,
        "updateTime": order.updated_ms,
    }


def _futures_trade(trade: DemoTrade, market: BinanceMarket) -> dict[str, Any]:
    """A ``userTrades`` entry, with the profit the fill realised."""
    return {
        "symbol": market.id,
        "id": int(trade.id),
        "orderId": int(trade.order_id),
        "side": trade.side.upper(),
        "price": _plain(trade.price),
        "qty": _plain(trade.amount),
        "realizedPnl": eight_decimals(trade.realized_pnl),
        "marginAsset": SETTLE_ASSET,
        "quoteQty": eight_decimals(trade.cost),
        "commission": eight_decimals(trade.fee),
        "commissionAsset": trade.fee_currency,
        "time": trade.time_ms,
        "positionSide": "BOTH",
        "buyer": trade.side == "buy",
        "maker": not trade.taker,
    }
