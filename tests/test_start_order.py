"""The order tenants start in (``meshcore.lifecycle.start_order``): revocations first, creations last."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meshcore.lifecycle import Lifecycle, Task, start_order
from meshcore.state.tables import TenantRow

GROUP = {Lifecycle.MARK_FOR_DELETION: 0, Lifecycle.PROVISION: 2}


def group(task: Task) -> int:
    if task.lifecycle == Lifecycle.PROVISION and task.row is None:
        return 3
    return GROUP.get(task.lifecycle, 1)


def test_a_removed_tenant_starts_first_and_a_new_one_last():
    new = Task("ws/new@p", Lifecycle.PROVISION, None, None)
    resumed = Task("ws/resumed@p", Lifecycle.PROVISION, None, TenantRow())  # an earlier run's creation
    live = Task("ws/live@p", Lifecycle.UPDATE, None, TenantRow())
    removed = Task("ws/removed@p", Lifecycle.MARK_FOR_DELETION, None, TenantRow())
    closing = Task("ws/closing@p", Lifecycle.DEPROVISION, None, TenantRow())
    order = start_order([new, resumed, live, removed, closing])
    assert [t.key for t in order] == ["ws/removed@p", "ws/live@p", "ws/closing@p", "ws/resumed@p", "ws/new@p"]


@given(st.lists(st.tuples(st.sampled_from(list(Lifecycle)), st.booleans()), max_size=30))
def test_every_tenant_starts_once_by_group_in_the_order_given(specs):
    work = [
        Task(f"ws/p{i}@x", lifecycle, None, TenantRow() if recorded else None)
        for i, (lifecycle, recorded) in enumerate(specs)
    ]
    order = start_order(work)
    assert sorted(t.key for t in order) == sorted(t.key for t in work)
    assert [group(t) for t in order] == sorted(group(t) for t in work)
    for g in {group(t) for t in work}:  # within a group, the order given
        assert [t.key for t in order if group(t) == g] == [t.key for t in work if group(t) == g]
