"""Rewrite every REST URL of a ccxt exchange to another base (proxy, mirror, local test server).

`COINWARDEN_EXCHANGE_ENDPOINTS` maps a ccxt id to a base such as ``http://127.0.0.1:8081``; the
scheme and host of each URL are replaced and the path is kept, so one server per venue can answer
every API family of that venue (``/api/v3``, ``/sapi/v1``, ``/fapi/v1``, ...).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt


def rewrite_url(url: str, base: str) -> str:
    """Keep the path (and query) of ``url`` and put it under ``base``."""
    parts = urlsplit(url)
    path = parts.path if parts.netloc else ""
    rewritten = base.rstrip("/") + path
    if parts.query:
        rewritten += "?" + parts.query
    return rewritten


def rewrite_api_urls(api: Any, base: str) -> Any:
    """Walk ccxt's nested ``urls['api']`` structure and rewrite every URL string in it."""
    if isinstance(api, str):
        return rewrite_url(api, base)
    if isinstance(api, dict):
        return {key: rewrite_api_urls(value, base) for key, value in api.items()}
    return api


def point_exchange_at(exchange: ccxt.Exchange, base: str) -> None:
    """Send all of ``exchange``'s REST traffic to ``base``.

    Call after ``set_sandbox_mode`` (which swaps ``urls['api']`` for ``urls['test']``).
    """
    exchange.urls["api"] = rewrite_api_urls(exchange.urls["api"], base)
    # Some venues resolve '{hostname}' at request time; the rewrite already removed it.
    exchange.hostname = urlsplit(base).netloc
