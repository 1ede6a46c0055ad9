"""Helpers of the state-store tests on both backends (imported by tests/conftest.py and tests).

The PostgreSQL runs need a server: ``MESHCORE_TEST_POSTGRES_URL`` names a role that may create
databases (``.ci/postgres`` starts one and sets it); each test gets a database of its own.
Without it they skip, unless ``MESHCORE_REQUIRE_POSTGRES`` is set (CI): then they fail.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

import meshcore.state.store as store_module
from meshcore.state import StateStore
from meshcore.testing.postgres import postgres_database, postgres_server_url

__all__ = ["postgres_database", "postgres_server_url"]


def _counting_statements(on_statement: Callable[[], None]) -> Callable[..., Engine]:
    """A ``create_engine`` whose engines call ``on_statement`` before each SQL statement."""
    real = store_module.create_engine

    def create(*args: Any, **kwargs: Any) -> Engine:
        engine = real(*args, **kwargs)
        event.listen(engine, "before_cursor_execute", lambda *_a, **_k: on_statement())
        return engine

    return create


def statements_of_opening(url: str) -> int:
    """How many SQL statements opening (creating) the store at ``url`` takes: the kill points."""
    count = 0

    def counted() -> None:
        nonlocal count
        count += 1

    real = store_module.create_engine
    store_module.create_engine = _counting_statements(counted)  # type: ignore[assignment]
    try:
        StateStore.open(url).close()
    finally:
        store_module.create_engine = real
    return count


def open_killed_at(url: str, n: int) -> None:
    """Open ``url`` in a child process that dies (no clean-up at all) before its n-th SQL statement."""
    pid = os.fork()
    if pid == 0:  # the child
        try:
            seen = 0

            def dying() -> None:
                nonlocal seen
                seen += 1
                if seen == n:
                    os._exit(9)

            store_module.create_engine = _counting_statements(dying)  # type: ignore[assignment]
            StateStore.open(url)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), status
