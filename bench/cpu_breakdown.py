"""Where meshcore's own CPU goes, per category, measured with each thread's CPU clock.

``with breakdown() as spent:`` wraps, for the duration of the block, every botocore
request (``BaseClient._make_api_call``), every state-store transaction
(``StateStore.session`` and ``StateStore._transaction``) and every new boto3 client (``Sessions._new_client``), and adds
the CPU time (``time.thread_time``) the calling thread spent inside to ``spent[category]``.
Nested categories count once, in the outermost (a client made inside a request counts as
the request). Only the wrapped process is measured; the emulator runs in its own.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_inside = threading.local()


def _timed_call(original: Any, label: str, spent: Counter[str], calls: Counter[str]) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if getattr(_inside, "label", None):
            return original(*args, **kwargs)
        _inside.label, t0 = label, time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] += time.thread_time() - t0
            calls[label] += 1
            _inside.label = None

    return wrapper


def _timed_context(original: Any, label: str, spent: Counter[str], calls: Counter[str]) -> Any:
    @contextmanager
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        if getattr(_inside, "label", None):
            with original(*args, **kwargs) as value:
                yield value
            return
        _inside.label, t0 = label, time.thread_time()
        try:
            with original(*args, **kwargs) as value:
                yield value
        finally:
            spent[label] += time.thread_time() - t0
            calls[label] += 1
            _inside.label = None

    return wrapper


@contextmanager
def breakdown() -> Iterator[tuple[Counter[str], Counter[str]]]:
    """Yields (CPU seconds per category, calls per category) filled while the block runs."""
    from botocore.client import BaseClient

    from meshcore.state.store import StateStore
    from meshcore_aws.sessions import Sessions

    spent: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    patched = [
        (BaseClient, "_make_api_call", _timed_call, "AWS requests (botocore)"),
        (StateStore, "session", _timed_context, "state-store transactions"),
        (StateStore, "_transaction", _timed_context, "state-store transactions"),
        (Sessions, "_new_client", _timed_call, "new boto3 clients"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _, _ in patched]
    for owner, name, wrap, label in patched:
        setattr(owner, name, wrap(getattr(owner, name), label, spent, calls))
    try:
        yield spent, calls
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
