"""Shared fixtures: an isolated environment, and a real database per test on every engine.

``database_url`` (and ``database``, built on it) is parametrized over the engines chosen with
``--engines`` (default ``sqlite,postgresql``): a SQLite file in the test's tmp dir, or a fresh
database on this worker's throwaway PostgreSQL cluster (``tests/postgres.py``), copied from a
template migrated once per session. Where no server can be started, the ``postgresql`` cases
are skipped with the reason. A test that holds only on SQLite says why with
``@pytest.mark.sqlite_only(reason)``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from storage.database import Database
from tests.postgres import TEMPLATE, PostgresCluster, PostgresUnavailable, database_text

ENGINES = ("sqlite", "postgresql")
_database_names = itertools.count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--engines",
        default=",".join(ENGINES),
        help="the database engines integration and e2e tests run on, comma-separated "
        "(default: %(default)s)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(reason): the test checks something only SQLite has"
    )
    unknown = set(engines(config)) - set(ENGINES)
    if unknown:
        raise pytest.UsageError(f"--engines: unknown {sorted(unknown)}; use {ENGINES}")


def engines(config: pytest.Config) -> list[str]:
    return [name.strip() for name in config.getoption("--engines").split(",") if name.strip()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" not in metafunc.fixturenames:
        return
    sqlite_only = metafunc.definition.get_closest_marker("sqlite_only")
    params = [
        pytest.param(
            engine,
            id=engine,
            marks=[pytest.mark.skip(reason=f"SQLite only: {sqlite_only.args[0]}")]
            if sqlite_only and engine != "sqlite"
            else [],
        )
        for engine in engines(metafunc.config)
    ]
    metafunc.parametrize("database_url", params, indirect=True)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer .env or COINWARDEN_* variable leaks into a test."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("COINWARDEN_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """This worker's cluster, with the template database migrated to the newest revision."""
    try:
        cluster = PostgresCluster()
        cluster.start()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL: {exc}")
    try:
        # Its own thread and event loop: the tests' loops come and go per test.
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, _build_template(cluster)).result()
        yield cluster
    finally:
        cluster.stop()


async def _build_template(cluster: PostgresCluster) -> None:
    admin = await cluster.admin()
    try:
        await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await admin.close()
    database = Database(cluster.url(TEMPLATE))
    try:
        await database.migrate()
    finally:
        await database.dispose()


async def new_postgres_database(cluster: PostgresCluster, template: str = TEMPLATE) -> str:
    """A fresh database copied from ``template`` (``template0``: empty); its name."""
    name = f"test_{os.getpid()}_{next(_database_names)}"
    admin = await cluster.admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE {template}')
    finally:
        await admin.close()
    return name


async def drop_postgres_database(cluster: PostgresCluster, name: str) -> None:
    admin = await cluster.admin()
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database no other test sees: migrated on PostgreSQL; on SQLite a file that the first
    ``Database.migrate()`` creates (the same schema, as the bot would at start)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'coinwarden.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name = await new_postgres_database(cluster)
    try:
        yield cluster.url(name)
    finally:
        await drop_postgres_database(cluster, name)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await db.migrate()
    yield db
    await db.dispose()


@pytest.fixture
async def more_databases(
    database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """``await more_databases(name, empty=False)``: the URL of another fresh database on the
    engine of ``database_url`` (migrated on PostgreSQL unless ``empty``; a new SQLite file is
    empty until its first migration)."""
    if database_url.startswith("sqlite"):

        async def sqlite_file(name: str, *, empty: bool = False) -> str:
            return f"sqlite+aiosqlite:///{tmp_path / name}.db"

        yield sqlite_file
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    made: list[str] = []

    async def postgres_database(name: str, *, empty: bool = False) -> str:
        made.append(await new_postgres_database(cluster, "template0" if empty else TEMPLATE))
        return cluster.url(made[-1])

    try:
        yield postgres_database
    finally:
        for made_name in made:
            await drop_postgres_database(cluster, made_name)


@pytest.fixture
def stored_bytes(
    database_url: str, request: pytest.FixtureRequest
) -> Callable[[], Awaitable[bytes]]:
    """``await stored_bytes()``: what the test's database holds at rest. On SQLite its files
    (dispose the ``Database`` first: that checkpoints the WAL into the main file); on
    PostgreSQL its rows as text and every byte of the cluster after a CHECKPOINT."""

    async def read() -> bytes:
        if database_url.startswith("sqlite"):
            file = Path(str(make_url(database_url).database))
            return b"".join(p.read_bytes() for p in sorted(file.parent.glob(f"{file.name}*")))
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        return (await database_text(database_url)).encode() + await cluster.stored_bytes()

    return read
