"""Every secret the process holds is blanked in every log record, tracebacks included."""

import logging

import pytest

from bot.redaction import MASK, REDACTOR, configure_logging


def test_secrets_are_blanked_in_messages_args_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    REDACTOR.install()
    REDACTOR.add("CANARY-redaction-secret-1", "CANARY-redaction-token-2")
    log = logging.getLogger("test.redaction")
    with caplog.at_level(logging.INFO):
        log.info("key is %s", "CANARY-redaction-secret-1")
        log.info("url https://api.telegram.org/botCANARY-redaction-token-2/getMe")
        try:
            raise RuntimeError("failed with CANARY-redaction-secret-1")
        except RuntimeError:
            log.exception("boom")
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "CANARY-redaction" not in text
    assert MASK in text


def test_short_values_are_not_treated_as_secrets() -> None:
    REDACTOR.add("abc")
    assert REDACTOR.redact("abc def") == "abc def"


def test_noisy_libraries_are_quiet_at_info() -> None:
    configure_logging("INFO")
    for name in ("httpx", "telegram", "ccxt"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO)
