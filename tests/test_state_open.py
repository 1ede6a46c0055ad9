"""Opening the state store: a kill at any point of creation leaves a store that opens; bad files exit 5."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

import meshcore.state.store as store_module
from meshcore.cli.app import app
from meshcore.errors import StateStoreError
from meshcore.state import StateStore
from state_testlib import open_killed_at, statements_of_opening

HEAD = "0005"


def test_a_kill_at_every_point_of_first_creation_leaves_a_store_that_opens(tmp_path):
    total = statements_of_opening(f"sqlite:///{tmp_path / 'count.db'}")
    assert total > 10  # pragmas, alembic's version table, the tables of every migration
    for n in range(1, total + 1):
        path = tmp_path / f"s{n}.db"
        url = f"sqlite:///{path}"
        open_killed_at(url, n)
        store = StateStore.open(url)
        assert store.schema_revision() == HEAD, n
        store.create_tenant("ws", "p", "aws", "lz")
        assert [t.key for t in store.tenants()] == ["ws/p@aws"]
        store.close()


def test_a_kill_during_a_migration_of_an_existing_store_keeps_its_data(store_url):
    from alembic import command
    from alembic.config import Config

    url = store_url
    store = StateStore.open(url)
    store.create_tenant("ws", "p", "aws", "lz")
    cfg = Config()
    cfg.set_main_option("script_location", str(store_module._MIGRATIONS))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    store.close()
    for n in range(1, 40):
        open_killed_at(url, n)
    store = StateStore.open(url)
    assert store.schema_revision() == HEAD
    assert [t.key for t in store.tenants()] == ["ws/p@aws"]


def test_read_commands_refuse_a_store_that_does_not_exist(tmp_path):
    missing = tmp_path / "typo.db"
    with pytest.raises(StateStoreError, match="does not exist"):
        StateStore.open(f"sqlite:///{missing}", create=False)
    assert not missing.exists()
    result = CliRunner().invoke(app, ["status", "--state", str(missing)])
    assert result.exit_code == 5, result.output
    assert "does not exist" in result.output and str(missing) in result.output
    assert not missing.exists()


def test_a_corrupt_file_is_refused_with_exit_5_naming_the_file(tmp_path):
    bad = tmp_path / "state.db"
    bad.write_bytes(b"this is not a database at all" * 200)
    for args in (["status", "--state", str(bad)], ["history", "--state", str(bad)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 5, result.output
        assert "Traceback" not in result.output and str(bad) in result.output
        assert "not a database" in result.output


def test_a_truncated_store_is_refused_with_exit_5(tmp_path):
    path = tmp_path / "state.db"
    store = StateStore.open(f"sqlite:///{path}")
    for i in range(200):
        store.create_tenant("ws", f"p{i}", "aws", "lz")
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    result = CliRunner().invoke(app, ["status", "--state", str(path)])
    assert result.exit_code == 5, result.output
    assert "Traceback" not in result.output and str(path) in result.output


def test_damage_in_pages_a_command_does_not_read_is_still_refused(tmp_path, write_config, base_config):
    """SQLite notices damage only where a statement reads: the store is checked as a whole on open."""
    path = tmp_path / "state.db"
    store = StateStore.open(f"sqlite:///{path}")
    for i in range(300):
        store.create_tenant("ws", f"p{i}", "aws", "lz")
    store.close()
    data = bytearray(path.read_bytes())
    data[8192 : 8192 + 4096] = b"\xff" * 4096
    path.write_bytes(bytes(data))
    cfg = str(write_config(base_config))
    for args in (
        ["costs", "report", "-p", "2026-10", "-c", cfg],
        ["costs", "collect", "-p", "2026-10", "-c", cfg],
    ):
        result = CliRunner().invoke(app, [*args, "--state", str(path)])
        assert result.exit_code == 5, result.output
        assert "damaged" in result.output or "malformed" in result.output, result.output


def test_a_read_only_store_can_be_read_but_apply_is_refused_with_exit_5(tmp_path, write_config, base_config):
    path = tmp_path / "state.db"
    StateStore.open(f"sqlite:///{path}").close()
    url = f"sqlite:///file:{path}?mode=ro&uri=true"  # what a read-only file is to a user without root
    runner = CliRunner()
    assert runner.invoke(app, ["history", "--state", url]).exit_code == 0
    result = runner.invoke(app, ["apply", "-c", str(write_config(base_config)), "--state", url])
    assert result.exit_code == 5, result.output
    assert "readonly" in result.output and "permissions" in result.output, result.output
    assert "Traceback" not in result.output


def test_the_store_is_a_real_sqlite_database_after_creation(tmp_path):
    path = tmp_path / "state.db"
    StateStore.open(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"tenants", "alembic_version", "steps"} <= tables
    assert not [p for p in tmp_path.iterdir() if p.name != "state.db" and not p.name.startswith("state.db-")]
