"""``meshcore serve``: reconcile on a schedule, collect costs on another, answer health checks and scrapes.

One loop thread runs the cycles; an HTTP server (standard library, one thread per
request) answers ``/healthz``, ``/readyz``, ``/metrics``, ``/status`` and ``/runs``.
Each cycle reads and validates the config again (an edit takes effect at the next
cycle, an invalid one fails that cycle only), runs ``apply`` and, when due, collects
the current month's costs (and the previous month's while it is not final). Nothing a
cycle raises ends the service. SIGTERM or SIGINT sets :attr:`Service.stop`: the
running ``apply`` lets its actions in flight finish and starts nothing else (see
:class:`meshcore.reconciler.Reconciler`), then the service exits.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import signal
import socket
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST

from meshcore import telemetry
from meshcore.config import LoadedConfig, load_config
from meshcore.costs import CostService, is_final
from meshcore.errors import ConfigError, LockHeldError, MeshcoreError, RefusedError, StoppedError, UsageError
from meshcore.metrics import ServiceMetrics
from meshcore.plugins import PluginRegistry
from meshcore.reconciler import Reconciler
from meshcore.redaction import redact
from meshcore.state import StateStore
from meshcore.state.store import sqlite_file
from meshcore.state.tables import utcnow
from meshcore.views import runs_data, status_data, to_json

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:9464"
#: A failed cost collection is tried again after this many seconds (or --costs-interval, if shorter).
COSTS_RETRY_SECONDS = 3600
#: A config file changed less than this many seconds ago is read again after this long, and used only
#: if it did not change meanwhile (an editor or a copy still writing it must not mark tenants for deletion).
SETTLE_SECONDS = 2.0
#: Seconds an HTTP connection may stay idle before the service closes it.
HTTP_IDLE_SECONDS = 30
#: How many runs ``/runs`` returns by default, and at most.
RUNS_DEFAULT, RUNS_MAX = 10, 1000


@dataclass
class Check:
    """One readiness check: whether it passes, and why (or why not)."""

    ok: bool
    message: str = ""


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6) -> (host, port); :class:`UsageError` saying what is wrong."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(
            f"--listen must be HOST:PORT with a port from 1 to 65535 (e.g. {DEFAULT_LISTEN}), not {value!r}"
        )
    return host, int(port)


def cost_months(finalize_after_days: int, now: dt.datetime | None = None) -> list[str]:
    """The months a collection covers: the previous one while it is not final, and the current one."""
    today = (now or utcnow()).date().replace(day=1)
    previous = (today - dt.timedelta(days=1)).strftime("%Y-%m")
    current = today.strftime("%Y-%m")
    return [current] if is_final(previous, finalize_after_days, now) else [previous, current]


class Service:
    """The reconcile loop and what the HTTP endpoints read from it."""

    def __init__(
        self,
        config_path: Path,
        store: StateStore,
        registry: PluginRegistry,
        *,
        interval: float,
        costs_interval: float,
        max_staleness: float,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.config_path = config_path
        self.store = store
        self.registry = registry
        self.interval = interval
        self.costs_interval = costs_interval
        self.max_staleness = max_staleness
        self.metrics = metrics or ServiceMetrics()
        self.metrics.costs_enabled(costs_interval > 0)
        self.stop = threading.Event()
        self._config = Check(False, "not read yet")
        self._next_costs = time.monotonic()
        self._store_file = sqlite_file(str(store.engine.url))
        self._store_identity = _identity(self._store_file) if self._store_file is not None else None
        self._thread = threading.Thread(target=self._loop, name="meshcore-serve", daemon=True)

    # -- the loop -------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.cycle()
            except Exception:  # a cycle never ends the service
                log.exception("cycle failed")
            # the command line collects garbage rarely (meshcore.gc_settings); between cycles, while
            # the service waits anyway, reference cycles a run left are freed
            gc.collect()
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def cycle(self) -> None:
        """Read the config, reconcile and, when due, collect costs."""
        state = self._state_check()
        if not state.ok:  # e.g. the store's file was removed: what this cycle did would be lost
            log.error("state store not usable, nothing applied: %s", state.message)
            self.metrics.run_finished("error", None)
            return
        loaded = self._load()
        if loaded is None:
            self.metrics.run_finished("invalid_config", None)
            return
        self._reconcile(loaded)
        if self.costs_interval and not self.stop.is_set() and time.monotonic() >= self._next_costs:
            ok = self._collect(loaded)
            wait = self.costs_interval if ok else min(self.costs_interval, COSTS_RETRY_SECONDS)
            self._next_costs = time.monotonic() + wait

    def _load(self) -> LoadedConfig | None:
        if not self._settled():
            self._config = Check(False, f"{self.config_path} is being written; read again next cycle")
            log.warning("config %s changed while it was read; nothing applied this cycle", self.config_path)
            return None
        try:
            loaded = load_config(self.config_path, self.registry)
        except ConfigError as exc:
            problems = "; ".join(str(p) for p in exc.problems)
            self._config = Check(False, redact(f"{len(exc.problems)} problem(s): {problems}"))
        except MeshcoreError as exc:
            self._config = Check(False, redact(str(exc)))
        else:
            self._config = Check(True, f"{self.config_path} is valid")
            return loaded
        log.error("config %s is invalid, nothing applied: %s", self.config_path, self._config.message)
        return None

    def _settled(self) -> bool:
        """Whether the config file is not being written: unchanged for :data:`SETTLE_SECONDS`."""
        try:
            before = self.config_path.stat()
        except OSError:
            return True  # load_config says what is wrong
        if time.time() - before.st_mtime >= SETTLE_SECONDS:
            return True
        self.stop.wait(SETTLE_SECONDS)
        try:
            after = self.config_path.stat()
        except OSError:
            return False
        return (after.st_mtime_ns, after.st_size, after.st_ino) == (
            before.st_mtime_ns,
            before.st_size,
            before.st_ino,
        )

    def _reconcile(self, loaded: LoadedConfig) -> None:
        started = time.perf_counter()
        report = None
        try:
            report = Reconciler(loaded, self.store, self.registry, stop=self.stop).apply()
            outcome = "failed" if report.failed else "stopped" if report.summary.get("not_run") else "ok"
            log.info("apply run %d: %s: %s", report.run_id, outcome, report.summary)
        except StoppedError as exc:
            outcome = "stopped"
            log.warning("apply not started: %s", exc)
        except LockHeldError as exc:
            outcome = "locked"
            log.warning("apply skipped: %s", exc)
        except RefusedError as exc:
            outcome = "refused"
            log.error("apply refused: %s", exc)
        except MeshcoreError as exc:
            outcome = "error"
            log.error("apply failed: %s", exc)
        except Exception:  # a core or plugin bug fails this cycle, never the service
            outcome = "error"
            log.exception("apply failed")
        self._observe_tenants(loaded)
        ran = report is not None  # a locked, refused or failed start is counted, not timed
        self.metrics.run_finished(outcome, time.perf_counter() - started if ran else None, report)

    def _collect(self, loaded: LoadedConfig) -> bool:
        wanted = cost_months(loaded.document.settings.costs.finalize_after_days)
        try:
            result = CostService(loaded, self.store, self.registry).collect(wanted)
        except Exception as exc:  # never the service's end
            log.error("cost collection for %s failed: %s", ", ".join(wanted), exc)
            self.metrics.costs_collected(False)
            return False
        for problem in result.problems:
            log.error("cost collection: %s", problem)
        log.info("collected %d usage line(s) for %s", result.lines, ", ".join(wanted))
        self.metrics.costs_collected(not result.problems)
        return not result.problems

    def _observe_tenants(self, loaded: LoadedConfig) -> None:
        try:
            rows = self.store.tenants(include_deleted=True)
        except MeshcoreError as exc:
            log.error("cannot read the tenants: %s", exc)
            return
        self.metrics.tenants_seen(loaded.platforms, rows)

    # -- what the endpoints read ------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when the config is valid, the store answers and an ``ok`` run is recent enough."""
        checks = {"config": self._config, "state": self._state_check(), "last_run": self._staleness_check()}
        failed = [name for name, check in checks.items() if not check.ok]
        body = {"ready": not failed, "failed": failed, "checks": {n: asdict(c) for n, c in checks.items()}}
        return not failed, body

    def _state_check(self) -> Check:
        if self._store_file is not None and _identity(self._store_file) != self._store_identity:
            return Check(
                False,
                f"the state file {self._store_file} was removed or replaced since the service opened it; "
                "restart the service",
            )
        try:
            self.store.runs(limit=1)
        except MeshcoreError as exc:
            return Check(False, redact(str(exc)))
        return Check(True, "the state store answers")

    def _staleness_check(self) -> Check:
        last = self.metrics.last_success
        if last is None:
            return Check(False, "no run has ended ok yet")
        age = self.metrics.clock() - last
        if age > self.max_staleness:
            return Check(
                False,
                f"the last run that ended ok finished {age:.0f} s ago (--max-staleness {self.max_staleness:g} s)",
            )
        return Check(True, f"the last run that ended ok finished {age:.0f} s ago")


