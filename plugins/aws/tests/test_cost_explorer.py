"""Cost Explorer collection on moto: one query per period (pages followed), currencies, credits, attribution."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from aws_testlib import MGMT, by_key
from meshcore.chargeback import statements
from meshcore.config import load_config
from meshcore.costs import CostService

LATE = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)


def group(account, service, amount, unit="USD"):
    return {"Keys": [account, service], "Metrics": {"AmortizedCost": {"Amount": str(amount), "Unit": unit}}}


def page(groups, token=None, start="2026-09-01", end="2026-10-01"):
    result = {
        "ResultsByTime": [{"TimePeriod": {"Start": start, "End": end}, "Groups": groups, "Estimated": False}],
        "DimensionValueAttributes": [],
    }
    if token:
        result["NextPageToken"] = token
    return result


@pytest.fixture
def inject():
    from moto.ce.models import ce_backends

    def add(*results):
        ce_backends[MGMT]["global"].cost_usage_results_queue.extend(results)

    return add


@pytest.fixture
def vended(world):
    report = world.reconciler().apply()
    return {k.split("@")[0]: r.platform_tenant_id for k, r in by_key(report).items()}


def test_one_request_per_page_exact_sums_and_attribution(world, vended, inject, registry, write_config):
    stranger = "999999999999"
    inject(
        page(
            [
                group(vended["ws1/p1"], "Amazon EC2", "100.25"),
                group(vended["ws1/p1"], "Amazon S3", "0.50"),
                group(vended["ws1/p2"], "Amazon EC2", "40.00", "EUR"),
            ],
            token="page-2",
        ),
        page(
            [
                group(vended["ws1/p1"], "Refund", "-10.00"),
                group(vended["ws2/p3"], "AWS Lambda", "0.01"),
                group(stranger, "Amazon EC2", "7.00"),
            ]
        ),
    )
    loaded = load_config(write_config(world.config), registry)
    service = CostService(loaded, world.store, registry, now=LATE)
    world.calls.clear()
    result = service.collect(["2026-09"])
    assert world.calls["GetCostAndUsage"] == 2 and result.requests == {"aws": 2}
    assert result.request_cost == {"aws": "0.02 USD"}
    assert result.unattributed == 1
    report = service.report("2026-09", by="tenant")
    lines = {
        (line["tenant"], line["product"]): (Decimal(line["amount"]), line["currency"])
        for line in report["lines"]
    }
    assert lines[("ws1/p1@aws", "Amazon EC2")] == (Decimal("100.25"), "USD")
    assert lines[("ws1/p1@aws", "Refund")] == (Decimal("-10.00"), "USD")
    assert lines[("ws1/p2@aws", "Amazon EC2")] == (Decimal("40.00"), "EUR")
    assert lines[(f"unattributed (aws:{stranger})", "Amazon EC2")] == (Decimal("7.00"), "USD")
    assert report["totals"] == {"EUR": "40.00", "USD": "97.76"}
    rows = statements(world.store, "2026-09", 6, loaded, now=LATE)
    p1 = next(r for r in rows if r["project"] == "p1")
    assert p1["totals"] == {"USD": "90.75"} and p1["lines"][0]["seller"] == "Amazon Web Services"
    by_project = service.report("2026-09", by="workspace")
    assert {line["workspace"] for line in by_project["lines"]} >= {"ws1", "ws2"}


def test_late_costs_version_the_statement(world, vended, inject, registry, write_config):
    loaded = load_config(write_config(world.config), registry)
    inject(page([group(vended["ws1/p1"], "Amazon EC2", "10.00")]))
    CostService(loaded, world.store, registry, now=LATE).collect(["2026-09"])
    statements(world.store, "2026-09", 6, loaded, now=LATE)
    from moto.ce.models import ce_backends

    ce_backends[MGMT]["global"].cost_usage_results.clear()  # the next identical query returns new data
    inject(page([group(vended["ws1/p1"], "Amazon EC2", "12.50")]))
    CostService(loaded, world.store, registry, now=LATE).collect(["2026-09"])
    rows = [r for r in statements(world.store, "2026-09", 6, loaded, now=LATE) if r["project"] == "p1"]
    assert [(r["version"], r["status"], r["totals"]) for r in rows] == [
        (1, "CANCELLED", {"USD": "10.00"}),
        (2, "FINAL", {"USD": "12.50"}),
    ]


def test_a_month_aws_still_estimates_is_never_charged_back_as_final(
    world, vended, inject, registry, write_config
):
    """Cost Explorer marks the current month Estimated (as the emulator does): statements stay previews."""
    today = dt.datetime.now(dt.UTC).date()
    month = today.strftime("%Y-%m")
    start = today.replace(day=1)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    loaded = load_config(write_config(world.config), registry)
    inject(
        page([group(vended["ws1/p1"], "Amazon EC2", "3.00")], start=start.isoformat(), end=end.isoformat())
    )
    later = dt.datetime.combine(end + dt.timedelta(days=30), dt.time(), dt.UTC)  # long after the month
    service = CostService(loaded, world.store, registry, now=later)
    service.collect([month])
    assert [line.estimated for line in world.store.usage(month)] == [True]
    rows = statements(world.store, month, 6, loaded, now=later)
    assert {r["status"] for r in rows} == {"PREVIEW"} and world.store.statements(month) == []
    assert service.report(month)["status"] == "preview"


def test_query_shape_and_data_unavailable(world, vended, registry, write_config, monkeypatch):
    world.config["platforms"][0]["config"]["costs"] = {
        "exclude_tax": True,
        "metric": "UnblendedCost",
        "group_by": "LEGAL_ENTITY_NAME",
    }
    loaded = load_config(write_config(world.config), registry)
    seen = []
    from moto.ce.models import CostExplorerBackend

    def unavailable(self, body):
        import json

        from moto.core.exceptions import JsonRESTError

        seen.append(json.loads(body))
        raise JsonRESTError("DataUnavailableException", "Data is not available")

    monkeypatch.setattr(CostExplorerBackend, "get_cost_and_usage", unavailable)
    result = CostService(loaded, world.store, registry, now=LATE).collect(["2026-09"])
    assert result.problems == [] and result.incomplete == [
        "aws 2026-09: Cost Explorer has no data for this period yet"
    ]
    q = seen[0]
    assert q["TimePeriod"] == {"Start": "2026-09-01", "End": "2026-10-01"}
    assert q["GroupBy"] == [
        {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
        {"Type": "DIMENSION", "Key": "LEGAL_ENTITY_NAME"},
    ]
    assert q["Metrics"] == ["UnblendedCost"] and q["Filter"] == {
        "Not": {"Dimensions": {"Key": "RECORD_TYPE", "Values": ["Tax"]}}
    }
