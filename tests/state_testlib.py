"""Helpers of the state-store tests on both backends (imported by tests/conftest.py and tests).

The PostgreSQL runs need a server: ``MESHCORE_TEST_POSTGRES_URL`` names a role that may create
databases (``.ci/postgres`` starts one and sets it); each test gets a database of its own.
Without it they skip, unless ``MESHCORE_REQUIRE_POSTGRES`` is set (CI): then they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

import meshcore.state.store as store_module
from meshcore.state import StateStore

POSTGRES_URL_VAR = "MESHCORE_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_VAR = "MESHCORE_REQUIRE_POSTGRES"
#: Test databases sort like a typical en_US production database (punctuation ignored), not bytewise.
ICU_LOCALE = "en-US-u-ka-shifted"


def postgres_server_url() -> str:
    """The test server's URL; fails the test when CI requires PostgreSQL, skips it otherwise."""
    url = os.environ.get(POSTGRES_URL_VAR)
    if url:
        return url
    if os.environ.get(REQUIRE_POSTGRES_VAR):
        pytest.fail(
            f"{REQUIRE_POSTGRES_VAR} is set but {POSTGRES_URL_VAR} is not: no PostgreSQL server to test on"
        )
    pytest.skip(f"no PostgreSQL server: set {POSTGRES_URL_VAR} (or run the tests under .ci/postgres)")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database on the test server (dropped afterwards); yields its URL."""
    server = make_url(postgres_server_url())
    name = f"meshcore_test_{uuid.uuid4().hex}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        icu = conn.dialect.server_version_info >= (15,)
        locale = f" LOCALE_PROVIDER icu ICU_LOCALE '{ICU_LOCALE}'" if icu else ""
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0{locale}')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


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
