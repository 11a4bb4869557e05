"""Numbers and long messages as the chat reads them."""

from __future__ import annotations

import re
from decimal import Decimal
from html.parser import HTMLParser

from hypothesis import given
from hypothesis import strategies as st

from bot.handlers.layout import (
    format_amount,
    format_money,
    format_percent,
    pre_table,
    split_message,
)

D = Decimal


def test_amounts_keep_the_precision_they_need_and_never_use_exponents() -> None:
    assert format_amount(D(0)) == "0"
    assert format_amount(D("0.52340000")) == "0.5234"
    assert format_amount(D("12500.00000000")) == "12,500"
    assert format_amount(D("1234567.891")) == "1,234,567.891"
    assert format_amount(D(10) ** 12) == "1,000,000,000,000"
    assert format_amount(D(10) ** -12) == "0.000000000001"
    assert format_amount(D("1e-05")) == "0.00001"
    assert format_amount(D("0.000012345678912")) == "0.000012345679"
    assert format_amount(D("-3.5")) == "-3.5"


def test_money_has_cents_or_satoshis_and_says_when_it_is_less_than_one() -> None:
    assert format_money(D("12345.678"), "USD") == "12,345.68 USD"
    assert format_money(D("0.004"), "USD") == "<0.01 USD"
    assert format_money(D(0), "EUR") == "0.00 EUR"
    assert format_money(D("0.012345678"), "BTC") == "0.01234568 BTC"
    assert format_money(D("0.000000001"), "BTC") == "<0.00000001 BTC"


def test_percentages() -> None:
    assert format_percent(D("61.34")) == "61.3%"
    assert format_percent(D("0.01")) == "<0.1%"
    assert format_percent(D("2.44"), signed=True) == "+2.4%"
    assert format_percent(D("-1.06"), signed=True) == "−1.1%"
    assert format_percent(D(0), signed=True) == "±0.0%"


def test_tables_align_escape_and_fit_a_phone() -> None:
    table = pre_table(
        [["Asset", "Amount", "USD"], ["BTC", "0.5234", "38,401.53"], ["<script>", "1", "2"]],
        align=("l", "r", "r"),
    )
    lines = table.split("\n")
    assert "&lt;script&gt;" in table and "<script>" not in table
    assert lines[1].endswith("38,401.53") and lines[1].startswith("BTC")
    assert all(len(line.replace("&lt;", "<").replace("&gt;", ">")) <= 32 for line in lines)


@given(
    st.lists(
        st.tuples(
            st.text(alphabet="ABCXYZ<>&", min_size=1, max_size=30),
            st.decimals(min_value=0, max_value=10**12, places=8, allow_nan=False),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_table_lines_never_exceed_the_width_when_the_first_column_can_give(rows: list) -> None:
    cells = [[name, format_amount(amount)] for name, amount in rows]
    table = pre_table(cells, align=("l", "r"))
    widest_amount = max(len(c[1]) for c in cells)
    for line in table.split("\n"):
        shown = line.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        assert len(shown) <= max(32, widest_amount + 7)


@given(st.decimals(min_value=-(10**15), max_value=10**15, allow_nan=False, allow_infinity=False))
def test_formatted_amounts_read_back_as_the_rounded_number(value: Decimal) -> None:
    text = format_amount(value)
    assert "e" not in text.lower()
    back = D(text.replace(",", ""))
    if value == 0:
        assert back == 0
    else:
        assert abs(back - value) <= abs(value) * D("1e-7") + D("1e-8")


class _Balance(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (self.stack, tag)
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def visible(part: str) -> str:
    parser = _Balance()
    parser.feed(part)
    parser.close()
    assert parser.stack == [], parser.stack
    return "".join(parser.text)


lines = st.text(alphabet="abc xyz&", min_size=0, max_size=120).map(
    lambda t: t.replace("&", "&amp;")
)


@given(
    st.lists(lines, min_size=1, max_size=200),
    st.lists(st.integers(min_value=0, max_value=199), max_size=6),
    st.integers(min_value=200, max_value=4096),
)
def test_split_parts_fit_keep_tags_balanced_and_lose_no_text(
    body: list[str], pre_at: list[int], limit: int
) -> None:
    wrapped = list(body)
    for index in sorted(set(i for i in pre_at if i < len(wrapped) - 1)):
        wrapped[index] = "<pre>" + wrapped[index]
        wrapped[index + 1] = wrapped[index + 1] + "</pre>"
    text = "<b>Title</b>\n" + "\n".join(wrapped)
    parts = split_message(text, limit)
    assert all(len(part) <= limit for part in parts)
    shown = [visible(part) for part in parts]
    original = visible(text)
    assert re.sub(r"\s", "", "".join(shown)) == re.sub(r"\s", "", original)


def test_a_short_message_is_one_part() -> None:
    assert split_message("hello") == ["hello"]
