"""Run the sweeps on PTB's JobQueue (APScheduler) and deliver their notices afterwards.

The JobQueue only says "now": what is due is decided by each sweep from the database.
``max_instances=1`` plus the sweeper's own lock mean an overrunning sweep skips ticks instead
of piling up; ``coalesce`` folds ticks missed while the process was busy into one. A poller
that leaves the sweeps to workers delivers the notices they queue on a short period instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from telegram import Bot
from telegram.ext import Application, ContextTypes

from bot.rules.sweeps import Sweeper

SWEEPER_KEY = "coinwarden.sweeper"
#: The job kwargs of every repeating job: skip ticks rather than pile them up.
_ONE_AT_A_TIME = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}


def sweeper_of(application: Application) -> Sweeper:
    found = application.bot_data[SWEEPER_KEY]
    assert isinstance(found, Sweeper)
    return found


async def _tick(context: ContextTypes.DEFAULT_TYPE) -> None:
    assert context.job is not None and isinstance(context.job.data, str)
    await sweeper_of(context.application).run(context.job.data)


def schedule_sweeps(application: Application, periods: dict[str, timedelta]) -> None:
    """One repeating job per sweep; the first tick comes one period after the start."""
    job_queue = application.job_queue
    assert job_queue is not None, "install python-telegram-bot[job-queue]"
    for name, period in periods.items():
        job_queue.run_repeating(
            _tick,
            interval=period,
            first=period,
            data=name,
            name=f"sweep:{name}",
            job_kwargs=_ONE_AT_A_TIME,
        )


async def _deliver(context: ContextTypes.DEFAULT_TYPE) -> None:
    assert context.job is not None and callable(context.job.data)
    await context.job.data(context.bot)


def schedule_delivery(
    application: Application, period: timedelta, deliver: Callable[[Bot], Awaitable[object]]
) -> None:
    """Deliver the outbox every ``period`` (the notices other processes queued)."""
    job_queue = application.job_queue
    assert job_queue is not None, "install python-telegram-bot[job-queue]"
    job_queue.run_repeating(
        _deliver,
        interval=period,
        first=period,
        data=deliver,
        name="deliver",
        job_kwargs=_ONE_AT_A_TIME,
    )
