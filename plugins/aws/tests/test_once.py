"""Values made once per key: concurrent askers of one key share one call; other keys never wait."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from meshcore_aws.once import Once


def test_one_call_per_key_however_many_ask_at_once():
    once, calls = Once(), []
    gate = threading.Event()

    def make() -> str:
        calls.append(1)
        gate.wait(2)
        return "user-id"

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(once.get, "alice", make) for _ in range(16)]
        time.sleep(0.1)
        gate.set()
        assert {f.result() for f in futures} == {"user-id"}
    assert len(calls) == 1
    assert (
        once.get("nobody", lambda: None) is None and once.get("nobody", lambda: 1 / 0) is None
    )  # None is kept


def test_a_slow_key_does_not_hold_up_another():
    once = Once()
    release = threading.Event()
    slow = threading.Thread(target=once.get, args=("slow", lambda: release.wait(5)))
    slow.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    assert once.get("fast", lambda: "ok") == "ok"
    assert time.monotonic() - t0 < 1.0
    release.set()
    slow.join()
    once.forget(lambda key: key == "fast")
    assert once.get("fast", lambda: "again") == "again"
