"""The portfolio chart is a real PNG a phone can show, whatever the data looks like."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pytest

from bot.handlers.charts import Point, Slice, _figure, fold, portfolio_chart

NOW = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)
WEEK = [Point(NOW - timedelta(hours=h), 70_000 + 25 * h) for h in range(168, 0, -1)]


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize(
    ("allocation", "history"),
    [
        ([Slice("BTC", 38_000), Slice("ETH", 16_000), Slice("USDT", 12_500)], WEEK),
        ([], []),  # nothing priced, no history yet
        ([Slice("BTC", 1.0)], WEEK[:1]),  # one asset, one point
        ([Slice(f"A{i}", 1.0 + i) for i in range(40)], WEEK[:50] + WEEK[90:]),  # a gap
        ([Slice("BIG", 1e12), Slice("TINY", 1e-6)], [Point(NOW, 1e12)]),
        ([Slice("<b>$X_1$", 5.0), Slice("a$b", 3.0)], WEEK),  # exchange names stay text
    ],
)
def test_every_shape_of_data_renders_a_phone_sized_png(
    allocation: list[Slice], history: list[Point]
) -> None:
    data = portfolio_chart(allocation, history, "USD", title="Portfolio", days=7)
    width, height = png_size(data)
    assert (width, height) == (1050, 1350)
    assert len(data) < 400_000


def test_the_quote_currency_and_the_span_are_written_on_the_chart() -> None:
    figure = _figure([Slice("BTC", 2.0)], WEEK, "EUR", title="Portfolio", days=30)
    texts = [t.get_text() for t in figure.findobj(match=lambda o: hasattr(o, "get_text"))]
    assert "Value (EUR)" in texts and "EUR" in texts and "Value, last 30 days" in texts


def test_small_slices_fold_into_other_and_the_biggest_come_first() -> None:
    folded = fold([Slice("DUST", 1), Slice("BTC", 900), Slice("ETH", 99), Slice("NEG", -5)])
    assert [s.asset for s in folded] == ["BTC", "ETH", "Other"]
    assert folded[-1].value == 1
