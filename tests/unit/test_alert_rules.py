"""The alert rule syntax and the crossing state machine: every form, every bad input, and the
property that alerts equal armed → crossed transitions."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.rules.alerts import RuleSpec, RuleSyntaxError, initial_state, parse_rule, rearm_level, step
from storage.alerts import AlertState, Condition, Direction, Metric

D = Decimal


def rule(metric: Metric, asset: str | None, direction: Direction, threshold: str) -> Condition:
    return Condition(metric, asset, direction, D(threshold))


A, V, P, S = Metric.AMOUNT, Metric.VALUE, Metric.PORTFOLIO, Metric.SHARE
BELOW, ABOVE = Direction.BELOW, Direction.ABOVE


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Main BTC below 0.5", RuleSpec("Main", rule(A, "BTC", BELOW, "0.5"))),
        ("all USDT below 1000", RuleSpec(None, rule(A, "USDT", BELOW, "1000"))),
        ("all ETH value above 20000", RuleSpec(None, rule(V, "ETH", ABOVE, "20000"))),
        ("all value below 25000", RuleSpec(None, rule(P, None, BELOW, "25000"))),
        ("all BTC share above 60%", RuleSpec(None, rule(S, "BTC", ABOVE, "60"))),
        ("main btc < 0,5", RuleSpec("main", rule(A, "BTC", BELOW, "0.5"))),
        ("ALL eth > .25", RuleSpec(None, rule(A, "ETH", ABOVE, "0.25"))),
        (
            "Main BTC below 0.5 rearm 0.55 cooldown 1h",
            RuleSpec("Main", Condition(A, "BTC", BELOW, D("0.5"), D("0.55"), timedelta(hours=1))),
        ),
    ],
)
def test_every_documented_form_parses(line: str, expected: RuleSpec) -> None:
    assert parse_rule(line.split()) == expected


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("Main BTC", "Write a rule like"),
        ("Main BTC under 0.5", "below"),
        ("Main BTC below", "threshold"),
        ("Main BTC below -1", "zero or more"),
        ("Main BTC below abc", "not a number"),
        ("all value below 25,000", "thousands separator"),
        ("all value below 2.500", "thousands separator"),
        ("all value below 1.000.000", "thousands separator"),
        ("all BTC share above 120%", "at most 100%"),
        ("all BTC above 60%", "for a share"),
        ("Main BTC below 0.5 rearm 0.4", "re-arm level must be above"),
        ("Main BTC above 0.5 rearm 0.6", "re-arm level must be below"),
        ("Main BTC below 0.5 cooldown soon", "30m, 1h or 1d"),
        ("Main BTC below 0.5 please 3", "only rearm and cooldown"),
        ("Main BTC below 0.5 rearm", "needs a value"),
        ("Main BTC ETH below 0.5", "which number to watch"),
    ],
)
def test_bad_lines_say_what_to_write(line: str, says: str) -> None:
    with pytest.raises(RuleSyntaxError) as raised:
        parse_rule(line.split())
    assert says in str(raised.value)


def test_the_default_band_is_one_percent_on_the_safe_side() -> None:
    below = rule(A, "BTC", BELOW, "0.5")
    above = rule(A, "BTC", ABOVE, "100")
    assert rearm_level(below) == D("0.505") and rearm_level(above) == D(99)


def test_a_rule_created_while_its_condition_holds_starts_fired() -> None:
    drop = rule(A, "BTC", BELOW, "0.5")
    assert initial_state(drop, D("0.4")) is AlertState.FIRED
    assert initial_state(drop, D("0.6")) is AlertState.ARMED
    assert initial_state(drop, None) is AlertState.ARMED


def test_hovering_at_the_line_alerts_once() -> None:
    drop = rule(A, "BTC", BELOW, "0.5")
    state, alerts = AlertState.ARMED, 0
    for value in ["0.6", "0.49", "0.5", "0.499", "0.504", "0.49", "0.51", "0.48"]:
        result = step(drop, state, D(value))
        state, alerts = result.state, alerts + result.crossed
    assert alerts == 2  # the first drop, then again only after re-arming at 0.51


values = st.lists(
    st.decimals(min_value=0, max_value=200, places=2, allow_nan=False), min_size=1, max_size=60
)


@given(values, st.sampled_from(list(Direction)), st.decimals(min_value=1, max_value=150, places=1))
def test_alerts_equal_armed_to_crossed_transitions(
    sequence: list[Decimal], direction: Direction, threshold: Decimal
) -> None:
    condition = Condition(P, None, direction, threshold)
    state = AlertState.ARMED
    alerts = transitions = 0
    for value in sequence:
        result = step(condition, state, value)
        transitions += state is AlertState.ARMED and result.state is AlertState.FIRED
        alerts += result.crossed
        # Never two alerts without the value re-arming in between.
        assert not (result.crossed and state is AlertState.FIRED)
        state = result.state
    assert alerts == transitions
