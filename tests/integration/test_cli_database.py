"""Every command given a PostgreSQL URL it cannot connect to: one line on stderr that names the
setting and the server (never the password), exit status 2, no traceback."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PASSWORD = "CANARYdbPASSWORDq1w2e3"


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A 127.0.0.1 port that is bound but not listening: every connection is refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


async def cli(*args: str, env: dict[str, str]) -> tuple[int | None, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
    return process.returncode, stdout.decode(), stderr.decode()


async def test_a_postgresql_url_that_cannot_connect_is_one_line_and_exit_2(
    refused_port: int, tmp_path: Path
) -> None:
    url = f"postgresql+asyncpg://coinwarden:{PASSWORD}@127.0.0.1:{refused_port}/coinwarden"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COINWARDEN_")},
        "COINWARDEN_DATABASE_URL": url,
        "COINWARDEN_DATA_DIR": str(tmp_path / "data"),
        "COINWARDEN_TELEGRAM_TOKEN": "1:unused",
        "COINWARDEN_TELEGRAM_API_URL": "http://127.0.0.1:9/bot",
    }
    commands = {
        "COINWARDEN_DATABASE_URL": (["run"], ["doctor"], ["rotate-master-key"], ["worker"]),
        "--database-url": (["sandbox", "--database-url", url],),
    }
    runs = [(setting, args) for setting, each in commands.items() for args in each]
    results = await asyncio.gather(*(cli(*args, env=env) for _, args in runs))

    for (setting, args), (status, stdout, stderr) in zip(runs, results, strict=True):
        assert (status, stderr.splitlines()) == (
            2,
            [
                f"coinwarden: {setting}: cannot connect to the database at "
                f"127.0.0.1:{refused_port}: connection refused"
            ],
        ), (args, stdout)
        assert PASSWORD not in stdout + stderr
