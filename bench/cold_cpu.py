"""CPU per operation back to back and after a pause (``python bench/cold_cpu.py``).

The same state-store transaction (one audit row), pure-Python loop and walk over 1.6 MB of
Python objects are timed with ``time.thread_time``: back to back, then each after its thread
slept 1 ms or 100 ms, and after its thread spent 100 ms computing something else (a loop
over a few local variables, no sleep). On a machine where memory left untouched for a while
costs more to touch again (shared caches used by others meanwhile, a hypervisor's paging),
the same work costs more CPU after a pause, asleep or not. meshcore's threads wait for AWS
between their steps, which is why its CPU per tenant measures higher while waiting than with
its CPU busy (docs/benchmarks.md).
"""

from __future__ import annotations

import statistics
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


if __name__ == "__main__":
    main()
