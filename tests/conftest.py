"""Shared fixtures: a real SQLite file per test, and canary credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.database import Database


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'coinwarden.db'}")
    await db.migrate()
    yield db
    await db.dispose()
