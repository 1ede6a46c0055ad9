"""Shared runners on one state (``settings.runners: shared``): tenant leases, fencing, the shared API budget.

Every test runs on SQLite and PostgreSQL. "Another runner" is another
:class:`StateStore` object (its own connections) on the same database.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select, update

from meshcore.config import load_config
from meshcore.errors import FencedError, LockHeldError
from meshcore.leases import Fence, Sharing, working_under
from meshcore.reconciler import Reconciler
from meshcore.state import StateStore
from meshcore.state.tables import LimiterSlotRow, TenantLeaseRow, utcnow

KEY = "ws1/p1@demo"


@pytest.fixture
def other(store_url: str, state_store: StateStore):
    """A second runner's store on the same database."""
    store = StateStore.open(store_url)
    yield store
    store.close()


def _writes(fence: Fence, store: StateStore, tenant_id: int, journal_id: int) -> dict[str, Any]:
    """Every kind of state write made on behalf of a tenant, each with ``fence``."""
    now = utcnow()
    return {
        "record_step": lambda: store.record_step(
            1, KEY, "demo", "tenant", "changed", "m", now, 1, fence=fence
        ),
        "journal_begin": lambda: store.journal_begin("demo", KEY, "create", "k2", {}, fence=fence),
        "journal_update": lambda: store.journal_update(journal_id, fence=fence, status="done"),
        "resource_put": lambda: store.resource_put("demo", "tenant", "r2", "id", KEY, {}, fence=fence),
        "resource_remove": lambda: store.resource_remove("demo", "tenant", "r1", fence=fence),
        "update_tenant": lambda: store.update_tenant(tenant_id, fence=fence, last_error="late"),
        "create_tenant": lambda: store.create_tenant("ws1", "p9", "demo", "sandbox", fence=fence),
        "audit": lambda: store.audit("tenant.bound", KEY, {}, fence=fence),
        "quota_reserve": lambda: store.quota_reserve(
            "demo", "closures", "k", 5, dt.timedelta(days=1), fence=fence
        ),
    }


def _expire(store: StateStore, table: Any) -> None:
    """Every lease in ``table`` ran out a second ago (what a runner paused past its lease finds)."""
    with store.session() as s:
        s.execute(update(table).values(expires_at=utcnow() - dt.timedelta(seconds=1)))


def _lease_left(store: StateStore, table: Any) -> float:
    """Seconds until the (only) lease in ``table`` runs out."""
    with store.session() as s:
        (expires,) = s.scalars(select(table.expires_at)).all()
    return (expires - utcnow()).total_seconds()


def test_a_runner_whose_lease_was_taken_over_records_nothing(state_store, other):
    tenant = state_store.create_tenant("ws1", "p1", "demo", "sandbox")
    journal = state_store.journal_begin("demo", KEY, "create", "k1", {})
    state_store.resource_put("demo", "tenant", "r1", "id", KEY, {})
    token = state_store.acquire_tenant_lease(KEY, "runner-a", 30)
    assert token == 1
    assert 25 < _lease_left(state_store, TenantLeaseRow) <= 30, "the lease lasts what was asked"
    mine = Fence(KEY, "runner-a", token)
    state_store.record_step(1, KEY, "demo", "tenant", "ok", "in time", utcnow(), 1, fence=mine)
    assert other.acquire_tenant_lease(KEY, "runner-b", 30) is None, "a live lease was taken"
    _expire(state_store, TenantLeaseRow)  # runner-a is paused past its lease
    assert other.acquire_tenant_lease(KEY, "runner-b", 30) == 2, "the next acquisition raises the token"
    before = _snapshot(state_store)
    for name, write in _writes(mine, state_store, tenant.id, journal.id).items():
        with pytest.raises(FencedError, match="lease of ws1/p1@demo lost"):
            write()
        assert _snapshot(state_store) == before, f"{name} recorded something for a fenced-off runner"
    assert not state_store.renew_tenant_lease(mine, 30), "a lost lease was renewed"
    theirs = Fence(KEY, "runner-b", 2)
    other.record_step(1, KEY, "demo", "tenant", "changed", "new holder", utcnow(), 1, fence=theirs)
    steps = [(s.message, s.runner, s.token) for s in state_store.steps(tenant_key=KEY)]
    assert steps == [("in time", "runner-a", 1), ("new holder", "runner-b", 2)]


def test_an_expired_lease_fences_even_before_another_runner_takes_it(state_store):
    token = state_store.acquire_tenant_lease(KEY, "runner-a", 0.3)
    assert token is not None
    time.sleep(0.4)
    with pytest.raises(FencedError):
        state_store.audit("tenant.bound", KEY, {}, fence=Fence(KEY, "runner-a", token))
    assert state_store.audit_trail(KEY) == []


