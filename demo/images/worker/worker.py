"""runbook demo worker: pops jobs from a Redis list (BLPOP over RESP), writes one result
file per job to DATA_DIR/results/, serves /health and /metrics on WORKER_PORT.

A job is a JSON object (a bare string is taken as {"data": string}):
    {"id": "job-1", "data": anything, "sleep_ms": 0, "fail": false}
Its result, DATA_DIR/results/<id>.json:
    {"id", "status": "done"|"failed", "worker", "version", "input", "sha256", "finished_at"}

Environment: WORKER_PORT (8081; the scale runbook gives replica n the port base + n),
WORKER_BIND (127.0.0.1), WORKER_ID (hostname:port), REDIS_ADDR (127.0.0.1:6379),
JOB_QUEUE (jobs), DATA_DIR (/data), WORKER_VERSION (baked into the image).
Delivery is at most once: a job popped by a worker that dies mid-job is lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

from demokit import Handler, Redis, Registry, RespError, add_process_metrics, redis_ping, serve

VERSION = os.environ.get("WORKER_VERSION", "dev")
PORT = int(os.environ.get("WORKER_PORT", "8081"))
BIND = os.environ.get("WORKER_BIND", "127.0.0.1")
WORKER_ID = os.environ.get("WORKER_ID") or f"{socket.gethostname()}:{PORT}"
REDIS_ADDR = os.environ.get("REDIS_ADDR", "127.0.0.1:6379")
QUEUE = os.environ.get("JOB_QUEUE", "jobs")
DATA_DIR = Path(os.environ.get("DATA_DIR", "/data"))
RESULTS_DIR = DATA_DIR / "results"
POLL_SECONDS = 1                     # BLPOP timeout: also how fast SIGTERM is noticed
JOB_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

registry = Registry()
requests_total = registry.counter("http_requests_total", "HTTP requests served, by status code and route.",
                                  ("code", "path"))
processed = registry.counter("jobs_processed_total", "Jobs finished successfully by this worker.")
failed = registry.counter("jobs_failed_total", "Jobs that failed in this worker.")
job_seconds = registry.histogram("job_duration_seconds", "Time spent on one job.")
worker_info = registry.gauge("worker_info", "Version and id of the running worker (always 1).",
                             ("version", "worker"))
busy = registry.gauge("worker_busy", "1 while a job is being processed.")
queue_length = registry.gauge("worker_queue_length", "Jobs waiting in the queue (LLEN at scrape time).")
last_job = registry.gauge("worker_last_job_timestamp_seconds", "When the last job finished (unix time).")
redis_errors = registry.counter("worker_redis_errors_total", "Failed polls of the job queue.")
add_process_metrics(registry)
worker_info.set(1, version=VERSION, worker=WORKER_ID)
for fam in (processed, failed, redis_errors):
    fam.inc(0)
busy.set(0)
last_job.set(0)

STATE = {"last_poll_ok": time.time(), "last_error": "not polled yet"}   # grace period at start
STOP = threading.Event()


def collect() -> None:
    client = Redis(REDIS_ADDR, timeout=0.5)
    try:
        queue_length.set(client.command("LLEN", QUEUE))
    except (OSError, RespError, ValueError):
        pass
    finally:
        client.close()


registry.collectors.insert(0, collect)


def results_dir_problem() -> str | None:
    probe = RESULTS_DIR / f".health-{os.getpid()}-{threading.get_ident()}"
    try:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
        return None
    except OSError as exc:
        return f"results dir {RESULTS_DIR} not writable: {exc.strerror or exc}"


class WorkerHandler(Handler):
    version = VERSION
    requests_total = requests_total
    routes = {("GET", "/health"): "health", ("GET", "/metrics"): "metrics", ("GET", "/"): "root"}

    def health(self) -> None:
        checks = {"redis": redis_ping(REDIS_ADDR) or "ok", "results_dir": results_dir_problem() or "ok"}
        if checks["redis"] == "ok" and time.time() - STATE["last_poll_ok"] > 5 * POLL_SECONDS + 5:
            checks["queue"] = f"no successful poll for a while: {STATE['last_error']}"
        ok = all(v == "ok" for v in checks.values())
        self.send_json(200 if ok else 503, {"status": "ok" if ok else "fail", "version": VERSION,
                                            "worker": WORKER_ID, "checks": checks})

    def metrics(self) -> None:
        self.send_metrics(registry)

    def root(self) -> None:
        self.send_json(200, {"service": "runbook-demo-worker", "version": VERSION, "worker": WORKER_ID,
                             "queue": QUEUE, "jobs_processed": processed.value() or 0})


def parse_job(raw: bytes) -> dict:
    try:
        job = json.loads(raw)
    except ValueError:
        job = raw.decode(errors="replace")
    if not isinstance(job, dict):
        job = {"data": job}
    return job


def process(raw: bytes) -> None:
    t0 = time.monotonic()
    busy.set(1)
    job = parse_job(raw)
    job_id = str(job.get("id") or uuid.uuid4().hex[:12])
    if not JOB_ID.match(job_id):
        job_id = "bad-id-" + hashlib.sha256(job_id.encode()).hexdigest()[:12]
    status = "done"
    try:
        sleep_ms = float(job.get("sleep_ms") or 0)
        if sleep_ms > 0:
            time.sleep(min(sleep_ms, 600_000) / 1000)
        if job.get("fail"):
            raise RuntimeError("job asked to fail")
    except (RuntimeError, TypeError, ValueError) as exc:
        status = f"failed: {exc}"
    result = {"id": job_id, "status": "done" if status == "done" else "failed", "worker": WORKER_ID,
              "version": VERSION, "input": job, "finished_at": time.time(),
              "sha256": hashlib.sha256(json.dumps(job.get("data"), sort_keys=True).encode()).hexdigest()}
    if status != "done":
        result["error"] = status
    try:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        tmp = RESULTS_DIR / f".{job_id}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_text(json.dumps(result, sort_keys=True) + "\n")
        os.replace(tmp, RESULTS_DIR / f"{job_id}.json")
    except OSError as exc:
        status = f"failed: cannot write result: {exc}"
    (processed if status == "done" else failed).inc()
    job_seconds.observe(time.monotonic() - t0)
    last_job.set(round(time.time(), 3))
    busy.set(0)
    print(f"job {job_id}: {status}", flush=True)


def poll_loop() -> None:
    client = Redis(REDIS_ADDR, timeout=2.0)
    backoff = 0.2
    while not STOP.is_set():
        try:
            reply = client.command("BLPOP", QUEUE, POLL_SECONDS, timeout=POLL_SECONDS + 5)
        except (OSError, RespError, ValueError) as exc:
            redis_errors.inc()
            STATE["last_error"] = f"{exc.__class__.__name__}: {exc}"
            print(f"poll failed: {STATE['last_error']} (retry in {backoff:.1f} s)", file=sys.stderr, flush=True)
            STOP.wait(backoff)
            backoff = min(backoff * 2, 5.0)
            continue
        backoff = 0.2
        STATE["last_poll_ok"] = time.time()
        if reply:                                   # [queue, job]; None on timeout
            process(reply[1])
    client.close()


def main() -> None:
    try:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"cannot create {RESULTS_DIR}: {exc}", file=sys.stderr, flush=True)
    print(f"runbook-demo-worker {VERSION} id {WORKER_ID}: queue {QUEUE!r} on {REDIS_ADDR}, "
          f"results in {RESULTS_DIR}", flush=True)
    server = serve(WorkerHandler, BIND, PORT, background=True)

    def stop(signum: int, _frame) -> None:
        print(f"signal {signum}: finishing the current job and stopping", flush=True)
        STOP.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    poll_loop()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
