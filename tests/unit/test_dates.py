"""Every moment in a message reads the same, unambiguous way: ``4 Dec 14:02 UTC``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from bot.exchanges.catalogue import VENUES
from bot.handlers.dates import when
from bot.handlers.render import activity_log, connection_card
from storage.activity import ActivityEntry
from storage.chats import PauseState
from storage.connections import ConnectionRecord, ConnectionStatus, KeySlot

NOW = datetime(2026, 12, 4, 14, 30, tzinfo=UTC)


def test_a_moment_always_has_its_day_and_the_year_only_when_it_is_not_this_year() -> None:
    assert when(datetime(2026, 12, 4, 14, 2, tzinfo=UTC), NOW) == "4 Dec 14:02 UTC"  # today
    assert when(datetime(2026, 3, 21, 9, 5, tzinfo=UTC), NOW) == "21 Mar 09:05 UTC"
    assert when(datetime(2025, 12, 31, 23, 59, tzinfo=UTC), NOW) == "31 Dec 2025 23:59 UTC"
    assert when(datetime(2026, 12, 4, 14, 2, 5, tzinfo=UTC), NOW, seconds=True) == (
        "4 Dec 14:02:05 UTC"
    )


def test_a_moment_in_another_zone_or_naive_is_written_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    assert when(datetime(2027, 1, 1, 0, 30, tzinfo=paris), NOW) == "31 Dec 23:30 UTC"
    assert when(datetime(2026, 12, 4, 14, 2), NOW) == "4 Dec 14:02 UTC"


def record(status: ConnectionStatus) -> ConnectionRecord:
    added = datetime(2026, 11, 21, 8, 15, tzinfo=UTC)
    return ConnectionRecord(
        id=1,
        chat_id=1001,
        label="Main",
        venue="binance",
        sandbox=False,
        status=status,
        status_detail="The key was rejected",
        status_at=datetime(2026, 12, 3, 22, 40, tzinfo=UTC),
        read_key=KeySlot("ABCD…WXYZ", "read,noip", added),
        trade_key=None,
        last_sync_at=added,
        last_ok_at=added,
        created_at=added,
    )


def test_the_connection_card_writes_its_dates_the_one_way() -> None:
    text, _ = connection_card(
        record(ConnectionStatus.REAUTH), VENUES["binance"], PauseState(False), NOW, 90
    )
    assert "Re-auth needed since 3 Dec 22:40 UTC" in text
    assert "added 21 Nov 08:15 UTC (13 days ago)" in text


def test_the_activity_log_writes_its_times_the_one_way() -> None:
    entry = ActivityEntry(
        at=datetime(2026, 12, 4, 14, 2, 5, tzinfo=UTC),
        action="fetch_balance",
        outcome="ok",
        endpoint="GET /api/v3/account",
        http_status=200,
        latency_ms=85,
    )
    text = activity_log(record(ConnectionStatus.CONNECTED), VENUES["binance"], [entry], NOW)
    assert "4 Dec 14:02:05 UTC ✅ <code>GET /api/v3/account</code> 200 85 ms" in text
