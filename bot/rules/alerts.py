"""Balance-threshold alerts: what a rule is, the one-line syntax, and the crossing state machine.

A rule watches one number of a scope (one connection, or all of the chat's connections): an
asset's amount, an asset's value, the portfolio value, or an asset's share of the portfolio.
It *fires* once when its condition becomes true (armed → fired) and re-arms silently only once
the number has gone back past the threshold by a hysteresis band, so a value hovering at the
line does not spam. Pure: no I/O, no Telegram.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from storage.alerts import AlertState, Condition, Direction, Metric

#: The default hysteresis band: 1 % of the threshold.
DEFAULT_BAND = Decimal("0.01")


@dataclass(frozen=True)
class RuleSpec:
    """A rule as the user wrote it: ``scope`` is a connection label, or None for all."""

    scope: str | None
    condition: Condition


def rearm_level(condition: Condition) -> Decimal:
    """Where a fired rule re-arms: past the threshold by the band, on the safe side."""
    if condition.rearm is not None:
        return condition.rearm
    band = abs(condition.threshold) * DEFAULT_BAND
    if condition.direction is Direction.BELOW:
        return condition.threshold + band
    return condition.threshold - band


def holds(condition: Condition, value: Decimal) -> bool:
    if condition.direction is Direction.BELOW:
        return value < condition.threshold
    return value > condition.threshold


def rearms(condition: Condition, value: Decimal) -> bool:
    if condition.direction is Direction.BELOW:
        return value >= rearm_level(condition)
    return value <= rearm_level(condition)


@dataclass(frozen=True)
class Step:
    """The state after one value, and whether that value is a crossing to tell the chat."""

    state: AlertState
    crossed: bool


def step(condition: Condition, state: AlertState, value: Decimal) -> Step:
    """armed + condition → fired (a crossing); fired + back past the re-arm level → armed."""
    if state is AlertState.ARMED and holds(condition, value):
        return Step(AlertState.FIRED, True)
    if state is AlertState.FIRED and rearms(condition, value):
        return Step(AlertState.ARMED, False)
    return Step(state, False)


def initial_state(condition: Condition, value: Decimal | None) -> AlertState:
    """A rule created while its condition already holds starts fired: it tells the next time."""
    return AlertState.FIRED if value is not None and holds(condition, value) else AlertState.ARMED


class RuleSyntaxError(ValueError):
    """The line is not a rule; the message says what to write instead."""


_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d+)?|[.,]\d+)$")
_THOUSANDS = re.compile(r"^\d{1,3}([,.]\d{3})+$")
_COOLDOWN = re.compile(r"^(\d{1,4})\s*(m|min|h|d)$", re.IGNORECASE)
_DIRECTIONS = {
    "below": Direction.BELOW,
    "<": Direction.BELOW,
    "above": Direction.ABOVE,
    ">": Direction.ABOVE,
}
_ASSET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")
EXAMPLES = (
    "/alert Main BTC below 0.5\n"
    "/alert all ETH value above 20000\n"
    "/alert all value below 25000\n"
    "/alert all BTC share above 60%"
)


def parse_number(text: str, what: str) -> Decimal:
    """A plain number with ``.`` or ``,`` as the decimal mark. A separator followed by exactly
    three digits after a non-zero whole part (``25,000``, ``1.500``) could be a thousands
    separator: refused with advice rather than guessed."""
    cleaned = text.strip().removesuffix("%")
    if _THOUSANDS.match(cleaned) and not cleaned.startswith(("0,", "0.")):
        raise RuleSyntaxError(
            f"“{text}” looks like it has a thousands separator: write the {what} without it, "
            f"e.g. {re.sub(r'[.,]', '', cleaned)} (use . or , only for decimals, as in 0.5)."
        )
    if _NUMBER.match(cleaned) is None:
        raise RuleSyntaxError(f"“{text}” is not a number: write the {what} like 0.5 or 25000.")
    try:
        return Decimal(cleaned.replace(",", "."))
    except InvalidOperation:
        raise RuleSyntaxError(f"“{text}” is not a number.") from None


def parse_rule(words: list[str]) -> RuleSpec:
    """``<label|all> [ASSET] [value|share] below|above|<|> <number> [rearm N] [cooldown 1h]``."""
    if len(words) < 3:
        raise RuleSyntaxError(f"Write a rule like one of these:\n{EXAMPLES}")
    scope = None if words[0].casefold() == "all" else words[0]
    rest = words[1:]
    direction_at = next((i for i, word in enumerate(rest) if word.casefold() in _DIRECTIONS), None)
    if direction_at is None:
        raise RuleSyntaxError("Say “below” or “above” (or < / >) before the number.")
    head, tail = rest[:direction_at], rest[direction_at + 1 :]
    direction = _DIRECTIONS[rest[direction_at].casefold()]
    metric, asset = _metric(head)
    if not tail:
        raise RuleSyntaxError("Give the threshold after “below” or “above”.")
    threshold = parse_number(tail[0], "threshold")
    if threshold < 0:
        raise RuleSyntaxError("The threshold must be zero or more.")
    if metric is Metric.SHARE and threshold > 100:
        raise RuleSyntaxError("A share is at most 100%.")
    if metric is not Metric.SHARE and tail[0].endswith("%"):
        raise RuleSyntaxError("A % threshold is for a share, e.g. /alert all BTC share above 60%.")
    rearm, cooldown = _options(tail[1:])
    condition = Condition(metric, asset, direction, threshold, rearm, cooldown)
    if rearm is not None and (holds(condition, rearm) or rearm == threshold):
        side = "above" if direction is Direction.BELOW else "below"
        raise RuleSyntaxError(f"The re-arm level must be {side} the threshold.")
    return RuleSpec(scope, condition)


def _metric(head: list[str]) -> tuple[Metric, str | None]:
    lowered = [word.casefold() for word in head]
    if lowered == ["value"]:
        return Metric.PORTFOLIO, None
    if len(head) == 1 and _ASSET.match(head[0]):
        return Metric.AMOUNT, head[0].upper()
    if len(head) == 2 and lowered[1] in ("value", "share") and _ASSET.match(head[0]):
        return (Metric.VALUE if lowered[1] == "value" else Metric.SHARE), head[0].upper()
    raise RuleSyntaxError(f"I could not tell which number to watch. Write a rule like:\n{EXAMPLES}")


def _options(words: list[str]) -> tuple[Decimal | None, timedelta | None]:
    rearm = cooldown = None
    pairs = iter(words)
    for word in pairs:
        value = next(pairs, None)
        if value is None:
            raise RuleSyntaxError(f"“{word}” needs a value after it.")
        if word.casefold() == "rearm":
            rearm = parse_number(value, "re-arm level")
        elif word.casefold() == "cooldown":
            match = _COOLDOWN.match(value)
            if match is None:
                raise RuleSyntaxError("Write the cooldown like 30m, 1h or 1d.")
            unit = match.group(2).casefold()
            size = {"m": 60, "min": 60, "h": 3600, "d": 86400}[unit]
            cooldown = timedelta(seconds=int(match.group(1)) * size)
        else:
            raise RuleSyntaxError(
                f"I do not know “{word}”: after the number only rearm and cooldown."
            )
    return rearm, cooldown
