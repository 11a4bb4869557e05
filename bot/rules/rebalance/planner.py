"""The rebalancing planner: holdings, prices and a target allocation in, the orders that reach it
out. Pure: no I/O, no exchange client, no Telegram, no database.

Each exchange trades only with itself (our keys cannot withdraw), so each connection's legs must
pay for themselves. Across connections the planner reaches the *aggregate* target with the least
traded value: a small linear program solved with HiGHS (``highspy``). The venue's market rules
then make the plan real: amounts rounded down to the lot step, prices to the tick, no leg below
the venue minimum × ``MIN_TRADE_BUFFER``, and a check, leg by leg in order, that every leg that
remains is still paid for. A leg the rules refuse is removed and the program solved again
without it, so the rest of the plan is rerouted rather than left unbalanced.

A trade goes through the direct pair where the venue lists one, else one hop through a quote
asset: sell into it, buy out of it, on the same venue, sells first. A routing asset outside the
target ends where it started, but for lot-step dust; a two-hop chain of buys is not planned.

Fee convention, one for every check: the taker fee is paid in the quote asset on both sides.
A sell of A at P gives A·P·(1−fee) quote; a buy of A at P costs A·P·(1+fee) quote and gives A.
Where a venue takes a buy's fee from the base instead, the plan has reserved slightly more quote
than the order needs, never less.

Prices: without an order book a leg is priced at the market's last price. The caller can plan,
fetch one depth per traded market (``Leg.connection_id``, ``Leg.symbol``), and call
``plan_rebalance`` again with ``books``: each leg is then priced by walking the book, and the
program is solved at those prices so the plan still pays for itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from enum import StrEnum
from typing import Literal

import highspy

from bot.exchanges.book import OrderBook

ZERO = Decimal(0)
HUNDRED = Decimal(100)
#: No leg below the venue minimum × this buffer, so an asset hovering at the band does not
#: flip-flop between a tiny buy and a tiny sell on every check.
MIN_TRADE_BUFFER = Decimal("1.5")
#: An allocation within this many percentage points of the target on every asset is left alone.
DEFAULT_TOLERANCE = Decimal("0.5")
#: Weight of a unit of value away from the target, against a unit of traded value: large enough
#: that the program never stops short of a target it can reach.
DEVIATION_WEIGHT = 1000.0
#: Solve at most this many times: again after removing refused legs, and once more at the
#: book prices of the legs' amounts.
MAX_ROUNDS = 4
#: A solver value below this fraction of the portfolio is numerical noise, not a trade.
SOLVER_NOISE = 1e-9
#: Priced against books, a market without one counts as this much dearer (its last price hides
#: the spread), so the plan keeps to the markets the caller quoted.
UNQUOTED_PENALTY = 0.005
#: A leg cut by less than this share (price estimates, rounding) is not worth a line of its own.
CUT_WORTH_SAYING = Decimal("0.01")
#: A book price this close (relative) to the one the program assumed needs no solve again.
PRICE_SETTLED = Decimal("0.0005")

Side = Literal["buy", "sell"]


class LeftOutReason(StrEnum):
    TOO_SMALL = "too_small"  # below the venue minimum × MIN_TRADE_BUFFER, or under one lot step
    UNFUNDED = "unfunded"  # a buy shrunk or dropped: what was to pay for it was left out
    UNROUTED = "unrouted"  # a sell shrunk or dropped: its proceeds had no buy left to go to
    NO_MARKET = "no_market"  # no connection that can trade lists a market for the asset
    BLOCKED = "blocked"  # the caller says this connection may not trade (paused, …)
    UNPRICED = "unpriced"  # a target asset has no price: the allocation cannot be valued


class PriceSource(StrEnum):
    LAST = "last"  # the market's last price: no book was given
    BOOK = "book"  # the volume-weighted price of the given book levels
    BEYOND_BOOK = "beyond_book"  # bigger than the book given: the rest at its last level


@dataclass(frozen=True)
class MarketRule:
    """A spot market of a venue as the planner needs it (figures from ccxt's markets)."""

    symbol: str  # unified, "BTC/USDT"
    base: str
    quote: str
    amount_step: Decimal  # lot step; 0 if none
    price_tick: Decimal  # 0 if none
    min_amount: Decimal  # 0 if none
    min_cost: Decimal  # minimum notional in the quote, 0 if none
    taker_fee: Decimal  # 0.001 = 0.1 %
    last: Decimal  # quote per base


@dataclass(frozen=True)
class Account:
    """One connection in scope: what it holds and what its venue lists."""

    connection_id: int
    label: str
    holdings: Mapping[str, Decimal]  # free amounts by asset: what can be traded
    markets: Mapping[str, MarketRule]  # spot markets by symbol
    blocked: str | None = None  # the caller's reason code why it may not trade; None: it may


@dataclass(frozen=True)
class Leg:
    """One order to place. ``value`` and ``fee`` are in the valuation currency; ``slippage`` is
    the fraction by which ``price`` is worse than the last price (0 without a book)."""

    connection_id: int
    symbol: str
    side: Side
    amount: Decimal  # base, on the lot step
    price: Decimal  # estimated, quote per base, on the tick (buys up, sells down)
    value: Decimal
    fee: Decimal
    slippage: Decimal
    price_source: PriceSource


@dataclass(frozen=True)
class LeftOut:
    """Something the plan does not do, and why: ``subject`` is an asset, a market or a
    connection's label; ``connection_id`` is None when it concerns every connection."""

    connection_id: int | None
    subject: str
    reason: LeftOutReason
    detail: str


@dataclass(frozen=True)
class RebalancePlan:
    """The legs in the order to place them (per connection, sells before buys), what was left
    out, and the allocation of the target assets in percent: before → after → target."""

    legs: tuple[Leg, ...]
    left_out: tuple[LeftOut, ...]
    before: Mapping[str, Decimal]
    after: Mapping[str, Decimal]
    target: Mapping[str, Decimal]
    total_value: Decimal  # of the target assets before, in the valuation currency
    traded_value: Decimal
    fees: Decimal
    reached: bool  # every asset within the tolerance of its target after the legs
    note: str | None  # why the plan is empty, or why it cannot reach the target


def plan_rebalance(
    accounts: Sequence[Account],
    target: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    *,
    books: Mapping[tuple[int, str], OrderBook] | None = None,
    tolerance: Decimal = DEFAULT_TOLERANCE,
) -> RebalancePlan:
    """The least-traded-value plan that brings the target assets of ``accounts`` (together) to
    ``target`` (percent, read relative to their sum) without moving anything between
    connections.

    ``prices`` value one unit of each asset in the valuation currency (an asset missing there is
    valued through a market's last price); ``books`` are keyed by (connection id, symbol).
    Assets not named in the target are neither traded nor counted, except as a routing asset on
    a venue, which then ends where it started (lot-step dust aside).
    """
    weights = _weights(target)
    named = frozenset(weights)
    prices = _market_prices(accounts, named, prices)
    blocked = [
        LeftOut(a.connection_id, a.label, LeftOutReason.BLOCKED, a.blocked)
        for a in accounts
        if a.blocked is not None
    ]
    unpriced = sorted(asset for asset in named if prices.get(asset, ZERO) <= 0)
    if unpriced:
        missing = [
            LeftOut(None, asset, LeftOutReason.UNPRICED, "no price, and no market to value it")
            for asset in unpriced
        ]
        return _nothing(
            weights,
            {},
            [*blocked, *missing],
            f"No price for {', '.join(unpriced)}: the allocation cannot be valued.",
            reached=False,
        )
    start = _values((a.holdings for a in accounts), weights, prices)
    total = sum(start.values(), ZERO)
    if total <= 0:
        return _nothing(
            weights,
            start,
            blocked,
            "Nothing to rebalance: none of the target assets is held.",
            reached=False,
        )
    before = _percent(start)
    if _gap(before, weights) <= tolerance:
        return _nothing(
            weights, start, blocked, f"Already within {tolerance} points of the target."
        )
    tradable = [a for a in accounts if a.blocked is None]
    program = _Program(tradable, weights, prices, start, books or {}, tolerance)
    no_market = [
        LeftOut(
            None,
            asset,
            LeftOutReason.NO_MARKET,
            "no connection that can trade lists a market between it and another target asset "
            "or a quote asset",
        )
        for asset in sorted(named - program.reachable)
        if tradable
    ]
    if not program.columns:
        why = "no connection in scope can trade" if not tradable else "no market links them"
        return _nothing(
            weights,
            start,
            [*blocked, *no_market],
            f"Nothing can be traded: {why}.",
            reached=False,
        )
    outcome = program.solve()
    left_out = [*blocked, *no_market, *outcome.left_out]
    after_values = _values(
        [a.holdings for a in accounts if a.blocked is not None]
        + [outcome.balances[a.connection_id] for a in tradable],
        weights,
        prices,
    )
    after = _percent(after_values)
    if not outcome.legs:
        why = _why_short(before, weights, left_out, accounts, named, outcome.program_short)
        return _nothing(weights, start, left_out, f"Nothing to trade. {why}", reached=False)
    if _distance(after, weights) > _distance(before, weights):
        return _nothing(
            weights,
            start,
            left_out,
            "The legs left after the venues' rules would move the allocation away from the "
            "target: nothing proposed.",
            reached=False,
        )
    reached = _gap(after, weights) <= tolerance
    note = None
    if not reached:
        note = _why_short(after, weights, left_out, accounts, named, outcome.program_short)
    return RebalancePlan(
        legs=outcome.legs,
        left_out=tuple(left_out),
        before=before,
        after=after,
        target=dict(weights),
        total_value=total,
        traded_value=sum((leg.value for leg in outcome.legs), ZERO),
        fees=sum((leg.fee for leg in outcome.legs), ZERO),
        reached=reached,
        note=note,
    )


def estimate_price(
    rule: MarketRule, side: Side, amount: Decimal, book: OrderBook | None
) -> tuple[Decimal, PriceSource]:
    """What ``amount`` is expected to fill at: the volume-weighted price of walking the book's
    levels (the last level's price for what lies beyond them), or the last price without one."""
    if book is None:
        return rule.last, PriceSource.LAST
    levels = book.asks if side == "buy" else book.bids
    if not levels:
        return rule.last, PriceSource.BEYOND_BOOK
    if amount <= 0:
        return levels[0].price, PriceSource.BOOK
    left, cost = amount, ZERO
    for level in levels:
        take = min(left, level.amount)
        cost += take * level.price
        left -= take
        if left <= 0:
            return cost / amount, PriceSource.BOOK
    return (cost + left * levels[-1].price) / amount, PriceSource.BEYOND_BOOK


def _weights(target: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """The target in percent of its own sum (a typed 33.33 × 3 aims at thirds)."""
    total = sum(target.values(), ZERO)
    if not target or any(w < 0 for w in target.values()) or total <= 0:
        raise ValueError("target weights must be non-negative with a positive sum")
    if total == HUNDRED:
        return dict(target)
    return {asset: w / total * HUNDRED for asset, w in target.items()}


def _market_prices(
    accounts: Sequence[Account], named: frozenset[str], prices: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """``prices``, completed from the last prices of markets with a target asset on one side:
    a target asset nobody holds yet, or a routing asset, still needs a value."""
    priced = {asset: price for asset, price in prices.items() if price > 0}
    for _ in range(2):  # the second pass values what the first one priced a side of
        for account in accounts:
            for rule in account.markets.values():
                if rule.last <= 0 or (rule.base not in named and rule.quote not in named):
                    continue
                if rule.base not in priced and rule.quote in priced:
                    priced[rule.base] = rule.last * priced[rule.quote]
                elif rule.quote not in priced and rule.base in priced:
                    priced[rule.quote] = priced[rule.base] / rule.last
    return priced


def _values(
    holdings: Iterable[Mapping[str, Decimal]],
    weights: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
) -> dict[str, Decimal]:
    """The value of each target asset over all the given holdings, in the target's order."""
    values = dict.fromkeys(weights, ZERO)
    for held in holdings:
        for asset, amount in held.items():
            if asset in values:
                values[asset] += amount * prices[asset]
    return values


def _percent(values: Mapping[str, Decimal]) -> dict[str, Decimal]:
    total = sum(values.values(), ZERO)
    return {a: (v / total * HUNDRED if total > 0 else ZERO) for a, v in values.items()}


def _gap(allocation: Mapping[str, Decimal], weights: Mapping[str, Decimal]) -> Decimal:
    """The largest distance of one asset from its target, in percentage points."""
    return max(abs(allocation[a] - w) for a, w in weights.items())


def _distance(allocation: Mapping[str, Decimal], weights: Mapping[str, Decimal]) -> Decimal:
    """How far an allocation is from the target's proportions: Σ |share − t·weight| at the
    best scale t (1 when the target is reached), so an asset that cannot move is not counted
    again in every other asset's gap."""
    scales = [allocation[a] / w for a, w in weights.items() if w > 0]
    return min(sum((abs(allocation[a] - t * w) for a, w in weights.items()), ZERO) for t in scales)


def _nothing(
    weights: Mapping[str, Decimal],
    start: Mapping[str, Decimal],
    left_out: Sequence[LeftOut],
    note: str,
    *,
    reached: bool = True,
) -> RebalancePlan:
    before = _percent(start) if start else {}
    return RebalancePlan(
        legs=(),
        left_out=tuple(left_out),
        before=before,
        after=before,
        target=dict(weights),
        total_value=sum(start.values(), ZERO),
        traded_value=ZERO,
        fees=ZERO,
        reached=reached,
        note=note,
    )


def _why_short(
    after: Mapping[str, Decimal],
    weights: Mapping[str, Decimal],
    left_out: Sequence[LeftOut],
    accounts: Sequence[Account],
    named: frozenset[str],
    program_short: bool,
) -> str:
    worst = max(weights, key=lambda a: abs(after[a] - weights[a]))
    reasons = []
    reasons_of = {item.reason for item in left_out}
    if LeftOutReason.NO_MARKET in reasons_of:
        assets = [i.subject for i in left_out if i.reason is LeftOutReason.NO_MARKET]
        reasons.append(f"no connection that can trade has a market for {', '.join(assets)}")
    holding_blocked = [
        a.label
        for a in accounts
        if a.blocked is not None and any(a.holdings.get(x, ZERO) > 0 for x in named)
    ]
    if holding_blocked:
        reasons.append(
            f"{', '.join(holding_blocked)} cannot trade: their holdings stay as they are"
        )
    if program_short and not reasons:
        reasons.append(
            "each exchange can only trade what it holds; the rest would need a transfer "
            "between exchanges"
        )
    if reasons_of & {LeftOutReason.TOO_SMALL, LeftOutReason.UNFUNDED, LeftOutReason.UNROUTED}:
        reasons.append("some legs would be below the venue minimum × the buffer")
    if not reasons:
        reasons.append("lot steps, fees and prices leave it just outside the tolerance")
    return (
        f"Closest reachable: {worst} {after[worst]:.2f} % (target {weights[worst]:.2f} %): "
        f"{'; '.join(reasons)}."
    )


def _floor_to(value: Decimal, step: Decimal) -> Decimal:
    return _on_step(value, step, ROUND_FLOOR)


def _ceil_to(value: Decimal, step: Decimal) -> Decimal:
    return _on_step(value, step, ROUND_CEILING)


def _on_step(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    if step <= 0:
        return value
    with localcontext() as context:
        context.rounding = rounding  # the division too, so a hair never tips it over
        return (value / step).to_integral_value() * step


@dataclass(frozen=True)
class _Column:
    """One variable of the program: the value (valuation currency, base side) traded on one
    market of one connection, in one direction."""

    account: Account
    rule: MarketRule
    side: Side


@dataclass
class _Order:
    """A leg while the venue's rules are applied: its amount only ever goes down."""

    column: int
    rule: MarketRule
    side: Side
    wanted: Decimal  # what the program asked for, on the lot step
    amount: Decimal
    book: OrderBook | None
    cut: LeftOutReason | None = None  # why it was shrunk to pay for / route the others
    shrunk: Decimal = ZERO  # by how much, in base
    price: Decimal = ZERO
    source: PriceSource = PriceSource.LAST

    def reprice(self) -> None:
        estimate, self.source = estimate_price(self.rule, self.side, self.amount, self.book)
        rounding = _ceil_to if self.side == "buy" else _floor_to
        self.price = rounding(estimate, self.rule.price_tick)

    @property
    def proceeds(self) -> Decimal:
        """Quote received by a sell, or spent by a buy, fee included."""
        fee = self.rule.taker_fee
        return self.amount * self.price * (1 - fee if self.side == "sell" else 1 + fee)

    @property
    def too_small(self) -> bool:
        rule = self.rule
        return (
            self.amount <= 0
            or self.amount < rule.min_amount
            or self.amount * self.price < rule.min_cost * MIN_TRADE_BUFFER
        )


@dataclass
class _Outcome:
    legs: tuple[Leg, ...]
    left_out: list[LeftOut]
    balances: dict[int, dict[str, Decimal]]  # per connection after the legs
    program_short: bool  # the program itself could not reach the target


@dataclass(frozen=True)
class _Row:
    index: int
    lower: float
    upper: float


class _QuietHighs(highspy.Highs):
    """``highspy.Highs`` silenced before its constructor prints the HiGHS banner on stdout
    (the constructor's ``enableCallbacks`` is its first call that logs)."""

    def enableCallbacks(self) -> None:
        self.setOptionValue("output_flag", False)
        super().enableCallbacks()


@dataclass
class _Program:
    """The linear program for one plan, and the rounds that make its answer real.

    Variables: x ≥ 0 per (connection, market, side), the base-side value traded; T ≥ 0, the
    scale of the target; d⁺, d⁻ ≥ 0 per target asset. With ρ = price·p_quote/p_base (quote
    value per unit of base value) and H the value held:
      - per connection and target asset a: the sells of a ≤ H(a), and the sells of a plus
        the buys paid with a ≤ H(a) + what sells raised in a (sells first, then buys);
      - per connection and routing asset r (a quote not in the target): raised = spent;
      - per target asset a: value after − w(a)·T + d⁺ − d⁻ = 0.
    Minimise Σ x·(1 + ρ·fee + the price's shortfall against the valuation) +
    DEVIATION_WEIGHT·Σ (d⁺ + d⁻). T is the total after when the target can be reached; when an
    asset cannot (stuck on a blocked connection, no market), a free T keeps the other assets in
    their target proportions rather than dumping the whole gap on one of them.
    """

    accounts: Sequence[Account]
    weights: Mapping[str, Decimal]
    prices: Mapping[str, Decimal]
    start: Mapping[str, Decimal]
    books: Mapping[tuple[int, str], OrderBook]
    tolerance: Decimal
    columns: list[_Column] = field(init=False)
    reachable: frozenset[str] = field(init=False)
    _rows: dict[tuple[str, int, str], _Row] = field(init=False, default_factory=dict)
    _worth: dict[str, float] = field(init=False, default_factory=dict)  # prices, as floats
    _scale: int = field(init=False, default=0)  # T's column; d⁺ and d⁻ per asset follow

    def __post_init__(self) -> None:
        self._worth = {asset: float(price) for asset, price in self.prices.items()}
        self.columns = [
            _Column(account, rule, side)
            for account in self.accounts
            for rule in _markets_in_reach(account, self.weights, self.prices)
            for side in ("sell", "buy")
        ]
        self.reachable = frozenset(
            asset for c in self.columns for asset in (c.rule.base, c.rule.quote)
        )

    def solve(self) -> _Outcome:
        assumed = [self._first_price(c) for c in self.columns]
        highs = self._model(assumed)
        refused: dict[tuple[int, str, Side], LeftOut] = {}
        for round_ in range(MAX_ROUNDS):
            highs.run()
            if highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                raise RuntimeError(
                    f"rebalance program: {highs.modelStatusToString(highs.getModelStatus())}"
                )
            solution = list(highs.getSolution().col_value)
            orders = self._orders(solution)
            balances = {
                a.connection_id: self._settle(a, orders[a.connection_id]) for a in self.accounts
            }
            dropped = [o for os in orders.values() for o in os if o.amount <= 0]
            moved = [  # re-priced once: later differences are left to the settling
                o
                for os in orders.values()
                for o in os
                if round_ == 0
                and o.amount > 0
                and o.source is not PriceSource.LAST
                and abs(o.price - assumed[o.column]) > PRICE_SETTLED * assumed[o.column]
            ]
            for order in dropped:
                column = self.columns[order.column]
                key = (column.account.connection_id, column.rule.symbol, column.side)
                siblings = orders[column.account.connection_id]
                refused.setdefault(key, _refusal(column, order, siblings))
                highs.changeColBounds(order.column, 0.0, 0.0)
            for order in moved:
                assumed[order.column] = order.price
                self._set_price(highs, order.column, order.price)
            if not dropped and not moved:
                break
        legs = tuple(self._leg(o) for a in self.accounts for o in _placed(orders[a.connection_id]))
        shrunk = [
            _shrinking(self.columns[o.column], o)
            for os in orders.values()
            for o in os
            if o.amount > 0 and _cut_worth_saying(o, os)
        ]
        return _Outcome(legs, [*refused.values(), *shrunk], balances, self._short(solution))

    # -- the model --------------------------------------------------------------------------

    def _first_price(self, column: _Column) -> Decimal:
        book = self.books.get((column.account.connection_id, column.rule.symbol))
        return estimate_price(column.rule, column.side, ZERO, book)[0]

    def _model(self, assumed: Sequence[Decimal]) -> highspy.Highs:
        named = sorted(self.weights)
        self._rows = {}
        for asset in named:
            value = -float(self.start[asset])
            self._row(("aim", 0, asset), value, value)
        starts, costs, upper = [0], [], []
        indices: list[int] = []
        values: list[float] = []
        for i, column in enumerate(self.columns):
            rho = self._rho(column, assumed[i])
            entries = self._entries(column, rho)
            indices.extend(entries)
            values.extend(entries.values())
            starts.append(len(indices))
            costs.append(self._cost(column, rho))
            upper.append(
                self._held(column.account, column.rule.base)
                if column.side == "sell"
                else highspy.kHighsInf
            )
        self._scale = len(self.columns)
        for asset in named:
            indices.append(self._rows["aim", 0, asset].index)
            values.append(-float(self.weights[asset] / HUNDRED))
        starts.append(len(indices))
        costs.append(0.0)
        upper.append(highspy.kHighsInf)
        for asset in named:
            for sign in (1.0, -1.0):
                indices.append(self._rows["aim", 0, asset].index)
                values.append(sign)
                starts.append(len(indices))
                costs.append(DEVIATION_WEIGHT)
                upper.append(highspy.kHighsInf)
        rows = sorted(self._rows.values(), key=lambda r: r.index)
        lp = highspy.HighsLp()
        lp.num_col_ = len(costs)
        lp.num_row_ = len(rows)
        lp.col_cost_ = costs
        lp.col_lower_ = [0.0] * len(costs)
        lp.col_upper_ = upper
        lp.row_lower_ = [r.lower for r in rows]
        lp.row_upper_ = [r.upper for r in rows]
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = starts
        lp.a_matrix_.index_ = indices
        lp.a_matrix_.value_ = values
        highs = _QuietHighs()
        highs.setOptionValue("output_flag", False)  # older highspy builds never call the hook
        highs.passModel(lp)
        return highs

    def _row(self, key: tuple[str, int, str], lower: float, upper: float) -> int:
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = _Row(len(self._rows), lower, upper)
        return row.index

    def _p(self, asset: str) -> Decimal:
        return self.prices[asset]

    def _held(self, account: Account, asset: str) -> float:
        """The value of what ``account`` holds of ``asset``."""
        return float(account.holdings.get(asset, ZERO)) * self._worth[asset]

    def _rho(self, column: _Column, price: Decimal) -> float:
        """Quote value moved per unit of base value at ``price``."""
        rule = column.rule
        return float(price) * self._worth[rule.quote] / self._worth[rule.base]

    def _cost(self, column: _Column, rho: float) -> float:
        """Traded value, plus the fee and the value lost to a price worse than the valuation."""
        worse = 1.0 - rho if column.side == "sell" else rho - 1.0
        cost = 1.0 + rho * float(column.rule.taker_fee) + max(0.0, worse)
        if self.books and (column.account.connection_id, column.rule.symbol) not in self.books:
            cost += UNQUOTED_PENALTY
        return cost

    def _entries(self, column: _Column, rho: float) -> dict[int, float]:
        """The column's coefficients by row."""
        rule, account = column.rule, column.account
        cid = account.connection_id
        fee = float(rule.taker_fee)
        base_held = self._held(account, rule.base)
        quote_held = self._held(account, rule.quote)
        quote_named = rule.quote in self.weights
        entries: dict[int, float] = defaultdict(float)
        if column.side == "sell":
            moved_quote = rho * (1 - fee)
            entries[self._row(("sell", cid, rule.base), -highspy.kHighsInf, base_held)] += 1.0
            entries[self._row(("fund", cid, rule.base), -highspy.kHighsInf, base_held)] += 1.0
            entries[self._rows_aim(rule.base)] -= 1.0
            if quote_named:
                fund = self._row(("fund", cid, rule.quote), -highspy.kHighsInf, quote_held)
                entries[fund] -= moved_quote
                entries[self._rows_aim(rule.quote)] += moved_quote
            else:
                entries[self._row(("route", cid, rule.quote), 0.0, 0.0)] += moved_quote
        else:
            moved_quote = rho * (1 + fee)
            entries[self._rows_aim(rule.base)] += 1.0
            if quote_named:
                fund = self._row(("fund", cid, rule.quote), -highspy.kHighsInf, quote_held)
                entries[fund] += moved_quote
                entries[self._rows_aim(rule.quote)] -= moved_quote
            else:
                entries[self._row(("route", cid, rule.quote), 0.0, 0.0)] -= moved_quote
        return entries

    def _rows_aim(self, asset: str) -> int:
        return self._rows["aim", 0, asset].index

    def _set_price(self, highs: highspy.Highs, index: int, price: Decimal) -> None:
        column = self.columns[index]
        rho = self._rho(column, price)
        for row, value in self._entries(column, rho).items():
            highs.changeCoeff(row, index, value)
        highs.changeColCost(index, self._cost(column, rho))

    def _short(self, solution: Sequence[float]) -> bool:
        """Whether the program's own answer leaves an asset outside the tolerance."""
        scale = solution[self._scale]
        deviations = solution[self._scale + 1 :]
        worst = max(deviations[i] + deviations[i + 1] for i in range(0, len(deviations), 2))
        return scale <= 0 or worst / scale * 100 > float(self.tolerance)

    # -- from the program's answer to orders the venue accepts ------------------------------

    def _orders(self, solution: Sequence[float]) -> dict[int, list[_Order]]:
        noise = SOLVER_NOISE * float(sum(self.start.values(), ZERO))
        orders: dict[int, list[_Order]] = {a.connection_id: [] for a in self.accounts}
        for i, column in enumerate(self.columns):
            if solution[i] <= noise:
                continue
            rule = column.rule
            amount = _floor_to(Decimal(repr(solution[i])) / self._p(rule.base), rule.amount_step)
            cid = column.account.connection_id
            book = self.books.get((cid, rule.symbol))
            orders[cid].append(_Order(i, rule, column.side, amount, amount, book))
        for placed in orders.values():
            placed.sort(key=lambda o: (o.side != "sell", o.rule.symbol))
        return orders

    def _settle(self, account: Account, orders: Sequence[_Order]) -> dict[str, Decimal]:
        """Shrink or drop orders until, placed in order, each is paid for by what the
        connection holds plus what earlier sells raised, and no routing asset keeps more
        than lot-step dust. Amounts only go down, so this ends. Returns the balances after."""
        held = account.holdings
        while True:
            changed = False
            balance: dict[str, Decimal] = defaultdict(Decimal, held)
            for order in orders:
                if order.amount <= 0:
                    continue
                rule = order.rule
                if order.side == "sell":
                    can = _floor_to(balance[rule.base], rule.amount_step)
                    if order.amount > can:
                        order.amount, changed = can, True
                    order.reprice()
                    if order.too_small:
                        order.amount, changed = ZERO, True
                        continue
                    balance[rule.base] -= order.amount
                    balance[rule.quote] += order.proceeds
                    continue
                own = ZERO if rule.quote in self.weights else held.get(rule.quote, ZERO)
                available = balance[rule.quote] - own
                order.reprice()
                if order.proceeds > available:
                    with localcontext() as exact:
                        exact.rounding = ROUND_FLOOR  # never a hair more than can be paid
                        can_buy = max(available, ZERO) / (order.price * (1 + rule.taker_fee))
                    fit = _floor_to(can_buy, rule.amount_step)
                    order.cut, order.shrunk = (
                        LeftOutReason.UNFUNDED,
                        order.shrunk + order.amount - fit,
                    )
                    order.amount, changed = fit, True
                    order.reprice()
                if order.too_small:
                    order.amount, changed = ZERO, True
                    continue
                balance[rule.quote] -= order.proceeds
                balance[rule.base] += order.amount
            changed |= self._unwind_routing(orders, balance, held)
            if not changed:
                return dict(balance)

    def _unwind_routing(
        self, orders: Sequence[_Order], balance: Mapping[str, Decimal], held: Mapping[str, Decimal]
    ) -> bool:
        """Cut the sells into a routing asset whose proceeds no buy spends any more."""
        changed = False
        routes = {o.rule.quote for o in orders if o.rule.quote not in self.weights}
        for route in sorted(routes):
            on_route = [o for o in orders if o.rule.quote == route and o.amount > 0]
            dust = _dust(orders, route)
            surplus = balance[route] - held.get(route, ZERO)
            for sell in reversed([o for o in on_route if o.side == "sell"]):
                if surplus <= dust:
                    break
                per_unit = sell.price * (1 - sell.rule.taker_fee)
                cut = min(sell.amount, _floor_to(surplus / per_unit, sell.rule.amount_step))
                if cut > 0:
                    sell.amount -= cut
                    sell.cut, sell.shrunk = LeftOutReason.UNROUTED, sell.shrunk + cut
                    surplus -= cut * per_unit
                    changed = True
        return changed

    def _leg(self, order: _Order) -> Leg:
        rule = order.rule
        worth = self._p(rule.quote)
        slippage = ZERO
        if order.source is not PriceSource.LAST and rule.last > 0:
            worse = order.price - rule.last if order.side == "buy" else rule.last - order.price
            slippage = worse / rule.last
        notional = order.amount * order.price * worth
        return Leg(
            connection_id=self.columns[order.column].account.connection_id,
            symbol=rule.symbol,
            side=order.side,
            amount=order.amount,
            price=order.price,
            value=notional,
            fee=notional * rule.taker_fee,
            slippage=slippage,
            price_source=order.source,
        )


def _markets_in_reach(
    account: Account, weights: Mapping[str, Decimal], prices: Mapping[str, Decimal]
) -> list[MarketRule]:
    """The markets the program may use on a connection: a target asset against another one, or
    against a quote asset outside the target that links at least two target assets (routing)."""
    usable = [
        rule
        for _, rule in sorted(account.markets.items())
        if rule.base in weights
        and rule.base != rule.quote
        and rule.last > 0
        and prices.get(rule.quote, ZERO) > 0
    ]
    linked: dict[str, set[str]] = defaultdict(set)
    for rule in usable:
        if rule.quote not in weights:
            linked[rule.quote].add(rule.base)
    return [r for r in usable if r.quote in weights or len(linked[r.quote]) > 1]


def _placed(orders: Iterable[_Order]) -> list[_Order]:
    return [o for o in orders if o.amount > 0]


def _dust(orders: Iterable[_Order], quote: str) -> Decimal:
    """What rounding to the lot steps may leave over in ``quote``: one step of each leg."""
    return sum(
        (
            o.rule.amount_step * o.price * (1 + o.rule.taker_fee)
            for o in orders
            if o.rule.quote == quote and o.amount > 0
        ),
        ZERO,
    )


def _cut_worth_saying(order: _Order, orders: Iterable[_Order]) -> bool:
    """Whether the order was shrunk because another leg was left out, not by rounding or a
    slightly different price."""
    return (
        order.cut is not None
        and order.shrunk > order.wanted * CUT_WORTH_SAYING
        and order.shrunk * order.price > _dust(orders, order.rule.quote)
    )


def _refusal(column: _Column, order: _Order, siblings: Iterable[_Order]) -> LeftOut:
    """Why a leg the program wanted is not in the plan."""
    rule = column.rule
    if order.wanted <= 0:
        what = f"{column.side} less than one lot step ({rule.amount_step} {rule.base})"
    else:
        what = f"{column.side} {order.wanted} {rule.base}"
    reason = order.cut if _cut_worth_saying(order, siblings) else None
    if reason is LeftOutReason.UNFUNDED:
        detail = f"{what}: the sells that were to pay for it were left out"
    elif reason is LeftOutReason.UNROUTED:
        detail = f"{what}: the buys its {rule.quote} was for were left out"
    else:
        minimum = f"{rule.min_cost} {rule.quote} × {MIN_TRADE_BUFFER}"
        detail = f"{what}: below the venue minimum ({rule.min_amount} {rule.base}, {minimum})"
    return LeftOut(
        column.account.connection_id, rule.symbol, reason or LeftOutReason.TOO_SMALL, detail
    )


def _shrinking(column: _Column, order: _Order) -> LeftOut:
    """A leg smaller than the program wanted because another leg was left out."""
    rule = column.rule
    assert order.cut is not None
    return LeftOut(
        column.account.connection_id,
        rule.symbol,
        order.cut,
        f"{column.side} {order.amount} {rule.base} instead of {order.wanted}",
    )
