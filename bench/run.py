"""meshcore benchmarks against a local AWS emulator. Prints markdown tables (see docs/benchmarks.md).

python bench/run.py vending --sizes 10 100 1000      # provision, then no-op reconcile; calls, time, memory
python bench/run.py costs --sizes 10 100 1000        # cost collection requests and their price
python bench/run.py aws-latency --sizes 100 300 --latency 0.1 --creation 5 --concurrency 32
                                                      # the emulator in its own process, AWS-like waits
                                                      # (--creation-slots K: AWS's creations in progress)
python bench/run.py stacksets --sizes 32 --stackset-seconds 10 --creation 5
                                                      # StackSet operations shared vs one per account
python bench/run.py revocation --sizes 64 --creation 5 --concurrency 32 --existing 96
                                                      # a removed tenant's revocation while N are vended
python bench/run.py scale --sizes 1000 10000          # the fake platform: meshcore's own time and memory
python bench/run.py startup                           # CLI start-up
python bench/run.py all                               # everything with default sizes
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from harness import config, reconciler, sandbox, timed


def vending(sizes: list[int]) -> None:
    """Provisioning, then a no-op apply (a full drift check), a plan, and an incremental no-op apply
    (``drift_check.mode: incremental``: only what CloudTrail's event history names is read)."""
    print(
        "| N | provision: calls/tenant | writes/tenant | wall s | peak RSS MiB | no-op apply: calls/tenant | writes | wall s | plan: calls/tenant | incremental no-op: calls/tenant | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    breakdown, noop = {}, {}
    for n in sizes:
        with sandbox() as (_box, counter):
            cfg = config(n)
            cfg["settings"]["drift_check"] = {"mode": "incremental"}
            cfg["platforms"][0]["config"]["change_feed_delay_minutes"] = 0  # the emulator delivers at once
            rec = reconciler(cfg)
            report, seconds, peak = timed(rec.apply)
            failed = len(report.failed)
            prov_calls, prov_writes = counter.total(), sum(counter.writes.values())
            breakdown[n] = dict(counter)
            time.sleep(1.1)  # the next runs' change feeds start a second before their predecessor's start
            counter.clear()
            _r, noop_s, _p = timed(rec.apply)
            noop_calls, noop_writes = counter.total(), sum(counter.writes.values())
            noop[n] = dict(counter)
            if noop_writes:
                print(f"<!-- N={n}: no-op writes {counter.writes} -->")
            counter.clear()
            rec.plan()
            plan_calls = counter.total()
            time.sleep(1.1)  # CloudTrail events carry whole seconds; the feed reads one second back
            counter.clear()
            inc_report, inc_s, _p = timed(rec.apply)
            inc_calls = counter.total()
            unread = sum("not read" in i.message for i in inc_report.tenants)
        note = f" ({failed} failed)" if failed else ""
        print(
            f"| {n}{note} | {prov_calls / n:.1f} | {prov_writes / n:.1f} | {seconds:.1f} | {peak:.0f} | "
            f"{noop_calls / n:.2f} | {noop_writes} | {noop_s:.1f} | {plan_calls / n:.2f} | "
            f"{inc_calls / n:.3f} ({unread} of {n} not read) | {inc_s:.1f} |"
        )
    n = sizes[-1]
    print(f"\nProvisioning calls by operation for N={n} (per tenant):\n")
    print("| operation | calls | per tenant |\n|---|---|---|")
    for op, count in sorted(breakdown[n].items(), key=lambda x: -x[1]):
        print(f"| {op} | {count} | {count / n:.2f} |")
    print(f"\nNo-op apply calls by operation for N={n} (per tenant):\n")
    print("| operation | calls | per tenant |\n|---|---|---|")
    for op, count in sorted(noop[n].items(), key=lambda x: -x[1]):
        print(f"| {op} | {count} | {count / n:.2f} |")


def costs(sizes: list[int]) -> None:
    from meshcore.costs import CostService, month_bounds

    print("| N accounts | Cost Explorer requests | USD | lines | naive (one query per account) USD |")
    print("|---|---|---|---|---|")
    for n in sizes:
        with sandbox() as (box, counter):
            cfg = config(n, access=False)
            cfg["platforms"][0]["config"]["cost_explorer"] = "base"  # the replicator's own credentials
            rec = reconciler(cfg)
            rec.apply()
            today = dt.date.today().replace(day=1)
            last = (today - dt.timedelta(days=1)).strftime("%Y-%m")
            start, end = month_bounds(last)
            box.inject_costs(
                start.isoformat(), end.isoformat(), [t.platform_tenant_id for t in rec.store.tenants()]
            )
            counter.clear()
            result = CostService(rec.config, rec.store, rec.registry).collect([last])
            requests = counter["GetCostAndUsage"]
        if result.problems or not result.lines:
            raise SystemExit(f"cost collection of {n} accounts failed: {result.problems or 'no lines'}")
        print(f"| {n} | {requests} | {requests * 0.01:.2f} | {result.lines} | {n * 0.01:.2f} |")


POLLS = (
    "DescribeCreateAccountStatus",
    "ListCreateAccountStatus",
    "DescribeAccountAssignmentCreationStatus",
    "ListAccountAssignmentCreationStatus",
)


@contextmanager
def remote_emulator(
    latency: float,
    create_seconds: float,
    assignment_seconds: float = 0.0,
    stackset_seconds: float = 0.0,
    creation_slots: int | None = None,
):
    """The emulator in its own process (bench/emulator.py); yields a call counter for this process."""
    from meshcore_aws import sessions as aws_sessions
    from meshcore_aws.counting import CallCounter
    from meshcore_aws.run import reset_sessions

    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parent / "emulator.py"),
            "--latency",
            str(latency),
            "--create-seconds",
            str(create_seconds),
            "--assignment-seconds",
            str(assignment_seconds),
            "--stackset-seconds",
            str(stackset_seconds),
            *(["--creation-slots", str(creation_slots)] if creation_slots else []),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        data = json.loads(proc.stdout.readline())
        os.environ.update(data["env"])
        counter = CallCounter()
        counter.first = {}

        counter.before_first = {}

        def first_seen(event_name: str = "", **_kw: object) -> None:
            operation = event_name.rsplit(".", 1)[-1]
            if operation not in counter.first:
                counter.first[operation] = time.perf_counter()
                counter.before_first[operation] = counter.total() - 1  # the calls before this one

        aws_sessions.EVENT_HOOKS[:] = [*counter.hooks(), ("before-send", first_seen)]
        reset_sessions()
        yield counter
    finally:
        aws_sessions.EVENT_HOOKS[:] = []
        proc.stdin.close()
        proc.wait(60)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


#: Asynchronous operations per new tenant (account, assignment): each ends with one status read.
ASYNC = 2


def aws_latency(
    sizes: list[int],
    latency: float,
    create_seconds: float,
    concurrency: int,
    serial: bool,
    assignment_seconds: float = 1.0,
    poll: float | None = None,
    breakdown: bool = False,
    creation_slots: int | None = None,
) -> None:
    """Vending against an emulator in its own process that answers like AWS: a round trip per call,
    accounts that take ``create_seconds``, assignments ``assignment_seconds``. Efficiency = ideal /
    actual, where ideal is meshcore's own call sequence: prelude + ceil(N / concurrency) x (create_seconds +
    assignment_seconds + (k + 2) x latency); prelude = the time until the first CreateAccount (reading
    the organization, creating OUs and permission sets: once per run), k = calls per new tenant other
    than polls and the prelude's, and 2 = the one status read that tells each of the two asynchronous
    operations (the account, the assignment) has ended. With ``creation_slots`` K (AWS refuses a
    CreateAccount while K are in progress), creations are the bottleneck and the ideal is at least
    prelude + ceil(N / K) x (create_seconds + 2 x latency) + the last tenant's steps after its account
    (assignment_seconds + k x latency): each slot sends, waits, reads the end, sends the next. "Against
    dependencies" is the stricter ideal in which only what depends on what is in sequence: k + 2 calls
    become 4 (CreateAccount, its end, CreateAccountAssignment, its end). With
    ``breakdown``, also where meshcore's CPU per new tenant goes (see ``cpu_breakdown.py``)."""
    from cpu_breakdown import breakdown as cpu_breakdown

    poll = create_seconds / 10 if poll is None else poll
    spent_rows: list[str] = []
    categories: list[str] = []
    slots = f"; AWS lets {creation_slots} creations be in progress at a time" if creation_slots else ""
    print(
        f"Every call takes {latency * 1000:.0f} ms; an account takes {create_seconds:.1f} s to create, an "
        f"assignment {assignment_seconds:.1f} s; poll interval {poll:.2f} s{slots}.\n"
    )
    print(
        "| N | concurrency | wall s | prelude s | ideal s | efficiency | against dependencies | "
        "calls/tenant (polls) | meshcore CPU ms per new tenant | no-op wall s | meshcore CPU ms per unchanged tenant |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        for c in [concurrency, 1] if serial else [concurrency]:
            with remote_emulator(
                latency, create_seconds, assignment_seconds, creation_slots=creation_slots
            ) as counter:
                rec = reconciler(config(n, poll=poll, concurrency=c))
                rec.concurrency = c
                cpu0, t0 = cpu_seconds(), time.perf_counter()
                counter.first.clear()
                counter.before_first.clear()
                measured = cpu_breakdown() if breakdown else nullcontext((Counter(), Counter()))
                with measured as (spent, calls):
                    report = rec.apply()
                wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
                if breakdown:
                    parts = [
                        f"{spent[x] / n * 1000:.1f} ({calls[x] / n:.1f} x {spent[x] / max(calls[x], 1) * 1000:.2f})"
                        for x in sorted(spent)
                    ]
                    rest = (cpu - sum(spent.values())) / n * 1000
                    spent_rows.append(
                        f"| {n} | {cpu / n * 1000:.0f} | " + " | ".join(parts) + f" | {rest:.1f} |"
                    )
                    categories = sorted(spent)
                prelude = counter.first.get("CreateAccount", t0) - t0
                polls = sum(v for k, v in counter.items() if k in POLLS)
                k = (counter.total() - polls - counter.before_first.get("CreateAccount", 0)) / n
                counter.clear()
                cpu0, t0 = cpu_seconds(), time.perf_counter()
                rec.apply()
                noop_wall, noop_cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
            ideal = prelude + math.ceil(n / c) * (create_seconds + assignment_seconds + (k + ASYNC) * latency)
            # only what depends on what: CreateAccount, its end, CreateAccountAssignment, its end (the
            # group, its membership, the move and the alias could run alongside)
            chain = prelude + math.ceil(n / c) * (create_seconds + assignment_seconds + 4 * latency)
            if creation_slots:
                through_slots = prelude + math.ceil(n / creation_slots) * (create_seconds + 2 * latency)
                ideal = max(ideal, through_slots + assignment_seconds + k * latency)
                chain = max(chain, through_slots + assignment_seconds + 2 * latency)
            failed = f" ({len(report.failed)} failed)" if report.failed else ""
            print(
                f"| {n}{failed} | {c} | {wall:.1f} | {prelude:.1f} | {ideal:.1f} | {ideal / wall:.2f} | {chain / wall:.2f} | "
                f"{k:.1f} ({polls / n:.1f}) | "
                f"{cpu / n * 1000:.0f} | {noop_wall:.1f} | {noop_cpu / n * 1000:.0f} |"
            )
    if spent_rows:
        print("\nmeshcore CPU ms per new tenant, by where it is spent (per tenant: count x ms each):\n")
        print("| N | total | " + " | ".join(categories) + " | the rest |")
        print("|---|---|" + "---|" * len(categories) + "---|")
        print("\n".join(spent_rows))


def revocation(
    sizes: list[int],
    latency: float,
    create_seconds: float,
    concurrency: int,
    assignment_seconds: float,
    existing: int = 96,
) -> None:
    """How long a removed tenant's revocation waits while N new tenants are vended in the same run.
    ``existing`` tenants exist; the config then drops one (``ws0/p0``; both landing zones need
    approval, so its access is revoked at once and its account awaits approval) and lists N new
    tenants after the others. Side by side: plain config order (the removed tenant, no longer in the
    config, comes after every tenant in it), creations last only, and meshcore's start order."""
    import tempfile

    import meshcore.reconciler as reconciler_module
    from meshcore.lifecycle import Lifecycle

    poll = create_seconds / 10
    print(
        f"Every call takes {latency * 1000:.0f} ms; an account takes {create_seconds:.1f} s to create, an "
        f"assignment {assignment_seconds:.1f} s; concurrency {concurrency}; {existing} existing tenants, "
        "one removed.\n"
    )
    print("| N new | order | revocation done s | every existing tenant done s | run s |")
    print("|---|---|---|---|---|")
    ordered = reconciler_module.start_order
    orders: list[tuple[str, Any]] = [
        ("config order", lambda work: work),
        ("creations last", lambda work: sorted(work, key=lambda task: task.lifecycle == Lifecycle.PROVISION)),
        ("meshcore's start order", ordered),
    ]
    for n in sizes:
        for label, order in orders:
            with remote_emulator(latency, create_seconds, assignment_seconds):
                directory = tempfile.mkdtemp(prefix="meshcore-bench-")
                first = reconciler(config(existing, poll=poll, concurrency=concurrency), directory)
                provisioned = first.apply()
                if provisioned.failed or provisioned.summary.get("in_progress"):
                    raise SystemExit(f"revocation: provisioning the {existing} tenants did not end")
                existing_keys = {item.key for item in provisioned.tenants}
                first.store.close()
                grown = config(existing + n, poll=poll, concurrency=concurrency)
                del grown["workspaces"][0]["projects"][0]  # ws0/p0 removed from the config
                rec = reconciler(grown, directory)
                ended: dict[str, float] = {}
                t0 = time.perf_counter()
                rec.on_progress = lambda item, ended=ended, t0=t0: ended.__setitem__(
                    item.key, time.perf_counter() - t0
                )
                reconciler_module.start_order = order  # type: ignore[assignment]
                try:
                    report = rec.apply()
                finally:
                    reconciler_module.start_order = ordered  # type: ignore[assignment]
                wall = time.perf_counter() - t0
                rec.store.close()
            removed = "ws0/p0@aws"
            if report.failed or report.summary.get("in_progress") or removed not in ended:
                raise SystemExit(f"revocation: the run did not end: {report.summary}")
            if report.summary.get("access_revoked") != 1:
                raise SystemExit(f"revocation: the run did not revoke {removed}: {report.summary}")
            done = max(t for key, t in ended.items() if key in existing_keys and key != removed)
            print(f"| {n} | {label} | {ended[removed]:.1f} | {done:.1f} | {wall:.1f} |")


SHARED_BASELINE = """AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Marker:
    Type: AWS::SSM::Parameter
    Properties: {Name: /platform/baseline, Type: String, Value: "on"}
"""
PER_ACCOUNT_BASELINE = """AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  AccountId: {Type: String}
Resources:
  Marker:
    Type: AWS::SSM::Parameter
    Properties: {Name: /platform/baseline, Type: String, Value: !Ref AccountId}
"""


def stacksets(
    sizes: list[int], latency: float, create_seconds: float, stackset_seconds: float, concurrency: int
) -> None:
    """N new accounts in one landing zone with a baseline; every StackSet operation takes
    ``stackset_seconds`` and waits for the one before it on its StackSet (as AWS queues them). A baseline
    without per-account parameters lets the accounts share operations; one declaring ``AccountId`` needs
    one operation per account (what per-account pipelines always do)."""
    import tempfile

    print(
        f"Every call takes {latency * 1000:.0f} ms; an account {create_seconds:.1f} s to create; a StackSet "
        f"operation {stackset_seconds:.1f} s, one at a time per StackSet; concurrency {concurrency}.\n"
    )
    print("| N | baseline | StackSet operations | wall s | ratio |")
    print("|---|---|---|---|---|")
    for n in sizes:
        walls = {}
        for variant, body in (("shared", SHARED_BASELINE), ("per-account parameters", PER_ACCOUNT_BASELINE)):
            template = Path(tempfile.mkdtemp(prefix="meshcore-bench-")) / "baseline.yaml"
            template.write_text(body)
            cfg = config(n, poll=create_seconds / 10, concurrency=concurrency, access=False)
            cfg["platforms"][0]["config"].update({"automation": "base", "stackset_wait_seconds": 3600})
            for lz in cfg["landing_zones"]:
                lz["config"]["baselines"] = [{"name": "base", "template": str(template)}]
            with remote_emulator(latency, create_seconds, 0.0, stackset_seconds) as counter:
                rec = reconciler(cfg)
                t0 = time.perf_counter()
                report = rec.apply()
                walls[variant] = time.perf_counter() - t0
                ops = counter.get("CreateStackInstances", 0) + counter.get("UpdateStackInstances", 0)
            failed = f" ({len(report.failed)} failed)" if report.failed else ""
            ratio = walls[variant] / walls["shared"]
            print(f"| {n}{failed} | {variant} | {ops} | {walls[variant]:.1f} | {ratio:.1f}x |")


def scale(sizes: list[int]) -> None:
    """The fake platform at 1,000 ... 10,000 tenants: meshcore's own time and memory (bench/scale.py)."""
    import tempfile

    print("| N | provision s | plan s | no-op apply s | first cloud call after plan start s | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="meshcore-scale-") as directory:
            done = subprocess.run(
                [sys.executable, str(Path(__file__).parent / "scale.py"), str(n), directory],
                capture_output=True,
                text=True,
                check=True,
            )
        r = json.loads(done.stdout.strip().splitlines()[-1])
        failed = f" ({r['failed']} failed)" if r["failed"] else ""
        print(
            f"| {n}{failed} | {r['provision_s']:.1f} | {r['plan_s']:.1f} | {r['noop_s']:.1f} | "
            f"{r['first_call_s']:.2f} | {r['peak_rss_mib']:.0f} |"
        )


def startup(repeat: int = 5) -> None:
    print("| command | median s | min s | imports boto3? |\n|---|---|---|---|")
    for args in (["--help"], ["plugins"]):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "meshcore.cli.app", *args], capture_output=True, check=True)
            times.append(time.perf_counter() - t0)
        probe = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "meshcore.cli.app", *args],
            capture_output=True,
            text=True,
        )
        heavy = "boto3" in probe.stderr
        print(
            f"| meshcore {' '.join(args)} | {statistics.median(times):.2f} | {min(times):.2f} | {'yes' if heavy else 'no'} |"
        )


