"""AWS limits the account creations in progress at a time: a run vends past the limit, never fails on it.

The strict emulator refuses a ``CreateAccount`` beyond ``creations_in_progress`` with
``ConstraintViolationException`` ``ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED``, as AWS does.
"""

from __future__ import annotations

import copy
import threading

import boto3
import meshcore_aws_emulator
from hypothesis import given, settings
from hypothesis import strategies as st
from meshcore_aws_emulator import strict

from aws_testlib import by_key
from meshcore_aws.creation_slots import CreationSlots


def projects(config: dict, n: int, **platform: object) -> dict:
    """``config`` with ``n`` new projects in the dev landing zone, all in one run at concurrency ``n``."""
    config = copy.deepcopy(config)
    config["platforms"][0]["config"].update(platform)
    config["workspaces"] = [
        {
            "id": "ws",
            "projects": [
                {"id": f"p{i}", "tenants": [{"platform": "aws", "landing_zone": "dev"}]} for i in range(n)
            ],
        }
    ]
    config["settings"] = {"concurrency": n}
    return config


def member_emails() -> set[str]:
    org = boto3.client("organizations", region_name="us-east-1")
    return {a["Email"] for a in org.list_accounts()["Accounts"]} - {"master@example.com"}


def test_tenants_past_the_limit_wait_for_a_creation_to_end_and_are_created_in_the_same_run(world, config):
    meshcore_aws_emulator.PROFILE.creations_in_progress = 2
    world.slow.in_progress_polls = 2
    cfg = projects(config, 8, create_wait_seconds=600)

    report = world.reconciler(cfg).apply()

    assert not report.failed, [t.message for t in report.failed]
    assert {t.key: t.status for t in report.tenants} == {f"ws/p{i}@aws": "changed" for i in range(8)}
    assert member_emails() >= {f"aws+ws-p{i}@example.com" for i in range(8)}
    # refusals only until the limit is learnt: the first wave of 8 sends, of which AWS takes 2
    refused = world.calls["CreateAccount"] - 8
    assert 0 < refused <= 6, dict(world.calls)
    assert not world.store.journal_entries("aws", status="open"), (
        "a refused CreateAccount left an open intent"
    )


def test_a_configured_limit_sends_no_creation_aws_would_refuse(world, config):
    meshcore_aws_emulator.PROFILE.creations_in_progress = 2
    world.slow.in_progress_polls = 2
    cfg = projects(config, 8, create_wait_seconds=600, max_account_creations_in_flight=2)

    report = world.reconciler(cfg).apply()

    assert not report.failed, [t.message for t in report.failed]
    assert {t.status for t in report.tenants} == {"changed"}
    assert world.calls["CreateAccount"] == 8, dict(world.calls)


def test_creations_in_progress_that_are_not_the_runs_delay_the_tenant_to_the_next_run(world, config):
    """All of AWS's slots held by someone else's creations: the tenant is reported in progress after
    ``create_wait_seconds`` (one attempt per poll interval), not failed, and created once they end."""
    meshcore_aws_emulator.PROFILE.creations_in_progress = 1
    world.slow.in_progress_polls = 1000
    org = boto3.client("organizations", region_name="us-east-1")
    org.create_account(Email="someone-else@example.com", AccountName="elsewhere")
    cfg = projects(config, 1)  # create_wait_seconds 3, poll interval 1 s

    first = by_key(world.reconciler(cfg).apply())["ws/p0@aws"]

    assert first.status == "in_progress", first.message
    assert "ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED" in first.message
    assert world.calls["CreateAccount"] == 3, dict(world.calls)
    assert "aws+ws-p0@example.com" not in member_emails()

    strict.STATE.creating.clear()  # the other creation ended
    world.slow.in_progress_polls = 1
    world.calls.clear()
    second = by_key(world.reconciler(cfg).apply())["ws/p0@aws"]
    assert second.status == "changed", second.message
    assert world.calls["CreateAccount"] == 1
    assert "aws+ws-p0@example.com" in member_emails()


def test_a_refusal_lowers_the_limit_to_the_creations_in_progress():
    slots = CreationSlots()
    for _ in range(4):
        assert slots.acquire(timeout=0)
    assert slots.refused() is True  # three others are in progress: AWS allows three
    assert slots.limit == 3 and slots.in_flight == 3
    assert slots.acquire(timeout=0) is False
    slots.release()
    assert slots.acquire(timeout=0) is True


def test_a_refusal_with_none_of_the_runs_creations_in_progress_keeps_the_limit():
    slots = CreationSlots(limit=5)
    assert slots.acquire(timeout=0)
    assert slots.refused() is False
    assert slots.limit == 5 and slots.in_flight == 0


def test_awaited_creations_of_earlier_runs_hold_slots():
    slots = CreationSlots(limit=1)
    slots.occupy()
    assert slots.acquire(timeout=0) is False
    slots.release()
    assert slots.acquire(timeout=0) is True


@settings(max_examples=25, deadline=None)
@given(limit=st.integers(min_value=1, max_value=4), tenants=st.integers(min_value=1, max_value=12))
def test_never_more_creations_in_flight_than_the_limit(limit, tenants):
    slots = CreationSlots(limit=limit)
    lock = threading.Lock()
    seen = {"now": 0, "max": 0, "done": 0}

    def tenant() -> None:
        assert slots.acquire(timeout=10)
        with lock:
            seen["now"] += 1
            seen["max"] = max(seen["max"], seen["now"])
        with lock:
            seen["now"] -= 1
            seen["done"] += 1
        slots.release()

    threads = [threading.Thread(target=tenant) for _ in range(tenants)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen["done"] == tenants
    assert seen["max"] <= limit
    assert slots.in_flight == 0


def test_a_stop_while_tenants_wait_for_a_slot_sends_nothing_more_and_the_next_run_goes_on(
    world, config, monkeypatch
):
    """SIGTERM with creations queued: the waiting tenants give up at once (nothing sent), the one in flight
    is left to the next run (its request id journaled), and the next run creates every account once."""
    from meshcore_aws import sessions as aws_sessions
    from meshcore_aws.run import reset_sessions

    meshcore_aws_emulator.PROFILE.creations_in_progress = 1
    world.slow.in_progress_polls = 10_000  # the first creation stays in progress until the test ends it
    cfg = projects(config, 3, create_wait_seconds=600, max_account_creations_in_flight=1)
    stop = threading.Event()

    def stop_after_create(event_name="", **_kw):
        if event_name.endswith("CreateAccount"):
            stop.set()

    monkeypatch.setattr(
        aws_sessions, "EVENT_HOOKS", [*world.calls.hooks(), ("after-call", stop_after_create)]
    )
    reset_sessions()
    rec = world.reconciler(cfg)
    rec.stop = stop
    first = rec.apply()

    assert {t.status for t in first.tenants} == {"in_progress"}, [(t.key, t.message) for t in first.tenants]
    assert sum("meshcore is stopping" in t.message for t in first.tenants) == 2, [
        t.message for t in first.tenants
    ]
    assert world.calls["CreateAccount"] == 1, dict(world.calls)
    open_entries = world.store.journal_entries("aws", status="open")
    assert len(open_entries) == 1 and open_entries[0].operation_id, open_entries

    strict.STATE.creating.clear()
    world.slow.in_progress_polls = 1
    world.calls.clear()
    second = world.reconciler(cfg).apply()
    assert {t.status for t in second.tenants} == {"changed"}, [(t.key, t.message) for t in second.tenants]
    assert world.calls["CreateAccount"] == 2, dict(world.calls)
    assert member_emails() >= {f"aws+ws-p{i}@example.com" for i in range(3)}