def _snapshot(store: StateStore) -> tuple[Any, ...]:
    return (
        [(s.message, s.token) for s in store.steps()],
        [(j.key, j.status) for j in store.journal_entries()],
        [(r.key, r.revision) for r in store.resource_list("demo", None, None)],
        [(t.key, t.last_error) for t in store.tenants()],
        [a.action for a in store.audit_trail()],
        store.quota_used("demo", "closures", dt.timedelta(days=1)),
    )


def test_racing_runners_take_a_lease_once_and_each_acquisition_raises_the_token(store_url, state_store):
    stores = [StateStore.open(store_url) for _ in range(4)]
    try:
        tokens: list[int] = []
        for round_ in range(3):
            with ThreadPoolExecutor(4) as pool:
                got = list(
                    pool.map(
                        lambda i, r=round_: stores[i].acquire_tenant_lease(KEY, f"r{r}-{i}", 30), range(4)
                    )
                )
            winners = [(i, t) for i, t in enumerate(got) if t is not None]
            assert len(winners) == 1, got
            i, token = winners[0]
            tokens.append(token)
            stores[i].release_tenant_lease(Fence(KEY, f"r{round_}-{i}", token))
        assert tokens == [1, 2, 3]
    finally:
        for s in stores:
            s.close()


def test_a_tenant_another_runner_finished_in_this_round_is_not_taken_again(state_store, other):
    round_start = utcnow()
    token = other.acquire_tenant_lease(KEY, "runner-b", 30)
    assert token is not None
    other.release_tenant_lease(Fence(KEY, "runner-b", token))
    assert state_store.acquire_tenant_lease(KEY, "runner-a", 30, done_since=round_start) is None
    assert state_store.acquire_tenant_lease(KEY, "runner-a", 30, done_since=utcnow()) == token + 1


def test_the_api_budget_holds_across_runners(store_url, state_store):
    """Three runners (each its own store), a budget of 2: never more than 2 calls in flight together."""
    stores = [StateStore.open(store_url) for _ in range(3)]
    sharings = [Sharing(s, f"runner-{i}", 30) for i, s in enumerate(stores)]
    in_flight, peak, lock = 0, 0, threading.Lock()

    def calls(i: int) -> int:
        nonlocal in_flight, peak
        limiter = sharings[i].limiter("demo/org-writes", 2)
        for _ in range(6):
            with limiter:
                with lock:
                    in_flight += 1
                    peak = max(peak, in_flight)
                time.sleep(0.02)
                with lock:
                    in_flight -= 1
        return i

    try:
        with ThreadPoolExecutor(3) as pool:
            assert sorted(pool.map(calls, range(3))) == [0, 1, 2]
    finally:
        for sharing, s in zip(sharings, stores, strict=True):
            sharing.close()
            s.close()
    assert peak == 2, f"{peak} calls in flight at once with a budget of 2"


def test_a_slot_of_a_killed_runner_frees_itself_when_its_lease_expires(state_store, other):
    assert state_store.limiter_acquire("demo/org-writes", 1, "killed", 30) == 0
    assert 25 < _lease_left(state_store, LimiterSlotRow) <= 30, "the slot's lease lasts what was asked"
    assert other.limiter_acquire("demo/org-writes", 1, "alive", 30) is None
    _expire(state_store, LimiterSlotRow)  # the killed runner's lease runs out
    assert other.limiter_acquire("demo/org-writes", 1, "alive", 30) == 0


# -- the reconciler in shared mode ------------------------------------------------------------


@pytest.fixture
def shared(write_config, meshcore_registry, state_store, store_url, fake_plugin, base_config):
    """make(store=None, lease_seconds=30) -> a reconciler in shared mode (on a store of its own unless
    given); the fake cloud, ``make.cloud``, is shared by all."""
    opened: list[StateStore] = []

    def make(store: StateStore | None = None, lease_seconds: int = 30) -> Reconciler:
        if store is None:
            store = StateStore.open(store_url)
            opened.append(store)
        base_config["settings"] = {"runners": "shared", "lease_seconds": lease_seconds}
        loaded = load_config(write_config(base_config), meshcore_registry)
        make.cloud = fake_plugin.cloud(loaded.platforms["demo"])  # type: ignore[attr-defined]
        return Reconciler(loaded, store, meshcore_registry, sleep=lambda _s: None)

    yield make
    for s in opened:
        s.close()


