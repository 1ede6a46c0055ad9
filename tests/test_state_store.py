"""State store: versioned schema, migrations on open, ownership rules, leases."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from meshcore.errors import LockHeldError, MeshcoreError
from meshcore.state import StateStore


def test_new_store_is_migrated_to_head_and_reopening_keeps_data(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = StateStore.open(url)
    assert store.schema_revision() == "0003"
    store.create_tenant("ws", "p", "aws", "lz")
    store.close()
    again = StateStore.open(str(tmp_path / "s.db"))  # a plain path works too
    assert [t.key for t in again.tenants()] == ["ws/p@aws"]


def test_a_store_of_the_first_schema_is_migrated_with_its_data(tmp_path):
    from alembic import command
    from alembic.config import Config

    from meshcore.state.store import _MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = StateStore.open(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
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
    assert again.schema_revision() == "0003"
    (row,) = again.tenants()
    assert (row.key, row.platform_tenant_id, row.revoked_at) == ("ws/p@aws", "123456789012", None)
    assert again.resource_list("aws", None, None) == []


def test_quota_slots_are_never_over_reserved_by_parallel_reservers(state_store):
    import datetime as dt
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


def test_a_schema_newer_than_this_meshcore_is_refused(tmp_path):
    store = StateStore.open(f"sqlite:///{tmp_path / 's.db'}")
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(MeshcoreError, match="newer than this meshcore"):
        StateStore.open(f"sqlite:///{tmp_path / 's.db'}")


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
