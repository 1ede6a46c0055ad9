"""PostgreSQL as the state store: connection problems are exit code 5 without the password, a
killed creation leaves nothing half-made, read commands refuse an empty database, and a whole
``meshcore apply`` run records the same on PostgreSQL as on SQLite."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, make_url
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

import meshcore.state.store as store_module
from meshcore.cli.app import app
from meshcore.errors import StateStoreError
from meshcore.redaction import clear_secrets
from meshcore.state import StateStore
from state_testlib import open_killed_at, postgres_database, postgres_server_url, statements_of_opening

PASSWORD = "Not-The-Real-Pa55word-7319"
EXAMPLE = Path(__file__).parent.parent / "examples" / "fake" / "meshcore.yaml"


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    clear_secrets()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _refused(url: str, *commands: list[str]) -> None:
    """Each command fails with exit code 5, a message naming the store, no traceback, no password."""
    with pytest.raises(StateStoreError) as caught:
        StateStore.open(url)
    assert PASSWORD not in str(caught.value)
    for args in commands:
        result = CliRunner().invoke(app, [*args, "--state", url])
        assert result.exit_code == 5, result.output
        assert "Traceback" not in result.output and "cannot use state store" in result.output
        assert PASSWORD not in result.output, result.output
        assert "***" in result.output  # the URL is named, its password hidden


def test_a_wrong_password_is_exit_5_and_never_printed():
    server = make_url(postgres_server_url())
    url = server.set(password=PASSWORD).render_as_string(hide_password=False)
    _refused(url, ["status"], ["-vv", "history"])
    result = CliRunner().invoke(app, ["history", "--state", url])
    assert "password authentication failed" in result.output
    assert "check the user name and password" in result.output


def test_an_unreachable_server_is_exit_5_and_the_password_never_printed():
    url = f"postgresql+psycopg://meshcore:{PASSWORD}@127.0.0.1:{_closed_port()}/meshcore"
    _refused(url, ["status"], ["-vv", "history"])
    result = CliRunner().invoke(app, ["status", "--state", url])
    assert "check that the PostgreSQL server runs" in result.output


def test_a_password_given_as_a_query_option_is_never_printed_either():
    """libpq also takes the password as ``?password=``: hidden the same way (no server needed)."""
    url = f"postgresql+psycopg://meshcore@127.0.0.1:{_closed_port()}/meshcore?password={PASSWORD}"
    _refused(url, ["status"], ["-vv", "history"])


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_libpq_url_schemes_mean_the_psycopg_driver(scheme):
    url = f"{scheme}://meshcore:{PASSWORD}@127.0.0.1:{_closed_port()}/meshcore"
    result = CliRunner().invoke(app, ["status", "--state", url])
    assert result.exit_code == 5 and "is not supported" not in result.output, result.output
    assert "check that the PostgreSQL server runs" in result.output and PASSWORD not in result.output


def test_a_missing_database_is_exit_5_saying_to_create_it():
    server = make_url(postgres_server_url())
    url = server.set(database="meshcore_no_such_database").render_as_string(hide_password=False)
    result = CliRunner().invoke(app, ["status", "--state", url])
    assert result.exit_code == 5, result.output
    assert "create the database first" in result.output


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"mysql://meshcore:{PASSWORD}@127.0.0.1/meshcore", "database 'mysql' is not supported"),
        (
            f"postgresql+psycopg://meshcore:{PASSWORD}@127.0.0.1:no-port/meshcore",
            "not a valid SQLAlchemy URL",
        ),
    ],
)
def test_an_unsupported_or_malformed_url_is_exit_5_without_the_password(url, message):
    with pytest.raises(StateStoreError, match=message) as caught:
        StateStore.open(url)
    assert PASSWORD not in str(caught.value)
    result = CliRunner().invoke(app, ["status", "--state", url])
    assert result.exit_code == 5 and message in result.output and PASSWORD not in result.output, result.output


def _tables(url: str) -> list[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_read_commands_refuse_an_empty_database_and_create_nothing():
    with postgres_database() as url:
        result = CliRunner().invoke(app, ["status", "--state", url])
        assert result.exit_code == 5, result.output
        assert "holds no meshcore state" in result.output
        assert _tables(url) == []


def test_a_kill_at_every_point_of_creation_leaves_nothing_half_made():
    """The migration is one transaction: after a kill anywhere in it the database is still empty."""
    with postgres_database() as counted:
        total = statements_of_opening(counted)
    assert total > 10
    with postgres_database() as url:
        for n in range(1, total + 1):
            open_killed_at(url, n)
            assert _tables(url) == [], n
        store = StateStore.open(url)
        assert store.schema_revision() == "0005"
        store.create_tenant("ws", "p", "aws", "lz")
        assert [t.key for t in store.tenants()] == ["ws/p@aws"]
        store.close()


def _meshcore(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshcore", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_apply_of_the_fake_example_records_the_same_on_every_backend(store_url, tmp_path):
    """``meshcore apply --state URL`` end to end, twice: tenants, runs and steps as recorded."""
    shutil.copy(EXAMPLE, tmp_path / "meshcore.yaml")
    first = _meshcore(tmp_path, "apply", "-c", "meshcore.yaml", "--state", store_url)
    assert first.returncode == 0, first.stderr
    second = _meshcore(tmp_path, "apply", "-c", "meshcore.yaml", "--state", store_url)
    assert second.returncode == 0, second.stderr
    assert "No changes" in second.stdout

    keys = ["data/lake-dev@demo", "payments/checkout-dev@demo", "payments/checkout-prod@demo"]
    store = StateStore.open(store_url, create=False)
    tenants = store.tenants()
    assert [t.key for t in tenants] == keys
    assert {(t.status, t.provisioning) for t in tenants} == {("ACTIVE", "ready")}
    assert len({t.platform_tenant_id for t in tenants}) == 3 and all(t.platform_tenant_id for t in tenants)
    second_run, first_run = store.runs()
    assert (first_run.command, first_run.status, first_run.summary["bound"]) == ("apply", "ok", 3)
    assert (second_run.status, second_run.summary["changed"]) == ("ok", 0)
    assert first_run.started_at <= first_run.finished_at <= second_run.started_at
    steps = store.steps(first_run.id)
    assert {s.status for s in steps} == {"changed"}
    for t in tenants:
        names = {s.name.split()[0] for s in store.steps(first_run.id, t.key)}
        assert names == {"tenant", "placement", "guardrails", "access"}, (t.key, names)
    assert not [s for s in store.steps(second_run.id) if s.status == "changed"]
    store.close()

    status = _meshcore(tmp_path, "status", "-o", "json", "--state", store_url)
    assert status.returncode == 0, status.stderr
    listed = json.loads(status.stdout)
    assert sorted(t["tenant"] for t in listed["tenants"]) == keys


def test_without_the_driver_the_error_says_to_install_the_postgres_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what an environment without psycopg has
    url = f"postgresql+psycopg://meshcore:{PASSWORD}@127.0.0.1:{_closed_port()}/meshcore"
    result = CliRunner().invoke(app, ["status", "--state", url])
    assert result.exit_code == 5, result.output
    assert "pip install '.[postgres]'" in result.output and PASSWORD not in result.output


@pytest.mark.parametrize("in_url", [False, True], ids=["default", "connect_timeout-in-url"])
def test_a_server_that_never_answers_is_given_up_after_the_connect_timeout(monkeypatch, in_url):
    import time

    monkeypatch.setattr(store_module, "CONNECT_TIMEOUT", 60 if in_url else 1)
    with socket.socket() as silent:  # accepts connections (the kernel does) but never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"postgresql+psycopg://meshcore:{PASSWORD}@127.0.0.1:{silent.getsockname()[1]}/meshcore"
        if in_url:
            url += "?connect_timeout=1"
        started = time.monotonic()
        with pytest.raises(StateStoreError, match="timeout") as caught:
            StateStore.open(url)
        assert time.monotonic() - started < 5
    assert PASSWORD not in str(caught.value)


def test_a_pg_dump_backup_restores_into_a_store_that_opens(tmp_path):
    """The backup procedure of docs/operations.md: pg_dump -Fc, then pg_restore into a new database."""
    with postgres_database() as url:
        store = StateStore.open(url)
        tenant = store.create_tenant("ws", "p", "aws", "lz")
        store.update_tenant(tenant.id, platform_tenant_id="123456789012", attributes={"name": "Zoë"})
        store.acquire_lease("apply", "r1", 60)
        store.close()
        libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        dump = tmp_path / "meshcore.dump"
        subprocess.run(["pg_dump", "-Fc", "-f", str(dump), "-d", libpq], check=True, timeout=120)
    with postgres_database() as restored:
        libpq = make_url(restored).set(drivername="postgresql").render_as_string(hide_password=False)
        subprocess.run(["pg_restore", "--no-owner", "-d", libpq, str(dump)], check=True, timeout=120)
        store = StateStore.open(restored, create=False)
        (row,) = store.tenants()
        assert (row.key, row.platform_tenant_id, row.attributes) == (
            "ws/p@aws",
            "123456789012",
            {"name": "Zoë"},
        )
        assert store.lease_holder("apply")[0] == "r1"
        assert store.schema_revision() == "0005"
        store.close()


def test_a_schema_of_its_own_is_chosen_with_the_search_path_option():
    with postgres_database() as url:
        admin = create_engine(url, poolclass=NullPool)
        with admin.begin() as conn:
            conn.exec_driver_sql("CREATE SCHEMA meshcore")
        store = StateStore.open(f"{url}?options=-csearch_path%3Dmeshcore")
        store.create_tenant("ws", "p", "aws", "lz")
        assert [t.key for t in store.tenants()] == ["ws/p@aws"]
        store.close()
        inspector = inspect(admin)
        assert "tenants" in inspector.get_table_names(schema="meshcore")
        assert inspector.get_table_names(schema="public") == []
        admin.dispose()


def test_a_connection_the_server_dropped_is_replaced_without_an_error():
    with postgres_database() as url:
        store = StateStore.open(url)
        store.create_tenant("ws", "p", "aws", "lz")
        admin = create_engine(url, poolclass=NullPool)
        with admin.connect() as conn:  # what a server restart or an idle timeout does
            killed = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"  # not an autovacuum worker that happens to run
            ).scalar()
        admin.dispose()
        assert killed == 1  # the store's pooled connection
        assert [t.key for t in store.tenants()] == ["ws/p@aws"]
        store.close()


def test_the_password_of_the_url_is_never_stored():
    with postgres_database() as url:
        password = str(make_url(url).password)
        store = StateStore.open(url)
        store.audit("checked", "ws/p@aws", {"note": f"connected with {password}"})
        (entry,) = store.audit_trail()
        assert entry.details == {"note": "connected with ***"}
        store.close()
