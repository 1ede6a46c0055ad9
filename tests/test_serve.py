"""``meshcore serve``: the loop, its endpoints and metrics, config re-reads, SIGTERM, and the apply stop event."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from meshcore import telemetry
from meshcore.cli.app import app
from meshcore.config import load_config
from meshcore.execution import STOPPING
from meshcore.metrics import ServiceMetrics
from meshcore.reconciler import NOT_RUN, Reconciler
from meshcore.serve import COSTS_RETRY_SECONDS, Service, bind, cost_months, parse_listen, run
from meshcore.testing.fake_cloud import FakeCloud

ROOT = Path(__file__).resolve().parents[1]


def get(url: str) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error status is an answer too."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def until(what: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    """Poll ``what`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {what}")
        time.sleep(every)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text -> {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the service as a process ------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """``meshcore serve`` on the fake platform's example config: (process, base URL, config file)."""
    config = tmp_path / "meshcore.yaml"
    shutil.copy(ROOT / "examples" / "fake" / "meshcore.yaml", config)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meshcore",
            "serve",
            "-c",
            str(config),
            "--state",
            f"sqlite:///{tmp_path / 'state.db'}",
            "--interval",
            "1",
            "--max-staleness",
            "30",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MESHCORE_LOG_LEVEL": "info"},
    )
    try:
        yield proc, f"http://127.0.0.1:{port}", config
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_the_service_applies_answers_rereads_its_config_and_stops_on_sigterm(served):
    proc, url, config = served

    def ready() -> bool:
        assert proc.poll() is None, proc.communicate()
        try:
            return get(f"{url}/readyz")[0] == 200
        except OSError:  # not listening yet
            return False

    until(ready)
    doc = yaml.safe_load(config.read_text())
    n_tenants = sum(len(p["tenants"]) for w in doc["workspaces"] for p in w["projects"])
    unchanged = ("meshcore_run_tenants_total", (("outcome", "ok"), ("platform", "demo")))

    def converged_again() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        found = samples(get(f"{url}/metrics")[1])  # ready after the first run; the second finds nothing to do
        return found if found.get(unchanged, 0) >= n_tenants else None

    found = until(converged_again)
    assert found[("meshcore_runs_total", (("outcome", "ok"),))] >= 2
    assert found[("meshcore_tenants", (("platform", "demo"), ("status", "ACTIVE")))] == n_tenants
    assert found[("meshcore_tenants", (("platform", "demo"), ("status", "MARKED_FOR_DELETION")))] == 0
    assert found[("meshcore_deletions_pending_approval", (("platform", "demo"),))] == 0
    assert found[("meshcore_last_successful_run_timestamp_seconds", ())] > time.time() - 60
    created = found[
        ("meshcore_steps_total", (("kind", "tenant"), ("outcome", "changed"), ("platform", "demo")))
    ]
    assert created == n_tenants, "converged runs add no steps"
    assert found[("meshcore_run_tenants_total", (("outcome", "changed"), ("platform", "demo")))] == n_tenants
    calls = ("operation", "fake.create"), ("outcome", "ok"), ("platform", "demo")
    assert found[("meshcore_cloud_calls_total", calls)] == n_tenants, "the plugin's calls reach the metrics"
    assert {name for name, _labels in found} <= {
        "meshcore_runs_total",
        "meshcore_run_duration_seconds_bucket",
        "meshcore_run_duration_seconds_count",
        "meshcore_run_duration_seconds_sum",
        "meshcore_steps_total",
        "meshcore_run_tenants_total",
        "meshcore_cloud_calls_total",
        "meshcore_cost_collections_total",
        "meshcore_tenants",
        "meshcore_tenants_failing",
        "meshcore_deletions_pending_approval",
        "meshcore_last_successful_run_timestamp_seconds",
        "meshcore_cost_collection_age_seconds",
    }, "only meshcore's own metrics, in a registry of their own"

    def cost_age() -> bool:
        age = samples(get(f"{url}/metrics")[1])[("meshcore_cost_collection_age_seconds", ())]
        return age < 60  # collected after the first apply

    until(cost_age)

    runs = json.loads(get(f"{url}/runs")[1])
    assert {"apply", "costs"} <= {r["command"] for r in runs}
    assert get(f"{url}/nothing-here")[0] == 404
    post = urllib.request.Request(f"{url}/status", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(post, timeout=5)
    assert refused.value.code == 405

    # a project added to the config is applied by a later cycle: the config is read again
    doc["workspaces"][1]["projects"].append(
        {
            "id": "lake-prod",
            "tags": {"environment": "prod"},
            "tenants": [{"platform": "demo", "landing_zone": "production"}],
        }
    )
    config.write_text(yaml.safe_dump(doc, sort_keys=False))

    def lake_prod() -> bool:
        tenants = {t["tenant"]: t for t in json.loads(get(f"{url}/status")[1])["tenants"]}
        return tenants.get("data/lake-prod@demo", {}).get("status") == "ACTIVE"

    until(lake_prod)

    # a broken config: not ready (the config check says why), still alive, nothing applied
    config.write_text(config.read_text().replace("workspaces:", "workspacez:"))

    def not_ready() -> dict[str, Any] | None:
        status, body = get(f"{url}/readyz")
        return json.loads(body) if status == 503 else None

    body = until(not_ready)
    assert body["failed"] == ["config"], body
    assert "workspacez" in body["checks"]["config"]["message"]
    assert get(f"{url}/healthz")[0] == 200
    found = samples(get(f"{url}/metrics")[1])
    assert found[("meshcore_runs_total", (("outcome", "invalid_config"),))] >= 1

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


def test_a_port_in_use_is_a_usage_error(tmp_path, write_config, base_config):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app,
            [
                "serve",
                "-c",
                str(write_config(base_config)),
                "--state",
                f"sqlite:///{tmp_path / 'state.db'}",
                "--listen",
                f"127.0.0.1:{port}",
            ],
        )
    assert result.exit_code == 2, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert not (tmp_path / "state.db").exists(), "nothing is made before the options are checked"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("[::1]:80", ("::1", 80)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_listen_addresses(value, expected):
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["9464", "localhost", ":9464", "host:0", "host:70000", "host:\uff19\uff14"])
def test_a_bad_listen_address_is_exit_code_2_naming_the_option(value, tmp_path, write_config, base_config):
    result = CliRunner().invoke(
        app,
        ["serve", "-c", str(write_config(base_config)), "--state", str(tmp_path / "s.db"), "--listen", value],
    )
    assert result.exit_code == 2
    assert "--listen must be HOST:PORT" in result.output
    assert not (tmp_path / "s.db").exists(), "nothing is opened before the options are checked"


# -- the service in this process ---------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def service(
    write_config, meshcore_registry, state_store, base_config, tmp_path
) -> Iterator[tuple[Service, str, Clock]]:
    """A service (loop not started) with its HTTP server: (service, base URL, its metrics' clock)."""
    base_config["platforms"][0]["config"] = {"state_file": str(tmp_path / "cloud.db")}
    clock = Clock()
    svc = Service(
        write_config(base_config, "meshcore.yaml"),
        state_store,
        meshcore_registry,
        interval=300,
        costs_interval=86400,
        max_staleness=900,
        metrics=ServiceMetrics(clock),
    )
    server = bind("127.0.0.1", 0, svc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield svc, f"http://127.0.0.1:{server.server_address[1]}", clock
    finally:
        svc.stop.set()
        if svc.alive():
            svc.join(10)
        server.shutdown()
        server.server_close()


def test_liveness_is_the_loop_thread_being_alive(service):
    svc, url, _clock = service
    assert get(f"{url}/healthz")[0] == 503, "no loop thread yet"
    svc.start()
    assert get(f"{url}/healthz") == (200, '{"alive": true}\n')
    svc.stop.set()
    svc.join(30)
    assert get(f"{url}/healthz")[0] == 503


def test_readiness_needs_a_valid_config_a_store_and_a_recent_ok_run(service):
    svc, url, clock = service
    status, body = get(f"{url}/readyz")
    assert status == 503
    assert json.loads(body)["failed"] == ["config", "last_run"]
    svc.cycle()
    status, body = get(f"{url}/readyz")
    assert status == 200, body
    assert json.loads(body)["checks"]["state"]["ok"] is True
    clock.now += 901  # older than --max-staleness
    status, body = get(f"{url}/readyz")
    assert status == 503
    assert json.loads(body)["failed"] == ["last_run"]
    assert "--max-staleness 900" in json.loads(body)["checks"]["last_run"]["message"]


def test_an_unreachable_store_fails_readiness_naming_the_state_check(service, monkeypatch):
    from meshcore.errors import StateStoreError

    svc, url, _clock = service
    svc.cycle()
    assert get(f"{url}/readyz")[0] == 200

    def unreachable(*_a: Any, **_k: Any) -> None:
        raise StateStoreError("cannot use state store db.example: connection refused")

    monkeypatch.setattr(svc.store, "runs", unreachable)
    status, body = get(f"{url}/readyz")
    assert status == 503
    assert json.loads(body)["failed"] == ["state"]
    assert "connection refused" in json.loads(body)["checks"]["state"]["message"]
    assert get(f"{url}/runs")[0] == 503


def test_an_invalid_config_fails_its_cycle_only_and_applies_nothing(service, state_store):
    svc, url, _clock = service
    svc.config_path.write_text("platfroms: []\n")
    svc.cycle()
    assert state_store.runs() == [], "nothing ran"
    found = samples(get(f"{url}/metrics")[1])
    assert found[("meshcore_runs_total", (("outcome", "invalid_config"),))] == 1
    body = json.loads(get(f"{url}/readyz")[1])
    assert "platfroms" in body["checks"]["config"]["message"]


def test_costs_are_collected_on_their_own_schedule(service, state_store):
    svc, url, clock = service
    svc.cycle()
    svc.cycle()
    commands = [r.command for r in reversed(state_store.runs())]
    assert commands == ["apply", "costs", "apply"], "one collection per --costs-interval"
    clock.now += 120
    found = samples(get(f"{url}/metrics")[1])
    assert found[("meshcore_cost_collections_total", (("outcome", "ok"),))] == 1
    assert found[("meshcore_cost_collection_age_seconds", ())] == 120


def test_a_failed_collection_is_tried_again_after_an_hour(service, monkeypatch):
    svc, url, _clock = service
    monkeypatch.setattr(FakeCloud, "read", _refuse_costs(FakeCloud.read))
    svc.cycle()
    found = samples(get(f"{url}/metrics")[1])
    assert found[("meshcore_cost_collections_total", (("outcome", "failed"),))] == 1
    assert found[("meshcore_cost_collection_age_seconds", ())] == float("inf")
    assert 3590 < svc._next_costs - time.monotonic() <= COSTS_RETRY_SECONDS


def _refuse_costs(read: Callable[..., None]) -> Callable[..., None]:
    from meshcore.errors import PlatformError

    def refused(cloud: FakeCloud, op: str, subject: str = "") -> None:
        if op == "costs":
            raise PlatformError("cost data refused")
        read(cloud, op, subject)

    return refused


def test_a_held_lease_or_a_refused_run_is_counted_and_the_next_cycle_runs(service, state_store, base_config):
    svc, url, _clock = service
    state_store.acquire_lease("apply", "another-runner", 300)
    svc.cycle()
    state_store.release_lease("apply", "another-runner")
    svc.cycle()
    config = yaml.safe_load(svc.config_path.read_text())
    svc.config_path.write_text(yaml.safe_dump({**config, "workspaces": []}))  # would delete every tenant
    svc.cycle()
    found = samples(get(f"{url}/metrics")[1])
    outcomes = {
        dict(labels)["outcome"]: v for (name, labels), v in found.items() if name == "meshcore_runs_total"
    }
    assert outcomes == {
        "locked": 1,
        "ok": 1,
        "refused": 1,
        "failed": 0,
        "stopped": 0,
        "invalid_config": 0,
        "error": 0,
    }
    assert found[("meshcore_run_duration_seconds_count", ())] == 1  # only the run that ran is timed


def test_cost_age_is_infinite_until_a_collection_and_absent_when_collection_is_off():
    metrics = ServiceMetrics(Clock())
    assert samples(metrics.exposition().decode())[("meshcore_cost_collection_age_seconds", ())] == float(
        "inf"
    )
    metrics.costs_enabled(False)
    assert ("meshcore_cost_collection_age_seconds", ()) not in samples(metrics.exposition().decode())


def test_the_service_listens_on_ipv6(service):
    svc, _url, _clock = service
    server = bind("::1", 0, svc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert get(f"http://[::1]:{server.server_address[1]}/healthz")[0] == 503, "answers (loop not started)"
    finally:
        server.shutdown()
        server.server_close()


def test_sigint_stops_the_service_and_restores_what_it_changed(service):
    svc, _url, _clock = service
    server = bind("127.0.0.1", 0, svc)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    def interrupt_when_alive() -> None:
        until(lambda: get(f"http://127.0.0.1:{server.server_address[1]}/healthz")[0] == 200)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_alive, daemon=True).start()
    run(svc, server)  # returns once the signal stopped it
    assert svc.stop.is_set() and not svc.alive()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert telemetry.install(None) is None, "the metrics sink is removed"


def test_a_collection_covers_the_previous_month_until_it_is_final():
    early = dt.datetime(2026, 11, 3, tzinfo=dt.UTC)
    late = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    assert cost_months(5, early) == ["2026-10", "2026-11"]
    assert cost_months(5, late) == ["2026-11"]
    assert cost_months(5, dt.datetime(2027, 1, 2, tzinfo=dt.UTC)) == ["2026-12", "2027-01"]


def test_runs_takes_a_bounded_limit(service):
    svc, url, _clock = service
    svc.cycle()
    assert len(json.loads(get(f"{url}/runs?limit=1")[1])) == 1
    status, body = get(f"{url}/runs?limit=0")
    assert status == 400 and "limit must be a number from 1 to 1000" in body


# -- the stop event ----------------------------------------------------------------------


def test_stop_lets_the_step_in_flight_finish_and_starts_no_other_tenant(
    write_config, meshcore_registry, state_store, fake_plugin, base_config, monkeypatch
):
    base_config["settings"] = {"concurrency": 1}
    loaded = load_config(write_config(base_config), meshcore_registry)
    stop, entered, release = threading.Event(), threading.Event(), threading.Event()
    create = FakeCloud.create

    def blocking_create(cloud: FakeCloud, name: str, *args: Any, **kwargs: Any) -> Any:
        if not entered.is_set():  # the first tenant's creation blocks until released
            entered.set()
            assert release.wait(30)
        return create(cloud, name, *args, **kwargs)

    monkeypatch.setattr(FakeCloud, "create", blocking_create)
    rec = Reconciler(loaded, state_store, meshcore_registry, sleep=lambda _s: None, stop=stop)
    reports: list[Any] = []
    thread = threading.Thread(target=lambda: reports.append(rec.apply()))
    thread.start()
    assert entered.wait(30)
    stop.set()
    release.set()
    thread.join(30)
    (report,) = reports

    first, *others = report.tenants
    assert first.actions[0].phase == "tenant" and first.actions[0].status == "changed"
    assert {a.status for a in first.actions[1:]} == {"waiting"}, "no step starts after the stop"
    assert {a.message for a in first.actions[1:]} == {STOPPING}
    assert first.status == "in_progress"
    assert [(i.status, i.actions) for i in others] == [(NOT_RUN, [])] * 2
    assert report.failed == [] and report.summary["not_run"] == 2
    steps = state_store.steps(run_id=report.run_id)
    assert {s.tenant_key for s in steps if s.tenant_key} == {first.key}, "tenants not started have no steps"
    recorded = [s.status for s in steps if s.tenant_key == first.key]
    assert recorded == [a.status for a in first.actions], (
        "the step in flight, and those not run, are recorded"
    )
    assert [r.key for r in state_store.tenants()] == [first.key], (
        "tenants not started are not recorded either"
    )
    cloud = fake_plugin.cloud(loaded.platforms["demo"])
    assert len(cloud.tenants) == 1
    assert state_store.runs(limit=1)[0].status == "stopped"

    again = Reconciler(loaded, state_store, meshcore_registry, sleep=lambda _s: None).apply()
    assert not again.failed and {i.status for i in again.tenants} == {"changed"}, "the next run goes on"
    assert len(cloud.tenants) == 3


# -- review findings: a config being written, a state file gone, the server's own errors ------------------


def test_a_config_still_being_written_is_not_applied(service, monkeypatch):
    """A file that changes while the service reads it (an editor, a copy in progress) is read again next
    cycle: a half-written config must never mark the missing tenants for deletion."""
    import meshcore.serve as serve_module

    svc, _url, _clock = service
    svc.cycle()
    full = svc.config_path.read_text()
    half = full[: full.index("workspaces:")] + "workspaces: []\n"
    monkeypatch.setattr(serve_module, "SETTLE_SECONDS", 0.5)

    def keep_writing(seconds):  # the writer finishes while the service waits for the file to settle
        svc.config_path.write_text(full + "\n# done\n")
        return False

    svc.config_path.write_text(half)
    monkeypatch.setattr(svc.stop, "wait", keep_writing)
    svc.cycle()
    ready, body = svc.readiness()
    assert not ready and "is being written" in body["checks"]["config"]["message"]
    assert {t.status for t in svc.store.tenants()} == {"ACTIVE"}, "nothing was marked for deletion"


def test_a_removed_state_file_makes_the_service_unready_and_applies_nothing(service, store_url):
    svc, url, _clock = service
    svc.cycle()
    if not store_url.startswith("sqlite"):  # a database, not a file: nothing to watch, nothing to trip over
        assert svc._store_file is None and svc.readiness()[1]["checks"]["state"]["ok"]
        return
    runs = len(svc.store.runs(limit=100))
    path = svc._store_file
    assert path is not None
    path.rename(path.with_name("moved.db"))
    status, body = get(f"{url}/readyz")
    assert status == 503 and "was removed or replaced" in json.loads(body)["checks"]["state"]["message"]
    svc.cycle()
    assert len(svc.store.runs(limit=100)) == runs, "no run was recorded into the moved file"


def test_unknown_methods_and_malformed_requests_get_json(service):
    _svc, url, _clock = service
    host, port = url.removeprefix("http://").split(":")
    for request, status in ((b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 405), (b"GARBAGE\r\n\r\n", 400)):
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(request)
            answer = conn.makefile("rb").read().decode()
        head, _, body = answer.partition("\r\n\r\n")
        assert f" {status} " in head.splitlines()[0], answer
        assert "application/json" in head and "error" in json.loads(body), answer


def test_an_idle_connection_is_closed(service, monkeypatch):
    from meshcore.serve import _Handler

    monkeypatch.setattr(_Handler, "timeout", 0.5)
    _svc, url, _clock = service
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        started = time.monotonic()
        assert conn.recv(100) == b"", "the server closed the connection"
        assert time.monotonic() - started < 4


def test_metric_labels_are_redacted():
    """A platform id interpolated from the environment is a secret like any other: never in /metrics."""
    from meshcore.redaction import clear_secrets, register_secret

    register_secret("prodsecretplat")
    try:
        metrics = ServiceMetrics()
        metrics.cloud_call("prodsecretplat", "organizations.ListAccounts", "ok")
        text = metrics.exposition().decode()
        assert "prodsecretplat" not in text and 'platform="***"' in text
    finally:
        clear_secrets()


def test_tenants_another_runner_had_or_whose_lease_was_lost_are_counted_by_outcome():
    from meshcore.reconciler import ELSEWHERE, FENCED
    from meshcore.report import Item, Report

    metrics = ServiceMetrics()
    report = Report(1, "apply")
    report.items = [
        Item("ws/a@aws", status="changed"),
        Item("ws/b@aws", status=ELSEWHERE),
        Item("ws/c@aws", status=FENCED, message="lease lost"),
        Item("ws/d@gcp", status=ELSEWHERE),
        Item("platform:aws", scope="platform", status="ok"),
    ]
    metrics.run_finished("ok", 1.0, report)
    found = samples(metrics.exposition().decode())
    tenants = {labels: v for (name, labels), v in found.items() if name == "meshcore_run_tenants_total"}
    assert tenants == {
        (("outcome", "changed"), ("platform", "aws")): 1,
        (("outcome", "elsewhere"), ("platform", "aws")): 1,
        (("outcome", "fenced"), ("platform", "aws")): 1,
        (("outcome", "elsewhere"), ("platform", "gcp")): 1,
    }, tenants


def test_reference_cycles_a_cycle_leaves_are_freed_before_the_next(service, monkeypatch):
    """The command line collects garbage rarely (meshcore.gc_settings); a long-running service frees
    what its runs left in reference cycles after every cycle, not days later."""
    import gc
    import weakref

    svc, _url, _clock = service

    class Node:
        pass

    left: list[weakref.ref[Node]] = []
    cycles = 0

    def cycle() -> None:  # a run that leaves a reference cycle behind, then a stop after two cycles
        nonlocal cycles
        cycles += 1
        a, b = Node(), Node()
        a.other, b.other = b, a
        left.append(weakref.ref(a))
        if cycles == 2:
            svc.stop.set()

    monkeypatch.setattr(svc, "cycle", cycle)
    svc.interval = 0
    thresholds = gc.get_threshold()
    gc.disable()  # only the service's own collection can free the cycle
    try:
        svc.start()
        svc.join(30)
    finally:
        gc.enable()
        gc.set_threshold(*thresholds)
    assert cycles == 2
    assert all(ref() is None for ref in left), "a reference cycle outlived the service's cycle"
