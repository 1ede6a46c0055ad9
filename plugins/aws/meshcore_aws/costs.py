"""Cost collection through Cost Explorer: one ``GetCostAndUsage`` query per period, grouped by LINKED_ACCOUNT.

Every request costs USD 0.01 and every page is a request, so meshcore never
queries per account: one query per period (plus its pages) returns every
account's costs, optionally split by a second dimension (SERVICE by default,
or LEGAL_ENTITY_NAME for the seller). Amortized cost by default; credits and
refunds come back as negative amounts and are kept. ``DataUnavailableException``
(data for the period not ready yet) is reported as an incomplete collection,
not an error.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from meshcore import CostCollection, CostRecord
from meshcore_aws import retries
from meshcore_aws.config import AwsConfig

AWS_SELLER = "Amazon Web Services"


#: The Cost Explorer endpoint of each partition.
CE_REGION = {"aws": "us-east-1", "aws-cn": "cn-northwest-1", "aws-us-gov": "us-gov-west-1"}


def collect(sessions: Any, cfg: AwsConfig, period: Any) -> CostCollection:
    costs = cfg.costs
    client = sessions.client("cost_explorer", "ce", region=CE_REGION.get(cfg.partition, "us-east-1"))
    group_by = [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}]
    if costs.group_by:
        group_by.append({"Type": "DIMENSION", "Key": costs.group_by})
    kwargs: dict[str, Any] = {
        "TimePeriod": {"Start": period.start.isoformat(), "End": period.end.isoformat()},
        "Granularity": costs.granularity,
        "Metrics": [costs.metric],
        "GroupBy": group_by,
    }
    if costs.exclude_tax:
        kwargs["Filter"] = {"Not": {"Dimensions": {"Key": "RECORD_TYPE", "Values": ["Tax"]}}}
    records: list[CostRecord] = []
    requests = 0
    token = None
    while True:
        args = dict(kwargs)
        if token:
            args["NextPageToken"] = token
        requests += 1
        try:
            page = client.get_cost_and_usage(**args)
        except ClientError as exc:
            if retries.code(exc) == "DataUnavailableException":
                return CostCollection(
                    records=tuple(records),
                    requests=requests,
                    request_cost=costs.request_price_usd * requests,
                    complete=False,
                    message="Cost Explorer has no data for this period yet",
                )
            raise
        for result in page.get("ResultsByTime", []):
            estimated = bool(result.get("Estimated"))  # AWS has not finalized these amounts yet
            start = max(dt.date.fromisoformat(result["TimePeriod"]["Start"]), period.start)
            end = min(dt.date.fromisoformat(result["TimePeriod"]["End"]), period.end)
            for group in result.get("Groups", []):
                keys = group.get("Keys", [])
                metric = group.get("Metrics", {}).get(costs.metric)
                if not keys or metric is None:
                    continue
                second = keys[1] if len(keys) > 1 else ""
                seller = second if costs.group_by == "LEGAL_ENTITY_NAME" else AWS_SELLER
                product = "" if costs.group_by == "LEGAL_ENTITY_NAME" else second
                records.append(
                    CostRecord(
                        platform_tenant_id=keys[0],
                        usage_start=start,
                        usage_end=end,
                        seller=seller,
                        product=product,
                        currency=metric.get("Unit", "USD"),
                        amount=Decimal(metric["Amount"]),
                        estimated=estimated,
                    )
                )
        token = page.get("NextPageToken")
        if not token:
            break
    return CostCollection(
        records=tuple(records), requests=requests, request_cost=costs.request_price_usd * requests
    )
