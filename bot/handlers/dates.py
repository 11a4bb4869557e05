"""The one way a moment is written in a message: ``4 Dec 14:02 UTC``.

Always with the day, so a message read tomorrow (or in another time zone, where "today" is a
different date) still says when; with the year only when it is not this year. No numeric dates:
``04-12`` reads as April in one country and December in the next.
"""

from __future__ import annotations

from datetime import UTC, datetime


def when(moment: datetime, now: datetime, *, seconds: bool = False) -> str:
    """``4 Dec 14:02 UTC``; ``4 Dec 2025 14:02 UTC`` outside this year; ``14:02:05`` with
    ``seconds``. Naive datetimes are taken as UTC, as the database stores them."""
    moment, now = _utc(moment), _utc(now)
    year = "" if moment.year == now.year else f" {moment.year}"
    clock = f"{moment:%H:%M:%S}" if seconds else f"{moment:%H:%M}"
    return f"{moment.day} {moment:%b}{year} {clock} UTC"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
