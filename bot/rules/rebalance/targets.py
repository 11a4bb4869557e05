"""Rebalancing targets: what a target is and the one-line ``/rebalance`` syntax.

``/rebalance <label|all> BTC 50 ETH 30 USDT 20 [band 5|band 25%] [every 1d|1w] [slippage 0.5]
[dryrun]`` becomes a `TargetSpec`; `describe` writes a spec back in the same syntax, so what the
bot shows ("your target: …") can be pasted or edited and parses to the same target.
Pure: no I/O, no Telegram.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from bot.rules.alerts import RuleSyntaxError, parse_number

#: How far the weights may add up from 100, so that 33.33 × 3 (99.99) is accepted.
SUM_TOLERANCE = Decimal("0.01")
#: At most this many percentage points (or percent of a weight) of drift is a band.
MAX_BAND = Decimal(50)
#: Slippage is a percentage; more than this is almost certainly a typo, not a wish.
MAX_SLIPPAGE = Decimal(5)

EXAMPLES = (
    "/rebalance all BTC 50 ETH 30 USDT 20\n"
    "/rebalance Main BTC 60 USDT 40 band 25% every 1w\n"
    "/rebalance all BTC 33.33 ETH 33.33 SOL 33.34 slippage 0.3 dryrun"
)


class Schedule(StrEnum):
    """A calendar rebalance; the value is how the user writes it."""

    DAILY = "1d"
    WEEKLY = "1w"

    @property
    def period(self) -> timedelta:
        return timedelta(days=1) if self is Schedule.DAILY else timedelta(weeks=1)


@dataclass(frozen=True)
class Band:
    """How far an asset may drift before a rebalance: ``size`` percentage points of the
    portfolio, or, when ``relative``, ``size`` percent of the asset's own target weight
    (25% of a 20% weight is 5 points), as Shrimpy does."""

    size: Decimal
    relative: bool = False


DEFAULT_BAND = Band(Decimal(5))
DEFAULT_SLIPPAGE = Decimal("0.005")


@dataclass(frozen=True)
class TargetSpec:
    """A target as the user wrote it. ``scope`` is a connection label, or None for all.
    ``weights`` are percentages in the order typed, each > 0, adding up to 100 within
    `SUM_TOLERANCE` (kept as typed: the planner reads them relative to their sum).
    ``slippage`` is a fraction (0.005 for 0.5%). ``dry_run``: proposals only, no Approve."""

    scope: str | None
    weights: Mapping[str, Decimal]
    band: Band = DEFAULT_BAND
    every: Schedule | None = None
    slippage: Decimal = DEFAULT_SLIPPAGE
    dry_run: bool = False


class TargetSyntaxError(ValueError):
    """The line is not a target; the message says what to write instead."""


# The same symbols /alert accepts; a word that is only a number is never an asset.
_ASSET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")
_NUMERIC = re.compile(r"^[+-]?[\d.,]+%?$")
_OPTIONS = ("band", "every", "slippage", "dryrun")
_EVERY = {
    "1d": Schedule.DAILY,
    "24h": Schedule.DAILY,
    "1w": Schedule.WEEKLY,
    "7d": Schedule.WEEKLY,
}
_SUBCOMMANDS = {"off": "stops the target", "history": "lists past proposals"}
_HINTS = {"band": "band 5 or band 25%", "every": "every 1d or every 1w", "slippage": "slippage 0.5"}


def parse_target(words: list[str]) -> TargetSpec:
    """The words after ``/rebalance``. Assets come first, each followed by its weight; the
    options follow in any order. The option words (any case) end the list of assets, so an
    asset called BAND, EVERY, SLIPPAGE or DRYRUN cannot be in a one-line target. ``every``
    takes 1d or 24h (daily), 1w or 7d (weekly)."""
    if not words:
        raise TargetSyntaxError(f"Write a target like one of these:\n{EXAMPLES}")
    first = words[0].casefold()
    if first in _SUBCOMMANDS:
        raise TargetSyntaxError(
            f"/rebalance {first} {_SUBCOMMANDS[first]} and takes nothing after it. A target "
            f"starts with a connection label or “all” (no connection can be called “{first}”)."
        )
    if len(words) == 1:
        raise TargetSyntaxError(f"Give the target after “{words[0]}”, like:\n{EXAMPLES}")
    if _NUMERIC.match(words[1]):
        raise TargetSyntaxError(
            "Start with a connection label or “all”, e.g. /rebalance all " + " ".join(words)
        )
    scope = None if first == "all" else words[0]
    weights, options = _weights(words[1:])
    band, every, slippage, dry_run = _options(options)
    _check(weights)
    return TargetSpec(scope, MappingProxyType(weights), band, every, slippage, dry_run)


def describe(spec: TargetSpec) -> str:
    """The spec in the one-line syntax, every option spelt out; parses back to the same spec."""
    words = [spec.scope or "all"]
    for asset, weight in spec.weights.items():
        words += [asset, _written(weight)]
    words += ["band", _written(spec.band.size) + ("%" if spec.band.relative else "")]
    if spec.every is not None:
        words += ["every", spec.every.value]
    words += ["slippage", _written(spec.slippage * 100)]
    if spec.dry_run:
        words.append("dryrun")
    return " ".join(words)


def _weights(words: list[str]) -> tuple[dict[str, Decimal], list[str]]:
    """The ``ASSET WEIGHT`` pairs up to the first option word, and the words after them.
    Once the weights add up, a word without a weight is taken for a mistyped option."""
    weights: dict[str, Decimal] = {}
    at = 0
    while at < len(words) and words[at].casefold() not in _OPTIONS:
        given = words[at + 1] if at + 1 < len(words) else None
        if given is None or not any(ch.isdigit() for ch in given):
            if _adds_up(weights):
                raise _unknown(words[at])
            asset = _asset(words[at])
            raise TargetSyntaxError(f"Give {asset} a weight after it, e.g. {asset} 25.")
        asset = _asset(words[at])
        weight = _number(given, "weight", "50 or 33.3")
        if weight <= 0:
            raise TargetSyntaxError(
                f"Every weight must be more than 0 ({asset} has {given}): "
                "an asset you leave out of the target is left alone."
            )
        if asset in weights:
            raise TargetSyntaxError(f"{asset} is in the target twice: give each asset once.")
        weights[asset] = weight
        at += 2
    return weights, words[at:]


def _check(weights: dict[str, Decimal]) -> None:
    if len(weights) < 2:
        raise TargetSyntaxError("A target needs at least two assets, e.g. BTC 50 USDT 50.")
    if not _adds_up(weights):
        total = _plain(sum(weights.values(), Decimal(0)))
        raise TargetSyntaxError(f"The weights add up to {total}; they must add up to 100.")


def _adds_up(weights: dict[str, Decimal]) -> bool:
    return len(weights) >= 2 and abs(sum(weights.values(), Decimal(0)) - 100) <= SUM_TOLERANCE


def _unknown(word: str) -> TargetSyntaxError:
    return TargetSyntaxError(
        f"I do not know “{word}”: after the assets and weights only band, every, slippage "
        "and dryrun."
    )


def _asset(word: str) -> str:
    if _NUMERIC.match(word):
        raise TargetSyntaxError(
            f"I expected an asset where “{word}” is: write each asset followed by its weight, "
            "e.g. BTC 50 ETH 30 USDT 20."
        )
    if _ASSET.match(word) is None:
        raise TargetSyntaxError(f"“{word}” is not an asset symbol: write it like BTC or USDT.")
    return word.upper()


def _options(words: list[str]) -> tuple[Band, Schedule | None, Decimal, bool]:
    band, every, slippage, dry_run = DEFAULT_BAND, None, DEFAULT_SLIPPAGE, False
    seen: set[str] = set()
    at = 0
    while at < len(words):
        option = words[at].casefold()
        if option not in _OPTIONS:
            raise _unknown(words[at])
        if option in seen:
            raise TargetSyntaxError(f"“{option}” is given twice: give it once.")
        seen.add(option)
        if option == "dryrun":
            dry_run = True
            at += 1
            continue
        if at + 1 == len(words):
            raise TargetSyntaxError(f"“{option}” needs a value after it, e.g. {_HINTS[option]}.")
        value = words[at + 1]
        if option == "band":
            band = _band(value)
        elif option == "every":
            every = _EVERY.get(value.casefold())
            if every is None:
                raise TargetSyntaxError(
                    f"I cannot rebalance every “{value}”: write every 1d (daily) or every 1w "
                    "(weekly); 24h and 7d work too."
                )
        else:
            slippage = _slippage(value)
        at += 2
    return band, every, slippage, dry_run


def _band(value: str) -> Band:
    size = _number(value, "band", _HINTS["band"])
    if not 0 < size <= MAX_BAND:
        raise TargetSyntaxError(
            f"A band of {value} cannot work: it is more than 0 and at most {MAX_BAND}, e.g. "
            "band 5 (percentage points) or band 25% (of each asset’s weight)."
        )
    return Band(size, relative=value.endswith("%"))


def _slippage(value: str) -> Decimal:
    percent = _number(value, "slippage", _HINTS["slippage"])
    if not 0 < percent <= MAX_SLIPPAGE:
        raise TargetSyntaxError(
            f"A slippage of {value} cannot work: it is a percentage more than 0 and at most "
            f"{MAX_SLIPPAGE}, e.g. slippage 0.5."
        )
    return percent / 100


def _number(text: str, what: str, example: str) -> Decimal:
    """`parse_number` (same decimal marks, same thousands-separator refusal), in our errors."""
    if _NUMERIC.match(text) is None:
        raise TargetSyntaxError(f"“{text}” is not a number: write the {what} like {example}.")
    try:
        return parse_number(text, what)
    except RuleSyntaxError as error:
        raise TargetSyntaxError(str(error)) from None


def _plain(number: Decimal) -> str:
    """No exponent, no trailing zeros: 90, not 9E+1 or 90.00."""
    return format(number.normalize(), "f")


def _written(number: Decimal) -> str:
    """A number for `describe`: plain, and read back by `parse_number` as the same number."""
    text = _plain(number)
    # parse_number refuses 1.234 as a possible thousands separator; 1.2340 reads back.
    if re.fullmatch(r"[1-9]\d{0,2}\.\d{3}", text):
        text += "0"
    return text
