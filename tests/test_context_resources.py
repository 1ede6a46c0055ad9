"""A tenant's view of the resources table (meshcore.context.Resources): one read, kept current by its writes."""

from __future__ import annotations

import pytest

from meshcore.context import Resources
from meshcore.errors import ConflictError


class Counting:
    """The store, counting the reads that reach it."""

    def __init__(self, store):
        self.store, self.lists, self.gets = store, 0, 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def resource_list(self, *args):
        self.lists += 1
        return self.store.resource_list(*args)

    def resource_get(self, *args):
        self.gets += 1
        return self.store.resource_get(*args)


def test_one_read_serves_every_kind_and_writes_keep_it_current(state_store):
    other = Resources(state_store, "demo", "ws/other@demo")
    other.put("group", "theirs", cloud_id="g-9")
    backend = Counting(state_store)
    mine = Resources(backend, "demo", "ws/p@demo")
    mine.put("group", "admins", cloud_id="g-1")
    mine.put("account", "p@example.com", cloud_id="111")

    assert [r.key for r in mine.owned("group")] == ["admins"]
    assert [r.key for r in mine.owned()] == ["admins", "p@example.com"]
    assert mine.get("account", "p@example.com").cloud_id == "111"
    assert (backend.lists, backend.gets) == (1, 0), "one read for every kind and every own lookup"

    mine.put("group", "admins", cloud_id="g-2", data={"role": "admin"})  # an update keeps its place
    mine.put("alias", "111", cloud_id="p-alias")
    mine.remove("account", "p@example.com")
    assert [(r.kind, r.key, r.cloud_id) for r in mine.owned()] == [
        ("group", "admins", "g-2"),
        ("alias", "111", "p-alias"),
    ]
    assert [(r.kind, r.key, r.cloud_id) for r in mine.owned()] == [
        (r.kind, r.key, r.cloud_id) for r in state_store.resource_list("demo", None, "ws/p@demo")
    ], "the view is what the table says"
    assert backend.lists == 1

    assert mine.get("group", "theirs").owner == "ws/other@demo"  # not its own: read from the table
    assert mine.get("group", "nothing") is None
    assert backend.gets == 2


def test_a_refused_write_leaves_the_view_as_the_table_is(state_store):
    Resources(state_store, "demo", "ws/other@demo").put("group", "shared-name", cloud_id="g-9")
    mine = Resources(state_store, "demo", "ws/p@demo")
    assert mine.owned() == []
    with pytest.raises(ConflictError):
        mine.put("group", "shared-name", cloud_id="g-1")  # a resource never changes hands
    assert mine.owned() == []


def test_a_resource_and_the_intent_that_made_it_are_recorded_together(state_store):
    from meshcore.context import Journal

    journal = Journal(state_store, "demo", "ws/p@demo")
    mine = Resources(state_store, "demo", "ws/p@demo")
    entry = journal.begin("create-group", "admins", {"role": "admin"})
    mine.put("group", "admins", cloud_id="g-1", completes=entry, result={"group_id": "g-1"})

    (row,) = state_store.journal_entries("demo")
    assert (row.status, row.result) == ("done", {"group_id": "g-1"})
    assert entry.status == "done" and journal.find("create-group", "admins") is None
    assert mine.get("group", "admins").cloud_id == "g-1"


def test_a_refused_resource_leaves_its_intent_open(state_store):
    from meshcore.context import Journal

    Resources(state_store, "demo", "ws/other@demo").put("group", "taken", cloud_id="g-9")
    journal = Journal(state_store, "demo", "ws/p@demo")
    entry = journal.begin("create-group", "taken", {})
    with pytest.raises(ConflictError):
        Resources(state_store, "demo", "ws/p@demo").put("group", "taken", cloud_id="g-1", completes=entry)
    assert journal.find("create-group", "taken") is not None, "closed although nothing was recorded"
    assert entry.status == "open"
    assert state_store.resource_get("demo", "group", "taken").cloud_id == "g-9"