def test_two_shared_runners_split_the_tenants_and_each_is_done_once(shared, state_store):
    runners = [shared(), shared()]
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda r: r.apply(), runners))
    for key in ("ws1/p1@demo", "ws1/p2@demo", "ws2/p3@demo"):
        statuses = sorted(next(i.status for i in r.tenants if i.key == key) for r in reports)
        # the second runner skips it, or (if the first finished before it began) finds it converged
        assert statuses in (["changed", "elsewhere"], ["changed", "ok"]), (key, statuses)
        steps = state_store.steps(tenant_key=key)
        assert steps and len({(s.runner, s.token) for s in steps}) == 1, "one runner, one lease per tenant"
    assert len(shared.cloud.tenants) == 3, "a tenant was created twice"
    assert len(state_store.tenants()) == 3
    again = shared().apply()
    assert {i.status for i in again.tenants} == {"ok"}


def test_a_tenant_another_live_runner_holds_is_skipped_not_failed(shared, state_store, other):
    assert other.acquire_tenant_lease("ws1/p2@demo", "another-runner", 30) is not None
    report = shared(state_store).apply()
    item = next(i for i in report.tenants if i.key == "ws1/p2@demo")
    assert item.status == "elsewhere" and "another-runner" in item.message
    assert not report.failed and report.summary["elsewhere"] == 1
    assert state_store.steps(tenant_key="ws1/p2@demo") == []


def test_a_tenant_whose_lease_is_lost_mid_run_stops_and_records_nothing(
    shared, state_store, other, monkeypatch
):
    victim = "ws1/p1@demo"
    real = Reconciler._current

    def taken_over(self: Reconciler, task: Any) -> Any:
        if task.key == victim:  # this runner stalls past its lease; another takes the tenant
            with other.session() as s:
                from meshcore.state.tables import TenantLeaseRow

                row = s.get(TenantLeaseRow, victim)
                row.expires_at = utcnow() - dt.timedelta(seconds=1)
            assert other.acquire_tenant_lease(victim, "runner-b", 30) is not None
        return real(self, task)

    monkeypatch.setattr(Reconciler, "_current", taken_over)
    report = shared(state_store).apply()
    item = next(i for i in report.tenants if i.key == victim)
    assert item.status == "fenced" and "lease of ws1/p1@demo lost" in item.message
    assert not report.failed
    assert state_store.steps(tenant_key=victim) == []
    assert state_store.find_tenant("ws1", "p1", "demo") is None, "the fenced runner created the tenant row"
    assert all(i.status == "changed" for i in report.tenants if i.key != victim)


def test_single_and_shared_runners_never_apply_one_state_together(
    shared, state_store, other, write_config, meshcore_registry, base_config
):
    state_store.acquire_lease("apply", "single-runner", 300)
    with pytest.raises(LockHeldError, match="single mode"):
        shared(state_store).apply()
    state_store.release_lease("apply", "single-runner")
    other.acquire_tenant_lease("ws1/p1@demo", "shared-runner", 30)
    base_config.pop("settings", None)
    single = Reconciler(
        load_config(write_config(base_config), meshcore_registry), state_store, meshcore_registry
    )
    with pytest.raises(LockHeldError, match="shared mode"):
        single.apply()


def test_a_runner_that_waited_for_a_slot_past_its_lease_makes_no_call(state_store, other):
    """The budget's slot is handed out only while the tenant's lease still holds (else no cloud call)."""
    token = state_store.acquire_tenant_lease(
        KEY, "runner-a", 1.5
    )  # long enough for a busy machine's first slot
    assert token is not None
    sharing = Sharing(state_store, "runner-a", 30)
    limiter = sharing.limiter("demo/org-writes", 1)
    try:
        with working_under(Fence(KEY, "runner-a", token)):
            with limiter:
                pass  # in time: the call is made
            time.sleep(1.6)  # waited (paused) past the lease; another runner takes the tenant
            assert other.acquire_tenant_lease(KEY, "runner-b", 30) == token + 1
            calls = 0
            with pytest.raises(FencedError), limiter:
                calls += 1
        assert calls == 0
        assert other.limiter_acquire("demo/org-writes", 1, "runner-b", 30) == 0, "the slot was not given back"
    finally:
        sharing.close()


def test_while_another_runner_holds_the_platform_nothing_is_granted_before_its_guardrails(
    shared, state_store, other
):
    """The platform's lease is held elsewhere past the wait: the platform is observed, not changed,
    and tenants whose access requires its guardrails wait (in progress), granted nothing."""
    assert other.acquire_tenant_lease("platform:demo", "another-runner", 60) is not None
    rec = shared(state_store, lease_seconds=1)  # waits one second for the platform's lease
    started = time.monotonic()
    report = rec.apply()
    assert time.monotonic() - started >= 1, "did not wait for the platform's lease"
    platform = report.platforms[0]
    assert platform.status == "elsewhere" and "another-runner" in platform.message
    assert shared.cloud.folders == {}, "a runner without the platform's lease changed it"
    assert not report.failed
    assert {i.status for i in report.tenants} == {"in_progress"}
    assert all(not t["access"] for t in shared.cloud.tenants.values()), "access granted before guardrails"
