"""A single runner's copy of a platform's journal and resources (meshcore.snapshot) answers as the store does.

The stateful test runs random journal and resource writes through a :class:`SnapshotBackend`, some of them
failing after the store committed (a lost acknowledgement), and after every step compares what the copy
answers with what the store answers.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy import event

from meshcore.errors import ConflictError
from meshcore.snapshot import SnapshotBackend
from meshcore.state import StateStore

KINDS = st.sampled_from(["account", "group"])
KEYS = st.sampled_from(["a", "b", "c"])
OWNERS = st.sampled_from(["", "ws/p1@aws", "ws/p2@aws"])


def snapshot(store: StateStore, platform: str = "aws") -> SnapshotBackend:
    return SnapshotBackend(store, platform, lambda p: store.journal_entries(p, status="open"))


class LostAcknowledgement(Exception):
    """The store committed; the caller never learnt it."""


class AfterCommitFault:
    """The store, but the next write raises once it has committed."""

    def __init__(self, store: StateStore):
        self.store = store
        self.armed = False

    def __getattr__(self, name: str):
        method = getattr(self.store, name)
        if not name.startswith(("journal_begin", "journal_update", "resource_put", "resource_remove")):
            return method

        def call(*args, **kwargs):
            result = method(*args, **kwargs)
            if self.armed:
                self.armed = False
                raise LostAcknowledgement(name)
            return result

        return call


class SnapshotAgreesWithStore(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.store = StateStore.open(f"sqlite:///{Path(self.dir.name) / 'state.db'}")
        self.faulty = AfterCommitFault(self.store)
        # an intent left open by an earlier run, and a resource recorded then: both must be seen
        self.store.journal_begin("aws", "ws/p1@aws", "account", "a", {"earlier": True})
        self.store.resource_put("aws", "group", "c", "g-1", "ws/p2@aws", {"n": 0})
        self.store.resource_put("other", "group", "a", "g-9", "", {})  # another platform: not in the copy
        self.copy = SnapshotBackend(
            self.faulty, "aws", lambda p: self.store.journal_entries(p, status="open")
        )

    def teardown(self) -> None:
        self.store.close()
        self.dir.cleanup()

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (LostAcknowledgement, ConflictError):
            return None

    @rule(fail=st.booleans())
    def arm_fault(self, fail: bool) -> None:
        self.faulty.armed = fail

    @rule(kind=KINDS, key=KEYS)
    def begin(self, kind: str, key: str) -> None:
        self._call(self.copy.journal_begin, "aws", "ws/p1@aws", kind, key, {"k": key})

    @rule(kind=KINDS, key=KEYS, status=st.sampled_from(["open", "done", "failed"]), op=st.text(max_size=3))
    def update(self, kind: str, key: str, status: str, op: str) -> None:
        row = self.store.journal_find("aws", kind, key)
        if row is not None:
            self._call(self.copy.journal_update, row.id, status=status, operation_id=op)

    @rule(kind=KINDS, key=KEYS, owner=OWNERS, n=st.integers(0, 3), completes=st.booleans())
    def put(self, kind: str, key: str, owner: str, n: int, completes: bool) -> None:
        entry = self.store.journal_find("aws", kind, key) if completes else None
        journal = (entry.id, {"status": "done", "result": {"n": n}}) if entry is not None else None
        self._call(self.copy.resource_put, "aws", kind, key, f"id-{n}", owner, {"n": n}, journal=journal)

    @rule(kind=KINDS, key=KEYS)
    def remove(self, kind: str, key: str) -> None:
        self._call(self.copy.resource_remove, "aws", kind, key)

    @invariant()
    def answers_agree(self) -> None:
        for kind in ("account", "group"):
            for key in ("a", "b", "c"):
                mine, theirs = (
                    self.copy.journal_find("aws", kind, key),
                    self.store.journal_find("aws", kind, key),
                )
                assert (mine and (mine.id, mine.operation_id)) == (
                    theirs and (theirs.id, theirs.operation_id)
                )
                assert self.copy.resource_get("aws", kind, key) == self.store.resource_get("aws", kind, key)
        for owner in (None, "", "ws/p1@aws", "ws/p2@aws"):
            for kind in (None, "account", "group"):
                assert self.copy.resource_list("aws", kind, owner) == self.store.resource_list(
                    "aws", kind, owner
                )
        assert self.copy.resource_list("other", None, None) == self.store.resource_list("other", None, None)


TestSnapshotAgreesWithStore = SnapshotAgreesWithStore.TestCase
TestSnapshotAgreesWithStore.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)


def test_the_copy_is_read_once_and_its_answers_cost_no_transaction(tmp_path):
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    store.resource_put("aws", "account", "a@example.org", "111", "ws/p@aws", {})
    copy = snapshot(store)
    begun: list[int] = []
    event.listen(store.engine, "begin", lambda _c: begun.append(1))
    for _ in range(3):
        assert copy.journal_find("aws", "create-account", "b@example.org") is None
        assert copy.resource_list("aws", None, "ws/p@aws")[0].cloud_id == "111"
        assert copy.resource_get("aws", "account", "nobody@example.org") is None
    assert len(begun) == 2  # the open entries and the resources, once
    entry = copy.journal_begin("aws", "ws/q@aws", "create-account", "b@example.org", {})
    assert copy.journal_find("aws", "create-account", "b@example.org").id == entry.id
    assert len(begun) == 3  # the write; the lookup after it came from memory
    store.close()


def test_a_resource_read_from_the_copy_can_be_changed_without_changing_the_copy(tmp_path):
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    store.resource_put("aws", "group", "g", "id", "", {"members": ["alice"]})
    copy = snapshot(store)
    copy.resource_get("aws", "group", "g").data["members"].append("mallory")
    copy.resource_list("aws", "group", None)[0].data.clear()
    assert copy.resource_get("aws", "group", "g").data == {"members": ["alice"]}
    store.close()


@pytest.mark.parametrize("runners", ["single", "shared"])
def test_a_single_runner_reads_journal_and_resources_once_a_shared_one_every_time(
    runners, write_config, meshcore_registry, state_store, base_config, monkeypatch
):
    from meshcore.config import load_config
    from meshcore.reconciler import Reconciler

    base_config["settings"] = {"runners": runners}
    loaded = load_config(write_config(base_config), meshcore_registry)
    assert not Reconciler(loaded, state_store, meshcore_registry, sleep=lambda _s: None).apply().failed
    base_config["workspaces"][1]["projects"] += [
        {"id": f"new{i}", "tenants": [{"platform": "demo", "landing_zone": "sandbox"}]} for i in range(3)
    ]
    loaded = load_config(write_config(base_config), meshcore_registry)
    reads: list[str] = []
    for name in ("resource_list", "resource_get", "journal_find", "journal_entries"):
        original = getattr(StateStore, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(StateStore, name, counted)
    report = Reconciler(loaded, state_store, meshcore_registry, sleep=lambda _s: None).apply()
    assert not report.failed and [i.status for i in report.tenants].count("changed") == 3
    if runners == "single":  # once per run; each new tenant's lookups of earlier intents come from memory
        assert sorted(reads) == ["journal_entries", "resource_list"], reads
    else:  # every lookup reads the store: other runners write it meanwhile
        assert reads.count("journal_find") >= 3, reads


def test_the_copy_holds_what_a_read_of_the_store_would_return(tmp_path):
    from meshcore.redaction import register_secret

    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    copy = snapshot(store)
    copy.resource_list("aws", None, None)  # read: later writes go to memory too
    register_secret("hunter2secret")
    put = copy.resource_put(
        "aws", "group", "g", "id", "ws/p@aws", {"regions": ("a", "b"), "token": "hunter2secret"}
    )
    put.data["regions"] = "changed by the caller"
    assert copy.resource_get("aws", "group", "g") == store.resource_get("aws", "group", "g")
    assert copy.resource_get("aws", "group", "g").data == {"regions": ["a", "b"], "token": "***"}
    store.close()


def test_a_refused_write_keeps_the_copy(tmp_path):
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    store.resource_put("aws", "group", "g", "id", "ws/a@aws", {})
    copy = snapshot(store)
    assert copy.resource_get("aws", "group", "g").owner == "ws/a@aws"
    begun: list[int] = []
    event.listen(store.engine, "begin", lambda _c: begun.append(1))
    with pytest.raises(ConflictError):
        copy.resource_put("aws", "group", "g", "id", "ws/b@aws", {})
    assert copy.resource_get("aws", "group", "g").owner == "ws/a@aws"
    assert len(begun) == 1  # the refused write; the lookup after it came from memory
    store.close()


def test_a_plan_reads_the_store_itself(
    write_config, meshcore_registry, state_store, base_config, monkeypatch
):
    """A plan holds no lease: an apply may write meanwhile, so it keeps no copy."""
    from meshcore.config import load_config
    from meshcore.reconciler import Reconciler

    loaded = load_config(write_config(base_config), meshcore_registry)
    rec = Reconciler(loaded, state_store, meshcore_registry, sleep=lambda _s: None)
    reads: list[str] = []
    original = StateStore.journal_entries
    monkeypatch.setattr(
        StateStore,
        "journal_entries",
        lambda self, *a, **k: reads.append("entries") or original(self, *a, **k),
    )
    rec.plan()  # three new tenants: each looks up earlier intents
    assert reads == []
    assert not rec.apply().failed
    assert reads == ["entries"]
