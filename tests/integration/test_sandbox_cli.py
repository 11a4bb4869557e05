"""``python -m bot sandbox`` the way a newcomer meets it: a real process, lines typed on stdin.

The script pastes the demo keys with ``:paste`` (the terminal remembers the last ``:key``), so
it needs no back-and-forth with the process: every line waits until the bot has answered.
Health alerts come on the bot's own schedule instead, so that run types its lines as the
output asks for them (``LiveSandbox``).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

from sqlalchemy import select

from storage.database import Database
from storage.schema import connections

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 90  # seconds; a run takes a few


def sandbox_env(**settings: str) -> dict[str, str]:
    """This environment without the developer's COINWARDEN_* settings, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COINWARDEN_")}
    env["PYTHONPATH"] = str(REPO)
    env.update({f"COINWARDEN_{name.upper()}": value for name, value in settings.items()})
    return env


def run_sandbox(script: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = sandbox_env()
    return subprocess.run(
        [sys.executable, "-m", "bot", "sandbox", *args],
        input="".join(f"{line}\n" for line in script),
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )


def demo_keys(stdout: str, label: str) -> list[str]:
    """Every value the terminal printed on a ``label`` line of a ``:key`` answer."""
    return re.findall(rf"^ +{label} +(\S+)$", stdout, re.MULTILINE)


def test_a_newcomer_connects_lists_revokes_and_quits(tmp_path: Path) -> None:
    result = run_sandbox(
        [
            "/connect",
            ":press Binance Spot",
            "Risky",
            ":key binance withdraw",
            ":paste key",
            ":paste secret",
            "/connect",
            ":press Binance Spot",
            "Main",
            ":key binance read",
            ":paste key",
            ":paste secret",
            "/connections",
            ":press Revoke",
            ":press Yes, revoke",
            "/connections",
            ":quit",
        ],
        cwd=tmp_path,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert result.stderr == ""  # logs go to the data dir, never into the chat
    assert "you> /start" in out and "Coinwarden keeps an eye" in out
    assert "This key can withdraw funds, so I refused it and stored nothing." in out
    assert "✅ Main is connected to Binance Spot." in out
    assert out.count("deleted: your message") == 4  # every pasted key and secret
    assert "🟢 Main · Binance Spot" in out
    assert "Revoke Main (Binance Spot)?" in out
    assert "(notice) Revoked." in out
    assert "Main is revoked: its keys are wiped from Coinwarden." in out
    assert out.rstrip().endswith(
        "No exchange accounts are connected here yet. Send /connect to add one.\n"
        "you> :quit\n"
        "Bye. The sandbox data was deleted."
    )
    # Each key and secret was printed once, by :key; the bot never showed one back.
    for value in demo_keys(out, "API key") + demo_keys(out, "secret key"):
        assert out.count(value) == 1, value
    data_dir = re.search(r"data: (\S+) \(deleted on exit\)", out)
    assert data_dir is not None and not Path(data_dir.group(1)).exists()


def test_a_kept_data_dir_holds_the_log_and_no_secret_and_eof_ends_cleanly(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "sandbox-data"
    script = [
        "/connect",
        ":1",
        "Main",
        ":key binance trade ip",
        ":paste key",
        ":paste secret",
        ":price BTC 50000",
    ]
    result = run_sandbox(script, "--seed", "7", "--data-dir", str(data_dir), cwd=tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "(--seed 7)" in out
    assert "✅ read · ✅ spot trade · ❌ futures · ❌ withdraw · 🔒 IP restricted" in out
    assert "BTC/USDT   binance 50,000.00" in out
    assert out.rstrip().endswith(f"Bye. The sandbox data was kept in {data_dir}.")
    assert (data_dir / "sandbox.log").read_text().count("Coinwarden is running") == 1
    stored = b"".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file())
    for value in demo_keys(out, "API key") + demo_keys(out, "secret key"):
        assert value.encode() not in stored


async def test_the_sandbox_keeps_the_bot_data_in_the_database_it_is_given(
    database_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "sandbox-data"
    script = ["/connect", ":1", "Main", ":key binance read", ":paste key", ":paste secret"]
    args = ("--data-dir", str(data_dir), "--database-url", database_url)
    result = await asyncio.to_thread(run_sandbox, [*script, ":quit"], *args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✅ Main is connected to Binance Spot." in result.stdout
    database = Database(database_url)
    try:
        async with database.begin() as conn:
            labels = (await conn.execute(select(connections.c.label))).scalars().all()
    finally:
        await database.dispose()
    assert labels == ["Main"]
    assert not (data_dir / "coinwarden.db").exists()  # the master key is there, the data not


def test_a_newcomer_holding_only_btc_rebalances_half_into_usdt_once(tmp_path: Path) -> None:
    result = run_sandbox(
        [
            "/connect",
            ":press Binance Spot",
            "Main",
            ":key binance trade",
            ":paste key",
            ":paste secret",
            ":withdraw-funds binance USDT all",
            ":withdraw-funds binance ETH all",
            "/rebalance Main BTC 50 USDT 50",
            ":press Approve",
            ":press Approve",
            ":quit",
        ],
        cwd=tmp_path,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Rebalance proposal · a dry run: nothing has been traded" in out
    assert "1. SELL" in out and "BTC/USDT" in out
    assert "Approve by" in out
    assert out.count("Rebalance executed") == 1
    assert "✅ filled" in out and "Fees paid" in out


def test_a_data_dir_of_a_real_bot_is_refused_and_left_alone(tmp_path: Path) -> None:
    real = tmp_path / "data"
    real.mkdir()
    (real / "coinwarden.db").write_bytes(b"a real bot's database")
    result = run_sandbox([":quit"], "--data-dir", str(real), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"coinwarden: --data-dir {real} holds files")
    assert result.stderr.count("\n") == 1
    assert [p.name for p in real.iterdir()] == ["coinwarden.db"]


def test_running_the_bot_loads_nothing_of_the_sandbox() -> None:
    probe = (
        "import sys, bot.__main__; "
        "print(sorted(m for m in sys.modules if m.startswith('bot.sandbox')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=TIMEOUT,
        check=True,
    )
    assert result.stdout.strip() == "[]"


class LiveSandbox:
    """The sandbox process with a script typed line by line, and its output read as it comes."""

    def __init__(self, cwd: Path, **settings: str) -> None:
        self._stderr = (cwd / "stderr.txt").open("w+", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
            cwd=cwd,
            env=sandbox_env(**settings),
        )
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def __enter__(self) -> LiveSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._stderr.close()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self._lines.append(line)

    @property
    def out(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def type(self, *lines: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("".join(f"{line}\n" for line in lines))
        self.process.stdin.flush()

    def printed(self, pattern: str) -> bool:
        return re.search(pattern, self.out, re.MULTILINE) is not None

    def wait_for(self, pattern: str, *, timeout: float = 10, count: int = 1) -> None:
        """Until ``pattern`` (a regex) has been printed ``count`` times."""
        deadline = time.monotonic() + timeout
        while len(re.findall(pattern, self.out, re.MULTILINE)) < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"no {pattern!r} in time; the output:\n{self.out}")
            time.sleep(0.02)

    def quit(self) -> tuple[int, str]:
        """:quit, then the exit status and everything written to stderr."""
        self.type(":quit")
        status = self.process.wait(timeout=TIMEOUT)
        self._reader.join(timeout=TIMEOUT)  # the last lines may still be in the pipe
        self._stderr.seek(0)
        return status, self._stderr.read()


REAUTH_ALERT = r"bot: 🔴 Main · Binance Spot: Re-auth needed$"
RECOVERED = r"bot: 🟢 Main · Binance Spot recovered: Connected again"
SWEEP_NOTE = r"^ +(→ checked Main: |nothing was due: |the scheduled balance sweep is running)"


def test_a_key_revoked_on_the_exchange_brings_one_alert_and_its_restore_one_recovery(
    tmp_path: Path,
) -> None:
    """With checks every second, :sweep finds the connection due at once (or the bot's own
    schedule got there first); either way the chat gets one alert per change."""
    with LiveSandbox(tmp_path, health_check_seconds="1") as sandbox:
        sandbox.type("/connect", ":press Binance Spot", "Main", ":key binance read")
        sandbox.type(":paste key", ":paste secret")
        sandbox.wait_for("✅ Main is connected to Binance Spot.")
        sandbox.type(":revoke-key")
        sandbox.wait_for(r"→ revoked the Binance Spot key \S+…\S+ on the exchange; the next")
        sweeps, deadline = 0, time.monotonic() + 10
        while not sandbox.printed(REAUTH_ALERT):
            assert time.monotonic() < deadline, sandbox.out
            sweeps += 1
            sandbox.type(":sweep")
            sandbox.wait_for(SWEEP_NOTE, count=sweeps)
            time.sleep(0.25)  # the pace of asking, not a guess at timing
        sandbox.type(":restore-key")
        sandbox.wait_for(r"→ the Binance Spot key \S+ is valid again on the exchange")
        sandbox.wait_for(RECOVERED)
        status, stderr = sandbox.quit()
    out = sandbox.out
    assert status == 0 and stderr == "", out + stderr
    assert "Connection health: :revoke-key, :restore-key, :outage VENUE and :sweep" in out
    assert len(re.findall(REAUTH_ALERT, out, re.MULTILINE)) == 1
    assert "did not accept this API key" in out and "/rotate Main" in out
    assert len(re.findall(RECOVERED, out)) == 1
    assert out.rstrip().endswith("Bye. The sandbox data was deleted.")
