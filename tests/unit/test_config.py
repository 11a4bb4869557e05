"""Settings: the defaults of DESIGN.md, and one clear line naming the variable when wrong."""

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings


def test_defaults() -> None:
    settings = load_settings()
    assert settings.telegram_api_url == "https://api.telegram.org/bot"
    assert settings.data_dir == Path("data")
    assert settings.effective_database_url == "sqlite+aiosqlite:///data/coinwarden.db"
    assert settings.sync_seconds == 60
    assert settings.permission_check_seconds == 3600
    assert settings.max_connections_per_chat == 10
    assert settings.exchange_endpoints == {} and settings.allowed_users == []
    assert settings.exchange_pacing is True


def test_lists_and_json_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINWARDEN_ALLOWED_USERS", "1001, 2002")
    monkeypatch.setenv("COINWARDEN_OUTBOUND_IPS", "203.0.113.5,203.0.113.6")
    monkeypatch.setenv("COINWARDEN_EXCHANGE_ENDPOINTS", '{"binance": "http://127.0.0.1:8081"}')
    monkeypatch.setenv("COINWARDEN_EXCHANGE_PACING", "false")
    settings = load_settings()
    assert settings.exchange_pacing is False
    assert settings.allowed_users == [1001, 2002]
    assert settings.outbound_ips == ["203.0.113.5", "203.0.113.6"]
    assert settings.exchange_endpoints == {"binance": "http://127.0.0.1:8081"}


def test_dotenv_is_read_and_empty_values_mean_default(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "COINWARDEN_MAX_CONNECTIONS_PER_CHAT=3\nCOINWARDEN_MASTER_KEY_FILE=\n"
    )
    settings = load_settings()
    assert settings.max_connections_per_chat == 3
    assert settings.master_key_file is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("COINWARDEN_EXCHANGE_ENDPOINTS", "{not json"),
        ("COINWARDEN_EXCHANGE_ENDPOINTS", '["binance"]'),
        ("COINWARDEN_EXCHANGE_ENDPOINTS", '{"binance": "ftp://x"}'),
        ("COINWARDEN_ALLOWED_USERS", "alice"),
        ("COINWARDEN_HEALTH_CHECK_SECONDS", "0"),
        ("COINWARDEN_LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(variable + ":") and "\n" not in message


def test_a_missing_token_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="COINWARDEN_TELEGRAM_TOKEN"):
        load_settings().require_token()


def test_an_unwritable_data_dir_names_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="COINWARDEN_DATA_DIR"):
        load_settings(data_dir=blocker / "sub").ensure_data_dir()


def test_the_balance_period_takes_the_older_health_check_name_too() -> None:
    assert load_settings(health_check_seconds=7).sync_seconds == 7
    assert load_settings(balance_sync_seconds=9, health_check_seconds=7).sync_seconds == 9
