"""The Bot API method table from ``shared/reference/telegram-bot-api-spec/api.json``.

The local server checks every request against it: the method must exist, required fields must be
present, and values are converted from the wire (form fields are strings, nested objects are JSON
strings) to the types the spec declares, like the real server does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.sandbox.telegram.errors import bad_request

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"
_INTEGER = re.compile(r"-?\d+")
_SCALAR_TYPES = frozenset({"String", "Integer", "Float", "Boolean", "InputFile"})
# Texts the real server answers when a required field is missing; others use the generic form.
_MISSING_FIELD = {
    "chat_id": "chat_id is empty",
    "text": "message text is empty",
    "message_id": "message identifier is not specified",
    "callback_query_id": "query is too old and response timeout expired or query ID is invalid",
    "photo": "there is no photo in the request",
    "document": "there is no document in the request",
    "action": "wrong parameter action in request",
    "user_id": "invalid user_id specified",
}


class SpecNotFoundError(FileNotFoundError):
    """The spec file is missing: the server refuses to run unchecked."""


@dataclass(frozen=True)
class UploadedFile:
    """A file sent as a multipart part (the spec's ``InputFile``)."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class FieldSpec:
    """One parameter of a method, as the spec declares it."""

    name: str
    types: tuple[str, ...]
    required: bool

    def coerce(self, value: Any) -> Any:
        """The wire value converted to the declared type (form values arrive as strings)."""
        if not isinstance(value, str):  # JSON bodies are typed already; files stay files
            if self.types == ("String",) and type(value) in (int, float):
                return str(value)
            return value
        if "Integer" in self.types:
            if _INTEGER.fullmatch(value.strip()):
                return int(value)
            if "String" in self.types:
                return value
            raise bad_request(f"{self.name} is invalid")
        if "Float" in self.types:
            try:
                return float(value)
            except ValueError:
                raise bad_request(f"{self.name} is invalid") from None
        if "Boolean" in self.types:
            return value.strip().lower() in ("true", "1")
        if set(self.types) <= _SCALAR_TYPES:
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            what = "reply keyboard markup" if self.name == "reply_markup" else self.name
            raise bad_request(f"can't parse {what} JSON object") from None


@dataclass(frozen=True)
class MethodSpec:
    """A Bot API method: its canonical name and its parameters."""

    name: str
    fields: dict[str, FieldSpec]

    def coerce(self, params: dict[str, Any]) -> dict[str, Any]:
        """Typed parameters; fields the spec does not know are kept as sent (Telegram ignores
        them)."""
        return {
            key: self.fields[key].coerce(value) if key in self.fields else value
            for key, value in params.items()
        }

    def check_required(self, params: dict[str, Any]) -> None:
        """Raise the real server's error for the first missing required field."""
        for field in self.fields.values():
            if field.required and params.get(field.name) in (None, ""):
                reason = _MISSING_FIELD.get(field.name, f'parameter "{field.name}" is required')
                raise bad_request(reason)


class BotApiSpec:
    """All methods of the Bot API, looked up case-insensitively like the real server."""

    def __init__(self, version: str, methods: dict[str, MethodSpec]) -> None:
        self.version = version
        self._methods = {name.lower(): method for name, method in methods.items()}

    @classmethod
    def load(cls, path: Path | None = None) -> BotApiSpec:
        """Read the spec; without a path, find it next to the repository."""
        spec_path = path if path is not None else find_spec_path()
        if not spec_path.is_file():
            raise SpecNotFoundError(f"Telegram Bot API spec not found at {spec_path}")
        raw = json.loads(spec_path.read_text(encoding="utf-8"))
        methods = {
            name: MethodSpec(
                name=name,
                fields={
                    f["name"]: FieldSpec(f["name"], tuple(f["types"]), bool(f["required"]))
                    for f in method.get("fields", [])
                },
            )
            for name, method in raw["methods"].items()
        }
        return cls(str(raw.get("version", "unknown")), methods)

    def method(self, name: str) -> MethodSpec | None:
        """The method called ``name`` in any letter case, or None."""
        return self._methods.get(name.lower())


def find_spec_path() -> Path:
    """The spec shipped with this package (a copy of ``shared/reference``; see its README)."""
    path = REFERENCE_DIR / "telegram-bot-api-spec" / "api.json"
    if not path.is_file():
        raise SpecNotFoundError(f"Telegram Bot API spec not found at {path}; reinstall the package")
    return path
