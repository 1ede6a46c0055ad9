"""CPU per operation back to back and after a pause (``python bench/cold_cpu.py``).

The same state-store transaction (one audit row), pure-Python loop and walk over 1.6 MB of
Python objects are timed with ``time.thread_time``: back to back, then each after its thread
slept 1 ms or 100 ms, and after its thread spent 100 ms computing something else (a loop
over a few local variables, no sleep); then one botocore request against the emulator in its
own process, answered at once or after 100 ms, as a request to AWS is. On a machine where
memory left untouched for a while costs more to touch again (shared caches used by others
meanwhile, a hypervisor's paging), the same work costs more CPU after a pause, asleep or not. meshcore's threads wait for AWS
between their steps, which is why its CPU per tenant measures higher while waiting than with
its CPU busy (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from meshcore.state import StateStore


def busy_elsewhere(seconds: float) -> None:
    """Compute for ``seconds`` without touching the measured operation's memory."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def per_op_ms(op: Callable[[], None], pause: Callable[[], None] | None, times: int) -> float:
    spent = []
    for _ in range(times):
        if pause is not None:
            pause()
        t0 = time.thread_time()
        op()
        spent.append(time.thread_time() - t0)
    return statistics.median(spent) * 1000


def request_ms(latency: float, pause: Callable[[], None] | None, times: int = 40) -> float:
    """CPU of one botocore request (``DescribeOrganization``) against the emulator in its own process,
    answered ``latency`` seconds after it arrives."""
    emulator = Path(__file__).with_name("emulator.py")
    command = [sys.executable, str(emulator), "--latency", str(latency)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as server:
        assert server.stdout is not None and server.stdin is not None
        env = json.loads(server.stdout.readline())["env"]
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            import boto3

            org = boto3.client("organizations", region_name="us-east-1")
            per_op_ms(org.describe_organization, None, 5)  # warm up: the connection, botocore's caches
            return per_op_ms(org.describe_organization, pause, times)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            server.stdin.close()


def main() -> None:
    pauses: list[tuple[Callable[[], None] | None, int]] = [
        (None, 200),
        (lambda: time.sleep(0.001), 200),
        (lambda: time.sleep(0.1), 40),
        (lambda: busy_elsewhere(0.1), 40),
    ]
    objects = list(range(200_000))  # 1.6 MB of pointers to int objects
    with tempfile.TemporaryDirectory() as directory:
        store = StateStore.open(f"sqlite:///{Path(directory) / 'state.db'}")

        def transaction() -> None:
            store.audit("bench.cold", "cold", {"n": 1})

        def loop() -> None:
            sum(i * i for i in range(2000))

        def walk() -> None:
            sum(objects[::7])

        print(
            "| operation | back to back ms | after 1 ms asleep | after 100 ms asleep | after 100 ms busy elsewhere |"
        )
        print("|---|---|---|---|---|")
        operations = (
            ("state-store transaction", transaction),
            ("pure-Python loop", loop),
            ("walk over 1.6 MB", walk),
        )
        for name, op in operations:
            per_op_ms(op, None, 20)  # warm up
            cells = [f"{per_op_ms(op, pause, times):.2f}" for pause, times in pauses]
            print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    print(
        "| botocore request, emulator in its own process | answered at once, back to back | "
        "answered at once, after 100 ms asleep | answered after 100 ms |"
    )
    print("|---|---|---|---|")
    cells = [
        f"{request_ms(0.0, None):.2f}",
        f"{request_ms(0.0, lambda: time.sleep(0.1)):.2f}",
        f"{request_ms(0.1, None):.2f}",
    ]
    print("| CPU ms | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
