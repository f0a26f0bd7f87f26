"""Shared pieces of the demo images (standard library only).

- ``Redis``: a tiny RESP2 client over a socket (PING, GET, SET, BLPOP, ...), no redis-py.
- ``Registry``/``Family``: Prometheus text exposition (counters, gauges, histograms).
- ``process_stats``: process_* metrics read from /proc/self.
- ``Handler``: an http.server handler with JSON helpers, request metrics and quiet logs.
- ``serve``: run a ThreadingHTTPServer until SIGTERM/SIGINT.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

# ------------------------------------------------------------------ RESP client


class RespError(Exception):
    """Redis answered with an error reply (``-ERR ...``)."""


def parse_addr(addr: str, default_port: int = 6379) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    if not host:
        return addr or "127.0.0.1", default_port
    return host, int(port)


def _encode(args: Iterable[Any]) -> bytes:
    parts = []
    items = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    parts.append(b"*%d\r\n" % len(items))
    for item in items:
        parts.append(b"$%d\r\n%s\r\n" % (len(item), item))
    return b"".join(parts)


class Redis:
    """One connection to Redis, opened lazily, dropped on any socket error (the next
    command reconnects). Thread-safe: one command at a time."""

    def __init__(self, addr: str, timeout: float = 1.0):
        self.host, self.port = parse_addr(addr)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._file = None
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = self._file = None

    def command(self, *args: Any, timeout: float | None = None) -> Any:
        """Send one command and return its reply (str for +simple, bytes for bulk,
        int, list, or None). Raises RespError for an error reply, OSError when the
        connection fails (after closing it)."""
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
                    self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self._file = self._sock.makefile("rb")
                self._sock.settimeout(timeout if timeout is not None else self.timeout)
                self._sock.sendall(_encode(args))
                return self._read()
            except (OSError, ValueError):
                self.close()
                raise

    def _read(self) -> Any:
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by redis")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body.decode()
        if kind == b"-":
            raise RespError(body.decode(errors="replace"))
        if kind == b":":
            return int(body)
        if kind == b"$":
            n = int(body)
            if n < 0:
                return None
            data = self._file.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("short bulk reply")
            return data[:-2]
        if kind == b"*":
            n = int(body)
            if n < 0:
                return None
            return [self._read() for _ in range(n)]
        raise ConnectionError(f"unexpected RESP reply {line[:40]!r}")


def redis_ping(addr: str, timeout: float = 1.0) -> str | None:
    """PING on a fresh connection: None when Redis answers PONG, else what went wrong."""
    client = Redis(addr, timeout=timeout)
    try:
        reply = client.command("PING")
        return None if reply == "PONG" else f"unexpected reply {reply!r}"
    except (OSError, RespError, ValueError) as exc:
        return f"redis {addr}: {exc.__class__.__name__}: {exc}"
    finally:
        client.close()


# ------------------------------------------------------------------ metrics


def _fmt(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Family:
    """One metric family: counter, gauge or histogram, with optional labels."""

    def __init__(self, name: str, kind: str, help_text: str, labelnames: Iterable[str] = (),
                 buckets: Iterable[float] = DEFAULT_BUCKETS):
        self.name, self.kind, self.help = name, kind, help_text
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(sorted(buckets))
        self._values: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, Any]) -> tuple[str, ...]:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name}: labels {sorted(labels)} != {sorted(self.labelnames)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def inc(self, amount: float = 1, **labels: Any) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def set(self, value: float, **labels: Any) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def observe(self, value: float, **labels: Any) -> None:
        key = self._key(labels)
        with self._lock:
            state = self._values.get(key)
            if state is None:
                state = self._values[key] = [[0] * len(self.buckets), 0.0, 0]
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    state[0][i] += 1
            state[1] += value
            state[2] += 1

    def value(self, **labels: Any) -> Any:
        with self._lock:
            return self._values.get(self._key(labels))

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        with self._lock:
            items = sorted((k, [list(v[0]), v[1], v[2]] if self.kind == "histogram" else v)
                           for k, v in self._values.items())
        for key, val in items:
            if self.kind == "histogram":
                counts, total, n = val
                for bound, c in zip(self.buckets, counts):
                    le = 'le="%s"' % _fmt(bound)
                    out.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {c}")
                le = 'le="+Inf"'
                out.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {n}")
                out.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_fmt(total)}")
                out.append(f"{self.name}_count{_labels(self.labelnames, key)} {n}")
            else:
                out.append(f"{self.name}{_labels(self.labelnames, key)} {_fmt(val)}")
        return out


class Registry:
    """Metric families in registration order; ``collectors`` refresh gauges just before
    each exposition."""

    def __init__(self) -> None:
        self.families: list[Family] = []
        self.collectors: list[Callable[[], None]] = []

    def add(self, name: str, kind: str, help_text: str, labelnames: Iterable[str] = (),
            **kwargs: Any) -> Family:
        fam = Family(name, kind, help_text, labelnames, **kwargs)
        self.families.append(fam)
        return fam

    def counter(self, name: str, help_text: str, labelnames: Iterable[str] = ()) -> Family:
        return self.add(name, "counter", help_text, labelnames)

    def gauge(self, name: str, help_text: str, labelnames: Iterable[str] = ()) -> Family:
        return self.add(name, "gauge", help_text, labelnames)

    def histogram(self, name: str, help_text: str, labelnames: Iterable[str] = (),
                  buckets: Iterable[float] = DEFAULT_BUCKETS) -> Family:
        return self.add(name, "histogram", help_text, labelnames, buckets=buckets)

    def exposition(self) -> bytes:
        for collect in self.collectors:
            collect()
        lines: list[str] = []
        for fam in self.families:
            lines.extend(fam.render())
        return ("\n".join(lines) + "\n").encode()


CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _boot_time() -> float:
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def process_stats() -> dict[str, float]:
    """CPU seconds, resident/virtual memory, start time and fds of this process (/proc/self)."""
    with open("/proc/self/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state) of proc(5): utime=14, stime=15, starttime=22, vsize=23, rss=24
    utime, stime = int(fields[11]), int(fields[12])
    return {
        "cpu_seconds": (utime + stime) / CLK_TCK,
        "start_time": _boot_time() + int(fields[19]) / CLK_TCK,
        "virtual_memory": int(fields[20]),
        "resident_memory": int(fields[21]) * PAGE_SIZE,
        "open_fds": len(os.listdir("/proc/self/fd")),
        "max_fds": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def add_process_metrics(reg: Registry) -> None:
    """The standard process_* families, refreshed at each scrape."""
    cpu = reg.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.")
    rss = reg.gauge("process_resident_memory_bytes", "Resident memory size in bytes.")
    vms = reg.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.")
    start = reg.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.")
    fds = reg.gauge("process_open_fds", "Number of open file descriptors.")
    max_fds = reg.gauge("process_max_fds", "Maximum number of open file descriptors.")
    start_time = process_stats()["start_time"]     # fixed: a new value means a restart

    def collect() -> None:
        st = process_stats()
        cpu.set(st["cpu_seconds"])
        rss.set(st["resident_memory"])
        vms.set(st["virtual_memory"])
        start.set(round(start_time, 2))
        fds.set(st["open_fds"])
        max_fds.set(st["max_fds"])

    reg.collectors.append(collect)


# ------------------------------------------------------------------ HTTP

QUIET_PATHS = ("/health", "/metrics")


class BadRequest(ValueError):
    """The client sent something unusable: answered 400."""


class Handler(BaseHTTPRequestHandler):
    """Routes by ``routes``: {(method, path): handler method name}; a path ending in
    '/*' takes one more segment. Subclasses set ``routes``, ``version`` and the
    ``requests_total``/``request_duration`` families (or leave them None)."""

    server_version = "runbook-demo"
    protocol_version = "HTTP/1.1"
    routes: dict[tuple[str, str], str] = {}
    version = "dev"
    requests_total: Family | None = None
    request_duration: Family | None = None
    max_body = 1 << 20

    # ---- plumbing
    def _dispatch(self, method: str) -> None:
        self._t0 = time.monotonic()
        self._code = 500
        url = urlsplit(self.path)
        self.url_path = url.path.rstrip("/") or "/"
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        name, self.route = self._match(method, self.url_path)
        try:
            self.body = self._read_body()
            if name is None:
                known = self.route != "other"
                self.send_json(405 if known else 404, {"error": "method not allowed" if known else "not found"})
            else:
                getattr(self, name)()
        except (BrokenPipeError, ConnectionResetError):
            pass
        except BadRequest as exc:
            self.send_json(400, {"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - a demo service answers 500 and keeps going
            print(f"error: {method} {self.path}: {exc.__class__.__name__}: {exc}", file=sys.stderr, flush=True)
            try:
                self.send_json(500, {"error": f"{exc.__class__.__name__}: {exc}"})
            except OSError:
                pass
        finally:
            elapsed = time.monotonic() - self._t0
            if self.requests_total is not None:
                self.requests_total.inc(code=str(self._code), path=self.route)
            if self.request_duration is not None:
                self.request_duration.observe(elapsed, path=self.route)

    def _match(self, method: str, path: str) -> tuple[str | None, str]:
        """(handler name or None, route label for metrics). A pattern ending in '/*'
        matches one more path segment and is labelled '<prefix>/:id'."""
        route = "other"
        for (m, pattern), name in self.routes.items():
            if pattern.endswith("/*"):
                prefix = pattern[:-1]
                rest = path[len(prefix):]
                if not (path.startswith(prefix) and rest and "/" not in rest):
                    continue
                label = prefix + ":id"
            elif path != pattern:
                continue
            else:
                label = pattern
            route = label
            if m == method:
                return name, label
        return None, route

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def log_message(self, fmt: str, *args: Any) -> None:
        if getattr(self, "url_path", "") in QUIET_PATHS and getattr(self, "_code", 0) < 400:
            return
        sys.stdout.write("%s %s\n" % (self.log_date_time_string(), fmt % args))
        sys.stdout.flush()

    # ---- helpers
    def _read_body(self) -> bytes:
        """The whole request body, read before dispatch so a keep-alive connection
        never sees leftovers of it."""
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if n < 0 or n > self.max_body:
            self.close_connection = True
            raise BadRequest(f"Content-Length must be 0..{self.max_body}")
        return self.rfile.read(n) if n else b""

    def send_bytes(self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self._code = code
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-App-Version", self.version)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(code, (json.dumps(obj, sort_keys=True) + "\n").encode(), "application/json", headers)

    def send_metrics(self, registry: Registry) -> None:
        self.send_bytes(200, registry.exposition(), "text/plain; version=0.0.4; charset=utf-8")

    def query_float(self, name: str, default: float, lo: float, hi: float) -> float:
        raw = self.query.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise BadRequest(f"{name} must be a number") from None
        if not (lo <= value <= hi):
            raise BadRequest(f"{name} must be between {lo:g} and {hi:g}")
        return value


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def serve(handler: type[Handler], bind: str, port: int, on_stop: Callable[[], None] | None = None,
          background: bool = False) -> Server:
    """Serve until SIGTERM/SIGINT (PID 1 in a container ignores SIGTERM without a
    handler, so `docker stop` would wait 10 s). ``background``: serve in a thread and
    return at once (the caller handles signals)."""
    server = Server((bind, port), handler)
    print(f"listening on http://{bind}:{port} version={handler.version}", flush=True)
    if background:
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        return server

    def stop(signum: int, _frame: Any) -> None:
        print(f"signal {signum}: shutting down", flush=True)
        if on_stop:
            on_stop()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return server
