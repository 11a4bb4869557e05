"""A local Telegram Bot API server over real HTTP on 127.0.0.1, for e2e tests and the sandbox.

The production ``Application`` talks to it with ``.base_url(server.base_url)``; PTB appends the
token, so requests arrive as ``POST /bot{token}/{method}``. Every request is checked against the
Bot API spec and the real limits; every refusal is kept in ``violations`` so a test can assert
that the bot never did anything real Telegram would reject.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from bot.sandbox.telegram.chat import Chat, ChatEvent, ChatType, TelegramUser
from bot.sandbox.telegram.driver import ChatDriver
from bot.sandbox.telegram.errors import ApiError, Violation, bad_request, summarize
from bot.sandbox.telegram.methods import BotApi
from bot.sandbox.telegram.spec import BotApiSpec, UploadedFile

MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # the Bot API's upload limit


@dataclass(frozen=True)
class ApiCall:
    """One request the bot made; ``params`` exactly as sent (form values are strings)."""

    method: str
    params: dict[str, Any]


class InjectedFailure(ApiError):
    """An error a test asked for with ``fail_next``: answered, but not a violation."""


class TelegramServer:
    """Telegram for one bot: start it, point the bot at ``base_url``, drive chats."""

    def __init__(
        self,
        token: str,
        *,
        bot_username: str = "coinwarden_test_bot",
        bot_name: str = "Coinwarden",
        flood_limit_per_second: int = 20,
        overall_limit_per_second: int | None = None,
        spec_path: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        bot_id, _, secret = token.partition(":")
        if not bot_id.isdigit() or not secret:
            raise ValueError("a bot token looks like '123456:secret'")
        self.token = token
        self.host = host
        self.calls: list[ApiCall] = []
        self.violations: list[Violation] = []
        self.api = BotApi(
            TelegramUser(int(bot_id), bot_name, is_bot=True, username=bot_username),
            flood_limit_per_second=flood_limit_per_second,
            violations=self.violations,
            overall_limit_per_second=overall_limit_per_second,
        )
        self._spec_path = spec_path
        self._spec: BotApiSpec | None = None
        self._port = port
        self._runner: web.AppRunner | None = None
        self._failures: dict[str, list[InjectedFailure]] = {}

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the spec (``SpecNotFoundError`` if missing) and listen on ``host``."""
        self._spec = BotApiSpec.load(self._spec_path)
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self._port))
        self._port = listener.getsockname()[1]
        await web.SockSite(self._runner, listener).start()

    async def stop(self) -> None:
        """Answer pending long polls at once, then close every connection."""
        self.api.updates.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TelegramServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """What to pass to ``ApplicationBuilder().base_url(...)`` / ``Bot(base_url=...)``."""
        if self._runner is None:
            raise RuntimeError("TelegramServer is not started")
        return f"http://{self.host}:{self._port}/bot"

    @property
    def bot(self) -> TelegramUser:
        """The bot's own account (getMe)."""
        return self.api.bot

    # --- chats -----------------------------------------------------------------------------

    def private_chat(
        self, user_id: int, first_name: str = "Trader", username: str | None = None
    ) -> ChatDriver:
        """A user's private chat with the bot (created on first use; chat id == user id)."""
        if user_id <= 0:
            raise ValueError("user ids are positive")
        chat = self.api.chats.get(user_id)
        if chat is None:
            user = TelegramUser(user_id, first_name, username=username)
            chat = Chat(user_id, "private", None, {user_id: user})
            self.api.chats[user_id] = chat
        return ChatDriver(self.api, chat, chat.members[user_id])

    def group_chat(
        self,
        chat_id: int,
        title: str = "Traders",
        user_id: int = 1001,
        first_name: str = "Trader",
        *,
        bot_can_delete: bool = False,
        supergroup: bool = False,
    ) -> ChatDriver:
        """A group with the bot in it, seen by ``user_id``; call again for more members.
        ``bot_can_delete`` makes the bot an admin allowed to delete others' messages."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        chat = self.api.chats.get(chat_id)
        if chat is None:
            kind: ChatType = "supergroup" if supergroup else "group"
            chat = Chat(chat_id, kind, title, {}, bot_can_delete=bot_can_delete)
            self.api.chats[chat_id] = chat
        user = chat.members.setdefault(user_id, TelegramUser(user_id, first_name))
        return ChatDriver(self.api, chat, user)

    def block_bot(self, chat_id: int) -> None:
        """The user blocks the bot: sends to this private chat get 403 until unblocked."""
        self._private(chat_id).bot_blocked = True

    def unblock_bot(self, chat_id: int) -> None:
        """The user unblocks the bot."""
        self._private(chat_id).bot_blocked = False

    def subscribe(self, callback: Callable[[ChatEvent], None]) -> Callable[[], None]:
        """Get every chat event as it happens (the terminal sandbox); returns unsubscribe."""
        return self.api.subscribe(callback)

    # --- what the bot did ------------------------------------------------------------------

    @property
    def commands(self) -> dict[str, str]:
        """The default command menu the bot registered (setMyCommands): command -> description."""
        return self.api.commands_for(None, "")

    def commands_for(self, scope: dict[str, Any] | None, language_code: str = "") -> dict[str, str]:
        """The command menu registered for a specific scope/language."""
        return self.api.commands_for(scope, language_code)

    def fail_next(
        self,
        method: str,
        *,
        error_code: int = 400,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with this error (not a violation)."""
        if error_code == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            description = (
                f"Too Many Requests: retry after {retry_after}"
                if error_code == 429
                else f"Error {error_code}: injected by the test"
            )
        failures = self._failures.setdefault(method.lower(), [])
        failures.extend(InjectedFailure(error_code, description, retry_after) for _ in range(times))

    # --- HTTP ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        params: dict[str, Any] = {}
        try:
            assert self._spec is not None  # routes exist only after start()
            method = self._spec.method(name)
            name = method.name if method is not None else name
            params = await _read_params(request)
            self.calls.append(ApiCall(name, params))
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            if method is None:
                raise ApiError(404, "Not Found")
            failures = self._failures.get(name.lower())
            if failures:
                raise failures.pop(0)
            handler = self.api.handler(name)
            typed = method.coerce(params)
            method.check_required(typed)
            result = await handler(typed)
        except ApiError as error:
            if not isinstance(error, InjectedFailure):
                self.violations.append(Violation(name, error.description, summarize(params)))
            return web.json_response(error.to_json(), status=error.error_code)
        except Exception as error:  # a bug in this server must fail the test, not hide in a log
            description = f"Internal Server Error: {error!r}"
            self.violations.append(Violation(name, description, summarize(params)))
            return web.json_response(ApiError(500, description).to_json(), status=500)
        return web.json_response({"ok": True, "result": result})

    def _private(self, chat_id: int) -> Chat:
        chat = self.api.chats.get(chat_id)
        if chat is None or chat.type != "private":
            raise ValueError(f"{chat_id} is not a private chat of this server")
        return chat


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Query string plus body, which may be JSON, url-encoded or multipart (as Telegram allows)."""
    params: dict[str, Any] = dict(request.query)
    if not request.can_read_body:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except json.JSONDecodeError:
            raise bad_request("can't parse JSON encoded request") from None
        if not isinstance(body, dict):
            raise bad_request("JSON object expected")
        params.update(body)
        return params
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, web.FileField):
            params[key] = UploadedFile(value.filename, value.content_type, value.file.read())
        elif isinstance(value, bytes | bytearray):
            params[key] = bytes(value).decode("utf-8")
        else:
            params[key] = value
    return params
