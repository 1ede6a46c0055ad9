"""Member-account clients are shared by every member account: each call must be signed as its own account."""

from __future__ import annotations

import threading

import pytest

from aws_testlib import account_view
from meshcore_aws.member_clients import ActingCredentials
from meshcore_aws.run import reset_sessions, sessions_for


def member_ids(world) -> list[str]:
    org = world.org.client
    return [a["Id"] for a in org.list_accounts()["Accounts"] if a["Email"] != "master@example.com"]


def test_every_new_account_gets_its_own_alias_through_one_shared_client(world, config):
    config["settings"] = {"concurrency": 3}
    report = world.reconciler(config).apply()
    assert not report.failed, [t.message for t in report.failed]
    views = {account_view(world.org.client, aid)["alias"] for aid in member_ids(world)}
    assert views == {"ws1-p1", "ws1-p2", "ws2-p3"}  # read with each account's own credentials


def test_calls_from_many_threads_are_signed_as_their_own_accounts(world, config):
    assert not world.reconciler(config).apply().failed
    reset_sessions()
    sessions = sessions_for(world.reconciler(config).config.platforms["aws"])
    expected = {aid: account_view(world.org.client, aid)["alias"] for aid in member_ids(world)}
    seen: dict[str, set[str]] = {aid: set() for aid in expected}
    errors: list[BaseException] = []

    def read(aid: str) -> None:
        try:
            for _ in range(5):
                aliases = sessions.client(f"account:{aid}", "iam").list_account_aliases()["AccountAliases"]
                seen[aid].update(aliases)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(aid,)) for aid in expected for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert seen == {aid: {alias} for aid, alias in expected.items()}
    shared = {id(sessions.client(f"account:{aid}", "iam")._shared) for aid in expected}
    assert len(shared) == 1, "each member account built a client of its own"


def test_a_shared_client_refuses_to_sign_outside_a_member_accounts_call(world, config):
    assert not world.reconciler(config).apply().failed
    sessions = sessions_for(world.reconciler(config).config.platforms["aws"])
    handle = sessions.client(f"account:{member_ids(world)[0]}", "iam")
    with pytest.raises(RuntimeError, match="outside a member account"):
        handle._shared.list_account_aliases()
    with pytest.raises(AttributeError, match="operations only"):
        handle.get_paginator("list_account_aliases")


def test_an_expired_member_token_refreshes_only_that_accounts_credentials():
    class Creds:
        def __init__(self) -> None:
            self.expired = 0

        def expire(self) -> None:
            self.expired += 1

        def get_frozen_credentials(self) -> str:
            return "frozen"

    acting, a, b = ActingCredentials(), Creds(), Creds()
    assert acting.call(a, lambda: acting.get_frozen_credentials()) == "frozen"
    acting.call(b, acting.expire)
    assert (a.expired, b.expired) == (0, 1)
    with pytest.raises(RuntimeError):
        acting.expire()


def test_every_client_keeps_enough_connections_for_the_runs_parallel_tenants(world, config):
    """botocore keeps 10 by default: with 32 tenants at once, requests past the tenth would each open a connection."""
    assert not world.reconciler(config).apply().failed
    sessions = sessions_for(world.reconciler(config).config.platforms["aws"])
    member = sessions.client(f"account:{member_ids(world)[0]}", "iam")
    for client in (sessions.org(), member._shared):
        assert client.meta.config.max_pool_connections >= 32
