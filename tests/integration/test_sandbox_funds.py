"""``:deposit`` and ``:withdraw-funds`` in the real sandbox process: the demo account moves, the
terminal says so (or why not), and the bot's next balance read shows it."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_sandbox_cli import run_sandbox


def test_moving_demo_funds_shows_in_the_next_balance_read(tmp_path: Path) -> None:
    result = run_sandbox(
        [
            ":deposit nowhere BTC 1",
            ":deposit binance BTC 0.5",
            ":withdraw-funds binance ETH 100",
            ":withdraw-funds binance ETH 1",
            "/connect",
            ":press Binance Spot",
            "Main",
            ":key binance read",
            ":paste key",
            ":paste secret",
            "/balance",
            ":quit",
        ],
        cwd=tmp_path,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "no sandbox exchange 'nowhere'; here: binance," in out
    assert "→ deposited 0.5 BTC to Binance Spot: the demo account holds 1.0234 BTC;" in out
    # The sandbox's demo accounts are seeded: a resting sell order holds 0.3 ETH.
    assert "Binance Spot refused: only 3.882 ETH is free to withdraw" in out
    assert (
        "→ withdrew 1 ETH from Binance Spot: the demo account holds 3.182 ETH "
        "(0.3 held by open orders); the bot sees it at its next balance sweep"
    ) in out
    balance = out[out.index("you> /balance") :]
    assert "1.0234" in balance and "3.182" in balance
