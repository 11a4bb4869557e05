"""The /rebalance one-line syntax: every documented form, the defaults, every bad input with the
advice it gets, and the round trip through describe (what the bot shows parses back)."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.rules.rebalance.targets import (
    DEFAULT_BAND,
    DEFAULT_SLIPPAGE,
    EXAMPLES,
    Band,
    Schedule,
    TargetSpec,
    TargetSyntaxError,
    describe,
    parse_target,
)

D = Decimal


def target(line: str) -> TargetSpec:
    """The target the user typed after /rebalance (the handler passes its words)."""
    return parse_target(line.split())


def weights(**by_asset: str) -> dict[str, Decimal]:
    return {asset: D(weight) for asset, weight in by_asset.items()}


def test_a_plain_target_gets_a_five_point_band_half_a_percent_slippage_and_no_schedule() -> None:
    spec = target("all BTC 50 ETH 30 USDT 20")
    assert spec == TargetSpec(None, weights(BTC="50", ETH="30", USDT="20"))
    assert spec.band == Band(D(5), relative=False) == DEFAULT_BAND
    assert spec.slippage == D("0.005") == DEFAULT_SLIPPAGE
    assert spec.every is None and spec.dry_run is False


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Main BTC 60 USDT 40", TargetSpec("Main", weights(BTC="60", USDT="40"))),
        ("ALL btc 60 usdt 40", TargetSpec(None, weights(BTC="60", USDT="40"))),
        ("main btc 60% eth 40%", TargetSpec("main", weights(BTC="60", ETH="40"))),
        (
            "all BTC 33,4 ETH 33,3 SOL 33,3",
            TargetSpec(None, weights(BTC="33.4", ETH="33.3", SOL="33.3")),
        ),
        (
            "all BTC 50 USDT 50 band 3",
            TargetSpec(None, weights(BTC="50", USDT="50"), band=Band(D(3))),
        ),
        (
            "all BTC 50 USDT 50 band 25%",
            TargetSpec(None, weights(BTC="50", USDT="50"), band=Band(D(25), relative=True)),
        ),
        (
            "all BTC 50 USDT 50 every 1d",
            TargetSpec(None, weights(BTC="50", USDT="50"), every=Schedule.DAILY),
        ),
        (
            "all BTC 50 USDT 50 every 24h",
            TargetSpec(None, weights(BTC="50", USDT="50"), every=Schedule.DAILY),
        ),
        (
            "all BTC 50 USDT 50 EVERY 1W",
            TargetSpec(None, weights(BTC="50", USDT="50"), every=Schedule.WEEKLY),
        ),
        (
            "all BTC 50 USDT 50 every 7d",
            TargetSpec(None, weights(BTC="50", USDT="50"), every=Schedule.WEEKLY),
        ),
        (
            "all BTC 50 USDT 50 slippage 0,3",
            TargetSpec(None, weights(BTC="50", USDT="50"), slippage=D("0.003")),
        ),
        (
            "all BTC 50 USDT 50 dryrun",
            TargetSpec(None, weights(BTC="50", USDT="50"), dry_run=True),
        ),
        (
            "Binance-1 BTC 50 USDT 50 dryrun slippage 1% every 1w band 10%",
            TargetSpec(
                "Binance-1",
                weights(BTC="50", USDT="50"),
                Band(D(10), relative=True),
                Schedule.WEEKLY,
                D("0.01"),
                dry_run=True,
            ),
        ),
    ],
)
def test_every_documented_form_parses(line: str, expected: TargetSpec) -> None:
    assert target(line) == expected


def test_the_label_is_kept_as_typed_and_any_case_of_all_means_every_connection() -> None:
    assert target("MyKraken BTC 50 USDT 50").scope == "MyKraken"
    assert target("aLL BTC 50 USDT 50").scope is None


def test_assets_keep_the_order_they_were_typed_in() -> None:
    spec = target("all USDT 20 BTC 50 ETH 30")
    assert list(spec.weights) == ["USDT", "BTC", "ETH"]


def test_thirds_written_to_two_decimals_are_accepted_within_a_hundredth() -> None:
    spec = target("all BTC 33.33 ETH 33.33 SOL 33.33")
    assert sum(spec.weights.values()) == D("99.99")
    spec = target("all BTC 33.34 ETH 33.34 SOL 33.33")
    assert sum(spec.weights.values()) == D("100.01")


def test_a_parsed_target_cannot_be_changed_afterwards() -> None:
    spec = target("all BTC 50 USDT 50")
    with pytest.raises(TypeError):
        spec.weights["BTC"] = D(90)  # type: ignore[index]


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("", "Write a target like one of these"),
        ("all", "Give the target after “all”"),
        ("off BTC 50 USDT 50", "/rebalance off stops the target"),
        ("history", "/rebalance history lists past proposals"),
        ("Off BTC 50 USDT 50", "no connection can be called “off”"),
        ("BTC 50 ETH 50", "Start with a connection label or “all”, e.g. /rebalance all BTC 50"),
        ("all BTC 50 ETH 40", "The weights add up to 90; they must add up to 100."),
        ("all BTC 50 ETH 50.5", "The weights add up to 100.5; they must add up to 100."),
        ("all BTC 33.33 ETH 33.33 SOL 33.32", "add up to 99.98"),
        ("all BTC 100", "A target needs at least two assets, e.g. BTC 50 USDT 50"),
        ("all BTC 100 band 5", "at least two assets"),
        ("all BTC 50 btc 50", "BTC is in the target twice"),
        ("all BTC 50 ETH", "Give ETH a weight after it, e.g. ETH 25."),
        ("all BTC 50 ETH band 5", "Give ETH a weight"),
        ("all BTC ETH 50", "Give BTC a weight"),
        ("all BTC 50 ETH 5O", "“5O” is not a number: write the weight like 50 or 33.3."),
        ("all BTC 100 ETH 0", "Every weight must be more than 0 (ETH has 0)"),
        ("all BTC 110 ETH -10", "Every weight must be more than 0 (ETH has -10)"),
        ("all BTC 1,000 ETH 50", "“1,000” looks like it has a thousands separator"),
        ("all BTC 50 ETH 50 60 10", "I expected an asset where “60” is"),
        ("all BTC 50 E$H 50", "“E$H” is not an asset symbol"),
        ("all BTC 50 ETH 50 band 0", "A band of 0 cannot work: it is more than 0 and at most 50"),
        ("all BTC 50 ETH 50 band 51", "A band of 51 cannot work"),
        ("all BTC 50 ETH 50 band 0%", "A band of 0% cannot work"),
        ("all BTC 50 ETH 50 band 60%", "A band of 60% cannot work"),
        ("all BTC 50 ETH 50 band wide", "“wide” is not a number: write the band like band 5"),
        ("all BTC 50 ETH 50 band", "“band” needs a value after it, e.g. band 5 or band 25%."),
        ("all BTC 50 ETH 50 slippage 6", "A slippage of 6 cannot work"),
        ("all BTC 50 ETH 50 slippage 0", "A slippage of 0 cannot work"),
        ("all BTC 50 ETH 50 slippage", "“slippage” needs a value after it, e.g. slippage 0.5."),
        ("all BTC 50 ETH 50 every", "“every” needs a value after it, e.g. every 1d or every 1w."),
        ("all BTC 50 ETH 50 every 1h", "I cannot rebalance every “1h”: write every 1d"),
        ("all BTC 50 ETH 50 every daily", "every 1d (daily) or every 1w (weekly)"),
        ("all BTC 50 ETH 50 band 5 band 6", "“band” is given twice"),
        ("all BTC 50 ETH 50 dryrun DRYRUN", "“dryrun” is given twice"),
        (
            "all BTC 50 ETH 50 fast",
            "I do not know “fast”: after the assets and weights only band, every, slippage "
            "and dryrun.",
        ),
        ("all BTC 50 band 5 ETH 50", "I do not know “ETH”"),
        ("all BTC 50 ETH 50 dry-run", "I do not know “dry-run”"),
        ("all BTC 50 ETH 50 0.5", "I do not know “0.5”"),
    ],
)
def test_bad_lines_say_what_to_write(line: str, says: str) -> None:
    with pytest.raises(TargetSyntaxError) as raised:
        target(line)
    assert says in str(raised.value)


def test_every_example_parses() -> None:
    for line in EXAMPLES.splitlines():
        parse_target(line.split()[1:])


def test_describe_spells_out_every_option_in_the_same_syntax() -> None:
    spec = target("Main btc 60 usdt 40 dryrun every 24h band 25%")
    assert describe(spec) == "Main BTC 60 USDT 40 band 25% every 1d slippage 0.5 dryrun"
    assert describe(target("all BTC 50 USDT 50")) == ("all BTC 50 USDT 50 band 5 slippage 0.5")


def test_describe_writes_numbers_that_parse_back_to_the_same_numbers() -> None:
    spec = target("all BTC 12.3450 ETH 87.6550 slippage 1.2340")
    assert describe(spec) == "all BTC 12.3450 ETH 87.6550 band 5 slippage 1.2340"
    assert parse_target(describe(spec).split()) == spec


_ASSETS = st.from_regex(r"[A-Z][A-Z0-9]{1,7}", fullmatch=True).filter(
    lambda symbol: symbol.casefold() not in ("band", "every", "slippage", "dryrun")
)
_LABELS = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,15}", fullmatch=True).filter(
    lambda label: label.casefold() not in ("all", "off", "history")
)


@st.composite
def _weights(draw: st.DrawFn) -> dict[str, Decimal]:
    """Positive weights to four decimals that add up to exactly 100."""
    assets = draw(st.lists(_ASSETS, min_size=2, max_size=6, unique=True))
    cuts = draw(
        st.lists(
            st.integers(1, 999_999),
            min_size=len(assets) - 1,
            max_size=len(assets) - 1,
            unique=True,
        )
    )
    edges = [0, *sorted(cuts), 1_000_000]
    return {
        asset: D(high - low) / 10_000
        for asset, (low, high) in zip(assets, pairwise(edges), strict=True)
    }


_SPECS = st.builds(
    TargetSpec,
    scope=st.none() | _LABELS,
    weights=_weights(),
    band=st.builds(
        Band,
        size=st.integers(1, 500_000).map(lambda n: D(n) / 10_000),
        relative=st.booleans(),
    ),
    every=st.none() | st.sampled_from(Schedule),
    slippage=st.integers(1, 50_000).map(lambda n: D(n) / 1_000_000),
    dry_run=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(_SPECS)
def test_what_describe_shows_parses_back_to_the_same_target(spec: TargetSpec) -> None:
    assert parse_target(describe(spec).split()) == spec