def _identity(path: Path) -> tuple[int, int] | None:
    """The file's device and inode (``None``: it is gone)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _Handler(BaseHTTPRequestHandler):
    """GET only; every answer but /metrics is JSON."""

    server: _Server
    server_version = "meshcore"
    timeout = HTTP_IDLE_SECONDS  # an idle connection does not keep a thread forever

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        service = self.server.service
        try:
            if url.path == "/healthz":
                alive = service.alive()
                self._json(200 if alive else 503, {"alive": alive})
            elif url.path == "/readyz":
                ready, body = service.readiness()
                self._json(200 if ready else 503, body)
            elif url.path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, service.metrics.exposition())
            elif url.path == "/status":
                self._json(200, status_data(service.store))
            elif url.path == "/runs":
                self._json(200, runs_data(service.store, _limit(url.query)))
            else:
                self._json(404, {"error": f"no such path: {url.path} (see docs/operations.md, Service)"})
        except UsageError as exc:
            self._json(400, {"error": str(exc)})
        except MeshcoreError as exc:
            self._json(503, {"error": str(exc)})

    def _refuse(self) -> None:
        self._json(405, {"error": f"{self.command} is not allowed: only GET"}, allow=True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _refuse

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The server's own errors (a malformed request, an unknown method) as JSON too."""
        if code == 501:  # a method http.server does not know: the same answer as any other but GET
            self._json(405, {"error": f"{self.command} is not allowed: only GET"}, allow=True)
            return
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # an unparsable request line: answer in HTTP/1.0, with headers
            self.request_version = "HTTP/1.0"
        self._json(code, {"error": message or self.responses.get(code, ("error",))[0]})

    def _json(self, status: int, body: Any, allow: bool = False) -> None:
        self._send(status, "application/json", (to_json(body) + "\n").encode(), allow)

    def _send(self, status: int, content_type: str, body: bytes, allow: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if allow:
            self.send_header("Allow", "GET")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _limit(query: str) -> int:
    values = parse_qs(query).get("limit", [str(RUNS_DEFAULT)])
    value = values[-1]
    if not value.isascii() or not value.isdigit() or not 0 < int(value) <= RUNS_MAX:
        raise UsageError(f"limit must be a number from 1 to {RUNS_MAX}, not {value!r}")
    return int(value)


class _Server(ThreadingHTTPServer):
    service: Service


def bind(host: str, port: int, service: Service | None) -> _Server:
    """The HTTP server on ``host:port`` (not serving yet); :class:`UsageError` when it cannot listen there.

    ``service`` may be set afterwards (``server.service``), before :func:`run` starts serving."""

    class Server(_Server):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        server = Server((host, port), _Handler)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if service is not None:
        server.service = service
    return server


def run(service: Service, server: _Server) -> None:
    """Serve until SIGTERM or SIGINT, then let the running cycle wind down and return."""

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        service.stop.set()  # only this: the loop and the main thread do the rest

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    sink = telemetry.install(service.metrics)
    http = threading.Thread(target=server.serve_forever, name="meshcore-http", daemon=True)
    http.start()
    service.start()
    try:
        while not service.stop.wait(0.5):
            pass
        log.warning("stopping: the actions in flight finish, nothing else starts")
        service.join()
    finally:
        server.shutdown()
        server.server_close()
        telemetry.install(sink)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
