"""``reply_markup`` validation with the real server's limits, and the buttons a user can tap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.sandbox.telegram.errors import bad_request

MAX_CALLBACK_DATA_BYTES = 64
# Button kinds other than callback_data/url; any one of them makes a button valid.
_OTHER_ACTIONS = (
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_BUTTON_ERROR = "can't parse inline keyboard button: "


@dataclass(frozen=True)
class Button:
    """One inline keyboard button as the user sees it."""

    text: str
    data: str | None = None
    url: str | None = None


def parse_reply_markup(markup: Any) -> list[list[Button]]:
    """Rows of inline buttons; reply keyboards and removals are valid but show no buttons."""
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        if any(key in markup for key in ("keyboard", "remove_keyboard", "force_reply")):
            return []
        raise bad_request("can't parse reply keyboard markup JSON object")
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request("can't parse reply keyboard markup JSON object")
    return [[_parse_button(button) for button in row] for row in rows]


def _parse_button(button: Any) -> Button:
    if not isinstance(button, dict):
        raise bad_request(_BUTTON_ERROR + "InlineKeyboardButton must be an Object")
    if "text" not in button:
        raise bad_request(_BUTTON_ERROR + 'Can\'t find field "text"')
    text = button["text"]
    if not isinstance(text, str):
        raise bad_request(_BUTTON_ERROR + 'Field "text" must be of type String')
    if not text.strip():
        raise bad_request("BUTTON_TEXT_INVALID")
    # Telegram treats an empty callback_data or url as absent.
    data = button.get("callback_data") or None
    url = button.get("url") or None
    actions = [name for name in _OTHER_ACTIONS if button.get(name) is not None]
    actions += [name for name, value in (("callback_data", data), ("url", url)) if value]
    if not actions:
        raise bad_request(_BUTTON_ERROR + "Text buttons are unallowed in the inline keyboard")
    if len(actions) > 1:
        # Telegram silently keeps one of them; a button meaning two things is a bug on our side.
        raise bad_request(_BUTTON_ERROR + f"exactly one action field allowed, got {actions}")
    if data is not None and not 1 <= len(str(data).encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
        raise bad_request("BUTTON_DATA_INVALID")
    return Button(text=text, data=str(data) if data else None, url=str(url) if url else None)
