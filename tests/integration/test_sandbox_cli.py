"""``python -m bot sandbox`` the way a newcomer meets it: a real process, lines typed on stdin.

The script pastes the demo keys with ``:paste`` (the terminal remembers the last ``:key``), so
it needs no back-and-forth with the process: every line waits until the bot has answered.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 90  # seconds; a run takes a few


def run_sandbox(script: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COINWARDEN_")}
    env["PYTHONPATH"] = str(REPO)
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
