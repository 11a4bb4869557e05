"""The portfolio chart as PNG bytes: allocation (a donut) over the total value in time.

Render only: plain data in, bytes out, no Telegram. Built on an explicit ``Figure`` with the
Agg canvas (never pyplot's global state), so it is safe to run in a worker thread and leaks no
figures. Portrait and large type for a phone; a dark background that suits dark mode and reads
well in light mode too; a colour-blind-safe palette.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, DateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

BACKGROUND = "#16181d"
PANEL = "#1e2128"
TEXT = "#e8e8e8"
MUTED = "#9aa0a6"
LINE = "#56b4e9"
#: Okabe–Ito, distinguishable with the common colour-vision deficiencies.
PALETTE = ("#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7", "#999999")
#: Slices under this share are folded into "Other".
MIN_SHARE = 0.03
SIZE_INCHES = (7.0, 9.0)
DPI = 150


@dataclass(frozen=True)
class Slice:
    """One asset's value in the allocation (the quote currency)."""

    asset: str
    value: float


@dataclass(frozen=True)
class Point:
    """The portfolio total at one time."""

    at: datetime
    value: float


def _plain(text: str) -> str:
    """Matplotlib reads ``$…$`` as math: a name from an exchange must stay text."""
    return text.replace("$", r"\$")


def compact(value: float) -> str:
    """12.3k, 4.56M: short numbers for axis ticks and the donut's hole."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:,.3g}{suffix}"
    if abs(value) >= 1 or value == 0:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def _share(fraction: float) -> str:
    return "<1%" if fraction < 0.005 else f"{fraction:.0%}"


def fold(slices: Sequence[Slice]) -> list[Slice]:
    """Biggest first, small slices folded into one "Other"; zero and negative ones dropped."""
    kept = sorted((s for s in slices if s.value > 0), key=lambda s: -s.value)
    total = sum(s.value for s in kept)
    if total <= 0:
        return []
    big = [s for s in kept if s.value / total >= MIN_SHARE][: len(PALETTE) - 1]
    other = total - sum(s.value for s in big)
    return big + ([Slice("Other", other)] if other > 0 else [])


def _figure(
    allocation: Sequence[Slice], history: Sequence[Point], quote: str, *, title: str, days: int
) -> Figure:
    figure = Figure(figsize=SIZE_INCHES, dpi=DPI, facecolor=BACKGROUND)
    donut, line = figure.subplots(2, 1, height_ratios=(1.15, 1))
    figure.suptitle(_plain(title), color=TEXT, fontsize=18, fontweight="bold")
    _draw_donut(donut, fold(allocation), quote)
    _draw_line(line, history, quote, days)
    figure.subplots_adjust(left=0.16, right=0.96, top=0.92, bottom=0.08, hspace=0.28)
    return figure


def _draw_donut(axes: Axes, slices: list[Slice], quote: str) -> None:
    axes.set_facecolor(BACKGROUND)
    if not slices:
        axes.axis("off")
        axes.text(
            0.5, 0.5, "No priced holdings yet", ha="center", va="center", color=MUTED, fontsize=14
        )
        return
    total = sum(s.value for s in slices)
    wedges, _ = axes.pie(
        [s.value for s in slices],
        colors=[PALETTE[i % len(PALETTE)] for i in range(len(slices))],
        startangle=90,
        counterclock=False,
        wedgeprops={"width": 0.38, "edgecolor": BACKGROUND, "linewidth": 2},
    )
    axes.text(
        0,
        0.08,
        _plain(compact(total)),
        ha="center",
        va="center",
        color=TEXT,
        fontsize=20,
        fontweight="bold",
    )
    axes.text(0, -0.16, _plain(quote), ha="center", va="center", color=MUTED, fontsize=13)
    labels = [f"{_plain(s.asset[:14])}  {_share(s.value / total)}" for s in slices]
    legend = axes.legend(
        wedges,
        labels,
        loc="center left",
        bbox_to_anchor=(1.04, 0.5),
        frameon=False,
        fontsize=12,
        labelcolor=TEXT,
        handlelength=1.0,
    )
    legend.set_in_layout(True)
    axes.set_title("Allocation", color=TEXT, fontsize=14, loc="left")
    axes.set_aspect("equal")
    axes.set_anchor("W")


def _draw_line(axes: Axes, history: Sequence[Point], quote: str, days: int) -> None:
    axes.set_facecolor(PANEL)
    axes.set_title(f"Value, last {days} days", color=TEXT, fontsize=14, loc="left")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        axes.spines[side].set_color(MUTED)
    axes.tick_params(colors=MUTED, labelsize=11)
    axes.set_ylabel(_plain(f"Value ({quote})"), color=TEXT, fontsize=12)
    if not history:
        axes.text(
            0.5,
            0.5,
            "No history yet",
            transform=axes.transAxes,
            ha="center",
            va="center",
            color=MUTED,
            fontsize=14,
        )
        axes.set_xticks([])
        axes.set_yticks([])
        return
    end = max(point.at for point in history)
    margin = timedelta(days=days) * 0.02
    axes.set_xlim(date2num(end - timedelta(days=days)), date2num(end + margin))  # the whole span
    times, values = _with_gaps(history)
    axes.plot(times, values, color=LINE, linewidth=2.2, marker="o" if len(history) == 1 else None)
    floor = min(point.value for point in history)
    axes.fill_between(times, values, floor, color=LINE, alpha=0.15)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: compact(value)))
    locator = AutoDateLocator(minticks=3, maxticks=6)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(DateFormatter("%d %b" if days > 2 else "%H:%M"))
    axes.grid(color=MUTED, alpha=0.15)


def _with_gaps(history: Sequence[Point]) -> tuple[list[float], list[float]]:
    """Times and values, with a break (NaN) where the data stops for much longer than its
    usual spacing, so a gap is drawn as a gap and not as a straight line across it."""
    times = [float(t) for t in date2num([point.at for point in history])]
    values = [point.value for point in history]
    if len(times) < 3:
        return times, values
    steps = sorted(b - a for a, b in pairwise(times))
    usual = steps[len(steps) // 2]
    out_t, out_v = [times[0]], [values[0]]
    for (before, after), value in zip(pairwise(times), values[1:], strict=True):
        if usual > 0 and after - before > 3 * usual:
            out_t.append((before + after) / 2)
            out_v.append(math.nan)
        out_t.append(after)
        out_v.append(value)
    return out_t, out_v


def portfolio_chart(
    allocation: Sequence[Slice], history: Sequence[Point], quote: str, *, title: str, days: int
) -> bytes:
    """The chart as PNG bytes (about 1050 × 1350 px)."""
    figure = _figure(allocation, history, quote, title=title, days=days)
    FigureCanvasAgg(figure)
    out = io.BytesIO()
    figure.savefig(out, format="png", facecolor=BACKGROUND, metadata={"Software": None})
    return out.getvalue()
