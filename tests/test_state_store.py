"""State store on every backend (SQLite and PostgreSQL, see ``store_url`` in conftest.py):
versioned schema, migrations on open, ownership rules, leases, time zones, ordering."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from meshcore.errors import LockHeldError, MeshcoreError
from meshcore.state import StateStore
from meshcore.state.store import _MIGRATIONS
from meshcore.state.tables import Base


def _downgrade(store: StateStore, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _schema_differences(store: StateStore) -> list[object]:
    with store.engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def test_new_store_is_migrated_to_head_and_reopening_keeps_data(store_url):
    store = StateStore.open(store_url)
    assert store.schema_revision() == "0005"
    store.create_tenant("ws", "p", "aws", "lz")
    store.close()
    again = StateStore.open(store_url)
    assert [t.key for t in again.tenants()] == ["ws/p@aws"]
    again.close()


def test_a_plain_path_is_a_sqlite_store(tmp_path):
    StateStore.open(f"sqlite:///{tmp_path / 's.db'}").create_tenant("ws", "p", "aws", "lz")
    again = StateStore.open(str(tmp_path / "s.db"))
    assert again.engine.dialect.name == "sqlite"
    assert [t.key for t in again.tenants()] == ["ws/p@aws"]


def test_the_migrations_make_exactly_the_schema_of_the_table_definitions(store_url):
    """Same migrations on both backends; a new store and a migrated old one match tables.py."""
    store = StateStore.open(store_url)
    assert _schema_differences(store) == []
    _downgrade(store, "0001")
    assert _schema_differences(store) != []  # the comparison sees a difference when there is one
    store.close()
    again = StateStore.open(store_url)
    assert _schema_differences(again) == []
    again.close()


def test_a_store_of_the_first_schema_is_migrated_with_its_data(store_url):
    url = store_url
    store = StateStore.open(url)
    _downgrade(store, "0001")
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tenants (workspace, project, platform, landing_zone, status, platform_tenant_id, "
                "provisioning, attributes, spec_hash, last_error, created_at, updated_at) VALUES "
                "('ws', 'p', 'aws', 'lz', 'ACTIVE', '123456789012', 'ready', '{}', 'abc', '', "
                "'2026-01-01', '2026-01-01')"
            )
        )
    store.close()
    again = StateStore.open(url)
    assert again.schema_revision() == "0005"
    (row,) = again.tenants()
    assert (row.key, row.platform_tenant_id, row.revoked_at) == ("ws/p@aws", "123456789012", None)
    assert again.resource_list("aws", None, None) == []


def test_quota_slots_are_never_over_reserved_by_parallel_reservers(state_store):
    from concurrent.futures import ThreadPoolExecutor

    window = dt.timedelta(days=30)

    def reserve(i: int) -> bool:
        granted, _ = state_store.quota_reserve("aws", "close-account", f"acct-{i}", 10, window)
        return granted

    with ThreadPoolExecutor(max_workers=16) as pool:
        granted = list(pool.map(reserve, range(40)))
    assert sum(granted) == 10
    assert state_store.quota_used("aws", "close-account", window) == 10
    first = granted.index(True)
    assert state_store.quota_reserve("aws", "close-account", f"acct-{first}", 10, window) == (True, 10)


def test_a_resource_never_changes_owner(state_store):
    from meshcore.errors import ConflictError

    state_store.resource_put("aws", "group", "g1", "id-1", "ws/a@aws", {"role": "admin"})
    again = state_store.resource_put("aws", "group", "g1", "id-1", "ws/a@aws", {"role": "admin"})
    assert again.revision == 2
    with pytest.raises(ConflictError, match="recorded for ws/a@aws"):
        state_store.resource_put("aws", "group", "g1", "id-1", "ws/b@aws", {})
    assert [r.key for r in state_store.resource_list("aws", "group", "ws/a@aws")] == ["g1"]


def test_a_schema_newer_than_this_meshcore_is_refused(store_url):
    store = StateStore.open(store_url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    store.close()
    with pytest.raises(MeshcoreError, match="newer than this meshcore"):
        StateStore.open(store_url)


def test_platform_tenant_id_is_never_bound_twice_even_after_deletion(state_store):
    a = state_store.create_tenant("ws", "a", "aws", "lz")
    state_store.update_tenant(a.id, platform_tenant_id="111111111111", status="DELETED")
    b = state_store.create_tenant("ws", "b", "aws", "lz")
    with pytest.raises(MeshcoreError, match="already belongs to ws/a@aws"):
        state_store.update_tenant(b.id, platform_tenant_id="111111111111")
    assert state_store.owner_of("aws", "111111111111") == "ws/a@aws"
    assert state_store.owner_of("other", "111111111111") is None


def test_lease_is_exclusive_until_released_or_expired(state_store):
    state_store.acquire_lease("apply", "r1", 60)
    state_store.acquire_lease("apply", "r1", 60)  # re-entrant for its holder
    with pytest.raises(LockHeldError):
        state_store.acquire_lease("apply", "r2", 60)
    state_store.release_lease("apply", "r1")
    state_store.acquire_lease("apply", "r2", -1)  # already expired
    state_store.acquire_lease("apply", "r3", 60)
    assert state_store.lease_holder("apply")[0] == "r3"


def test_every_stored_text_is_redacted(state_store):
    from meshcore.redaction import register_secret

    secret = "very-secret-value-42"
    register_secret(secret)
    t = state_store.create_tenant("ws", "p", "aws", "lz")
    state_store.update_tenant(t.id, attributes={"name": f"{secret}-x"}, last_error=f"boom {secret}")
    entry = state_store.journal_begin("aws", "ws/p@aws", "create", "k", {"email": secret})
    state_store.journal_update(entry.id, result={"id": secret}, message=secret)
    run = state_store.start_run("apply", "r")
    state_store.record_step(run.id, "ws/p@aws", "aws", "s", "failed", f"msg {secret}", t.created_at, 1)
    state_store.finish_run(run.id, "ok", {"x": secret})
    state_store.audit("a", "ws/p@aws", {"d": secret})
    with state_store.engine.connect() as conn:
        for table in ("tenants", "journal", "runs", "steps", "audit"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                assert secret not in repr(row), (table, row)


def test_lease_expiry_is_a_utc_datetime(state_store):
    before = dt.datetime.now(dt.UTC)
    state_store.acquire_lease("apply", "r1", 60)
    holder, expires = state_store.lease_holder("apply")
    assert holder == "r1" and expires.utcoffset() == dt.timedelta(0)
    assert dt.timedelta(seconds=59) < expires - before < dt.timedelta(seconds=61)


def test_times_come_back_as_the_same_instant_in_utc_whatever_the_session_time_zone(store_url):
    """Naive datetimes are UTC; aware ones keep their instant; reads are UTC (PostgreSQL's session time
    zone here is +05:30, SQLite keeps no offset at all)."""
    if store_url.startswith("postgresql"):
        store_url += "?options=-c%20timezone%3DAsia/Kolkata"
    store = StateStore.open(store_url)
    kolkata = dt.timezone(dt.timedelta(hours=5, minutes=30))
    run = store.start_run("apply", "r")
    store.record_step(run.id, "ws/p@aws", "aws", "naive", "ok", "", dt.datetime(2026, 1, 1, 23, 30), 1)
    store.record_step(
        run.id, "ws/p@aws", "aws", "aware", "ok", "", dt.datetime(2026, 1, 2, 5, 0, tzinfo=kolkata), 1
    )
    naive, aware = store.steps(run.id)
    assert naive.started_at == aware.started_at == dt.datetime(2026, 1, 1, 23, 30, tzinfo=dt.UTC)
    assert naive.started_at.tzinfo is dt.UTC and aware.started_at.tzinfo is dt.UTC
    assert store.runs()[0].started_at.tzinfo is dt.UTC
    t = store.create_tenant("ws", "p", "aws", "lz")
    store.update_tenant(t.id, imported_at=dt.datetime(2026, 3, 1, 1, 0, tzinfo=kolkata))
    (row,) = store.tenants()
    assert row.imported_at.date() == dt.date(2026, 2, 28)  # the UTC day, which costs compare with
    store.close()


def test_tenants_and_statements_sort_bytewise_whatever_the_collation(state_store):
    """Test PostgreSQL databases collate like en_US (ignoring '-'); the order is the same as on SQLite."""
    for ws in ("ab", "a-c", "a-b"):
        state_store.create_tenant(ws, "p", "aws", "lz")
        state_store.finalize_statement(ws, "p", "2026-09", [], {}, {}, {})
    assert [t.workspace for t in state_store.tenants()] == ["a-b", "a-c", "ab"]
    assert [r.workspace for r in state_store.statements("2026-09")] == ["a-b", "a-c", "ab"]


def test_json_and_text_round_trip_alike_on_every_backend(state_store):
    attributes = {"name": "Zoë ☃", "n": 12, "ratio": 0.5, "ok": True, "none": None, "list": [1, "x", {}]}
    t = state_store.create_tenant("ws", "p", "aws", "lz")
    state_store.update_tenant(t.id, attributes=attributes, last_error="cloud said: bad\x00byte")
    (row,) = state_store.tenants()
    assert row.attributes == attributes
    assert row.last_error == "cloud said: bad\ufffdbyte"  # PostgreSQL stores no NUL in text: same on both


def test_an_overlong_actor_is_cut_to_the_column_on_every_backend(state_store, monkeypatch):
    monkeypatch.setenv("MESHCORE_ACTOR", "a" * 300)  # PostgreSQL refuses what does not fit a column
    state_store.audit("approved", "ws/p@aws")
    (entry,) = state_store.audit_trail()
    assert entry.actor == "a" * 256


def test_a_tenant_change_and_its_audit_entry_are_one_transaction(state_store):
    """The audit entry of a change is written with it: a refused change leaves no entry, an accepted one
    always has its entry (they were two transactions, and a crash between them lost the entry)."""
    first = state_store.create_tenant(
        "ws", "a", "aws", "dev", audit=[("tenant.created", {"landing_zone": "dev"})]
    )
    second = state_store.create_tenant("ws", "b", "aws", "dev")
    state_store.update_tenant(
        first.id, platform_tenant_id="111", audit=[("tenant.bound", {"platform_tenant_id": "111"})]
    )
    with pytest.raises(MeshcoreError, match="already belongs"):
        state_store.update_tenant(
            second.id, platform_tenant_id="111", audit=[("tenant.bound", {"platform_tenant_id": "111"})]
        )
    state_store.update_tenant(
        first.id,
        status="MARKED_FOR_DELETION",
        audit=[("tenant.marked_for_deletion", {}), ("tenant.deletion_approved", {"by": "auto"})],
    )
    trail = [(a.action, a.subject, a.details) for a in state_store.audit_trail()]
    assert trail == [
        ("tenant.created", "ws/a@aws", {"landing_zone": "dev"}),
        ("tenant.bound", "ws/a@aws", {"platform_tenant_id": "111"}),
        ("tenant.marked_for_deletion", "ws/a@aws", {}),
        ("tenant.deletion_approved", "ws/a@aws", {"by": "auto"}),
    ], trail


def test_updating_a_field_a_tenant_does_not_have_is_an_error_and_changes_nothing(state_store):
    row = state_store.create_tenant("ws", "p", "demo", "sandbox")
    with pytest.raises(MeshcoreError, match="tenant has no field landingzone"):
        state_store.update_tenant(row.id, landingzone="prod", last_error="typo")
    assert state_store.find_tenant("ws", "p", "demo").last_error == ""
