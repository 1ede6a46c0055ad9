"""Three ``meshcore serve`` processes in shared mode on one state, against the emulator; one is killed.

The acceptance test of ``settings.runners: shared``: 60 tenants, three runners
(``meshcore serve --interval 1``) on one PostgreSQL database (and on one SQLite
file), one runner killed (SIGKILL) and one paused past its leases (SIGSTOP, then
SIGCONT) while they hold tenants. Afterwards every tenant is converged (``plan``
shows nothing to do), each has exactly one AWS account and recorded steps, the
leases the two runners held were taken over with a larger fencing token, and no
step was recorded under a token after a larger one of the same tenant (no write
of a fenced-off runner got through).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshcore.state import StateStore
from meshcore.testing.postgres import postgres_database
from meshcore_aws.sandbox import Sandbox

TENANTS = 60
RUNNERS = 3
#: Short for the test, long enough that a runner starved of CPU on a busy machine keeps its leases.
LEASE_SECONDS = 5
EMAIL = "aws+{workspace}-{project}@example.com"
#: How long the runners get to converge every tenant after the kill (seconds).
CONVERGE_WITHIN = 90
#: Each runner reconciles every second, collects no costs.
SERVE = ("--interval", "1", "--costs-interval", "0")


@pytest.fixture(params=["postgresql", "sqlite"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    with postgres_database() as url:
        yield url


def _config(path: Path) -> Path:
    projects = [
        {"id": f"p{i:02d}", "tenants": [{"platform": "aws", "landing_zone": "dev"}]} for i in range(TENANTS)
    ]
    config = {
        "version": 1,
        "settings": {"runners": "shared", "lease_seconds": LEASE_SECONDS, "concurrency": 4},
        "platforms": [
            {
                "id": "aws",
                "type": "aws",
                "config": {
                    "management": {
                        "role_arn": "${MESHCORE_MANAGEMENT_ROLE_ARN}",
                        "external_id": "${MESHCORE_MANAGEMENT_EXTERNAL_ID}",
                    },
                    "account_email_pattern": EMAIL,
                    "poll_interval_seconds": 0,
                    "create_wait_seconds": 2,
                    "org_write_concurrency": 2,
                },
            }
        ],
        # the OU is the platform's shared work (created under the platform lease), required by every tenant
        "landing_zones": [
            {"id": "dev", "platform": "aws", "config": {"ou": "/Workloads/Dev", "create_ou": True}}
        ],
        "workspaces": [{"id": "ws", "projects": projects}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _listen() -> str:
    """--listen on a free port of this host."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"--listen=127.0.0.1:{s.getsockname()[1]}"


def _meshcore(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshcore.cli.app", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _pending(cfg: Path, env: dict[str, str], cwd: Path) -> int:
    """How many actions ``meshcore plan`` finds to do (-1: the plan failed)."""
    plan = _meshcore("plan", "-c", str(cfg), "-o", "json", env=env, cwd=cwd)
    return int(json.loads(plan.stdout)["summary"]["actions"]) if plan.returncode == 0 else -1


def _holding(store: StateStore, pid: int) -> list[tuple[str, int]]:
    """The tenant leases the runner with process id ``pid`` holds now: (key, token)."""
    return [
        (lease.key, lease.token)
        for lease in store.live_tenant_leases()
        if lease.holder.split(":")[1] == str(pid) and not lease.key.startswith("platform:")
    ]


def _wait_for(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def test_three_shared_runners_one_killed_one_paused_converge_every_tenant_once(
    sandbox: Sandbox, state_url: str, tmp_path: Path
) -> None:
    cfg = _config(tmp_path / "meshcore.yaml")
    env = {**os.environ, **sandbox.env(), "MESHCORE_STATE": state_url}
    env.pop("AWS_PROFILE", None)
    store = StateStore.open(state_url)
    logs = [open(tmp_path / f"runner-{i}.log", "w") for i in range(RUNNERS)]  # noqa: SIM115
    runners = [
        subprocess.Popen(
            [sys.executable, "-m", "meshcore.cli.app", "serve", "-c", str(cfg), *SERVE, _listen()],
            cwd=tmp_path,
            env=env,
            stdout=logs[i],
            stderr=subprocess.STDOUT,
        )
        for i in range(RUNNERS)
    ]
    killed, paused = runners[0], runners[1]
    try:
        held_by_killed = _wait_for(
            "the first runner to hold tenants", lambda: _holding(store, killed.pid), 60
        )
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        held_by_paused = _wait_for(
            "the second runner to hold tenants", lambda: _holding(store, paused.pid), 60
        )
        paused.send_signal(signal.SIGSTOP)
        time.sleep(2 * LEASE_SECONDS)  # its leases expire; the third runner takes its tenants over
        paused.send_signal(signal.SIGCONT)

        def converged() -> bool:
            rows = store.tenants()
            return len(rows) == TENANTS and all(r.provisioning == "ready" and not r.last_error for r in rows)

        _wait_for("every tenant to be bound to an account", converged, CONVERGE_WITHIN)
        _wait_for("a plan with nothing to do", lambda: _pending(cfg, env, tmp_path) == 0, CONVERGE_WITHIN)
    finally:
        for proc in runners:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in runners:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()

    # every tenant converged: a final plan has nothing to do
    plan = _meshcore("plan", "-c", str(cfg), "-o", "json", env=env, cwd=tmp_path)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert json.loads(plan.stdout)["summary"]["actions"] == 0, plan.stdout

    # exactly one account per tenant
    accounts = sandbox.client("organizations").list_accounts()["Accounts"]
    by_email = Counter(a["Email"] for a in accounts if a["Email"].startswith("aws+ws-"))
    twice = [email for email, n in by_email.items() if n > 1]
    assert len(by_email) == TENANTS and not twice, [
        (j.key, j.operation_id, j.status, j.created_at) for j in store.journal_entries() if j.key in twice
    ] + [
        (s.tenant_key, s.name, s.status, s.runner, s.token, s.message)
        for s in store.steps()
        if s.status == "failed"
    ]

    # the leases the killed and the paused runner held were taken over with a larger token
    for key, token in held_by_killed + held_by_paused:
        lease = store.tenant_lease(key)
        assert lease is not None and lease.token > token, (key, token, lease and lease.token)

    # each tenant's steps: recorded, and in the order of their leases (no late write of a fenced-off runner)
    steps = store.steps()
    for row in store.tenants():
        mine = [s for s in steps if s.tenant_key == row.key]
        # (a runner killed between binding the account and recording its step leaves the later steps only)
        assert mine and all(s.runner and s.token for s in mine), (row.key, [(s.name, s.runner) for s in mine])
        tokens = [s.token for s in mine]
        assert tokens == sorted(tokens), f"{row.key}: a step under an older lease came after a newer one"
        runners_of = {}
        for s in mine:
            assert runners_of.setdefault(s.token, s.runner) == s.runner, f"{row.key}: two runners, one token"
    store.close()
