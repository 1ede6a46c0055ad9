"""Tests that send meshcore a signal: wait until its handler has run, not for a fixed time."""

from __future__ import annotations

import threading

import pytest


def watch_cli_signals(monkeypatch: pytest.MonkeyPatch, handled: threading.Event) -> None:
    """Set ``handled`` each time the CLI's own signal handler has run (the ``signal_handled`` fixture)."""
    import signal

    import meshcore.cli.app as cli_app

    install = signal.signal

    def watched(sig, handler):  # the CLI's own handler only; what it puts back is left as it was
        if getattr(handler, "__module__", None) != cli_app.__name__:
            return install(sig, handler)

        def on_signal(signum, frame):
            handler(signum, frame)
            handled.set()

        return install(sig, on_signal)

    monkeypatch.setattr(cli_app.signal, "signal", watched)
