"""Settings from the environment (and `.env`), with the defaults of DESIGN.md.

Bad configuration is a `ConfigError` whose text names the variable; the CLI prints that one
line and exits with status 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "COINWARDEN_"
DEFAULT_SYNC_SECONDS = 60


class ConfigError(Exception):
    """Configuration that cannot work; the message names the variable and what to do."""


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every variable is documented in `.env.example`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        hide_input_in_errors=True,
    )

    telegram_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"
    data_dir: Path = Path("./data")
    database_url: str | None = None
    master_key: SecretStr | None = None
    master_key_file: Path | None = None
    previous_master_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    allowed_users: Annotated[list[int], NoDecode] = Field(default_factory=list)
    exchange_endpoints: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    exchange_pacing: bool = True  # ccxt spaces each client's calls (off: local servers only)
    outbound_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)
    balance_sync_seconds: int | None = Field(default=None, ge=1)
    health_check_seconds: int | None = Field(default=None, ge=1)  # the older name of the above
    permission_check_seconds: int = Field(default=3600, ge=1)
    key_rotation_days: int = Field(default=90, ge=1)
    key_reminder_repeat_days: int = Field(default=30, ge=1)
    max_connections_per_chat: int = Field(default=10, ge=1, le=1000)
    max_alerts_per_chat: int = Field(default=50, ge=1, le=1000)
    proposal_ttl_seconds: int = Field(default=900, ge=10, le=86400)
    log_level: str = "INFO"
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    webhook_secret: SecretStr | None = None
    # Scale-out: several processes on one database (README "Scaling out").
    sweeps: bool = True  # False: this poller leaves the sweeps to `python -m bot worker`
    worker_id: str | None = Field(default=None, min_length=1, max_length=64)
    lease_seconds: int = Field(default=120, ge=3, le=3600)
    venue_budgets: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)

    _split = field_validator(
        "previous_master_keys", "allowed_users", "outbound_ips", mode="before"
    )(_split_commas)

    @field_validator("exchange_endpoints", mode="before")
    @classmethod
    def _parse_endpoints(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc.msg})") from None
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.startswith(("http://", "https://"))
            for k, v in value.items()
        ):
            raise ValueError('expected a JSON object like {"binance": "http://127.0.0.1:8081"}')
        return value

    @field_validator("venue_budgets", mode="before")
    @classmethod
    def _parse_budgets(cls, value: Any) -> Any:
        """``binance=10,kraken=1``: calls per second this process may spend on each venue."""
        if not isinstance(value, str):
            return value
        from bot.exchanges.catalogue import VENUES  # here only: settings load without ccxt

        budgets: dict[str, float] = {}
        for part in filter(None, (part.strip() for part in value.split(","))):
            venue, _, rate = part.partition("=")
            venue = venue.strip()
            if venue not in VENUES:
                raise ValueError(f"unknown venue {venue!r} (known: {', '.join(sorted(VENUES))})")
            try:
                budgets[venue] = float(rate)
            except ValueError:
                raise ValueError(
                    f"{part!r}: expected venue=calls per second, e.g. binance=10"
                ) from None
            if not 0 < budgets[venue] < float("inf"):
                raise ValueError(f"{part!r}: calls per second must be above 0")
        return budgets

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @property
    def sync_seconds(self) -> int:
        """The balance read period, which is also the health check period (one signed call)."""
        return self.balance_sync_seconds or self.health_check_seconds or DEFAULT_SYNC_SECONDS

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'coinwarden.db'}"

    def require_token(self) -> str:
        if self.telegram_token is None or not self.telegram_token.get_secret_value().strip():
            raise ConfigError(
                f"{ENV_PREFIX}TELEGRAM_TOKEN is not set: create a bot with @BotFather and put "
                "its token in the environment or in .env"
            )
        return self.telegram_token.get_secret_value().strip()

    def ensure_data_dir(self) -> None:
        """Create the data dir and prove it is writable, before anything else touches it."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            probe = self.data_dir / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"{ENV_PREFIX}DATA_DIR={self.data_dir} is not writable ({exc.strerror}): "
                "point it at a directory this user can write"
            ) from None


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning validation errors into one line that names the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{ENV_PREFIX}{field.upper()}: {message}") from None
