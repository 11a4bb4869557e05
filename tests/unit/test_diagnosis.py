"""The diagnosis table: what each kind of exchange failure means for the user."""

import ccxt.async_support as ccxt
import pytest

from bot.exchanges.diagnosis import diagnose, exchange_message
from storage.connections import ConnectionStatus

REAUTH, ERROR = ConnectionStatus.REAUTH, ConnectionStatus.ERROR


@pytest.mark.parametrize(
    ("exc", "status", "final", "cause"),
    [
        (
            ccxt.AuthenticationError(
                'binance {"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}'
            ),
            REAUTH,
            True,
            "did not accept this API key",
        ),
        (
            ccxt.AuthenticationError(
                'binance {"code":-1022,"msg":"Signature for this request is not valid."}'
            ),
            REAUTH,
            True,
            "secret does not match",
        ),
        (
            ccxt.ExchangeError('kraken {"error":["EAPI:Invalid signature"]}'),
            REAUTH,
            True,
            "secret does not match",
        ),
        (
            ccxt.AuthenticationError('okx {"msg":"OK-ACCESS-PASSPHRASE incorrect","code":"50105"}'),
            REAUTH,
            True,
            "passphrase does not match",
        ),
        (
            ccxt.AuthenticationError(
                'bitget {"code":"40012","msg":"apikey/password is incorrect"}'
            ),
            REAUTH,
            True,
            "passphrase does not match",
        ),
        (
            ccxt.ExchangeError('coinbase {"error":"UNAUTHENTICATED","message":"invalid token"}'),
            REAUTH,
            True,
            "did not accept",
        ),
        (
            ccxt.PermissionDenied(
                'okx {"msg":"Your IP is not in the key\'s IP whitelist","code":"50110"}'
            ),
            REAUTH,
            True,
            "this IP is not allowed",
        ),
        (
            ccxt.InvalidNonce(
                'binance {"code":-1021,"msg":"Timestamp is outside of the recvWindow."}'
            ),
            ERROR,
            False,
            "clock is off",
        ),
        (ccxt.RateLimitExceeded("bybit 429 Too many visits!"), ERROR, False, "rate-limiting"),
        (ccxt.DDoSProtection("binance 418 banned"), ERROR, False, "rate-limiting"),
        (
            ccxt.RequestTimeout(
                "kraken GET https://api.kraken.com/0/public/Time request timed out"
            ),
            ERROR,
            False,
            "unreachable",
        ),
        (
            ccxt.OnMaintenance('binance {"code":1,"msg":"System is under maintenance."}'),
            ERROR,
            False,
            "unreachable",
        ),
        (
            ccxt.OperationFailed('binance {"code":-1000,"msg":"An unknown error occurred."}'),
            ERROR,
            False,
            "unreachable",
        ),
        (ccxt.BadRequest("okx 51000 Parameter error"), ERROR, False, "answered with an error"),
        (ValueError("Could not deserialize key data"), REAUTH, True, "not in the format"),
    ],
)
def test_each_failure_maps_to_a_status_and_a_fix(
    exc: BaseException, status: ConnectionStatus, final: bool, cause: str
) -> None:
    diagnosis = diagnose(exc)
    assert diagnosis.status is status
    assert diagnosis.final is final  # authentication problems are never retried
    assert cause in diagnosis.cause
    assert diagnosis.fix


def test_the_exchange_message_drops_urls_and_prefixes() -> None:
    said = exchange_message(
        ccxt.RequestTimeout(
            "binance GET https://api.binance.com/api/v3/account?signature=abc timed out"
        )
    )
    assert said is not None and "signature" not in said and "https" not in said
    assert (
        exchange_message(ccxt.AuthenticationError('x {"code":1,"msg":"Invalid key"}'))
        == "Invalid key"
    )


def test_a_web_page_from_the_exchange_is_reduced_to_its_heading() -> None:
    page = (
        "binance GET https://api.binance.com/api/v3/openOrders 404 Not Found <!DOCTYPE html>\n"
        "<html><head><title>Binance</title></head><body><h3>404 Not Found</h3><p>Sorry!</p>"
    )
    assert exchange_message(ccxt.ExchangeNotAvailable(page)) == "404 Not Found"
    bare = "okx GET https://www.okx.com 502 <html><body>upstream</body></html>"
    assert exchange_message(ccxt.ExchangeNotAvailable(bare)) is None
