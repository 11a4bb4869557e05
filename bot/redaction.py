"""Logging that cannot leak: a filter that blanks every secret the process holds.

Secrets are registered as they enter memory (bot token, master keys, pasted or decrypted API
credentials). Records are scrubbed when they are created (a log-record factory), so every
handler sees the same clean text, and the fully formatted message, exception text included, is
scrubbed: a secret that slips into an f-string or a library's error message is still caught.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable
from typing import Any

MASK = "[REDACTED]"
MIN_SECRET_LENGTH = 6  # shorter values would blank ordinary words


class SecretRedactor:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._installed = False

    def install(self) -> None:
        """Scrub every log record of the process from now on (idempotent)."""
        if self._installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            self.scrub(record)
            return record

        logging.setLogRecordFactory(factory)
        self._installed = True

    def add(self, *secrets: str | None) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)

    def discard(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets.difference_update(secrets)

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def scrub(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self.redact(message), None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)


# One per process: the log-record factory is process-wide too.
REDACTOR = SecretRedactor()


# Loggers that would print URLs with the bot token, request bodies, or chatty internals at INFO.
QUIET_LOGGERS = ("httpx", "httpcore", "telegram", "apscheduler", "ccxt", "aiohttp.access")


def configure_logging(level: str) -> None:
    """One stderr handler, redaction on, and the libraries that leak kept quiet."""
    REDACTOR.install()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
