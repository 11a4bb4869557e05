"""Table definitions (SQLAlchemy Core). Migrations in `storage/migrations` create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: The id of a table that grows with every read (activity, snapshots, the outbox): 64-bit, since
#: at a few thousand reads a minute a 32-bit id runs out within months on PostgreSQL. SQLite's
#: INTEGER is 64-bit already, and only an INTEGER primary key numbers rows by itself.
GrowingId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, also on SQLite (which stores datetimes without a zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous: pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

chats = Table(
    "chats",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("paused", Boolean, nullable=False, server_default="0"),
    Column("paused_at", UTCDateTime(), nullable=True),
    # What balances are valued in, and below which value an asset is rolled into "dust".
    Column("quote_currency", String(8), nullable=False, server_default="USD"),
    Column("dust_threshold", String(40), nullable=True),  # a decimal; None = the quote's default
)

# Secret columns hold vault tokens (`v1.<key id>.<nonce>.<ciphertext>`), never clear text.
SECRET_COLUMNS = (
    "read_api_key",
    "read_secret",
    "read_passphrase",
    "trade_api_key",
    "trade_secret",
    "trade_passphrase",
)

connections = Table(
    "connections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("chat_id", BigInteger, ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
    Column("label", String(64), nullable=False),
    Column("venue", String(32), nullable=False),
    Column("sandbox", Boolean, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),
    Column("status_detail", Text, nullable=True),
    Column("status_at", UTCDateTime(), nullable=False),
    # The fix we suggest and what the exchange itself said (scrubbed of credentials).
    Column("status_fix", Text, nullable=True),
    Column("status_message", Text, nullable=True),
    # Consecutive failed health checks, and when the next one is due (the sweep's work list).
    Column("failure_streak", Integer, nullable=False, server_default="0"),
    Column("next_check_at", UTCDateTime(), nullable=True, index=True),
    # Bumped whenever a key is replaced: a check of the old key must not overwrite the new state.
    Column("keys_version", Integer, nullable=False, server_default="1"),
    Column("read_permissions", String(200), nullable=True),
    Column("read_key_mask", String(16), nullable=True),
    Column("read_key_added_at", UTCDateTime(), nullable=True),
    Column("read_api_key", Text, nullable=True),
    Column("read_secret", Text, nullable=True),
    Column("read_passphrase", Text, nullable=True),
    Column("trade_permissions", String(200), nullable=True),
    Column("trade_key_mask", String(16), nullable=True),
    Column("trade_key_added_at", UTCDateTime(), nullable=True),
    Column("trade_api_key", Text, nullable=True),
    Column("trade_secret", Text, nullable=True),
    Column("trade_passphrase", Text, nullable=True),
    Column("read_reminded_at", UTCDateTime(), nullable=True),
    Column("trade_reminded_at", UTCDateTime(), nullable=True),
    # Keyed hashes of the API keys (Vault.key_hash): the same key twice is found by comparing
    # these, never by decrypting every row.
    Column("read_key_hash", String(80), nullable=True),
    Column("trade_key_hash", String(80), nullable=True),
    Column("last_sync_at", UTCDateTime(), nullable=True),
    Column("last_ok_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # A slower balance read than the bot's period, chosen in /settings (None = the default).
    Column("sync_seconds", Integer, nullable=True),
    # The permission probe (withdraw drift) runs on its own, slower cadence.
    Column("next_permission_check_at", UTCDateTime(), nullable=True),
    # Which process is reading the connection now, and until when (storage.leases): a sweep
    # worker claims due rows with a lease, so two workers never read one connection at once.
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    UniqueConstraint("chat_id", "label", name="uq_connections_chat_label"),
    Index("ix_connections_venue_next_check", "venue", "next_check_at"),
)
# Labels are unique per chat ignoring case (migration 0007); the code compares with casefold.
Index(
    "uq_connections_chat_label_ci",
    connections.c.chat_id,
    func.lower(connections.c.label),
    unique=True,
)

activity = Table(
    "activity",
    metadata,
    Column("id", GrowingId, primary_key=True, autoincrement=True),
    Column(
        "connection_id",
        Integer,
        ForeignKey("connections.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("at", UTCDateTime(), nullable=False),
    Column("action", String(64), nullable=False),
    Column("endpoint", String(200), nullable=True),
    Column("http_status", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Column("outcome", String(32), nullable=False),
    Column("error_class", String(64), nullable=True),
    Index("ix_activity_connection_at", "connection_id", "at"),
)

# The outbox: what the chat must be told, written in the same transaction as the change that
# causes it and delivered afterwards, so a crash or a Telegram outage loses no message.
notifications = Table(
    "notifications",
    metadata,
    Column("id", GrowingId, primary_key=True, autoincrement=True),
    Column("chat_id", BigInteger, ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
    Column(
        "connection_id",
        Integer,
        ForeignKey("connections.id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("state", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("done_at", UTCDateTime(), nullable=True),
    Index("ix_notifications_state_id", "state", "id"),
)

# Balance snapshots: one row per successful read of a connection. ``assets`` is compact JSON
# (per asset: free, used, price, value, how it was priced); amounts are decimal strings.
# ``tier`` says how far the row has been downsampled: 0 every read, 1 hourly, 2 daily.
snapshots = Table(
    "snapshots",
    metadata,
    Column("id", GrowingId, primary_key=True, autoincrement=True),
    Column(
        "connection_id",
        Integer,
        ForeignKey("connections.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("chat_id", BigInteger, nullable=False),
    Column("taken_at", UTCDateTime(), nullable=False),
    Column("quote", String(8), nullable=False),
    Column("total_value", String(40), nullable=True),  # the priced assets' sum
    Column("unpriced", Integer, nullable=False, server_default="0"),  # assets with no price
    Column("tier", Integer, nullable=False, server_default="0"),
    Column("assets", Text, nullable=False),
    Column("extra", Text, nullable=True),  # venue-specific figures (futures margin), JSON
    Index("ix_snapshots_connection_taken", "connection_id", "taken_at"),
    Index("ix_snapshots_tier_taken", "tier", "taken_at"),
)

# Balance-threshold alert rules. ``connection_id`` None: the rule watches all of the chat's
# connections together. ``state`` and ``fired_at`` change in the same transaction as the
# notice a crossing queues (the outbox), so an alert is never lost or repeated.
alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("chat_id", BigInteger, ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
    Column(
        "connection_id",
        Integer,
        ForeignKey("connections.id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column("metric", String(16), nullable=False),
    Column("asset", String(32), nullable=True),
    Column("direction", String(8), nullable=False),
    Column("threshold", String(40), nullable=False),
    Column("rearm", String(40), nullable=True),
    Column("cooldown_seconds", Integer, nullable=True),
    Column("state", String(8), nullable=False),
    Column("fired_at", UTCDateTime(), nullable=True),
    Column("last_value", String(40), nullable=True),
    Column("snoozed_until", UTCDateTime(), nullable=True),
    Column("paused", Boolean, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_alert_rules_chat", "chat_id"),
)

# A chat's rebalancing target (one per chat). ``connection_id`` None: the aggregate of all the
# chat's spot connections. Weights are JSON ``{"BTC": "50", ...}`` in percent.
rebalance_targets = Table(
    "rebalance_targets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "chat_id",
        BigInteger,
        ForeignKey("chats.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column(
        "connection_id",
        Integer,
        ForeignKey("connections.id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column("weights", Text, nullable=False),
    Column("band", String(40), nullable=False),
    Column("band_relative", Boolean, nullable=False, server_default="0"),
    Column("every", String(8), nullable=True),
    Column("slippage", String(40), nullable=False),
    Column("dry_run", Boolean, nullable=False, server_default="0"),
    Column("drift_state", String(16), nullable=False),
    Column("set_at", UTCDateTime(), nullable=False),
    Column("last_scheduled_at", UTCDateTime(), nullable=True),
)

# Proposals and their legs are the executor's journal: every state a leg passes through is
# written before the exchange call it leads to, so a restart knows what may have been sent.
rebalance_proposals = Table(
    "rebalance_proposals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("chat_id", BigInteger, ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
    Column(
        "target_id",
        Integer,
        ForeignKey("rebalance_targets.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("token", String(16), nullable=False, unique=True),  # seeds the client order ids
    Column("revision", Integer, nullable=False, server_default="1"),
    Column("trigger", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("dry_run", Boolean, nullable=False, server_default="0"),
    Column("quote", String(8), nullable=False),
    Column("plan", Text, nullable=False),  # what the proposal showed, JSON
    Column("message_id", BigInteger, nullable=True),
    Column("note", Text, nullable=True),  # why it ended as it did, for people
    Column("result", Text, nullable=True),  # the allocation after execution, JSON
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("decided_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    # The process executing (or looking up) the proposal now, and until when (storage.leases).
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Index("ix_rebalance_proposals_chat", "chat_id"),
    Index("ix_rebalance_proposals_status", "status"),
)

rebalance_legs = Table(
    "rebalance_legs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "proposal_id",
        Integer,
        ForeignKey("rebalance_proposals.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("position", Integer, nullable=False),
    Column(
        "connection_id",
        Integer,
        ForeignKey("connections.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("label", String(64), nullable=False),
    Column("venue", String(32), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("side", String(4), nullable=False),
    Column("amount", String(40), nullable=False),
    Column("price", String(40), nullable=False),  # the estimated fill price
    Column("value", String(40), nullable=False),  # in the proposal's currency
    Column("fee", String(40), nullable=False),  # estimated, in the proposal's currency
    Column("client_order_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("limit_price", String(40), nullable=True),
    Column("order_id", String(64), nullable=True),
    Column("filled", String(40), nullable=True),
    Column("average", String(40), nullable=True),
    Column("cost", String(40), nullable=True),
    Column("fees", Text, nullable=True),  # JSON, by currency
    Column("detail", Text, nullable=True),
    Column("lookups", Integer, nullable=False, server_default="0"),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("proposal_id", "position"),
)

# Sweeps that are global and cheap (rotation reminders, snapshot retention, the rebalance
# minute sweep) run in one process at a time: ``owner`` runs it until ``until`` (renewed while
# it runs); once done, ``owner`` is cleared and ``until`` is when the next run is due.
sweep_leases = Table(
    "sweep_leases",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("owner", String(64), nullable=True),
    Column("until", UTCDateTime(), nullable=False),
)

# Telegram lets one process poll a bot token: the poller of each token, by a keyed hash of the
# token (``Vault.key_hash``, never the token), with a heartbeat in ``until``.
pollers = Table(
    "pollers",
    metadata,
    Column("token_hash", String(80), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("until", UTCDateTime(), nullable=False),
)
