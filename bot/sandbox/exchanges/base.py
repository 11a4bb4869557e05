"""What every local venue server shares: HTTP lifecycle, demo accounts and keys, prices, faults.

A venue subclass adds its routes, its way of authenticating a request and its error shapes; the
state here (keys, balances, prices, injected faults) is venue-independent, so a test drives every
venue the same way. Servers bind 127.0.0.1 only and are real HTTP, so ccxt runs unmodified.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
import secrets
import string
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from storage.credentials import mask

Permission = Literal["read", "spot_trade", "futures_trade", "withdraw", "internal_transfer"]
PublicHandler = Callable[[web.Request], Awaitable[Any]]
PrivateHandler = Callable[[web.Request, "KeyRecord"], Awaitable[Any]]

#: Where a caller of an IP-restricted demo key is trusted by default: this machine.
LOCAL_IPS = frozenset({"127.0.0.1", "::1"})

DEMO_BALANCES: Mapping[str, Decimal] = {
    "BTC": Decimal("0.52340000"),
    "ETH": Decimal("4.18200000"),
    "USDT": Decimal("12500.00000000"),
}

#: Last prices a demo market starts from (roughly real, so portfolio values look plausible).
DEMO_PRICES: Mapping[str, Decimal] = {
    "BTC/USDT": Decimal("73369.84"),
    "ETH/USDT": Decimal("3990.12"),
    "ADA/USDT": Decimal("0.7210"),
    "LTC/USDT": Decimal("98.52"),
    "XRP/USDT": Decimal("0.6213"),
    "DOGE/USDT": Decimal("0.17215"),
    "TRX/USDT": Decimal("0.1236"),
}

_DEMO_QUOTE_VOLUME = Decimal("250000000")  # 24 h turnover a market starts with, in quote units
_STEP_SIGMA = 0.002  # standard deviation of one step_prices move


def find_reference_dir() -> Path:
    """The recorded ccxt payloads shipped with this package (a copy of ``shared/reference``)."""
    path = Path(__file__).resolve().parents[1] / "reference" / "ccxt-static"
    if not path.is_dir():
        raise FileNotFoundError(f"no recorded exchange data at {path}; reinstall the package")
    return path


@dataclass(frozen=True)
class DemoPermissions:
    """What a demo key may do, named like the venues' key-creation screens."""

    read: bool = True
    spot_trade: bool = False
    futures_trade: bool = False
    withdraw: bool = False
    internal_transfer: bool = False
    ip_restricted: bool = False


@dataclass(frozen=True, repr=False)
class DemoKey:
    """Key material as a user would paste it; ``repr`` shows only a masked key id."""

    api_key: str
    secret: str
    passphrase: str | None = None

    def __repr__(self) -> str:
        return f"DemoKey(api_key={mask(self.api_key)!r}, secret=***, passphrase=***)"

    __str__ = __repr__


@dataclass(frozen=True)
class Balance:
    """One asset of an account; ``used`` is what open orders hold (Binance's ``locked``)."""

    free: Decimal
    used: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        return self.free + self.used


@dataclass
class DemoAccount:
    """One exchange account; several keys may point at it, as on a real venue."""

    name: str
    uid: int
    balances: dict[str, Balance]
    updated_ms: int


@dataclass
class KeyRecord:
    """The server's view of an issued key."""

    key: DemoKey
    account: DemoAccount
    permissions: DemoPermissions
    created_ms: int
    revoked: bool = False
    trusted_ips: frozenset[str] = LOCAL_IPS


@dataclass
class PriceStats:
    """A market's rolling 24 h statistics, enough for any venue's ticker shape."""

    last: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal
    trades: int

    def move_to(self, price: Decimal) -> None:
        self.last = price
        self.high = max(self.high, price)
        self.low = min(self.low, price)

    @property
    def quote_volume(self) -> Decimal:
        return self.volume * (self.open + self.last) / 2


@dataclass(frozen=True)
class LoggedRequest:
    """What the server remembers of a request: never headers, query strings, bodies or keys."""

    time: float
    method: str
    path: str
    status: int


