"""The trading gate: whether automated trading may act on a connection right now.

Every automated order must pass the gate with the connection and the chat's pause state read
from the database immediately before the order is placed (no cache), so /pause, and a
connection that stops being Connected, stop automation at once. Cards show the same answer.
Alerts and health checks never ask: they keep running while trading is paused.
"""

from __future__ import annotations

from enum import StrEnum

from storage.chats import PauseState
from storage.connections import ConnectionRecord, ConnectionStatus


class TradingBlock(StrEnum):
    PAUSED = "paused"  # the chat's kill switch is on
    NOT_CONNECTED = "not_connected"  # Re-auth needed or Error
    NO_TRADE_KEY = "no_trade_key"  # a read-only connection


def trading_block(record: ConnectionRecord, pause: PauseState) -> TradingBlock | None:
    """Why automated trading may not act on ``record`` (None: it may)."""
    if pause.paused:
        return TradingBlock.PAUSED
    if record.status is not ConnectionStatus.CONNECTED:
        return TradingBlock.NOT_CONNECTED
    if record.trade_key is None:
        return TradingBlock.NO_TRADE_KEY
    return None
