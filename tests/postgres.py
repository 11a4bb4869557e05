"""A throwaway PostgreSQL cluster for the tests: the machine's own server binaries, ``initdb`` in
a fresh temp dir, ``pg_ctl`` on a free 127.0.0.1 port, removed again when the session ends.

PostgreSQL refuses to run as root; as root, the cluster is owned by and run as the ``postgres``
user (Debian's package creates it). Durability is switched off (fsync and friends): the cluster
lives for one test session, and every test database is a copy of a migrated template. No server
binaries (or, as root, no ``postgres`` user) is ``PostgresUnavailable``: the PostgreSQL tests
are skipped. Binaries that fail to start a cluster are ``PostgresFailed``: they fail.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

SUPERUSER = "postgres"
TEMPLATE = "coinwarden_template"
#: One session's cluster: no crash safety, little memory, enough connections for the tests'
#: engines (each test's pool, a second "process" in the race tests).
SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "max_connections": "200",
    "listen_addresses": "'127.0.0.1'",
    "log_min_messages": "warning",
}
_PORT_TRIES = 5


class PostgresUnavailable(Exception):
    """This machine has no PostgreSQL server to start (the tests skip); the text says why."""


class PostgresFailed(Exception):
    """The server is installed but would not start (the tests fail: something is broken)."""


def server_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``initdb``, else ``pg_config``'s."""
    candidates = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").is_file()),
        key=lambda p: [int(part) for part in re.findall(r"\d+", p.parent.name)],
    )
    if candidates:
        return candidates[-1]
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found and (Path(found) / "initdb").is_file():
            return Path(found)
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb) in /usr/lib/postgresql/*/bin or pg_config "
        "--bindir: install Debian's postgresql package"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresCluster:
    """One running cluster: ``start()``, then URLs of its databases, then ``stop()``."""

    def __init__(self) -> None:
        self.bindir = server_bindir()
        self._as_user: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root and there is no 'postgres' user to run the server as"
                ) from None
            self._as_user = ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}"]
            self._as_user.append("--init-groups")
        self.dir = Path(tempfile.mkdtemp(prefix="coinwarden-pg-"))
        if owner is not None:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.data = self.dir / "data"
        self.port = 0
        self.scanned = False  # the e2e canary scan of the cluster's bytes ran (once a session)

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        command: Sequence[str] = [*self._as_user, str(self.bindir / program), *args]
        return subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.dir)

    def start(self) -> None:
        made = self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        if made.returncode != 0:
            self.remove()
            raise PostgresFailed(f"initdb failed: {_last_line(made.stderr)}")
        settings = {**SETTINGS, "unix_socket_directories": f"'{self.dir}'"}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        for _ in range(_PORT_TRIES):  # another process may take the free port first
            self.port = _free_port()
            started = self._run(
                "pg_ctl", "start", "-w", "-D", str(self.data), "-l", str(self.dir / "server.log"),
                "-o", f"-p {self.port}",
            )  # fmt: skip
            if started.returncode == 0:
                return
        log = self.dir / "server.log"
        reason = _last_line(log.read_text() if log.exists() else started.stderr)
        self.remove()
        raise PostgresFailed(f"pg_ctl could not start the server: {reason}")

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate")
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of one database of this cluster, as an operator would write it."""
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    async def admin(self) -> asyncpg.Connection:
        """A connection to the maintenance database, for CREATE/DROP DATABASE."""
        return await asyncpg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, database="postgres"
        )

    async def stored_bytes(self) -> bytes:
        """Every file of the cluster (data directory and server log) after a CHECKPOINT has
        written every change to the data files. Read as root or as their owner; what cannot
        be read as a file (the server's socket, a file removed meanwhile) is skipped."""
        admin = await self.admin()
        try:
            await admin.execute("CHECKPOINT")
        finally:
            await admin.close()
        stored = []
        for path in sorted(self.dir.rglob("*")):
            with contextlib.suppress(OSError):
                stored.append(path.read_bytes())
        return b"".join(stored)


async def database_text(url: str) -> str:
    """Every row of every table of a PostgreSQL database as text (``row::text``), sorted:
    what a dump of it would show."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        texts = [
            await conn.fetchval(
                f"SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') "
                f'FROM "{table["tablename"]}" t'
            )
            for table in tables
        ]
    finally:
        await conn.close()
    return "\n".join(texts)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