class VenueError(Exception):
    """An answer in the venue's own error shape, raised from anywhere in a handler.

    ``body`` is JSON-serialisable, or a ``str`` sent as-is (HTML pages, plain-text gateway errors).
    """

    def __init__(
        self,
        status: int,
        body: object,
        headers: Mapping[str, str] | None = None,
        content_type: str = "text/html",
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.content_type = content_type

    def response(self) -> web.Response:
        if isinstance(self.body, str):
            return web.Response(
                status=self.status,
                text=self.body,
                headers=self.headers,
                content_type=self.content_type,
            )
        return json_response(self.body, status=self.status, headers=self.headers)


def json_response(
    payload: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Compact JSON, as exchanges send it."""
    return web.json_response(
        payload,
        status=status,
        headers=headers,
        dumps=lambda obj: json.dumps(obj, separators=(",", ":")),
    )


def random_alnum(length: int) -> str:
    """Letters and digits from the OS's CSPRNG, the alphabet most venues use for key ids."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


class VenueServer(ABC):
    """Base of the local venue servers; subclasses add routes, authentication and error shapes.

    Use as ``async with BinanceServer() as server:``; point ccxt at ``server.base_url``.
    """

    #: ccxt id of the venue this server imitates.
    venue_id: ClassVar[str]
    #: What the venue accepts as an API key id; issued and explicit keys must match it.
    key_format: ClassVar[re.Pattern[str]] = re.compile(r"[A-Za-z0-9]{64}")
    #: On stop, requests still in flight (e.g. held by ``set_delay``) get this long to finish.
    shutdown_timeout: ClassVar[float] = 0.5

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, reference_dir: Path | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.reference_dir = reference_dir or find_reference_dir()
        #: Added to the server's clock: positive means the venue runs ahead of this machine.
        self.clock_offset_ms = 0
        self.request_log: list[LoggedRequest] = []
        self.accounts: dict[str, DemoAccount] = {}
        self.prices: dict[str, PriceStats] = {}
        self._keys: dict[str, KeyRecord] = {}
        self._faults: deque[VenueError] = deque()
        self._delay = 0.0
        self._runner: web.AppRunner | None = None
        self.account("demo")

    # ----- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware()])
        self.add_routes(app.router)
        # access_log=None: aiohttp's access log prints query strings, which carry signatures.
        runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=self.shutdown_timeout,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._runner is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self.host}:{self.port}"

    def server_time_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    # ----- accounts and keys -----------------------------------------------------------------

    def account(self, name: str) -> DemoAccount:
        """The named account, opened with the demo balances on first use."""
        if name not in self.accounts:
            self.accounts[name] = DemoAccount(
                name=name,
                uid=secrets.randbelow(900_000_000) + 100_000_000,
                balances={asset: Balance(free) for asset, free in DEMO_BALANCES.items()},
                updated_ms=self.server_time_ms(),
            )
        return self.accounts[name]

    def set_balance(
        self, account: str, asset: str, free: Decimal | float | str, used: Decimal | float | str = 0
    ) -> None:
        target = self.account(account)
        target.balances[asset] = Balance(Decimal(str(free)), Decimal(str(used)))
        target.updated_ms = self.server_time_ms()

    def new_key_material(self, with_passphrase: bool) -> DemoKey:
        """Fresh random key material in the venue's format; subclasses override the shape."""
        return DemoKey(
            api_key=random_alnum(64),
            secret=random_alnum(64),
            passphrase=random_alnum(16) if with_passphrase else None,
        )

    def issue_key(
        self,
        permissions: DemoPermissions | None = None,
        *,
        account: str = "demo",
        with_passphrase: bool = False,
        material: DemoKey | None = None,
    ) -> DemoKey:
        """Create a key on ``account``; pass ``material`` to use chosen (canary) values."""
        key = material or self.new_key_material(with_passphrase)
        if not self.key_format.fullmatch(key.api_key):
            raise ValueError(f"{self.venue_id} would reject that API key format")
        if key.api_key in self._keys:
            raise ValueError("that API key is already issued")
        self._keys[key.api_key] = KeyRecord(
            key=key,
            account=self.account(account),
            permissions=permissions or DemoPermissions(),
            created_ms=self.server_time_ms(),
        )
        return key

    def key_record(self, api_key: str) -> KeyRecord | None:
        """The issued key with this id (revoked or not), for subclasses and tests."""
        return self._keys.get(api_key)

    def _issued(self, api_key: str) -> KeyRecord:
        record = self._keys.get(api_key)
        if record is None:
            raise KeyError("no such demo key")
        return record

    def revoke_key(self, api_key: str) -> None:
        self._issued(api_key).revoked = True

    def restore_key(self, api_key: str) -> None:
        self._issued(api_key).revoked = False

    def set_permissions(self, api_key: str, **flags: bool) -> DemoPermissions:
        """Change some flags of a key, e.g. ``set_permissions(key, withdraw=True)``."""
        record = self._issued(api_key)
        record.permissions = dataclasses.replace(record.permissions, **flags)
        return record.permissions

    def set_trusted_ips(self, api_key: str, ips: Iterable[str]) -> None:
        """Whitelist for an IP-restricted key; leave out 127.0.0.1 to refuse the local caller."""
        self._issued(api_key).trusted_ips = frozenset(ips)

    def authorize(self, record: KeyRecord | None, request: web.Request, needs: Permission) -> bool:
        """True if the key is live, may be used from the caller's IP and holds ``needs``."""
        if record is None or record.revoked:
            return False
        if record.permissions.ip_restricted and request.remote not in record.trusted_ips:
            return False
        return bool(getattr(record.permissions, needs))

    # ----- prices ----------------------------------------------------------------------------

    def set_price(self, symbol: str, price: Decimal | float | str) -> None:
        """Set the last price of a unified symbol (``BTC/USDT``); the first call opens its day."""
        value = Decimal(str(price))
        stats = self.prices.get(symbol)
        if stats is None:
            self.prices[symbol] = PriceStats(
                last=value,
                open=value,
                high=value,
                low=value,
                volume=(_DEMO_QUOTE_VOLUME / value).quantize(Decimal("1e-8")),
                trades=secrets.randbelow(2_000_000) + 500_000,
            )
        else:
            stats.move_to(value)

    def step_prices(self, rng: random.Random) -> None:
        """One small random-walk step for every market (a few tenths of a percent)."""
        for stats in self.prices.values():
            factor = Decimal(str(1 + rng.gauss(0, _STEP_SIGMA)))
            stats.move_to((stats.last * factor).quantize(Decimal("1e-8")))
            stats.volume += (stats.volume * Decimal(str(rng.uniform(0, 1e-4)))).quantize(
                Decimal("1e-8")
            )
            stats.trades += rng.randint(1, 50)

    # ----- fault injection -------------------------------------------------------------------

    def fail_next(self, times: int = 1, status: int = 503, body: object | None = None) -> None:
        """Answer the next ``times`` requests with ``status``: the venue's own body unless given."""
        error = self.fault(status) if body is None else VenueError(status, body)
        self._faults.extend([error] * times)

    def set_delay(self, seconds: float) -> None:
        """Hold every response this long (0 to stop), to run clients into their timeouts."""
        self._delay = seconds

    # ----- hooks for venue subclasses --------------------------------------------------------

    @abstractmethod
    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the venue's endpoints, wrapped with :meth:`public` or :meth:`private`."""

    @abstractmethod
    async def authenticate(self, request: web.Request, needs: Permission) -> KeyRecord:
        """Check the request's credentials the venue's way; raise :class:`VenueError` if refused."""

    def fault(self, status: int) -> VenueError:
        """The body the venue sends with ``status`` when it fails (override per venue)."""
        return VenueError(status, {"error": HTTPStatus(status).phrase})

    def not_found(self, request: web.Request) -> VenueError:
        """The venue's answer to a path it does not serve."""
        return VenueError(404, "Not Found", content_type="text/plain")

    def render(self, payload: object) -> web.Response:
        """Wrap a handler's payload (venues with an envelope override this)."""
        return json_response(payload)

    def public(self, handler: PublicHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def endpoint(request: web.Request) -> web.Response:
            return self.render(await handler(request))

        return endpoint

    def private(
        self, handler: PrivateHandler, needs: Permission = "read"
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """An endpoint that runs only for an authenticated key holding ``needs``."""

        async def endpoint(request: web.Request) -> web.Response:
            record = await self.authenticate(request, needs)
            return self.render(await handler(request, record))

        return endpoint

    # ----- request pipeline ------------------------------------------------------------------

    def _middleware(self) -> Middleware:
        @web.middleware
        async def log_and_answer(request: web.Request, handler: Handler) -> web.StreamResponse:
            status = 500
            try:
                response = await self._answer(request, handler)
                status = response.status
                return response
            except asyncio.CancelledError:
                status = 499  # the client gave up (its timeout) before the answer was ready
                raise
            finally:
                self.request_log.append(
                    LoggedRequest(time.time(), request.method, request.path, status)
                )

        return log_and_answer

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Delay, injected faults and venue-shaped errors, around the endpoint itself."""
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._faults:
            return self._faults.popleft().response()
        try:
            return await handler(request)
        except VenueError as error:
            return error.response()
        except web.HTTPNotFound:
            return self.not_found(request).response()
