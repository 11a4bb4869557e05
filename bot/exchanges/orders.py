"""Placing one rebalance order and finding it again, each venue its own way.

Every leg is a limit IOC order carrying a client order id derived from its proposal and leg
(:func:`client_order_id`). An answer that never comes (timeout, 5xx, a dropped connection, a
"duplicate client id" refusal) is an *unknown outcome*: the caller looks the order up by that id
(:func:`find_order`) and never sends it again. Venues differ in where the id goes, what ids they
accept, how they refuse a reused id (ccxt maps none of those to ``DuplicateOrderId``) and
whether they can look an order up by it, so each venue has an :class:`OrderDialect`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

import ccxt.async_support as ccxt

from bot.exchanges.balances import to_decimal
from bot.exchanges.diagnosis import exchange_message

Side = Literal["buy", "sell"]
#: How a client order id is written: ``cw-<token>-<leg>``; letters and digits only; a UUID.
ClientIdStyle = Literal["dashed", "alnum", "uuid"]


@dataclass(frozen=True)
class OrderDialect:
    """What one venue needs to place a leg and find it again through ccxt."""

    #: The ccxt ``create_order`` parameter that carries our client order id.
    client_id_param: str
    client_id_style: ClientIdStyle = "dashed"
    #: What makes ccxt send a limit order as immediate-or-cancel.
    ioc_params: Mapping[str, Any] = field(default_factory=lambda: {"timeInForce": "IOC"})
    #: Texts (codes or messages) in the venue's refusal of a client order id it has seen.
    duplicate_markers: tuple[str, ...] = ()
    #: Texts of definite refusals (a filter) that ccxt raises only as a plain ExchangeError.
    refusal_markers: tuple[str, ...] = ()
    #: The ``fetch_order`` parameter that looks an order up by client order id; None where the
    #: venue cannot, and its order lists are searched instead.
    lookup_param: str | None = None
    #: The ccxt methods listing orders where such a search looks (every state an IOC order can
    #: end in must be covered), and the parameter that filters them by client id, if any.
    order_lists: tuple[str, ...] = ("fetch_open_orders", "fetch_closed_orders")
    list_param: str | None = None


ORDER_DIALECTS: dict[str, OrderDialect] = {
    # Binance accepts a reused id once the first order is done, so the id is no guard against
    # a second IOC: only never resending is.
    "binance": OrderDialect(
        client_id_param="newClientOrderId",
        duplicate_markers=("Duplicate order sent",),
        lookup_param="origClientOrderId",
    ),
    # Bybit: orderLinkId ≤ 36 of [A-Za-z0-9_-], never reusable (110072, ccxt: InvalidOrder).
    # ccxt's fetch_order sends orderId=None and wants params["acknowledged"], so the order is
    # found in the lists; fetch_closed_orders asks for Filled only, so an IOC cancelled with
    # or without fills needs fetch_canceled_and_closed_orders with {"orderLinkId": id}.
    "bybit": OrderDialect(
        client_id_param="orderLinkId",
        duplicate_markers=('"retCode":110072',),
        order_lists=("fetch_open_orders", "fetch_canceled_and_closed_orders"),
        list_param="orderLinkId",
    ),
    # KuCoin (high-frequency account): clientOid ≤ 40 of [A-Za-z0-9_-]; a reused one is
    # 400100 validation.createOrder.clientOidDuplicated (ccxt: BadRequest).
    "kucoin": OrderDialect(
        client_id_param="clientOid",
        duplicate_markers=("clientOidDuplicated",),
        lookup_param="clientOid",
    ),
    # Bitget (classic v2 and unified v3): clientOid ≤ 50; a reused one is 40786 (ccxt:
    # ExchangeError). An unknown clientOid is an empty list, which ccxt's fetch_order turns into
    # OrderNotFound only when the id argument is a string ("" works, None is a TypeError).
    "bitget": OrderDialect(
        client_id_param="clientOid",
        duplicate_markers=('"code":"40786"',),
        lookup_param="clientOid",
    ),
    # Kraken: ccxt sends clientOrderId as cl_ord_id: a UUID (32 hex digits, or 36 with dashes)
    # or free text of at most 18 characters, so ours is a UUID. It must be unique among open
    # orders only (a done IOC's id is taken again); the refusal is not mapped by ccxt
    # (ExchangeError). QueryOrders (fetch_order) takes txids only, and ccxt turns a
    # clientOrderId param there into userref (an integer): the open and closed lists (both
    # filter on params {"clientOrderId": id}) are where an order is found by it.
    "kraken": OrderDialect(
        client_id_param="clientOrderId",
        client_id_style="uuid",
        duplicate_markers=("EOrder:Duplicate order",),
        refusal_markers=("EOrder:Cost minimum not met", "EOrder:Invalid price"),
        list_param="clientOrderId",
    ),
    # Coinbase: ccxt drops the unified clientOrderId and always sends its own client_order_id
    # unless the raw client_order_id param is given. A reused id is not refused: Coinbase
    # answers with the order that has it (nothing new is placed). No fetch_order by client id;
    # fetch_closed_orders asks for FILLED only, so an IOC that ended CANCELLED is found only by
    # fetch_orders (every status) or fetch_canceled_orders.
    "coinbase": OrderDialect(
        client_id_param="client_order_id",
        refusal_markers=("PREVIEW_INVALID_", "INVALID_SIZE_PRECISION", "INVALID_PRICE_PRECISION"),
        order_lists=("fetch_orders",),
    ),
    # OKX: clOrdId is 1-32 letters and digits; a reused one is refused for good with sCode
    # 51016 (ccxt: InvalidOrder). fetch_order(None, symbol, {"clOrdId": id}) finds it.
    "okx": OrderDialect(
        client_id_param="clOrdId",
        client_id_style="alnum",
        duplicate_markers=('"sCode":"51016"',),
        lookup_param="clOrdId",
    ),
}


def dialect_of(venue_id: str) -> OrderDialect:
    dialect = ORDER_DIALECTS.get(venue_id)
    if dialect is None:
        raise KeyError(f"rebalancing does not trade on {venue_id}")
    return dialect


def client_order_id(dialect: OrderDialect, token: str, leg: int) -> str:
    """The id of leg ``leg`` of the proposal whose random ``token`` (16 hex digits) is given:
    the same every time it is asked, different for every proposal and leg, and short enough
    for every venue (at most 36 characters)."""
    if dialect.client_id_style == "alnum":
        return f"cw{token}{leg:03d}"
    if dialect.client_id_style == "uuid":
        digest = hashlib.sha256(f"{token}:{leg}".encode()).digest()[:16]
        return str(uuid.UUID(bytes=digest, version=4))
    return f"cw-{token}-{leg}"


class Refusal(StrEnum):
    """Why a venue refused an order outright (nothing was placed)."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    INVALID = "invalid"  # a filter, the market, a parameter
    NOT_ALLOWED = "not_allowed"  # the key may not trade (any more)


