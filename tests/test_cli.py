"""The CLI end to end on the fake platform: exit codes, no tracebacks, JSON output, secrets."""

from __future__ import annotations

import json
import threading

import pytest
from typer.testing import CliRunner

from meshcore.cli.app import app


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MESHCORE_CONFIG", raising=False)
    monkeypatch.setenv("MESHCORE_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def with_state_file(cfg, tmp_path):
    cfg["platforms"][0]["config"] = {"state_file": str(tmp_path / "cloud.db")}
    return cfg


def cloud_of(tmp_path):
    """The fake cloud as another process sees it."""
    from meshcore.testing.fake_cloud import FakeCloud

    return FakeCloud(str(tmp_path / "cloud.db"))


def test_validate_reports_problems_with_exit_2_and_no_traceback(run, write_config, base_config):
    base_config["workspaces"][0]["projects"][0]["tenants"][0]["platform"] = "nope"
    base_config["users"][0]["emial"] = "x"
    result = run("validate", "-c", str(write_config(base_config)))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "tenants[0].platform: platform 'nope' is not defined" in result.output
    assert "users[0].emial: unknown key 'emial' (did you mean 'email'?)" in result.output
    assert "2 problem(s)" in result.output


def test_validate_json(run, write_config, base_config):
    path = write_config(base_config)
    result = run("validate", "-c", str(path), "-o", "json")
    assert result.exit_code == 0
    assert json.loads(result.output) == {
        "valid": True,
        "files": [str(path)],
        "platforms": 1,
        "workspaces": 2,
        "tenants": 3,
    }
    base_config["users"][0]["id"] = "Bad Id"
    result = run("validate", "-c", str(write_config(base_config)), "-o", "json")
    data = json.loads(result.output)
    assert result.exit_code == 2 and data["valid"] is False
    assert data["problems"][0]["path"] == "users[0].id" and data["problems"][0]["line"] > 1


def test_plan_apply_status_across_processes(run, write_config, base_config, tmp_path):
    cfg = str(write_config(with_state_file(base_config, tmp_path)))
    plan = run("plan", "-c", cfg, "-o", "json")
    assert plan.exit_code == 0
    items = json.loads(plan.output)["items"]
    assert {i["lifecycle"] for i in items if i["scope"] == "tenant"} == {"provision"}
    assert [i["key"] for i in items if i["scope"] == "platform"] == ["platform:demo"]
    first = run("apply", "-c", cfg, "-o", "json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["counts"] == {"changed": 3}
    second = run("apply", "-c", cfg, "-o", "json")
    assert json.loads(second.output)["counts"] == {"ok": 3}
    table = run("apply", "-c", cfg)
    assert "No changes: everything is converged." in table.output
    status = json.loads(run("status", "-o", "json").output)
    assert {t["tenant"] for t in status["tenants"]} == {"ws1/p1@demo", "ws1/p2@demo", "ws2/p3@demo"}
    assert all(t["platform_tenant_id"] for t in status["tenants"])
    assert status["last_run"]["status"] == "ok"
    assert len(cloud_of(tmp_path).tenants) == 3


def test_apply_exit_code_1_when_a_tenant_fails(run, write_config, base_config, tmp_path):
    cfg = str(write_config(with_state_file(base_config, tmp_path)))
    assert run("apply", "-c", cfg).exit_code == 0
    cloud = cloud_of(tmp_path)
    with cloud.lock:
        for tid in list(cloud.tenants):  # every tenant vanishes from the platform
            cloud._save("tenant", tid, None)
    result = run("apply", "-c", cfg, "-o", "json")
    assert result.exit_code == 1
    tenants = [i for i in json.loads(result.stdout)["items"] if i["scope"] == "tenant"]  # logs on stderr
    assert len(tenants) == 3
    assert all(t["status"] == "failed" and "is gone on the platform" in t["message"] for t in tenants)


def test_deletion_approval_flow_via_cli(run, write_config, base_config, tmp_path):
    cfg = str(write_config(with_state_file(base_config, tmp_path), "c.yaml"))
    run("apply", "-c", cfg)
    del base_config["workspaces"][0]["projects"][1]
    write_config(base_config, "c.yaml")
    out = json.loads(run("apply", "-c", cfg, "-o", "json").output)
    assert next(t for t in out["items"] if t["key"] == "ws1/p2@demo")["status"] == "waiting"
    assert out["summary"]["marked_for_deletion"] == 1 and out["summary"]["access_revoked"] == 1
    assert "ws1/p2@demo" in run("plan", "-c", cfg).output
    result = run("approve", "ws1/p2@demo")
    assert result.exit_code == 0 and "approved" in result.output
    assert run("approve", "nope/x@demo").exit_code == 1
    run("apply", "-c", cfg)
    run("apply", "-c", cfg)
    status = json.loads(run("status", "--all", "-o", "json").output)
    assert next(t for t in status["tenants"] if t["tenant"] == "ws1/p2@demo")["status"] == "DELETED"
    history = json.loads(run("history", "--tenant", "ws1/p2@demo", "-o", "json").output)
    assert [a["action"] for a in history["audit"]][-1] == "tenant.deleted"


def test_secrets_from_the_environment_never_reach_state_or_output(
    run, write_config, base_config, tmp_path, monkeypatch
):
    secret = "s3cr3t-ExternalId-9f8e7d"
    monkeypatch.setenv("MC_SECRET_PATTERN", secret)
    base_config["platforms"][0]["config"] = {
        "state_file": str(tmp_path / "cloud.db"),
        "name_pattern": "${MC_SECRET_PATTERN}-{project}",
    }
    cfg = str(write_config(base_config))
    outputs = [
        run("apply", "-c", cfg, "-o", "json").output,
        run("apply", "-c", cfg).output,
        run("status", "-o", "json").output,
        run("plan", "-c", cfg, "-o", "json").output,
    ]
    for out in outputs:
        assert secret not in out
    assert "***" in outputs[2]
    for db_file in tmp_path.glob("state.db*"):  # the database and its WAL
        assert secret.encode() not in db_file.read_bytes(), db_file


def test_schema_and_plugins(run):
    schema = json.loads(run("schema").output)
    assert {"platforms", "workspaces", "landing_zones"} <= set(schema["properties"])
    fake = json.loads(run("schema", "--platform-type", "fake").output)
    assert "state_file" in fake["platform"]["properties"]
    assert run("schema", "--platform-type", "nope").exit_code == 3
    plugins = json.loads(run("plugins", "-o", "json").output)
    assert any(p["name"] == "fake" and p["status"] == "loaded" for p in plugins)


def test_discover_and_preflight(run, write_config, base_config, tmp_path):
    cfg = str(write_config(with_state_file(base_config, tmp_path)))
    run("apply", "-c", cfg)
    legacy = cloud_of(tmp_path).add_external("legacy")
    found = json.loads(run("discover", "demo", "-c", cfg, "-o", "json").output)
    assert [d["platform_tenant_id"] for d in found] == [legacy]
    pre = run("preflight", "-c", cfg, "-o", "json")
    assert pre.exit_code == 0 and json.loads(pre.output)[0]["ok"] is True


def test_mass_deletion_is_refused_with_exit_2_unless_allowed(run, write_config, base_config, tmp_path):
    cfg = str(write_config(with_state_file(base_config, tmp_path), "c.yaml"))
    assert run("apply", "-c", cfg).exit_code == 0
    base_config["workspaces"] = []
    write_config(base_config, "c.yaml")
    for command in ("plan", "apply"):
        result = run(command, "-c", cfg)
        assert result.exit_code == 2, result.output
        assert "declares no workspaces" in result.output and "--allow-deletions 3" in result.output
        assert "Traceback" not in result.output
    assert all(t["status"] == "ACTIVE" for t in cloud_of(tmp_path).tenants.values())
    allowed = run("apply", "-c", cfg, "--allow-deletions", "3")
    assert allowed.exit_code == 0, allowed.output
    assert "3 marked for deletion, access revoked on 3" in allowed.output


def test_a_config_needing_a_missing_plugin_exits_3(run, write_config, base_config):
    base_config["platforms"][0]["type"] = "azure"
    result = run("plan", "-c", str(write_config(base_config)))
    assert result.exit_code == 3 and "no installed plugin provides platform type 'azure'" in result.output


def test_state_store_that_cannot_be_opened(run, write_config, base_config):
    result = run("status", "--state", "postgresql+nodriver://x/y")
    assert result.exit_code == 5 and "cannot open state store" in result.output


def test_plan_detailed_exitcode_markdown_and_json_schema(run, write_config, base_config, tmp_path):
    cfg = str(write_config(with_state_file(base_config, tmp_path), "c.yaml"))
    assert run("plan", "-c", cfg, "--detailed-exitcode").exit_code == 2  # everything to create
    markdown = run("plan", "-c", cfg, "-o", "markdown")
    assert markdown.exit_code == 0
    assert markdown.output.startswith("### meshcore plan: ") and "```diff" in markdown.output
    assert (
        "**`ws1/p1@demo` — provision**" in markdown.output and "+ [tenant] tenant ws1-p1" in markdown.output
    )
    data = json.loads(run("plan", "-c", cfg, "-o", "json").output)
    assert data["schema_version"] == 1 and data["command"] == "plan"
    assert run("apply", "-c", cfg).exit_code == 0
    assert run("plan", "-c", cfg, "--detailed-exitcode").exit_code == 0  # converged
    assert "No changes: everything is converged." in run("plan", "-c", cfg, "-o", "markdown").output
    base_config["workspaces"] = []
    write_config(base_config, "c.yaml")
    refused = run("plan", "-c", cfg, "--detailed-exitcode")  # a refusal is an error here, never "changes"
    assert refused.exit_code == 1 and "declares no workspaces" in refused.output


def test_sigterm_stops_apply_gracefully_and_the_next_apply_goes_on(
    run, write_config, base_config, tmp_path, monkeypatch, signal_handled
):
    """SIGTERM mid-run: the action in flight finishes and is recorded, nothing else starts, exit 143, the run is
    recorded as stopped, the signal handlers are put back; the next apply converges the rest."""
    import os
    import signal

    from meshcore.state import StateStore
    from meshcore.testing.fake_platform import FakePlatformPlugin

    base_config["settings"] = {"concurrency": 1}
    cfg = str(write_config(with_state_file(base_config, tmp_path)))
    create = FakePlatformPlugin._create
    calls = []

    def create_then_terminated(self, cloud, ctx, tenant, name):
        calls.append(name)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while this action runs
            assert signal_handled.wait(10)
        return create(self, cloud, ctx, tenant, name)

    monkeypatch.setattr(FakePlatformPlugin, "_create", create_then_terminated)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    result = run("apply", "-c", cfg, "-o", "json")
    assert result.exit_code == 143, result.output
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    assert "stopped by SIGTERM" in result.stderr
    items = [i for i in json.loads(result.stdout)["items"] if i["scope"] == "tenant"]
    assert len(calls) == 1, "no tenant started after the signal"
    first, *rest = items
    created = next(a for a in first["actions"] if a["phase"] == "tenant")
    assert created["status"] == "changed", first  # the action in flight finished
    assert all(i["status"] == "not_run" for i in rest), rest
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    assert store.runs(limit=1)[0].status == "stopped"
    assert len(cloud_of(tmp_path).tenants) == 1

    monkeypatch.setattr(FakePlatformPlugin, "_create", create)
    again = run("apply", "-c", cfg, "-o", "json")
    assert again.exit_code == 0, again.output
    assert len(cloud_of(tmp_path).tenants) == 3
    assert all(i["status"] == "ok" for i in json.loads(run("apply", "-c", cfg, "-o", "json").stdout)["items"])


def test_history_shows_which_shared_runner_recorded_a_step_under_which_token(
    run, write_config, base_config, tmp_path
):
    base_config["settings"] = {"runners": "shared"}
    cfg = str(write_config(with_state_file(base_config, tmp_path)))
    assert run("apply", "-c", cfg).exit_code == 0
    steps = json.loads(run("history", "--tenant", "ws1/p1@demo", "-o", "json").output)["steps"]
    assert steps and all(s["runner"] and s["token"] >= 1 for s in steps), steps
    table = run("history", "--tenant", "ws1/p1@demo").output
    assert "runner" in table and "token" in table and steps[0]["runner"].split(":")[0] in table
    single = tmp_path / "single"
    single.mkdir()
    base_config["settings"] = {"runners": "single"}
    base_config["platforms"][0]["config"] = {"state_file": str(single / "cloud.db")}
    one = str(write_config(base_config, "single.yaml"))
    assert run("apply", "-c", one, "--state", f"sqlite:///{single / 'state.db'}").exit_code == 0
    alone = run("history", "--tenant", "ws1/p1@demo", "--state", f"sqlite:///{single / 'state.db'}").output
    assert "token" not in alone  # single mode: no lease columns


def test_sigterm_while_waiting_for_another_runner_stops_at_once_with_nothing_done(
    run, write_config, base_config, tmp_path
):
    import os
    import signal
    import time

    from meshcore.state import StateStore

    cfg = str(write_config(with_state_file(base_config, tmp_path)))
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    store.acquire_lease("apply", "another-host:1:runner", 300)

    def terminate_once_handled() -> None:
        """SIGTERM once the CLI handles it (after loading config and state, however slow the machine);
        before, it would end the test process itself."""
        deadline = time.monotonic() + 30
        while getattr(signal.getsignal(signal.SIGTERM), "__module__", None) != "meshcore.cli.app":
            assert time.monotonic() < deadline, "the CLI never handled SIGTERM"
            time.sleep(0.01)
        time.sleep(0.3)  # into the wait for the lease
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_once_handled, daemon=True).start()
    t0 = time.monotonic()
    result = run("apply", "-c", cfg, "--wait", "60")
    assert result.exit_code == 143, result.output
    assert time.monotonic() - t0 < 10, "the wait ends with the signal"
    assert "stopped by SIGTERM" in result.stderr and "nothing was done" in result.stderr
    assert store.runs() == [] and len(cloud_of(tmp_path).tenants) == 0


def test_a_run_stopped_with_a_failed_tenant_exits_1(
    run, write_config, base_config, tmp_path, monkeypatch, signal_handled
):
    """A failure wins over a stop: the exit code says someone must look."""
    import os
    import signal

    from meshcore.errors import PlatformError
    from meshcore.testing.fake_platform import FakePlatformPlugin

    base_config["settings"] = {"concurrency": 1}
    cfg = str(write_config(with_state_file(base_config, tmp_path)))

    def failing(self, *args):
        os.kill(os.getpid(), signal.SIGTERM)
        # the main thread runs the handler when it next can: wait, so the worker does not start the
        # next tenant before the run knows it was stopped
        assert signal_handled.wait(10)
        raise PlatformError("the cloud said no")

    monkeypatch.setattr(FakePlatformPlugin, "_create", failing)
    result = run("apply", "-c", cfg, "-o", "json")
    assert result.exit_code == 1, result.output
    items = [i for i in json.loads(result.stdout)["items"] if i["scope"] == "tenant"]
    assert items[0]["status"] == "failed" and all(i["status"] == "not_run" for i in items[1:]), items


def test_the_command_line_sets_the_collector_thresholds(monkeypatch):
    """``meshcore`` collects garbage rarely (see meshcore.gc_settings): with CPython's defaults a large
    run spends a growing share of its time in the collector."""
    import gc
    import sys

    from meshcore import gc_settings
    from meshcore.cli.app import main

    before = gc.get_threshold()
    monkeypatch.setattr(sys, "argv", ["meshcore", "--help"])
    try:
        gc.set_threshold(700, 10, 10)
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code == 0
        assert gc.get_threshold()[0] == gc_settings.THRESHOLDS[0] == 100_000  # 3.14 ignores the third
    finally:
        gc.set_threshold(*before)
