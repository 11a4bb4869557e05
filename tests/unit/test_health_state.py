"""The health state machine: what a check's outcome does to a connection, and what the chat hears.

``decide`` is pure, so every transition is shown here on plain records: the sweep and /check
only feed it observations and store its answer.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.exchanges.diagnosis import Diagnosis
from bot.exchanges.health import HealthPolicy, Observation, decide
from bot.exchanges.permissions import PermissionSummary
from storage.connections import ConnectionRecord, ConnectionStatus, HealthUpdate, KeySlot
from storage.credentials import KeyRole
from storage.outbox import Notice, NoticeKind

CONNECTED, REAUTH, ERROR = (
    ConnectionStatus.CONNECTED,
    ConnectionStatus.REAUTH,
    ConnectionStatus.ERROR,
)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PERIOD = timedelta(minutes=10)
POLICY = HealthPolicy(PERIOD)

READ_ONLY = PermissionSummary(read=True, spot_trade=False, derivatives_trade=False, withdraw=False)
TRADING = replace(READ_ONLY, spot_trade=True)

KEY_REFUSED = Diagnosis(
    REAUTH,
    "The exchange did not accept this API key: it is wrong, expired or deleted.",
    "Check that you pasted the right key for this exchange.",
    final=True,
    exchange_message="Invalid API-key, IP, or permissions for action.",
)
EXCHANGE_DOWN = Diagnosis(
    ERROR,
    "The exchange is unreachable or under maintenance.",
    "Nothing to do: Coinwarden retries and the connection heals by itself.",
    final=False,
    exchange_message="System is under maintenance.",
)
RATE_LIMITED = Diagnosis(
    ERROR,
    "The exchange is rate-limiting requests.",
    "Nothing to do: Coinwarden backs off and tries again later.",
    final=False,
    exchange_message="Too much request weight used.",
    rate_limited=True,
)
TIMED_OUT = Diagnosis(
    ERROR,
    "The exchange is unreachable or under maintenance.",
    "Nothing to do: Coinwarden retries and the connection heals by itself.",
    final=False,
)
TRANSIENT = [EXCHANGE_DOWN, RATE_LIMITED, TIMED_OUT]


def connection(
    status: ConnectionStatus = CONNECTED,
    *,
    streak: int = 0,
    two_keys: bool = False,
    detail: str | None = None,
    fix: str | None = None,
    message: str | None = None,
) -> ConnectionRecord:
    added = T0 - timedelta(days=3)
    return ConnectionRecord(
        id=7,
        chat_id=1001,
        label="Main",
        venue="binance",
        sandbox=False,
        status=status,
        status_detail=detail,
        status_at=T0 - timedelta(hours=1),
        read_key=KeySlot("abcd…wxyz", "read,noip", added),
        trade_key=KeySlot("efgh…stuv", "read,spot,noip", added) if two_keys else None,
        last_sync_at=T0 - PERIOD,
        last_ok_at=T0 - PERIOD,
        created_at=added,
        status_fix=fix,
        status_message=message,
        failure_streak=streak,
        next_check_at=T0,
    )


def healthy(*roles: KeyRole) -> Observation:
    return Observation(permissions={role: READ_ONLY for role in roles or (KeyRole.READ,)})


def failed(problem: Diagnosis, role: KeyRole = KeyRole.READ) -> Observation:
    return Observation(problem, role)


def stored(record: ConnectionRecord, update: HealthUpdate, now: datetime) -> ConnectionRecord:
    """The record as ``record_health`` leaves it, to feed the next check."""
    return replace(
        record,
        status=update.status,
        status_detail=update.detail,
        status_fix=update.fix,
        status_message=update.exchange_message,
        failure_streak=update.failure_streak,
        next_check_at=update.next_check_at,
        status_at=now if update.status is not record.status else record.status_at,
        last_sync_at=now,
        last_ok_at=now if update.healthy else record.last_ok_at,
    )


def run(
    record: ConnectionRecord, observations: list[Observation]
) -> tuple[ConnectionRecord, list[HealthUpdate], list[Notice | None]]:
    """Feed checks one after another, each when it is due, as the sweep does."""
    updates: list[HealthUpdate] = []
    notices: list[Notice | None] = []
    for seen in observations:
        now = record.next_check_at or T0
        update, notice = decide(record, seen, POLICY, now)
        updates.append(update)
        notices.append(notice)
        record = stored(record, update, now)
    return record, updates, notices


def test_a_healthy_check_keeps_a_connection_connected_and_says_nothing() -> None:
    update, notice = decide(connection(), healthy(), POLICY, T0)

    assert notice is None
    assert update == HealthUpdate(
        CONNECTED, None, None, None, 0, T0 + PERIOD, True, {KeyRole.READ: "read"}
    )


def test_an_auth_failure_flips_to_reauth_at_once_with_one_status_notice() -> None:
    """Authentication errors are final: no retries before the user hears about it."""
    record = connection()
    update, notice = decide(record, failed(KEY_REFUSED), POLICY, T0)

    assert (update.status, update.failure_streak, update.healthy) == (REAUTH, 1, False)
    assert (update.detail, update.fix) == (KEY_REFUSED.cause, KEY_REFUSED.fix)
    assert notice == Notice(
        1001,
        NoticeKind.STATUS,
        7,
        {
            "status": "reauth",
            "previous": "connected",
            "since": record.status_at.isoformat(),
            "cause": KEY_REFUSED.cause,
            "fix": KEY_REFUSED.fix,
            "exchange_message": "Invalid API-key, IP, or permissions for action.",
        },
    )


@pytest.mark.parametrize("problem", TRANSIENT, ids=["5xx", "rate-limited", "timeout"])
def test_transient_failures_keep_the_status_and_the_third_in_a_row_flips_to_error(
    problem: Diagnosis,
) -> None:
    """A blip must not alarm the user; a problem that lasts three checks must."""
    _, updates, notices = run(connection(), [failed(problem)] * 3)

    assert [update.status for update in updates] == [CONNECTED, CONNECTED, ERROR]
    assert [update.failure_streak for update in updates] == [1, 2, 3]
    assert notices[:2] == [None, None]
    last = notices[2]
    assert last is not None and last.kind is NoticeKind.STATUS
    assert (last.payload["status"], last.payload["previous"]) == ("error", "connected")
    assert last.payload["cause"] == problem.cause


def test_a_healthy_check_between_failures_starts_the_count_again() -> None:
    outcomes = [failed(EXCHANGE_DOWN)] * 2 + [healthy()] + [failed(EXCHANGE_DOWN)] * 2
    _, updates, notices = run(connection(), outcomes)

    assert [update.failure_streak for update in updates] == [1, 2, 0, 1, 2]
    assert {update.status for update in updates} == {CONNECTED}
    assert notices == [None] * 5


def test_backoff_doubles_from_one_period_up_to_eight() -> None:
    assert [POLICY.retry_after(n) for n in range(7)] == [
        PERIOD * factor for factor in (1, 1, 2, 4, 8, 8, 8)
    ]
    assert HealthPolicy(PERIOD, max_backoff=2).retry_after(5) == PERIOD * 2


def test_each_failed_check_is_due_again_after_the_backoff_of_its_streak() -> None:
    record, updates, _ = run(connection(), [failed(EXCHANGE_DOWN)] * 5)

    due = [T0, *(update.next_check_at for update in updates)]
    gaps = [(later - earlier) / PERIOD for earlier, later in pairwise(due)]
    assert gaps == [1, 2, 4, 8, 8]
    assert record.status is ERROR


@pytest.mark.parametrize("status", [ERROR, REAUTH])
def test_a_healthy_check_after_a_failure_status_is_one_recovered_notice(
    status: ConnectionStatus,
) -> None:
    record = connection(status, streak=4, detail="was broken", fix="fix it", message="said so")
    update, notice = decide(record, healthy(), POLICY, T0)

    assert (update.status, update.failure_streak, update.healthy) == (CONNECTED, 0, True)
    assert (update.detail, update.fix, update.exchange_message) == (None, None, None)
    assert update.next_check_at == T0 + PERIOD
    assert notice is not None and notice.kind is NoticeKind.STATUS
    assert notice.payload["status"] == "connected"
    assert notice.payload["previous"] == str(status)
    assert notice.payload["since"] == record.status_at.isoformat()


@pytest.mark.parametrize(
    ("status", "seen"),
    [
        (CONNECTED, healthy()),
        (ERROR, failed(EXCHANGE_DOWN)),
        (ERROR, failed(RATE_LIMITED)),
        (REAUTH, failed(KEY_REFUSED)),
    ],
    ids=["connected", "error-down", "error-rate-limited", "reauth"],
)
def test_a_status_that_persists_is_not_announced_again(
    status: ConnectionStatus, seen: Observation
) -> None:
    update, notice = decide(connection(status, streak=3), seen, POLICY, T0)

    assert update.status is status
    assert notice is None


@pytest.mark.parametrize(
    ("status", "seen", "found"),
    [
        (CONNECTED, failed(EXCHANGE_DOWN), ERROR),
        (CONNECTED, failed(RATE_LIMITED), ERROR),
        (CONNECTED, failed(KEY_REFUSED), REAUTH),
        (ERROR, healthy(), CONNECTED),
        (REAUTH, healthy(), CONNECTED),
    ],
)
def test_check_with_announce_off_sets_the_found_status_at_once_and_queues_nothing(
    status: ConnectionStatus, seen: Observation, found: ConnectionStatus
) -> None:
    """/check shows the outcome to the user already: no waiting for three failures, no notice."""
    update, notice = decide(connection(status), seen, POLICY, T0, announce=False)

    assert update.status is found
    assert notice is None


def test_reauth_followed_by_a_transient_failure_keeps_the_reauth_cause() -> None:
    """The key still needs replacing while the exchange is down: keep what the user can act on."""
    record = connection(
        REAUTH,
        streak=1,
        detail=KEY_REFUSED.cause,
        fix=KEY_REFUSED.fix,
        message=KEY_REFUSED.exchange_message,
    )
    update, notice = decide(record, failed(EXCHANGE_DOWN), POLICY, T0)

    assert update.status is REAUTH
    assert (update.detail, update.fix, update.exchange_message) == (
        KEY_REFUSED.cause,
        KEY_REFUSED.fix,
        KEY_REFUSED.exchange_message,
    )
    assert update.failure_streak == 2
    assert update.next_check_at == T0 + POLICY.retry_after(2)
    assert notice is None


def test_reauth_stays_reauth_through_an_exchange_outage_of_any_length() -> None:
    """A revoked key does not become "the exchange is down, nothing to do" because the venue then
    has an outage: the user would be told to wait, then told again to re-auth once it is back."""
    outcomes = [failed(KEY_REFUSED)] + [failed(EXCHANGE_DOWN)] * 4 + [failed(KEY_REFUSED)]
    _, updates, notices = run(connection(), outcomes)

    assert [update.status for update in updates] == [REAUTH] * 6
    assert {update.detail for update in updates} == {KEY_REFUSED.cause}
    assert [notice is not None for notice in notices] == [True] + [False] * 5


@pytest.mark.parametrize(
    ("role", "named"), [(KeyRole.READ, "Read key: "), (KeyRole.TRADE, "Trade key: ")]
)
def test_with_two_keys_the_cause_names_the_key_to_replace(role: KeyRole, named: str) -> None:
    update, notice = decide(connection(two_keys=True), failed(KEY_REFUSED, role), POLICY, T0)

    assert update.detail is not None and update.detail.startswith(named)
    assert update.detail[len(named) :].casefold() == KEY_REFUSED.cause.casefold()
    assert notice is not None and notice.payload["cause"] == update.detail


def test_with_one_key_or_a_passing_problem_the_cause_is_left_as_it_is() -> None:
    single, _ = decide(connection(), failed(KEY_REFUSED), POLICY, T0)
    transient, _ = decide(
        connection(two_keys=True), failed(EXCHANGE_DOWN, KeyRole.TRADE), POLICY, T0
    )

    assert single.detail == KEY_REFUSED.cause
    assert transient.detail == EXCHANGE_DOWN.cause


def test_the_permissions_the_exchange_reports_now_are_handed_on_per_key() -> None:
    seen = Observation(permissions={KeyRole.READ: READ_ONLY, KeyRole.TRADE: TRADING})
    update, _ = decide(connection(two_keys=True), seen, POLICY, T0)

    assert update.permissions == {KeyRole.READ: "read", KeyRole.TRADE: "read,spot"}


OUTCOMES = {
    "healthy": healthy(),
    "down": failed(EXCHANGE_DOWN),
    "rate-limited": failed(RATE_LIMITED),
    "timeout": failed(TIMED_OUT),
    "refused": failed(KEY_REFUSED),
}


@given(
    st.lists(st.tuples(st.sampled_from(sorted(OUTCOMES)), st.booleans()), max_size=30),
    st.sampled_from([CONNECTED, ERROR, REAUTH]),
)
def test_a_notice_is_owed_exactly_when_an_announced_check_changes_the_status(
    steps: list[tuple[str, bool]], start: ConnectionStatus
) -> None:
    record = connection(start, streak=0 if start is CONNECTED else 3)
    for name, announce in steps:
        now = record.next_check_at or T0
        update, notice = decide(record, OUTCOMES[name], POLICY, now, announce=announce)

        if announce and update.status is not record.status:
            assert notice is not None
            assert notice.payload["status"] == str(update.status)
            assert notice.payload["previous"] == str(record.status)
            assert (notice.chat_id, notice.connection_id) == (record.chat_id, record.id)
        else:
            assert notice is None
        if update.healthy:
            assert (update.status, update.failure_streak) == (CONNECTED, 0)
            assert update.next_check_at == now + PERIOD
        else:
            assert update.failure_streak == record.failure_streak + 1
            assert update.next_check_at == now + POLICY.retry_after(update.failure_streak)
        record = stored(record, update, now)
