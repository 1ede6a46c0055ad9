"""Cost collection and tenant usage reports (cloud-agnostic).

Each platform plugin with the ``costs`` capability answers
``meshplatform_collect_costs`` for one calendar month (UTC). meshcore sums its
records into usage lines per platform tenant, month, seller, product and
currency, attributes each line to the tenant that owns the platform tenant id
(live or deleted), and keeps lines of platform tenants nobody owns as
*unattributed* — never dropped. Re-collecting a month replaces that month's
lines of that platform, so collection is idempotent.

A month's usage report is a *preview* until ``settings.costs.finalize_after_days``
days after the month ended, then *final* (see :mod:`meshcore.chargeback`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from meshcore.config import LoadedConfig
from meshcore.context import HookContext
from meshcore.errors import MeshcoreError, PluginError, UsageError
from meshcore.models import TenantStatus
from meshcore.plugins import PluginRegistry
from meshcore.results import Capability
from meshcore.specs import Period, TenantRef
from meshcore.state import StateStore
from meshcore.state.tables import utcnow

MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")  # ASCII digits only; matched in full


def _owner(owners: Mapping[str, Any], record: Any) -> str | None:
    """The tenant a cost record is charged to: its owner, unless the usage ended before the owner
    imported the platform tenant (costs from before an import belong to whoever ran it then)."""
    owner = owners.get(record.platform_tenant_id)
    if owner is None:
        return None
    imported = owner.imported_at
    if imported is not None and record.usage_end <= imported.date():
        return None
    return str(owner.key)


#: The earliest month meshcore accepts, and how many months one collection may span
#: (AWS Cost Explorer keeps at most 38 months, with multi-year data enabled).
FIRST_YEAR = 2000
MAX_MONTHS = 38


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """``2026-10`` -> (2026-10-01, 2026-11-01): a half-open UTC range."""
    m = MONTH.fullmatch(month)
    if not m:
        raise UsageError(f"period {month!r} is not a month like 2026-10")
    year, mon = int(m.group(1)), int(m.group(2))
    if year < FIRST_YEAR:
        raise UsageError(f"period {month!r} is before {FIRST_YEAR}: no cloud has costs that old")
    start = dt.date(year, mon, 1)
    end = dt.date(year + (mon == 12), 1 if mon == 12 else mon + 1, 1)
    return start, end


def months(first: str, last: str | None = None, today: dt.date | None = None) -> list[str]:
    """Every month from ``first`` to ``last`` inclusive; none after the current month, at most MAX_MONTHS."""
    start, _ = month_bounds(first)
    stop, _ = month_bounds(last or first)
    if stop < start:
        raise UsageError(f"period range {first}..{last} ends before it starts")
    current = (today or utcnow().date()).replace(day=1)
    if stop > current:
        raise UsageError(
            f"period {stop.strftime('%Y-%m')} is in the future (the current month is {current.strftime('%Y-%m')})"
        )
    span = (stop.year - start.year) * 12 + stop.month - start.month + 1
    if span > MAX_MONTHS:
        raise UsageError(
            f"period range {first}..{last} spans {span} months; collect at most {MAX_MONTHS} at a time"
        )
    out = []
    while start <= stop:
        out.append(start.strftime("%Y-%m"))
        start = month_bounds(out[-1])[1]
    return out


def is_final(month: str, finalize_after_days: int, now: dt.datetime | None = None) -> bool:
    _, end = month_bounds(month)
    today = (now or utcnow()).date()
    return today >= end + dt.timedelta(days=finalize_after_days)


@dataclass
class CollectResult:
    """What one collection run did: lines stored, requests made and what they cost."""

    months: list[str]
    lines: int = 0
    unattributed: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    request_cost: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class CostService:
    """Collects costs into the state store and reads usage reports back."""

    def __init__(
        self,
        config: LoadedConfig,
        store: StateStore,
        registry: PluginRegistry,
        now: dt.datetime | None = None,
    ):
        self.config = config
        self.store = store
        self.registry = registry
        self.now = now
        self.finalize_after_days = config.document.settings.costs.finalize_after_days

    def collect(self, wanted: list[str]) -> CollectResult:
        result = CollectResult(months=wanted)
        from meshcore.reconciler import runner_id  # host, process and a random part, like apply's runs

        run = self.store.start_run("costs", runner_id())
        for pid, platform in self.config.platforms.items():
            if not self.registry.has_capability(platform.type, Capability.COSTS):
                continue
            owners = {
                t.platform_tenant_id: t
                for t in self.store.tenants(pid, include_deleted=True)
                if t.platform_tenant_id
            }
            refs = [
                TenantRef(
                    key=t.key,
                    workspace=t.workspace,
                    project=t.project,
                    platform_tenant_id=t.platform_tenant_id,
                    status=TenantStatus(t.status),
                )
                for t in owners.values()
            ]
            ctx = HookContext(backend=self.store, platform_id=pid, run_id=run.id)
            requests, cost = 0, Decimal("0")
            currency = "USD"
            for month in wanted:
                start, end = month_bounds(month)
                period = Period(start=start, end=end, granularity="MONTHLY")
                try:
                    collection = self.registry.call(
                        "meshplatform_collect_costs", platform, period=period, tenants=refs, ctx=ctx
                    )
                except MeshcoreError as exc:
                    result.problems.append(f"{pid} {month}: {exc}")
                    continue
                requests += collection.requests
                cost += collection.request_cost
                currency = collection.request_cost_currency
                if not collection.complete:
                    result.incomplete.append(
                        f"{pid} {month}: {collection.message or 'data not available yet'}"
                    )
                    if not collection.records:
                        continue  # keep what an earlier collection stored
                sums: dict[tuple[str, str | None, str, str, str], Decimal] = defaultdict(Decimal)
                estimated: set[tuple[str, str | None, str, str, str]] = set()
                for r in collection.records:
                    if not (start <= r.usage_start < end and r.usage_end <= end):
                        raise PluginError(
                            platform.type,
                            f"meshplatform_collect_costs returned a record for "
                            f"{r.usage_start}..{r.usage_end}, outside {month}",
                        )
                    key = (r.platform_tenant_id, _owner(owners, r), r.seller, r.product, r.currency)
                    sums[key] += r.amount
                    if r.estimated:
                        estimated.add(key)
                lines = []
                for (ptid, tenant_key, seller, product, cur), amount in sorted(
                    sums.items(), key=lambda kv: tuple(str(part) for part in kv[0])
                ):
                    lines.append(
                        {
                            "platform_tenant_id": ptid,
                            "tenant_key": tenant_key,
                            "seller": seller,
                            "product": product,
                            "currency": cur,
                            "amount": str(amount),
                            "estimated": (ptid, tenant_key, seller, product, cur) in estimated,
                        }
                    )
                self.store.replace_usage(pid, month, lines)
                result.lines += len(lines)
                result.unattributed += sum(1 for line in lines if line["tenant_key"] is None)
            result.requests[pid] = requests
            result.request_cost[pid] = f"{cost} {currency}"
        self.store.finish_run(
            run.id,
            "failed" if result.problems else "ok",
            {"lines": result.lines, "requests": result.requests},
        )
        return result

    def report(self, month: str, by: str = "tenant") -> dict[str, Any]:
        """Usage of one month aggregated by ``tenant``, ``project`` or ``workspace`` (plus unattributed)."""
        if by not in ("tenant", "project", "workspace"):
            raise MeshcoreError("--by must be tenant, project or workspace")
        month_bounds(month)
        rows: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
        for line in self.store.usage(month):
            if line.tenant_key is None:
                key = f"unattributed ({line.platform}:{line.platform_tenant_id})"
            else:
                ws_project = line.tenant_key.split("@", 1)[0]
                key = {
                    "tenant": line.tenant_key,
                    "project": ws_project,
                    "workspace": ws_project.split("/", 1)[0],
                }[by]
            rows[(key, line.seller, line.product, line.currency)] += Decimal(line.amount)
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for (_k, _s, _p, cur), amount in rows.items():
            totals[cur] += amount
        return {
            "period": month,
            "status": "final"
            if is_final(month, self.finalize_after_days, self.now)
            and not any(line.estimated for line in self.store.usage(month))
            else "preview",
            "by": by,
            "lines": [
                {by: k, "seller": s, "product": p, "currency": c, "amount": str(a)}
                for (k, s, p, c), a in sorted(rows.items())
            ],
            "totals": {c: str(a) for c, a in sorted(totals.items())},
        }
