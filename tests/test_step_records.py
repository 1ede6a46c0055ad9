"""Deferred step records: a single runner's steps ride along with its next write, never lost, never doubled."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import event, select

from meshcore.errors import ConflictError
from meshcore.state.tables import StepRow

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def stored(store, tenant_key=None) -> list[str]:
    """Step names in the table, read without recording the pending ones first."""
    q = select(StepRow.name).order_by(StepRow.id)
    if tenant_key is not None:
        q = q.where(StepRow.tenant_key == tenant_key)
    with store.engine.connect() as conn:
        return list(conn.scalars(q))


def step(store, run_id, tenant, name, **kw):
    store.record_step(run_id, tenant, "aws", name, "changed", "done", NOW, 1, **kw)


def test_a_deferred_step_is_recorded_by_its_thread_s_next_write_of_any_kind(state_store):
    run = state_store.start_run("apply", "me")
    step(state_store, run.id, "ws/a@aws", "create account", deferred=True)
    step(state_store, run.id, "ws/a@aws", "place", deferred=True)
    assert stored(state_store) == []
    other = threading.Thread(
        target=state_store.resource_put, args=("aws", "account", "b", "222", "ws/b@aws", {})
    )
    other.start()
    other.join()
    assert stored(state_store) == []  # another thread's write carries only that thread's steps
    state_store.resource_put("aws", "account", "a@example.org", "111", "ws/a@aws", {})
    assert stored(state_store) == ["create account", "place"]
    step(state_store, run.id, "ws/a@aws", "alias", deferred=True)
    step(state_store, run.id, "ws/a@aws", "tag")  # not deferred: recorded at once, after the pending one
    assert stored(state_store) == ["create account", "place", "alias", "tag"]


def test_a_failed_transaction_leaves_its_steps_to_the_next_one(state_store):
    run = state_store.start_run("apply", "me")
    state_store.resource_put("aws", "group", "g", "id", "ws/a@aws", {})
    step(state_store, run.id, "ws/b@aws", "create group", deferred=True)
    with pytest.raises(ConflictError):
        state_store.resource_put(
            "aws", "group", "g", "id", "ws/b@aws", {}
        )  # another owner: refused, rolled back
    assert stored(state_store) == []
    step(state_store, run.id, "ws/b@aws", "add member", deferred=True)
    state_store.journal_begin("aws", "ws/b@aws", "create-group", "g2", {})
    assert stored(state_store) == ["create group", "add member"]  # once each, in order


def test_another_tenant_s_failing_write_never_takes_or_reorders_a_tenant_s_steps(state_store):
    """Thread b's write fails while thread a goes on: a's flush at the end of its turn records a's steps, in order."""
    run = state_store.start_run("apply", "me")
    state_store.resource_put("aws", "group", "g", "id", "ws/a@aws", {})
    step(state_store, run.id, "ws/a@aws", "s1", deferred=True)
    inside, go_on = threading.Event(), threading.Event()

    def b_fails() -> None:
        with pytest.raises(ConflictError), state_store._transaction():
            inside.set()
            go_on.wait(10)
            raise ConflictError("refused")

    b = threading.Thread(target=b_fails)
    b.start()
    assert inside.wait(10)
    step(state_store, run.id, "ws/a@aws", "s2", deferred=True)
    go_on.set()
    state_store.flush_steps()  # a's turn ends
    b.join(10)
    assert stored(state_store, "ws/a@aws") == ["s1", "s2"]


def test_flush_records_this_thread_s_pending_steps_and_costs_nothing_when_there_are_none(state_store):
    run = state_store.start_run("apply", "me")
    begun: list[int] = []
    event.listen(state_store.engine, "begin", lambda _c: begun.append(1))
    state_store.flush_steps()
    assert begun == []
    step(state_store, run.id, "ws/a@aws", "create account", deferred=True)
    state_store.flush_steps()
    assert len(begun) == 1
    assert stored(state_store) == ["create account"]


def test_a_step_the_database_refuses_is_logged_and_dropped_not_left_to_fail_every_write(state_store, caplog):
    run = state_store.start_run("apply", "me")
    step(state_store, None, "ws/a@aws", "broken", deferred=True)  # run_id may not be NULL
    step(state_store, run.id, "ws/a@aws", "fine", deferred=False)
    recorded = state_store.resource_put("aws", "account", "a@example.org", "111", "ws/a@aws", {})
    assert recorded.cloud_id == "111" and stored(state_store) == ["fine"]
    assert "step record(s) refused by the state store and dropped" in caplog.text and "broken" in caplog.text
    state_store.resource_put("aws", "account", "b@example.org", "222", "ws/a@aws", {})  # nothing left to fail


