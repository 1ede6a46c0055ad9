"""A PostgreSQL database per test, for the core's and plugins' state tests alike.

``MESHCORE_TEST_POSTGRES_URL`` names a role that may create databases (``.ci/postgres`` starts
a server and sets it). Without it a test that asks for a database skips, unless
``MESHCORE_REQUIRE_POSTGRES`` is set (CI): then it fails, so no PostgreSQL test is ever skipped
there unnoticed.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

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
        icu = (conn.dialect.server_version_info or (0,)) >= (15,)
        locale = f" LOCALE_PROVIDER icu ICU_LOCALE '{ICU_LOCALE}'" if icu else ""
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0{locale}')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            _drop(admin, name)
        finally:
            admin.dispose()


def _drop(admin: Engine, name: str, patience: float = 30.0) -> None:
    """Drop a test database, waiting out backends of killed clients that are still going away.

    ``WITH (FORCE)`` terminates the database's other sessions, but a backend still starting up (its
    client killed while connecting) has no role yet and cannot be terminated by an ordinary role;
    it ends by itself within moments.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except DBAPIError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
