"""The order tenants start in (``meshcore.lifecycle.start_order``): revocations first, creations last."""

from __future__ import annotations

from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.lifecycle import Lifecycle, Task, start_order
from meshcore.state.tables import TenantRow

#: Tenants no longer in the config: what runs for them is revoking access (and, approved, deletion).
GONE = {Lifecycle.MARK_FOR_DELETION, Lifecycle.AWAIT_APPROVAL, Lifecycle.DEPROVISION, Lifecycle.ORPHANED}


def test_a_removed_tenant_starts_first_and_a_new_one_last():
    new = Task("ws/new@p", Lifecycle.PROVISION, None, None)
    resumed = Task("ws/resumed@p", Lifecycle.PROVISION, None, TenantRow())  # an earlier run's creation
    live = Task("ws/live@p", Lifecycle.UPDATE, None, TenantRow())
    removed = Task("ws/removed@p", Lifecycle.MARK_FOR_DELETION, None, TenantRow())
    closing = Task("ws/closing@p", Lifecycle.DEPROVISION, None, TenantRow())
    order = start_order([new, resumed, live, removed, closing])
    assert [t.key for t in order] == ["ws/removed@p", "ws/closing@p", "ws/live@p", "ws/resumed@p", "ws/new@p"]


def must_precede(a: Task, b: Task) -> bool:
    """Whether ``a`` has to start before ``b`` by the rules, stated one by one."""
    creating_a, creating_b = a.lifecycle == Lifecycle.PROVISION, b.lifecycle == Lifecycle.PROVISION
    if a.lifecycle in GONE and b.lifecycle not in GONE:
        return True  # a revocation before anything else
    if not creating_a and creating_b:
        return True  # every tenant in its cloud before any creation
    return creating_a and creating_b and a.row is not None and b.row is None  # resumed before new


@settings(deadline=None)  # a paused example on a busy machine is not a failure
@given(st.lists(st.tuples(st.sampled_from(list(Lifecycle)), st.booleans()), max_size=30))
def test_every_tenant_starts_once_and_no_rule_is_broken(specs):
    work = [
        Task(f"ws/p{i}@x", lifecycle, None, TenantRow() if recorded else None)
        for i, (lifecycle, recorded) in enumerate(specs)
    ]
    order = start_order(work)
    assert sorted(t.key for t in order) == sorted(t.key for t in work)
    for earlier, later in combinations(order, 2):
        assert not must_precede(later, earlier), (later.key, "must start before", earlier.key)
    position = {t.key: i for i, t in enumerate(order)}
    for a, b in combinations(work, 2):  # tenants no rule orders keep the order given
        if not must_precede(a, b) and not must_precede(b, a):
            assert position[a.key] < position[b.key]