def test_steps_and_finish_run_record_the_pending_steps_first(state_store):
    run = state_store.start_run("apply", "me")
    step(state_store, run.id, "ws/a@aws", "create account", deferred=True)
    assert [s.name for s in state_store.steps(run.id)] == ["create account"]
    step(state_store, run.id, "ws/a@aws", "alias", deferred=True)
    state_store.finish_run(run.id, "ok", {})
    assert stored(state_store) == ["create account", "alias"]


def test_a_fenced_step_is_never_deferred(state_store):
    from meshcore.leases import Fence

    run = state_store.start_run("apply", "me")
    token = state_store.acquire_tenant_lease("ws/a@aws", "runner-1", 60)
    fence = Fence("ws/a@aws", "runner-1", token)
    step(state_store, run.id, "ws/a@aws", "create account", fence=fence, deferred=True)
    assert stored(state_store) == ["create account"]


def test_every_tenant_s_steps_are_recorded_before_its_turn_ends(
    write_config, meshcore_registry, state_store, base_config
):
    """What the report shows of a tenant when it is done, the table already holds (no run-end flush needed)."""
    from meshcore.config import load_config
    from meshcore.reconciler import Reconciler

    seen: dict[str, tuple[int, int]] = {}
    before: dict[str, int] = {}

    def progress(item):
        if item.scope == "tenant":
            seen[item.key] = (len(item.actions), len(stored(state_store, item.key)) - before[item.key])

    loaded = load_config(write_config(base_config), meshcore_registry)
    assert not Reconciler(loaded, state_store, meshcore_registry, sleep=lambda _s: None).apply().failed
    base_config["workspaces"][0]["projects"][0]["tags"] = {"environment": "prod"}  # one step, no other write
    before.update({k: len(stored(state_store, k)) for k in ("ws1/p1@demo", "ws1/p2@demo", "ws2/p3@demo")})
    loaded = load_config(write_config(base_config), meshcore_registry)
    rec = Reconciler(loaded, state_store, meshcore_registry, sleep=lambda _s: None, on_progress=progress)
    rec.concurrency = 1
    report = rec.apply()
    assert [i.status for i in report.tenants] == ["changed", "ok", "ok"], report.tenants
    assert seen["ws1/p1@demo"][0] > 0 and seen["ws1/p1@demo"][0] == seen["ws1/p1@demo"][1], seen


def test_a_lease_is_renewed_only_while_its_holder_still_has_it(state_store):
    state_store.acquire_lease("apply", "runner-1", 60)
    assert state_store.renew_lease("apply", "runner-1", 60)
    assert not state_store.renew_lease("apply", "runner-2", 60)
    state_store.acquire_lease("other", "runner-1", -1)  # expired: someone may have held it meanwhile
    assert not state_store.renew_lease("other", "runner-1", 60)


def test_flushing_every_thread_keeps_no_queue_of_an_ended_thread(state_store):
    """Every thread that writes gets a queue (a transaction carries its thread's steps); a long-running
    service starts new worker threads every run, so the queues of ended threads, empty or not, are dropped
    once flushed, and a live thread's queue is kept."""
    run = state_store.start_run("apply", "me")
    writer = threading.Thread(
        target=state_store.resource_put, args=("aws", "account", "w", "111", "ws/w@aws", {})
    )
    stepper = threading.Thread(
        target=step, args=(state_store, run.id, "ws/s@aws", "create"), kwargs={"deferred": True}
    )
    go_on = threading.Event()
    recorded = threading.Event()

    def live() -> None:
        step(state_store, run.id, "ws/l@aws", "first", deferred=True)
        recorded.set()
        go_on.wait(10)
        step(state_store, run.id, "ws/l@aws", "second", deferred=True)

    alive = threading.Thread(target=live)
    for t in (writer, stepper):
        t.start()
        t.join()
    alive.start()
    assert recorded.wait(10)
    state_store.flush_steps(every_thread=True)
    assert set(state_store._queues) <= {threading.get_ident(), alive.ident}
    # Threads are flushed in no set order (a new thread may reuse an ended one's ident, and its queue).
    assert sorted(stored(state_store)) == ["create", "first"]
    go_on.set()
    alive.join()
    state_store.flush_steps(every_thread=True)
    assert stored(state_store, "ws/s@aws") == ["create"]
    assert stored(state_store, "ws/l@aws") == ["first", "second"]
    assert set(state_store._queues) <= {threading.get_ident()}
