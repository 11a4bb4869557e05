"""Numbers and long messages for Telegram HTML: amounts with the precision they need, money in
the chat's currency, aligned ``<pre>`` tables that fit a phone, and splitting at 4,096.

Pure: no Telegram import, strings in and out.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

#: Telegram's limit for one message.
MESSAGE_LIMIT = 4096
#: Significant digits shown for amounts below 1.
_SIGNIFICANT = 8
_TAG = re.compile(r"<(/?)([a-zA-Z-]+)[^>]*>")


def _grouped(value: Decimal, places: int) -> str:
    """Fixed point with thousands separators and no trailing zeros beyond ``places``."""
    text = f"{value:,.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_amount(value: Decimal) -> str:
    """An asset amount: ``1,234,567.89``, ``0.5234``, ``0.00001234``, never ``1e-05``.

    Large amounts keep up to 8 decimals; amounts below 1 keep about 8 significant digits.
    """
    if value == 0:
        return "0"
    with localcontext() as exact:
        exact.prec = 80  # room for any amount an exchange can hold, at any precision shown
        return _amount(value)


def _amount(value: Decimal) -> str:
    magnitude = abs(value)
    if magnitude >= 1:
        places = max(0, min(8, _SIGNIFICANT + 2 - len(str(int(magnitude)))))
    else:
        leading_zeros = -magnitude.adjusted() - 1
        places = leading_zeros + _SIGNIFICANT
    rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return _grouped(rounded, places)


def format_money(value: Decimal, quote: str) -> str:
    """A value in the chat's currency: cents for fiat and stablecoins, satoshis for BTC."""
    places = 8 if quote == "BTC" else 2
    smallest = Decimal(1).scaleb(-places)
    if 0 < abs(value) < smallest:
        return f"{'-' if value < 0 else ''}<{_grouped(smallest, places)} {quote}"
    with localcontext() as exact:
        exact.prec = 80
        text = f"{value.quantize(smallest, rounding=ROUND_HALF_EVEN) + 0:,.{places}f}"
    if quote == "BTC" and "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{'0' if text in ('-0', '-0.00') else text} {quote}"


def format_percent(value: Decimal, *, signed: bool = False) -> str:
    """``61.3%``; ``<0.1%`` for a small non-zero share; ``+2.4%`` / ``−1.1%`` when ``signed``."""
    rounded = value.quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN) + 0  # no "-0.0"
    if not signed:
        if rounded == 0 and value > 0:
            return "<0.1%"
        return f"{rounded:f}%"
    if rounded == 0:
        return "±0.0%"
    sign = "+" if rounded > 0 else "−"
    return f"{sign}{abs(rounded):f}%"


def pre_table(rows: Sequence[Sequence[str]], *, align: Sequence[str], width: int = 32) -> str:
    """An aligned monospace table for a ``<pre>`` block, at most ``width`` columns wide.

    Columns are padded to their widest cell ("l" or "r" aligned); when a row is still too wide,
    the first (text) column is shortened with "…", but to no fewer than 6 characters (an
    asset name cut shorter means nothing; Telegram scrolls a wide ``<pre>`` sideways). Cells
    are escaped here; width is counted on the text as shown.
    """
    if not rows:
        return ""
    columns = len(align)
    widths = [max(len(row[i]) for row in rows) for i in range(columns)]
    spare = width - (sum(widths) + columns - 1)
    if spare < 0:
        widths[0] = max(min(6, widths[0]), widths[0] + spare)
    lines = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = cell if len(cell) <= widths[i] else cell[: widths[i] - 1] + "…"
            cells.append(text.ljust(widths[i]) if align[i] == "l" else text.rjust(widths[i]))
        lines.append(html.escape(" ".join(cells).rstrip(), quote=False))
    return "\n".join(lines)


def _open_tags(text: str, opened: list[str]) -> list[str]:
    """The tags (with their opening text) still open after ``text``, given ``opened`` before."""
    stack = list(opened)
    for match in _TAG.finditer(text):
        if match.group(1):
            name = match.group(2).lower()
            for index in range(len(stack) - 1, -1, -1):
                if _TAG.match(stack[index]).group(2).lower() == name:  # type: ignore[union-attr]
                    del stack[index]
                    break
        else:
            stack.append(match.group(0))
    return stack


def _closing(opened: Sequence[str]) -> str:
    return "".join(
        f"</{_TAG.match(tag).group(2)}>"  # type: ignore[union-attr]
        for tag in reversed(opened)
    )


def split_message(html_text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split a long HTML message into parts of at most ``limit`` characters, on line
    boundaries, with tags balanced in each part (a ``<pre>`` cut in two is closed at the end of
    one part and reopened at the start of the next).

    Length is counted on the raw HTML, tags included: more than Telegram counts, so always
    safe. A single line longer than a part can hold is cut between characters (never inside a
    tag or an entity such as ``&amp;``). Returns ``[""]`` for empty text.
    """
    if len(html_text) <= limit:
        return [html_text]
    parts: list[str] = []
    carried: list[str] = []  # tags open where the current part starts (reopened there)
    body = ""
    open_now: list[str] = []  # tags open at the end of ``body``
    for line in _lines(html_text, limit // 2):
        candidate = f"{body}\n{line}" if body else line
        open_after = _open_tags(line, open_now if body else carried)
        if not body or len("".join(carried) + candidate + _closing(open_after)) <= limit:
            body, open_now = candidate, open_after
            continue
        parts.append("".join(carried) + body + _closing(open_now))
        carried = open_now
        body, open_now = line, _open_tags(line, carried)
    parts.append("".join(carried) + body + _closing(open_now))
    return parts


def _lines(text: str, longest: int) -> list[str]:
    """The text's lines, any line longer than ``longest`` cut outside tags and entities."""
    out: list[str] = []
    for line in text.split("\n"):
        while len(line) > longest:
            cut = longest
            tag_start, entity_start = line.rfind("<", 0, cut), line.rfind("&", 0, cut)
            if tag_start > line.rfind(">", 0, cut):
                cut = tag_start
            elif entity_start > line.rfind(";", 0, cut):
                cut = entity_start
            if cut <= 0:
                cut = longest
            out.append(line[:cut])
            line = line[cut:]
        out.append(line)
    return out
