"""Run one `apply` in this process and SIGKILL it right after the k-th AWS call returned (k=0: never).

python crash_runner.py CONFIG STATE_URL K
"""

from __future__ import annotations

import os
import signal
import sys

from meshcore.config import load_config
from meshcore.plugins import PluginRegistry
from meshcore.reconciler import Reconciler
from meshcore.state import StateStore
from meshcore_aws import plugin as aws_plugin
from meshcore_aws import sessions as aws_sessions


def main() -> None:
    config, state, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    calls = {"n": 0}

    def after_call(**_kw):
        calls["n"] += 1
        if calls["n"] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    aws_sessions.EVENT_HOOKS[:] = [("after-call", after_call)]
    registry = PluginRegistry()
    registry.register("aws", aws_plugin)
    rec = Reconciler(load_config(config, registry), StateStore.open(state), registry)
    rec.concurrency = 1
    report = rec.apply(wait=30)
    print(f"CALLS {calls['n']} FAILED {len(report.failed)}")


if __name__ == "__main__":
    main()
