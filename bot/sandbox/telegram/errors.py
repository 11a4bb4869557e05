"""Bot API error answers, and the record of each one the bot provoked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """An error answer exactly as the Bot API sends it (``ok: false``)."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def to_json(self) -> dict[str, Any]:
        """The response body."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(reason: str) -> ApiError:
    """HTTP 400 with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {reason}")


@dataclass(frozen=True)
class Violation:
    """Something the bot did that real Telegram would refuse (or that we cannot check)."""

    method: str
    description: str
    params: str  # short summary, enough to find the call site

    def __str__(self) -> str:
        return f"{self.method}: {self.description} ({self.params})"


def summarize(params: dict[str, Any], limit: int = 240) -> str:
    """A one-line view of request parameters for violation reports (files shown by size)."""
    parts = []
    for key, value in params.items():
        data = getattr(value, "data", None)
        shown = f"<{len(data)} bytes>" if isinstance(data, bytes) else repr(value)
        parts.append(f"{key}={shown if len(shown) <= 60 else shown[:57] + '...'}")
    line = ", ".join(parts)
    return line if len(line) <= limit else line[: limit - 3] + "..."
