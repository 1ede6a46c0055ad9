"""The garbage collector's thresholds for a meshcore process.

A run allocates many short-lived container objects (models, rows, dictionaries) and
very few reference cycles. With CPython's default thresholds (700, 10, 10) the
collector runs every 700 allocations and each full collection walks the whole heap,
so its share grows with the number of tenants: a no-op apply of 10,000 tenants on the
fake platform spent 11-23 % of its time collecting (12.6-14.4 s; 11.1-11.2 s with these
thresholds), which made it grow faster than linearly from 1,000 tenants. Reference
counting still frees everything without cycles at once; cycles wait longer, so
``meshcore serve`` collects them after every cycle.

The command line sets them at start (:func:`meshcore.cli.app.main`); a program that
embeds meshcore keeps its own unless it calls :func:`tune`.
"""

from __future__ import annotations

import gc

THRESHOLDS = (100_000, 50, 100)


def tune() -> None:
    """Collect the youngest generation every 100,000 allocations, the older ones rarely."""
    gc.set_threshold(*THRESHOLDS)
