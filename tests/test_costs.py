"""Costs and chargeback against the fake platform: attribution, unattributed, idempotency, versioning, exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pytest

from meshcore.chargeback import export, statements
from meshcore.config import load_config
from meshcore.costs import CostService, month_bounds, months
from meshcore.errors import MeshcoreError
from meshcore.reconciler import Reconciler

LATE = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
EARLY = dt.datetime(2026, 10, 3, tzinfo=dt.UTC)


@pytest.fixture
def world(write_config, meshcore_registry, state_store, fake_plugin, base_config):
    base_config["workspaces"][0]["projects"][0]["payment_method"] = {
        "id": "pm-1",
        "budget": 100,
        "currency": "EUR",
    }
    loaded = load_config(write_config(base_config), meshcore_registry)
    Reconciler(loaded, state_store, meshcore_registry, sleep=lambda s: None).apply()
    cloud = fake_plugin.cloud(loaded.platforms["demo"])
    return loaded, cloud


def test_month_helpers():
    assert month_bounds("2026-12") == (dt.date(2026, 12, 1), dt.date(2027, 1, 1))
    today = dt.date(2027, 3, 15)
    assert months("2026-11", "2027-02", today) == ["2026-11", "2026-12", "2027-01", "2027-02"]
    with pytest.raises(MeshcoreError, match="not a month"):
        month_bounds("2026-13")
    with pytest.raises(MeshcoreError, match="not a month"):
        month_bounds("2026-10\n")
    with pytest.raises(MeshcoreError, match="before 2000"):
        months("1900-01", "2026-10", today)
    with pytest.raises(MeshcoreError, match="in the future"):
        months("2027-01", "2027-04", today)
    with pytest.raises(MeshcoreError, match="spans 39 months; collect at most 38"):
        months("2023-12", "2027-02", today)
    assert len(months("2024-01", "2027-02", today)) == 38


def test_collection_attributes_costs_and_keeps_unattributed(world, meshcore_registry, state_store):
    loaded, cloud = world
    cloud.add_external("legacy")
    service = CostService(loaded, state_store, meshcore_registry, now=LATE)
    result = service.collect(["2026-09"])
    assert result.lines == 4 and result.unattributed == 1 and result.requests == {"demo": 1}
    report = service.report("2026-09", by="tenant")
    amounts = {line["tenant"]: Decimal(line["amount"]) for line in report["lines"]}
    assert amounts["ws1/p1@demo"] == Decimal("1.50") * 30
    assert any(k.startswith("unattributed (demo:") for k in amounts)
    assert report["totals"] == {"EUR": str(Decimal("1.50") * 30 * 4)}
    assert report["status"] == "final"
    by_ws = {line["workspace"]: line["amount"] for line in service.report("2026-09", by="workspace")["lines"]}
    assert Decimal(by_ws["ws1"]) == Decimal("90.00") and Decimal(by_ws["ws2"]) == Decimal("45.00")


def test_recollection_is_idempotent(world, meshcore_registry, state_store):
    loaded, _ = world
    service = CostService(loaded, state_store, meshcore_registry, now=LATE)
    service.collect(["2026-09"])
    first = service.report("2026-09")
    service.collect(["2026-09"])
    assert service.report("2026-09") == first
    assert len(state_store.usage("2026-09")) == 3


def test_statements_are_previews_then_final_and_late_costs_create_a_new_version(
    world, meshcore_registry, state_store, write_config, base_config
):
    loaded, _cloud = world
    service = CostService(loaded, state_store, meshcore_registry, now=LATE)
    service.collect(["2026-09", "2026-10"])
    preview = statements(state_store, "2026-10", 6, loaded, now=EARLY)
    assert {r["status"] for r in preview} == {"PREVIEW"} and state_store.statements("2026-10") == []
    final = statements(state_store, "2026-09", 6, loaded, now=LATE)
    p1 = next(r for r in final if r["project"] == "p1")
    assert (p1["version"], p1["status"], p1["totals"]) == (1, "FINAL", {"EUR": "45.00"})
    assert p1["payment_method"]["id"] == "pm-1" and p1["tags"] == {"environment": "dev"}
    assert statements(state_store, "2026-09", 6, loaded, now=LATE) == final  # unchanged: no new version
    # late costs arrive: the daily cost was higher
    new_loaded = load_config(
        write_config(
            {**base_config, "platforms": [{"id": "demo", "type": "fake", "config": {"daily_cost": "2.00"}}]}
        ),
        meshcore_registry,
    )
    CostService(new_loaded, state_store, meshcore_registry, now=LATE).collect(["2026-09"])
    rows = statements(state_store, "2026-09", 6, new_loaded, now=LATE)
    versions = [(r["version"], r["status"], r["totals"]) for r in rows if r["project"] == "p1"]
    assert versions == [(1, "CANCELLED", {"EUR": "45.00"}), (2, "FINAL", {"EUR": "60.00"})]


def test_estimated_costs_keep_statements_provisional_until_the_platform_finalizes_them(
    world, meshcore_registry, state_store, write_config, base_config
):
    estimating = {
        **base_config,
        "platforms": [{"id": "demo", "type": "fake", "config": {"costs_estimated": True}}],
    }
    loaded = load_config(write_config(estimating), meshcore_registry)
    service = CostService(loaded, state_store, meshcore_registry, now=LATE)
    service.collect(["2026-09"])
    assert service.report("2026-09")["status"] == "preview"
    rows = statements(state_store, "2026-09", 6, loaded, now=LATE)
    assert {r["status"] for r in rows} == {"PREVIEW"} and state_store.statements("2026-09") == []
    assert all("estimates" in r["note"] for r in rows)
    final_loaded, _ = world
    CostService(final_loaded, state_store, meshcore_registry, now=LATE).collect(["2026-09"])
    assert {r["status"] for r in statements(state_store, "2026-09", 6, final_loaded, now=LATE)} == {"FINAL"}


def test_costs_from_before_an_import_are_not_charged_to_the_importing_project(
    world, meshcore_registry, state_store, write_config, base_config
):
    _loaded, cloud = world
    legacy = cloud.add_external("legacy")
    base_config["workspaces"][1]["projects"].append(
        {"id": "old", "tenants": [{"platform": "demo", "landing_zone": "sandbox", "import_id": legacy}]}
    )
    importing = load_config(write_config(base_config), meshcore_registry)
    Reconciler(importing, state_store, meshcore_registry, sleep=lambda s: None).apply()
    today = dt.datetime.now(dt.UTC).date()
    month = today.strftime("%Y-%m")
    CostService(importing, state_store, meshcore_registry).collect([month])
    lines = [line for line in state_store.usage(month) if line.platform_tenant_id == legacy]
    charged = {line.tenant_key: Decimal(line.amount) for line in lines}
    days_after = (month_bounds(month)[1] - today).days  # the import day and later (daily records)
    assert charged["ws2/old@demo"] == Decimal("1.50") * days_after
    if today.day > 1:
        assert charged[None] == Decimal("1.50") * (today.day - 1), "earlier usage charged to the importer"


def test_exports(world, meshcore_registry, state_store):
    loaded, _ = world
    CostService(loaded, state_store, meshcore_registry, now=LATE).collect(["2026-09"])
    rows = statements(state_store, "2026-09", 6, loaded, now=LATE)
    table = list(csv.DictReader(io.StringIO(export(rows, "csv"))))
    assert {(r["workspace"], r["project"], r["amount"], r["currency"]) for r in table} == {
        ("ws1", "p1", "45.00", "EUR"),
        ("ws1", "p2", "45.00", "EUR"),
        ("ws2", "p3", "45.00", "EUR"),
    }
    assert next(r for r in table if r["project"] == "p1")["payment_method"] == "pm-1"
    data = json.loads(export(rows, "json"))
    assert data[0]["lines"][0]["seller"] == "Fake Cloud Inc."


def test_cli_costs_and_chargeback(world, tmp_path, monkeypatch, write_config, base_config):
    from typer.testing import CliRunner

    from meshcore.cli.app import app

    base_config["platforms"][0]["config"] = {"state_file": str(tmp_path / "cloud.json")}
    cfg = str(write_config(base_config))
    state = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    assert runner.invoke(app, ["apply", "-c", cfg, "--state", state]).exit_code == 0
    out = runner.invoke(
        app,
        ["costs", "collect", "-p", "2026-08", "--to", "2026-09", "-c", cfg, "--state", state, "-o", "json"],
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["requests"] == {"demo": 2}
    report = json.loads(
        runner.invoke(
            app,
            [
                "costs",
                "report",
                "-p",
                "2026-09",
                "--by",
                "project",
                "-c",
                cfg,
                "--state",
                state,
                "-o",
                "json",
            ],
        ).output
    )
    assert {line["project"] for line in report["lines"]} == {"ws1/p1", "ws1/p2", "ws2/p3"}
    target = tmp_path / "cb.csv"
    res = runner.invoke(
        app, ["chargeback", "export", "-p", "2026-09", "--out", str(target), "-c", cfg, "--state", state]
    )
    assert res.exit_code == 0 and "3 statement(s)" in res.output
    assert target.read_text().count("FINAL") == 3
    # late costs replace a version: the export sums to the current amounts unless asked for the history
    late = {**base_config, "platforms": [{"id": "demo", "type": "fake", "config": {"daily_cost": "2.00"}}]}
    late_cfg = str(write_config(late))
    runner.invoke(app, ["costs", "collect", "-p", "2026-09", "-c", late_cfg, "--state", state])
    current = runner.invoke(
        app, ["chargeback", "export", "-p", "2026-09", "-f", "json", "-c", late_cfg, "--state", state]
    )
    rows = json.loads(current.stdout)
    assert {r["status"] for r in rows} == {"FINAL"} and len(rows) == 3
    history = runner.invoke(
        app,
        [
            "chargeback",
            "export",
            "-p",
            "2026-09",
            "-f",
            "json",
            "--all-versions",
            "-c",
            late_cfg,
            "--state",
            state,
        ],
    )
    assert sorted(r["status"] for r in json.loads(history.stdout)).count("CANCELLED") == 3
    bad = runner.invoke(app, ["costs", "report", "-p", "2026-9", "-c", cfg, "--state", state])
    assert bad.exit_code == 2 and "not a month" in bad.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["costs", "collect", "-p", "2026-13"], "not a month like 2026-10"),
        (["costs", "collect", "-p", "1900-01", "--to", "2026-10"], "before 2000"),
        (["costs", "collect", "-p", "2026-01", "--to", "2099-12"], "in the future"),
        (["costs", "collect", "-p", "2020-01", "--to", "2026-10"], "collect at most 38"),
        (["costs", "collect", "-p", "2026-10", "--to", "2026-01"], "ends before it starts"),
        (["costs", "report", "-p", "garbage"], "not a month"),
        (["costs", "report", "-p", "\uff12\uff10\uff12\uff14-01"], "not a month"),  # full-width digits
        (["chargeback", "export", "-p", "2099-01"], "in the future"),
        (["chargeback", "export", "-p", "2026-09", "--out", "/nonexistent/dir/cb.csv"], "cannot write --out"),
        (["chargeback", "export", "-p", "2026-09", "--out", "."], "cannot write --out"),
    ],
)
def test_cli_cost_commands_refuse_bad_arguments_with_exit_2(
    args, expected, tmp_path, write_config, base_config
):
    from typer.testing import CliRunner

    from meshcore.cli.app import app

    base_config["platforms"][0]["config"] = {"state_file": str(tmp_path / "cloud.json")}
    cfg = str(write_config(base_config))
    state = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    assert runner.invoke(app, ["apply", "-c", cfg, "--state", state]).exit_code == 0
    result = runner.invoke(app, [*args, "-c", cfg, "--state", state])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output, result.output
    assert not list(tmp_path.glob(".cb.csv.*")), "a partial export was left behind"


def test_concurrent_exports_finalize_each_statement_once(world, meshcore_registry, state_store, store_url):
    """Several processes exporting a due month at once: one FINAL version per project, no error."""
    from concurrent.futures import ThreadPoolExecutor

    from meshcore.state import StateStore

    loaded, _ = world
    CostService(loaded, state_store, meshcore_registry, now=LATE).collect(["2026-09"])

    def export_once(_: int) -> list[tuple[str, int, str]]:
        store = StateStore.open(store_url)  # its own connection pool, as another process would have
        try:
            return sorted(
                (r["project"], r["version"], r["status"])
                for r in statements(store, "2026-09", 6, loaded, now=LATE)
            )
        finally:
            store.close()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(export_once, range(8)))
    assert all(r == results[0] for r in results)
    assert results[0] == [("p1", 1, "FINAL"), ("p2", 1, "FINAL"), ("p3", 1, "FINAL")]
    assert len(state_store.statements("2026-09")) == 3


def test_export_out_writes_through_links_and_pipes_and_keeps_a_files_mode(
    tmp_path, write_config, base_config
):
    import os
    import stat
    import threading

    from typer.testing import CliRunner

    from meshcore.cli.app import app

    base_config["platforms"][0]["config"] = {"state_file": str(tmp_path / "cloud.json")}
    cfg = str(write_config(base_config))
    state = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    assert runner.invoke(app, ["apply", "-c", cfg, "--state", state]).exit_code == 0

    def export(out) -> int:
        args = ["chargeback", "export", "-p", "2026-10", "--out", str(out), "-c", cfg, "--state", state]
        return runner.invoke(app, args).exit_code

    private = tmp_path / "private.csv"
    private.write_text("old")
    private.chmod(0o600)
    assert export(private) == 0 and stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("workspace,")
    target = tmp_path / "target.csv"
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    assert export(link) == 0 and link.is_symlink() and target.read_text().startswith("workspace,")
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    assert export(fifo) == 0
    reader.join(5)
    assert got and got[0].startswith("workspace,") and stat.S_ISFIFO(fifo.lstat().st_mode)
