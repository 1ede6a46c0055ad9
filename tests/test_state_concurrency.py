"""Runners racing on one state store, on every backend (SQLite and PostgreSQL).

Each racer opens the store itself (its own engine and connections, as another process
would), and all start at one barrier: what the store promises to do atomically must hold
between them, not merely between threads sharing one store object.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import TypeVar

import pytest

from meshcore.errors import LockHeldError, MeshcoreError
from meshcore.state import StateStore

RACERS = 8
T = TypeVar("T")


def race(url: str, attempt: Callable[[StateStore, int], T], racers: int = RACERS) -> list[T | Exception]:
    """Run ``attempt(store, i)`` in ``racers`` threads, each with a store of its own, all at once.

    Returns each racer's result, or the exception it raised.
    """
    with ExitStack() as stack:
        stores = [StateStore.open(url) for _ in range(racers)]
        for store in stores:
            stack.callback(store.close)
        barrier = threading.Barrier(racers)

        def run(i: int) -> T | Exception:
            barrier.wait()
            try:
                return attempt(stores[i], i)
            except Exception as exc:
                return exc

        with ThreadPoolExecutor(racers) as pool:
            return list(pool.map(run, range(racers)))


@pytest.fixture
def url(store_url: str) -> Iterator[str]:
    """A migrated store's URL (the racers then only open it)."""
    StateStore.open(store_url).close()
    yield store_url


def test_exactly_one_racing_runner_takes_a_free_lease(url):
    def take(store: StateStore, i: int) -> str:
        store.acquire_lease("apply", f"runner-{i}", 60)
        return f"runner-{i}"

    for attempt in range(3):  # the same race again, now for a released lease
        results = race(url, take)
        winners = [r for r in results if isinstance(r, str)]
        assert len(winners) == 1, (attempt, results)
        assert all(isinstance(r, LockHeldError) for r in results if not isinstance(r, str)), results
        store = StateStore.open(url)
        assert store.lease_holder("apply")[0] == winners[0]
        store.release_lease("apply", winners[0])
        store.close()


def test_exactly_one_racing_runner_takes_an_expired_lease(url):
    store = StateStore.open(url)
    store.acquire_lease("apply", "dead-runner", -1)

    def take(s: StateStore, i: int) -> str:
        s.acquire_lease("apply", f"runner-{i}", 60)
        return f"runner-{i}"

    results = race(url, take)
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1, results
    assert store.lease_holder("apply")[0] == winners[0]
    store.close()


def test_racing_runners_never_over_reserve_a_quota(url):
    window = dt.timedelta(days=30)

    def reserve(store: StateStore, i: int) -> list[bool]:
        return [store.quota_reserve("aws", "close-account", f"acct-{i}-{k}", 10, window)[0] for k in range(4)]

    results = race(url, reserve)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(sum(r) for r in results if isinstance(r, list)) == 10
    store = StateStore.open(url)
    assert store.quota_used("aws", "close-account", window) == 10
    store.close()


def test_racing_runners_recording_one_resource_make_one_row(url):
    def put(store: StateStore, i: int) -> int:
        return store.resource_put("aws", "group", "g1", "id-1", "ws/a@aws", {"by": i}).revision

    results = race(url, put)
    assert sorted(results) == list(range(1, RACERS + 1)), results  # each saw the one before it
    store = StateStore.open(url)
    (resource,) = store.resource_list("aws", "group", None)
    assert resource.revision == RACERS
    store.close()


def test_racing_runners_binding_one_platform_tenant_id_leave_exactly_one_owner(url):
    store = StateStore.open(url)
    ids = [store.create_tenant("ws", f"p{i}", "aws", "lz").id for i in range(RACERS)]

    def bind(s: StateStore, i: int) -> str:
        return s.update_tenant(ids[i], platform_tenant_id="111111111111").key

    results = race(url, bind)
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1, results
    losers = [r for r in results if not isinstance(r, str)]
    assert all(isinstance(r, MeshcoreError) and "already belongs to" in str(r) for r in losers), losers
    assert store.owner_of("aws", "111111111111") == winners[0]
    store.close()


def test_racing_runners_recording_a_platform_and_usage_lines_never_fail_or_duplicate(url):
    lines = [
        {
            "platform_tenant_id": f"acct-{n}",
            "tenant_key": f"ws/p{n}@aws",
            "seller": "AWS",
            "product": "EC2",
            "currency": "USD",
            "amount": "1.00",
        }
        for n in range(3)
    ]

    def record(store: StateStore, i: int) -> None:
        store.record_platform("aws", "aws", f"identity-{i}")
        store.replace_usage("aws", "2026-09", lines)

    results = race(url, record)
    assert results == [None] * RACERS
    store = StateStore.open(url)
    assert len(store.usage("2026-09")) == 3
    assert store.platform_identity("aws").identity.startswith("identity-")
    store.close()


def test_runners_opening_a_new_store_at_once_all_find_it_complete(store_url):
    barrier = threading.Barrier(RACERS)

    def open_it(_: int) -> str | None:
        barrier.wait()
        store = StateStore.open(store_url)
        try:
            store.create_tenant("ws", "p", "aws", "lz")
            return store.schema_revision()
        finally:
            store.close()

    with ThreadPoolExecutor(RACERS) as pool:
        assert list(pool.map(open_it, range(RACERS))) == ["0005"] * RACERS


_OPEN_WHEN_TOLD = """
import pathlib, sys, time
from meshcore.state import StateStore
url, ready, go = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.005)
store = StateStore.open(url)
store.create_tenant("ws", ready.name, "aws", "lz")
print(store.schema_revision())
"""


def test_processes_opening_a_new_store_at_once_all_find_it_complete(store_url, tmp_path):
    """Across processes (one alembic each), a new store is migrated once and then used by all."""
    import subprocess
    import sys
    import time

    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_WHEN_TOLD, store_url, str(tmp_path / f"p{i}"), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"p{i}").exists() for i in range(4)) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    outcomes = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outcomes
    assert [out.strip() for out, _ in outcomes] == ["0005"] * 4
    store = StateStore.open(store_url)
    assert sorted(t.project for t in store.tenants()) == ["p0", "p1", "p2", "p3"]
    store.close()


def test_transactions_run_side_by_side_on_postgresql_and_in_turn_on_sqlite(state_store, store_url):
    """One thread holds a transaction open; another's transaction completes meanwhile on PostgreSQL (no
    process-wide lock), and waits its turn on SQLite (one writer at a time)."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with state_store.session():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    done = threading.Event()
    other = threading.Thread(target=lambda: (state_store.audit("test", "side-by-side", {}), done.set()))
    other.start()
    finished_while_held = done.wait(2)
    release.set()
    holder.join(10)
    other.join(10)
    assert done.is_set()
    assert finished_while_held == store_url.startswith("postgresql"), store_url
