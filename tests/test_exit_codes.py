"""Every (command, exit code) pair that docs/cli.md lists is produced by a scenario here, and no other.

The scenarios run the real CLI on the fake platform; faults come from the fake
cloud (a refused read) or from the environment (a store that does not exist, a
lease held by another runner).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meshcore.cli.app import app
from meshcore.errors import PlatformError
from meshcore.state import StateStore
from signal_testlib import watch_cli_signals

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def documented() -> set[tuple[str, int]]:
    text = DOCS.read_text()
    table = text.split("<!-- exit-codes -->", 1)[1].split("<!-- /exit-codes -->", 1)[0]
    pairs = set()
    for command, codes in re.findall(r"^\| `([a-z -]+)` \| ([0-9, ]+) \|$", table, re.M):
        pairs |= {(command, int(c)) for c in codes.split(",")}
    return pairs


class Env:
    """A config on the fake platform, a state store, and the CLI."""

    def __init__(
        self, tmp_path: Path, write_config: Callable[..., Path], base_config: dict[str, Any], monkeypatch
    ):
        base_config["platforms"][0]["config"] = {"state_file": str(tmp_path / "cloud.db")}
        self.tmp_path = tmp_path
        self.base = base_config
        self.write_config = write_config
        self.monkeypatch = monkeypatch
        self.cfg = str(write_config(base_config, "ok.yaml"))
        self.state = f"sqlite:///{tmp_path / 'state.db'}"
        self.missing_state = str(tmp_path / "typo.db")
        monkeypatch.chdir(tmp_path)

    def run(self, *args: str, config: str | None = None, state: str | None = None) -> int:
        argv = list(args)
        if config is not None:
            argv += ["-c", config]
        argv += ["--state", state or self.state] if state is not False else []
        result = CliRunner().invoke(app, argv)
        assert "Traceback" not in result.output, result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code

    def applied(self) -> None:
        assert self.run("apply", config=self.cfg) == 0

    def bad_config(self) -> str:
        return str(self.write_config({**self.base, "platfroms": []}, "bad.yaml"))

    def missing_plugin(self) -> str:
        cfg = {**self.base, "platforms": [{"id": "demo", "type": "azure"}]}
        return str(self.write_config(cfg, "azure.yaml"))

    def refuse_reads(self) -> None:
        from meshcore.testing.fake_cloud import FakeCloud

        def refused(cloud, op: str, subject: str = "") -> None:
            raise PlatformError(f"{op} refused")

        self.monkeypatch.setattr(FakeCloud, "read", refused)


SCENARIOS: dict[tuple[str, int], Callable[[Env], int]] = {
    ("plugins", 0): lambda e: e.run("plugins", state=False),
    ("validate", 0): lambda e: e.run("validate", config=e.cfg, state=False),
    ("validate", 2): lambda e: e.run("validate", config=e.bad_config(), state=False),
    ("validate", 3): lambda e: e.run("validate", config=e.missing_plugin(), state=False),
    ("schema", 0): lambda e: e.run("schema", state=False),
    ("schema", 3): lambda e: e.run("schema", "--platform-type", "azure", state=False),
    ("plan", 0): lambda e: e.run("plan", config=e.cfg),
    ("plan", 1): lambda e: (e.refuse_reads(), e.run("plan", config=e.cfg))[1],
    ("plan", 2): lambda e: e.run("plan", config=e.bad_config()),
    ("plan", 3): lambda e: e.run("plan", config=e.missing_plugin()),
    ("plan", 5): lambda e: e.run("plan", config=e.cfg, state="postgresql+nodriver://x/y"),
    ("plan --detailed-exitcode", 0): lambda e: (
        e.applied(),
        e.run("plan", "--detailed-exitcode", config=e.cfg),
    )[1],
    ("plan --detailed-exitcode", 1): lambda e: e.run("plan", "--detailed-exitcode", config=e.bad_config()),
    ("plan --detailed-exitcode", 2): lambda e: e.run("plan", "--detailed-exitcode", config=e.cfg),
    ("apply", 0): lambda e: e.run("apply", config=e.cfg),
    ("apply", 1): lambda e: (e.refuse_reads(), e.run("apply", config=e.cfg))[1],
    ("apply", 2): lambda e: e.run("apply", config=e.bad_config()),
    ("apply", 3): lambda e: e.run("apply", config=e.missing_plugin()),
    ("apply", 4): lambda e: _with_lease_held(e, lambda: e.run("apply", config=e.cfg)),
    ("apply", 5): lambda e: e.run("apply", config=e.cfg, state=_read_only_store(e)),
    ("apply", 130): lambda e: _signalled_apply(e, "SIGINT"),
    ("apply", 143): lambda e: _signalled_apply(e, "SIGTERM"),
    ("status", 0): lambda e: (e.applied(), e.run("status"))[1],
    ("status", 5): lambda e: e.run("status", state=e.missing_state),
    ("history", 0): lambda e: (e.applied(), e.run("history"))[1],
    ("history", 5): lambda e: e.run("history", state=e.missing_state),
    ("approve", 0): lambda e: _marked_then(e, "ws2/p3@demo"),
    ("approve", 1): lambda e: (e.applied(), e.run("approve", "ws9/nope@demo"))[1],
    ("approve", 5): lambda e: e.run("approve", "ws2/p3@demo", state=e.missing_state),
    ("preflight", 0): lambda e: e.run("preflight", config=e.cfg),
    ("preflight", 1): lambda e: (e.refuse_reads(), e.run("preflight", config=e.cfg))[1],
    ("preflight", 2): lambda e: e.run("preflight", config=e.bad_config()),
    ("preflight", 5): lambda e: e.run("preflight", config=e.cfg, state="postgresql+nodriver://x/y"),
    ("discover", 0): lambda e: e.run("discover", "demo", config=e.cfg),
    ("discover", 1): lambda e: (e.refuse_reads(), e.run("discover", "demo", config=e.cfg))[1],
    ("discover", 2): lambda e: e.run("discover", "demo", config=e.bad_config()),
    ("discover", 5): lambda e: e.run("discover", "demo", config=e.cfg, state="postgresql+nodriver://x/y"),
    ("costs collect", 0): lambda e: (e.applied(), e.run("costs", "collect", "-p", "2026-10", config=e.cfg))[
        1
    ],
    ("costs collect", 1): lambda e: (
        e.applied(),
        e.refuse_reads(),
        e.run("costs", "collect", "-p", "2026-10", config=e.cfg),
    )[2],
    ("costs collect", 2): lambda e: e.run("costs", "collect", "-p", "2026-13", config=e.cfg),
    ("costs collect", 5): lambda e: e.run(
        "costs", "collect", "-p", "2026-10", config=e.cfg, state="postgresql+nodriver://x/y"
    ),
    ("costs report", 0): lambda e: (e.applied(), e.run("costs", "report", "-p", "2026-10", config=e.cfg))[1],
    ("costs report", 2): lambda e: e.run("costs", "report", "-p", "last-month", config=e.cfg),
    ("costs report", 5): lambda e: e.run(
        "costs", "report", "-p", "2026-10", config=e.cfg, state=e.missing_state
    ),
    ("serve", 0): lambda e: _serve_until_sigterm(e),
    ("serve", 2): lambda e: e.run("serve", "--listen", "9464", config=e.cfg),
    ("serve", 5): lambda e: e.run("serve", config=e.cfg, state="postgresql+nodriver://x/y"),
    ("chargeback export", 0): lambda e: (
        e.applied(),
        e.run("chargeback", "export", "-p", "2026-10", config=e.cfg),
    )[1],
    ("chargeback export", 2): lambda e: e.run(
        "chargeback", "export", "-p", "2026-10", "-f", "xml", config=e.cfg
    ),
    ("chargeback export", 5): lambda e: e.run(
        "chargeback", "export", "-p", "2026-10", config=e.cfg, state=e.missing_state
    ),
}


def _with_lease_held(env: Env, then: Callable[[], int]) -> int:
    store = StateStore.open(env.state)
    store.acquire_lease("apply", "another-runner", 300)
    try:
        return then()
    finally:
        store.close()


def _signalled_apply(env: Env, name: str) -> int:
    """``meshcore apply`` that receives ``name`` while its first tenant is being created."""
    import os
    import signal

    from meshcore.testing.fake_platform import FakePlatformPlugin

    create = FakePlatformPlugin._create
    handled = threading.Event()
    watch_cli_signals(env.monkeypatch, handled)

    def signalled(self, *args: Any) -> Any:
        os.kill(os.getpid(), getattr(signal, name))
        # the main thread runs the handler when it next can: the run must know it was stopped before this
        # tenant ends, or the next ones would start
        assert handled.wait(10)
        return create(self, *args)

    env.monkeypatch.setattr(FakePlatformPlugin, "_create", signalled)
    one_at_a_time = {**env.base, "settings": {"concurrency": 1}}  # the other tenants have not started
    return env.run("apply", config=str(env.write_config(one_at_a_time, "one.yaml")))


def _read_only_store(env: Env) -> str:
    """A store opened read-only (what a file without write permission is to a user without root)."""
    StateStore.open(f"sqlite:///{env.tmp_path / 'ro.db'}").close()
    return f"sqlite:///file:{env.tmp_path / 'ro.db'}?mode=ro&uri=true"


def _serve_until_sigterm(env: Env) -> int:
    """``meshcore serve`` as a process, stopped with SIGTERM once it answers /readyz."""
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["serve", "-c", env.cfg, "--state", env.state, "--interval", "1", "--listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen([sys.executable, "-m", "meshcore", *argv], cwd=env.tmp_path, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not get ready"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
                    assert json.load(answer)["ready"] is True
                    break
            except (urllib.error.HTTPError, OSError):
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _marked_then(env: Env, key: str) -> int:
    env.applied()
    cfg = {**env.base, "workspaces": env.base["workspaces"][:1]}  # ws2/p3 removed: marked for deletion
    assert env.run("apply", config=str(env.write_config(cfg, "less.yaml"))) == 0
    return env.run("approve", key)


def test_the_scenarios_cover_exactly_the_documented_pairs():
    assert set(SCENARIOS) == documented()


@pytest.mark.parametrize(
    ("command", "code"), sorted(SCENARIOS), ids=[f"{c}-{n}" for c, n in sorted(SCENARIOS)]
)
def test_exit_code(command, code, tmp_path, write_config, base_config, monkeypatch):
    env = Env(tmp_path, write_config, base_config, monkeypatch)
    assert SCENARIOS[(command, code)](env) == code