def main() -> None:
    from meshcore import gc_settings

    gc_settings.tune()  # as the command line does
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "what",
        choices=["vending", "costs", "aws-latency", "stacksets", "revocation", "scale", "startup", "all"],
    )
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--creation", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.1, help="aws-latency: seconds per call.")
    parser.add_argument("--serial", action="store_true", help="aws-latency: also run with concurrency 1.")
    parser.add_argument(
        "--breakdown", action="store_true", help="aws-latency: where meshcore's CPU per new tenant goes."
    )
    parser.add_argument(
        "--assignment", type=float, default=1.0, help="aws-latency: seconds an account assignment takes."
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=None,
        help="aws-latency: poll interval (default: a tenth of --creation).",
    )
    parser.add_argument(
        "--stackset-seconds", type=float, default=10.0, help="stacksets: seconds per operation."
    )
    parser.add_argument(
        "--existing", type=int, default=96, help="revocation: tenants that exist before the run."
    )
    parser.add_argument(
        "--creation-slots",
        type=int,
        default=None,
        help="aws-latency: account creations AWS lets be in progress at a time (default: no limit).",
    )
    args = parser.parse_args()
    if args.what == "aws-latency":
        aws_latency(
            args.sizes or [100],
            args.latency,
            args.creation,
            args.concurrency,
            args.serial,
            assignment_seconds=args.assignment,
            poll=args.poll,
            breakdown=args.breakdown,
            creation_slots=args.creation_slots,
        )
    if args.what == "stacksets":
        stacksets(args.sizes or [32], args.latency, args.creation, args.stackset_seconds, args.concurrency)
    if args.what == "revocation":
        revocation(
            args.sizes or [64], args.latency, args.creation, args.concurrency, args.assignment, args.existing
        )
    if args.what in ("vending", "all"):
        vending(args.sizes or [10, 100])
    if args.what in ("costs", "all"):
        costs(args.sizes or [10, 100])
    if args.what == "scale":
        scale(args.sizes or [1000, 10000])
    if args.what in ("startup", "all"):
        startup()


if __name__ == "__main__":
    main()