class OrderRefused(Exception):
    """The venue answered no: the order does not exist. ``message`` is scrubbed, for people."""

    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.message = message


class OutcomeUnknown(Exception):
    """No answer we can trust: the order may or may not exist. Look it up; never resend."""


@dataclass(frozen=True)
class OrderReport:
    """What the venue says about one order."""

    order_id: str | None
    client_order_id: str
    status: str  # ccxt's: open, closed, canceled, expired, rejected
    filled: Decimal
    average: Decimal | None
    cost: Decimal
    fees: Mapping[str, Decimal]  # by currency

    @property
    def done(self) -> bool:
        """Nothing more will fill (an IOC order is done once the venue has answered for it)."""
        return self.status != "open"


async def place_limit_ioc(
    client: ccxt.Exchange,
    dialect: OrderDialect,
    symbol: str,
    side: Side,
    amount: Decimal,
    price: Decimal,
    client_id: str,
) -> OrderReport | None:
    """Send the order once. The venue's report of it, None if the venue took it without saying
    how it went (the caller then looks it up); OrderRefused or OutcomeUnknown otherwise."""
    params = {**dialect.ioc_params, dialect.client_id_param: client_id}
    try:
        raw = await client.create_order(symbol, "limit", side, float(amount), float(price), params)
    except ccxt.BaseError as error:
        raise _classify(error, dialect) from None
    report = _report(raw, client_id)
    if report.status in ("", "open") and report.filled == 0:
        return None  # acknowledged only (OKX, Bybit, KuCoin, Bitget answer with ids)
    return report


async def find_order(
    client: ccxt.Exchange, dialect: OrderDialect, symbol: str, client_id: str, since_ms: int
) -> OrderReport | None:
    """The order with our client id, open or done; None if the venue has no such order.
    ``since_ms`` bounds the search of order lists. OutcomeUnknown if the venue did not answer."""
    try:
        if dialect.lookup_param is not None:
            try:
                # "" rather than None: some venues' fetch_order concatenates the id.
                raw = await client.fetch_order("", symbol, {dialect.lookup_param: client_id})
            except ccxt.OrderNotFound:
                return None
            return _report(raw, client_id)
        params = {dialect.list_param: client_id} if dialect.list_param else {}
        for listing in dialect.order_lists:
            for raw in await getattr(client, listing)(symbol, since_ms, None, params):
                if raw.get("clientOrderId") == client_id:
                    return _report(raw, client_id)
        return None
    except ccxt.BaseError as error:
        raise OutcomeUnknown(type(error).__name__) from None


def _classify(error: ccxt.BaseError, dialect: OrderDialect) -> Exception:
    """A definite refusal, or an unknown outcome. A refusal of a reused client id means the
    first send arrived: unknown, to be looked up."""
    text = str(error)
    if any(marker in text for marker in dialect.duplicate_markers):
        return OutcomeUnknown("the venue already has this client order id")
    message = exchange_message(error) or type(error).__name__
    if isinstance(error, ccxt.InsufficientFunds):
        return OrderRefused(Refusal.INSUFFICIENT_FUNDS, message)
    if isinstance(error, ccxt.InvalidOrder | ccxt.BadSymbol | ccxt.BadRequest) or any(
        marker in text for marker in dialect.refusal_markers
    ):
        return OrderRefused(Refusal.INVALID, message)
    if isinstance(error, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return OrderRefused(Refusal.NOT_ALLOWED, message)
    return OutcomeUnknown(type(error).__name__)


def _report(raw: Mapping[str, Any], client_id: str) -> OrderReport:
    fees: dict[str, Decimal] = {}
    listed = raw.get("fees") or ([raw["fee"]] if raw.get("fee") else [])
    for fee in listed:
        cost, currency = to_decimal(fee.get("cost")), fee.get("currency")
        if cost and currency:
            fees[currency] = fees.get(currency, Decimal(0)) + cost
    filled = to_decimal(raw.get("filled")) or Decimal(0)
    average = to_decimal(raw.get("average"))
    cost = to_decimal(raw.get("cost"))
    if cost is None:
        cost = filled * average if average else Decimal(0)
    return OrderReport(
        order_id=None if raw.get("id") is None else str(raw["id"]),
        client_order_id=raw.get("clientOrderId") or client_id,
        status=raw.get("status") or "",
        filled=filled,
        average=average if average else None,
        cost=cost,
        fees=fees,
    )
