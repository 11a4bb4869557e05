"""Permission probes: one module per venue, each turning the venue's own answer into a summary.

A probe takes a ccxt exchange that already carries the key and returns a ``PermissionSummary``.
Each module also exposes a pure ``summarize(payload)`` that the unit tests feed recorded payloads.
"""

from collections.abc import Awaitable, Callable

import ccxt.async_support as ccxt

from bot.exchanges.permissions import PermissionSummary

PermissionProbe = Callable[[ccxt.Exchange], Awaitable[PermissionSummary]]
