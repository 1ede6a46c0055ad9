"""CPU per operation back to back and after its thread slept (``python bench/cold_cpu.py``).

The same state-store transaction (one audit row) and the same pure-Python loop are timed
with ``time.thread_time`` 200 times each: back to back, then each after a sleep of 1 ms and of
100 ms. On a machine whose caches and CPU frequency go cold while a thread waits, the same work
costs more CPU after a sleep; meshcore's threads wait for AWS between their steps, which is why
its CPU per tenant measures higher while waiting than with its CPU busy (docs/benchmarks.md).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from meshcore.state import StateStore


def per_op_ms(op: Callable[[], None], sleep: float, times: int = 200) -> float:
    spent = []
    for _ in range(times):
        if sleep:
            time.sleep(sleep)
        t0 = time.thread_time()
        op()
        spent.append(time.thread_time() - t0)
    return statistics.median(spent) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = StateStore.open(f"sqlite:///{Path(directory) / 'state.db'}")

        def transaction() -> None:
            store.audit("bench.cold", "cold", {"n": 1})

        def loop() -> None:
            sum(i * i for i in range(2000))

        print("| operation | back to back ms | after 1 ms asleep | after 100 ms asleep |")
        print("|---|---|---|---|")
        for name, op in (("state-store transaction", transaction), ("pure-Python loop", loop)):
            per_op_ms(op, 0.0, 20)  # warm up
            cells = [f"{per_op_ms(op, s, 50 if s >= 0.1 else 200):.2f}" for s in (0.0, 0.001, 0.1)]
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
