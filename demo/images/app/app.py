"""runbook demo API: items stored as files in DATA_DIR, reads cached in Redis, Prometheus
metrics, and knobs that stage incidents (/work, /leak, /fail, /crash).

Environment: APP_PORT (8080), APP_BIND (127.0.0.1), REDIS_ADDR (127.0.0.1:6379),
DATA_DIR (/data), CACHE_TTL seconds (300), APP_VERSION and APP_BROKEN (baked into the
image by its build args; APP_BROKEN=1 makes /health fail forever).
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import threading
import time
import uuid
from pathlib import Path

from demokit import Handler, Redis, Registry, RespError, add_process_metrics, redis_ping, serve

VERSION = os.environ.get("APP_VERSION", "dev")
BROKEN = os.environ.get("APP_BROKEN", "0").strip().lower() in ("1", "true", "yes")
PORT = int(os.environ.get("APP_PORT", "8080"))
BIND = os.environ.get("APP_BIND", "127.0.0.1")
REDIS_ADDR = os.environ.get("REDIS_ADDR", "127.0.0.1:6379")
DATA_DIR = Path(os.environ.get("DATA_DIR", "/data"))
ITEMS_DIR = DATA_DIR / "items"
CACHE_TTL = int(os.environ.get("CACHE_TTL", "300"))
START_TIME = time.time()
ITEM_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

registry = Registry()
requests_total = registry.counter("http_requests_total", "HTTP requests served, by status code and route.",
                                  ("code", "path"))
request_duration = registry.histogram("http_request_duration_seconds", "HTTP request latency by route.",
                                      ("path",))
app_info = registry.gauge("app_info", "Version of the running app (always 1).", ("version",))
start_time = registry.gauge("app_start_time_seconds", "When this app process started (unix time).")
cache_hits = registry.counter("cache_hits_total", "Item reads answered from Redis.")
cache_misses = registry.counter("cache_misses_total", "Item reads Redis could not answer (read from disk).")
cache_errors = registry.counter("cache_errors_total", "Redis commands that failed (connection or error reply).")
items_stored = registry.gauge("app_items", "Items in the data dir now.")
items_written = registry.counter("app_items_total", "Items written (created or replaced) since the app started.")
dir_free = registry.gauge("app_data_dir_free_bytes", "Bytes available to the app on the data dir's filesystem.")
dir_size = registry.gauge("app_data_dir_size_bytes", "Size in bytes of the data dir's filesystem.")
redis_up = registry.gauge("app_redis_up", "1 if Redis answered PING during this scrape.")
fail_rate = registry.gauge("app_injected_failure_ratio", "Share of / and /items requests failed on purpose (/fail).")
leaked = registry.gauge("app_leaked_bytes", "Memory held on purpose by /leak.")
add_process_metrics(registry)
app_info.set(1, version=VERSION)
start_time.set(round(START_TIME, 3))
cache_hits.inc(0)
cache_misses.inc(0)
cache_errors.inc(0)
items_written.inc(0)

STATE = {"fail_rate": 0.0}
LEAK: list[bytes] = []
cache = Redis(REDIS_ADDR, timeout=1.0)


def collect() -> None:
    try:
        items_stored.set(sum(1 for p in ITEMS_DIR.iterdir() if p.suffix == ".json"))
    except OSError:
        items_stored.set(0)
    try:
        st = os.statvfs(DATA_DIR)
        dir_free.set(st.f_bavail * st.f_frsize)
        dir_size.set(st.f_blocks * st.f_frsize)
    except OSError:
        pass
    redis_up.set(0 if redis_ping(REDIS_ADDR, timeout=0.5) else 1)
    fail_rate.set(STATE["fail_rate"])
    leaked.set(sum(len(b) for b in LEAK))


registry.collectors.insert(0, collect)


def data_dir_problem() -> str | None:
    """None when DATA_DIR is writable, else why not."""
    probe = DATA_DIR / f".health-{os.getpid()}-{threading.get_ident()}"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
        return None
    except OSError as exc:
        return f"data dir {DATA_DIR} not writable: {exc.strerror or exc}"


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def cache_call(*args):
    """A Redis command, or None (counted as a cache error) when Redis is unavailable."""
    try:
        return cache.command(*args)
    except (OSError, RespError, ValueError) as exc:
        cache_errors.inc()
        print(f"cache: {args[0]} failed: {exc}", file=sys.stderr, flush=True)
        return None


class AppHandler(Handler):
    version = VERSION
    requests_total = requests_total
    request_duration = request_duration
    routes = {
        ("GET", "/health"): "health",
        ("GET", "/metrics"): "metrics",
        ("GET", "/"): "root",
        ("GET", "/items"): "list_items",
        ("POST", "/items"): "create_item",
        ("GET", "/items/*"): "get_item",
        ("DELETE", "/items/*"): "delete_item",
        ("GET", "/work"): "work",
        ("POST", "/work"): "work",
        ("GET", "/leak"): "leak",
        ("POST", "/leak"): "leak",
        ("GET", "/fail"): "fail",
        ("POST", "/fail"): "fail",
        ("POST", "/crash"): "crash",
    }

    def injected_failure(self) -> bool:
        rate = STATE["fail_rate"]
        if rate > 0 and random.random() < rate:
            self.send_json(500, {"error": "injected failure (see /fail)", "version": VERSION})
            return True
        return False

    # ---- endpoints
    def health(self) -> None:
        checks = {"redis": redis_ping(REDIS_ADDR) or "ok", "data_dir": data_dir_problem() or "ok"}
        if BROKEN:
            checks["dependencies"] = "dependency check failed: this build cannot reach its config service"
        ok = all(v == "ok" for v in checks.values())
        self.send_json(200 if ok else 503, {"status": "ok" if ok else "fail", "version": VERSION,
                                            "checks": checks})

    def metrics(self) -> None:
        self.send_metrics(registry)

    def root(self) -> None:
        if self.injected_failure():
            return
        self.send_json(200, {"service": "runbook-demo-app", "version": VERSION,
                             "uptime_seconds": round(time.time() - START_TIME, 3)})

    def list_items(self) -> None:
        if self.injected_failure():
            return
        try:
            ids = sorted(p.stem for p in ITEMS_DIR.iterdir() if p.suffix == ".json")
        except FileNotFoundError:
            ids = []
        self.send_json(200, {"count": len(ids), "items": ids})

    def create_item(self) -> None:
        if self.injected_failure():
            return
        try:
            item = json.loads(self.body or b"null")
        except ValueError as exc:
            self.send_json(400, {"error": f"body is not JSON: {exc}"})
            return
        if not isinstance(item, dict):
            self.send_json(400, {"error": "body must be a JSON object"})
            return
        item_id = str(item.get("id") or uuid.uuid4().hex[:12])
        if not ITEM_ID.match(item_id):
            self.send_json(400, {"error": f"bad id {item_id!r} (letters, digits, _ . -; up to 64)"})
            return
        item["id"] = item_id
        write_atomic(ITEMS_DIR / f"{item_id}.json", json.dumps(item, sort_keys=True).encode())
        items_written.inc()
        cache_call("DEL", f"item:{item_id}")          # the next read fills the cache
        self.send_json(201, item, {"Location": f"/items/{item_id}"})

    def get_item(self) -> None:
        if self.injected_failure():
            return
        item_id = self.url_path[len("/items/"):]
        if not ITEM_ID.match(item_id):
            self.send_json(400, {"error": "bad id"})
            return
        key = f"item:{item_id}"
        cached = cache_call("GET", key)
        if cached is not None:
            cache_hits.inc()
            self.send_bytes(200, cached + b"\n", "application/json", {"X-Cache": "hit"})
            return
        cache_misses.inc()
        try:
            raw = (ITEMS_DIR / f"{item_id}.json").read_bytes()
        except FileNotFoundError:
            self.send_json(404, {"error": f"no item {item_id}"}, {"X-Cache": "miss"})
            return
        cache_call("SET", key, raw, "EX", CACHE_TTL)
        self.send_bytes(200, raw + b"\n", "application/json", {"X-Cache": "miss"})

    def delete_item(self) -> None:
        if self.injected_failure():
            return
        item_id = self.url_path[len("/items/"):]
        if not ITEM_ID.match(item_id):
            self.send_json(400, {"error": "bad id"})
            return
        try:
            (ITEMS_DIR / f"{item_id}.json").unlink()
        except FileNotFoundError:
            self.send_json(404, {"error": f"no item {item_id}"})
            return
        cache_call("DEL", f"item:{item_id}")
        self.send_json(200, {"deleted": item_id})

    def work(self) -> None:
        """Burn ?ms= milliseconds of CPU time in this request's thread (high-CPU incident).
        CPU time, not wall time: on a busy machine it takes longer but burns the same."""
        ms = self.query_float("ms", 100, 0, 3_600_000)
        t0 = time.thread_time()
        give_up = time.monotonic() + 10 * ms / 1000 + 60
        n = 0
        while time.thread_time() - t0 < ms / 1000 and time.monotonic() < give_up:
            for i in range(2000):
                n += i * i
        self.send_json(200, {"burned_ms": round(ms), "cpu_seconds": round(time.thread_time() - t0, 3)})

    def leak(self) -> None:
        """Allocate ?mb= MiB and keep it (high-memory incident); ?free=1 releases it all."""
        if self.query.get("free") in ("1", "true", "yes"):
            LEAK.clear()
        else:
            mb = int(self.query_float("mb", 10, 0, 16384))
            LEAK.append(b"\xa5" * (mb << 20))        # written, so it is resident
        self.send_json(200, {"leaked_bytes": sum(len(b) for b in LEAK)})

    def fail(self) -> None:
        """?rate=0.5 fails that share of / and /items requests with 500; ?rate=0 stops."""
        if "rate" in self.query:
            STATE["fail_rate"] = self.query_float("rate", 0, 0, 1)
            print(f"fail rate set to {STATE['fail_rate']}", flush=True)
        self.send_json(200, {"fail_rate": STATE["fail_rate"]})

    def crash(self) -> None:
        """Exit the process with ?code= (default 1) right after answering: with a restart
        policy the container restarts (container-restarting incident)."""
        code = int(self.query_float("code", 1, 0, 255))
        self.send_json(202, {"exiting": code})
        self.wfile.flush()
        threading.Timer(0.1, os._exit, (code,)).start()


def main() -> None:
    try:
        ITEMS_DIR.mkdir(parents=True, exist_ok=True)
    except OSError as exc:                            # /health reports it; keep serving
        print(f"cannot create {ITEMS_DIR}: {exc}", file=sys.stderr, flush=True)
    print(f"runbook-demo-app {VERSION}{' (BROKEN build)' if BROKEN else ''}: data {DATA_DIR}, "
          f"redis {REDIS_ADDR}", flush=True)
    serve(AppHandler, BIND, PORT, on_stop=cache.close)


if __name__ == "__main__":
    main()
