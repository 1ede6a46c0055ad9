"""The Prometheus metrics of ``meshcore serve``, in a registry of their own (docs/operations.md, "Service").

:class:`ServiceMetrics` is also the :mod:`meshcore.telemetry` sink the service
installs, so the cloud calls and retries plugins report become counters. Gauges
that describe the state (tenants by status, deletions awaiting approval, the age
of the last cost collection) are computed when scraped from the last snapshot the
service took, so a scrape never sees half an update and never queries the store.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from meshcore.models import TenantStatus
from meshcore.redaction import redact
from meshcore.report import Item, Report
from meshcore.telemetry import OUTCOMES as CALL_OUTCOMES

#: Outcomes of one reconcile cycle (the ``outcome`` label of ``meshcore_runs_total``).
RUN_OUTCOMES = ("ok", "failed", "stopped", "refused", "locked", "invalid_config", "error")
#: Buckets of ``meshcore_run_duration_seconds``: from a converged small estate to a large first apply.
RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)


def platform_of(item: Item) -> str:
    """The platform id of a report item: ``ws/project@platform`` or ``platform:platform``."""
    return item.key.partition(":")[2] if item.scope == "platform" else item.key.rpartition("@")[2]


class ServiceMetrics:
    """Every ``meshcore_*`` metric of the service; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        disable_created_metrics()  # no *_created series: they double what is scraped and say nothing here
        self.clock = clock
        self.registry = CollectorRegistry()
        reg = self.registry
        self.runs = Counter("meshcore_runs", "Reconcile cycles by outcome.", ["outcome"], registry=reg)
        self.run_duration = Histogram(
            "meshcore_run_duration_seconds", "Duration of reconcile runs.", buckets=RUN_BUCKETS, registry=reg
        )
        self.steps = Counter(
            "meshcore_steps",
            "Actions of reconcile runs by platform, resource kind and outcome.",
            ["platform", "kind", "outcome"],
            registry=reg,
        )
        self.run_tenants = Counter(
            "meshcore_run_tenants",
            "Tenants of reconcile runs by platform and outcome (elsewhere: another shared runner had it; "
            "fenced: this runner lost its lease mid-way).",
            ["platform", "outcome"],
            registry=reg,
        )
        self.cloud_calls = Counter(
            "meshcore_cloud_calls",
            "Requests plugins sent to their cloud, retries included.",
            ["platform", "operation", "outcome"],
            registry=reg,
        )
        self.retries = Counter(
            "meshcore_cloud_retries", "Requests sent again.", ["platform", "operation"], registry=reg
        )
        self.throttles = Counter(
            "meshcore_cloud_throttles",
            "Requests sent again because the cloud throttled them.",
            ["platform", "operation"],
            registry=reg,
        )
        self.cost_collections = Counter(
            "meshcore_cost_collections", "Cost collections by outcome.", ["outcome"], registry=reg
        )
        for outcome in RUN_OUTCOMES:
            self.runs.labels(outcome)
        for outcome in ("ok", "failed"):
            self.cost_collections.labels(outcome)
        self._lock = threading.Lock()
        self._tenants: Tally[tuple[str, str]] = Tally()
        self._failing: Tally[str] = Tally()
        self._pending: Tally[str] = Tally()
        self._platforms: set[str] = set()
        self._last_success: float | None = None
        self._costs_enabled = True
        self._last_costs: float | None = None
        reg.register(_State(self))

    # -- the telemetry sink ---------------------------------------------------------

    def cloud_call(self, platform: str, operation: str, outcome: str) -> None:
        if outcome in CALL_OUTCOMES:
            self.cloud_calls.labels(platform, operation, outcome).inc()

    def retry(self, platform: str, operation: str, throttled: bool) -> None:
        self.retries.labels(platform, operation).inc()
        if throttled:
            self.throttles.labels(platform, operation).inc()

    # -- what the service reports -----------------------------------------------------

    def run_finished(self, outcome: str, seconds: float | None, report: Report | None = None) -> None:
        """Count one cycle; ``seconds`` is ``None`` when no run started (e.g. an invalid config)."""
        self.runs.labels(outcome).inc()
        if seconds is not None:
            self.run_duration.observe(seconds)
        if report is not None:
            for item in report.items:
                for view in item.actions:
                    self.steps.labels(platform_of(item), view.resource, view.status).inc()
                if item.scope == "tenant":
                    self.run_tenants.labels(platform_of(item), item.status).inc()
        if outcome == "ok":
            with self._lock:
                self._last_success = self.clock()

    @property
    def last_success(self) -> float | None:
        """When the last run that ended ``ok`` finished (seconds since the epoch), if any."""
        with self._lock:
            return self._last_success

    def costs_collected(self, ok: bool) -> None:
        self.cost_collections.labels("ok" if ok else "failed").inc()
        if ok:
            with self._lock:
                self._last_costs = self.clock()

    def costs_enabled(self, enabled: bool) -> None:
        with self._lock:
            self._costs_enabled = enabled

    def tenants_seen(self, platforms: Iterable[str], rows: Iterable[Any]) -> None:
        """Take a snapshot of the recorded tenants (state store rows) of the config's ``platforms``."""
        tenants: Tally[tuple[str, str]] = Tally()
        failing: Tally[str] = Tally()
        pending: Tally[str] = Tally()
        known = set(platforms)
        for row in rows:
            known.add(row.platform)
            tenants[(row.platform, row.status)] += 1
            if row.status != TenantStatus.DELETED and row.last_error:
                failing[row.platform] += 1
            if row.status == TenantStatus.MARKED_FOR_DELETION and row.approved_at is None:
                pending[row.platform] += 1
        with self._lock:
            self._tenants, self._failing, self._pending, self._platforms = tenants, failing, pending, known

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format, redacted (a label may hold an interpolated value)."""
        return redact(generate_latest(self.registry).decode()).encode()


class _State:
    """The gauges, computed at scrape time from the service's last snapshot."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        with m._lock:
            tenants, failing, pending = Tally(m._tenants), Tally(m._failing), Tally(m._pending)
            platforms, last_success = sorted(m._platforms), m._last_success
            costs_enabled, last_costs = m._costs_enabled, m._last_costs
        by_status = GaugeMetricFamily(
            "meshcore_tenants", "Recorded tenants by platform and status.", labels=["platform", "status"]
        )
        failing_g = GaugeMetricFamily(
            "meshcore_tenants_failing", "Tenants whose last run failed.", labels=["platform"]
        )
        pending_g = GaugeMetricFamily(
            "meshcore_deletions_pending_approval",
            "Tenants marked for deletion that wait for 'meshcore approve'.",
            labels=["platform"],
        )
        for platform in platforms:
            for status in TenantStatus:
                by_status.add_metric([platform, status.value], tenants[(platform, status.value)])
            failing_g.add_metric([platform], failing[platform])
            pending_g.add_metric([platform], pending[platform])
        yield from (by_status, failing_g, pending_g)
        yield GaugeMetricFamily(
            "meshcore_last_successful_run_timestamp_seconds",
            "When the last reconcile run that ended ok finished (0: none yet).",
            value=last_success or 0.0,
        )
        if costs_enabled:
            yield GaugeMetricFamily(
                "meshcore_cost_collection_age_seconds",
                "Seconds since the last successful cost collection (+Inf: none yet).",
                value=m.clock() - last_costs if last_costs is not None else math.inf,
            )
