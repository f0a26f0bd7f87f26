"""The demo stack (demo/): its images build and cache, and each container does what the
runbooks rely on: app:1/app:2 become healthy and serve their version, app:broken never
does, /items goes through the data dir and Redis, the worker processes jobs, /metrics
passes `promtool check metrics`, Redis snapshots to /data, demo/stack.sh brings it up.

Containers run on the host network on free 31xxx ports (the demo stack itself uses
16379/18080/181xx, so both can run at once), labelled runbook-test=1, removed after.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import docker
import pytest

from tests.infra.fixtures import free_ports, wait_for as shared_wait_for
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD_SH = ROOT / "demo" / "build.sh"
STACK_SH = ROOT / "demo" / "stack.sh"
RULES = ROOT / ".metrics" / "alert_rules.yml"
APP = {"1": "runbook-demo/app:1", "2": "runbook-demo/app:2", "broken": "runbook-demo/app:broken"}
WORKER = "runbook-demo/worker:1"
CACHE = "runbook-demo/cache:1"
LABELS = {"runbook-test": "1"}


# ------------------------------------------------------------------ helpers

def free_port(count: int = 1) -> int:
    """A port in 31000-31999 such that it and the next count-1 ports are free on loopback."""
    return free_ports(count, 31000, 31999)


def http(method: str, url: str, body: bytes | None = None, timeout: float = 10):
    """(status, headers, body) without raising for 4xx/5xx."""
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def get_json(url: str):
    status, _, body = http("GET", url)
    return status, json.loads(body)


def wait_for(what: str, check, timeout: float = 20, interval: float = 0.1):
    """Poll check() until it returns something truthy; fail with what after timeout."""
    return shared_wait_for(what, check, timeout, interval)


def health(container) -> str:
    container.reload()
    return container.attrs["State"].get("Health", {}).get("Status", "none")


def wait_health(container, want: str, timeout: float = 20) -> float:
    t0 = time.monotonic()

    def check():
        h = health(container)
        if h == "healthy" and want != "healthy":
            pytest.fail(f"{container.name} became healthy; expected {want}")
        if container.status == "exited":
            pytest.fail(f"{container.name} exited: {container.logs(tail=20).decode(errors='replace')}")
        return h == want

    wait_for(f"{container.name} to be {want}", check, timeout, 0.2)
    return time.monotonic() - t0


def metrics_text(port: int) -> str:
    status, _, body = http("GET", f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return body.decode()


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in exposition text (labels must match exactly), or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if got == labels:
            return float(m.group(3))
    return None


def promtool_check_metrics(text: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: run `bash tests/infra/setup.sh` (installs prometheus)"
    proc = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True,
                          timeout=30)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode()


def run_build(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(BUILD_SH), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def images(infra):
    """Build (or find cached) every demo image; a failed build fails loudly."""
    t0 = time.monotonic()
    proc = run_build()
    if proc.returncode != 0:
        pytest.fail(f"demo/build.sh failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}",
                    pytrace=False)
    return {"seconds": time.monotonic() - t0, "output": proc.stderr}


@pytest.fixture(scope="module")
def demo(docker_client, images, request):
    """Factory: run a demo image on the host network, removed (with its volumes) after
    the module; ``volume(name)`` makes a named volume removed the same way."""
    made, volumes = [], []

    def run(image: str, env: dict[str, str] | None = None, **kwargs):
        name = kwargs.pop("name", None) or f"rbt-demo-{uuid.uuid4().hex[:10]}"
        c = docker_client.containers.run(image, name=name, detach=True, network_mode="host",
                                         environment=env or {},
                                         labels={**LABELS, "runbook-test.test": request.node.nodeid[-200:]},
                                         **kwargs)
        made.append(c)
        return c

    def volume() -> str:
        v = docker_client.volumes.create(f"rbt-demo-{uuid.uuid4().hex[:10]}", labels=LABELS)
        volumes.append(v)
        return v.name

    run.volume = volume
    yield run
    for c in made:
        try:
            c.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
    for v in volumes:
        try:
            v.remove(force=True)
        except docker.errors.NotFound:
            pass


@pytest.fixture(scope="module")
def redis(demo):
    port = free_port()
    c = demo(CACHE, {"REDIS_PORT": str(port)})
    wait_health(c, "healthy")
    return {"port": port, "addr": f"127.0.0.1:{port}", "container": c}


def redis_cli(redis, *args: str) -> str:
    code, out = redis["container"].exec_run(["redis-cli", "-p", str(redis["port"]), *args])
    assert code == 0, out
    return out.decode().strip()


def start_app(demo, redis, version: str = "1", **kwargs):
    port = free_port()
    env = {"APP_PORT": str(port), "REDIS_ADDR": redis["addr"], **kwargs.pop("env", {})}
    return demo(APP[version], env, **kwargs), port


# ------------------------------------------------------------------ images

def test_build_is_cached_and_images_are_labelled(images, docker_client):
    t0 = time.monotonic()
    proc = run_build()
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert "all cached" in proc.stderr, proc.stderr
    assert elapsed < 2.0, f"a cached build took {elapsed:.2f} s"
    recipes = {}
    for tag in [*APP.values(), WORKER, CACHE]:
        img = docker_client.images.get(tag)
        labels = img.labels
        assert re.fullmatch(r"[0-9a-f]{12}", labels.get("runbook-demo.recipe", "")), (tag, labels)
        recipes.setdefault(labels["runbook-demo.image"], set()).add(labels["runbook-demo.recipe"])
        assert img.attrs["Config"]["Healthcheck"]["Interval"] == 1_000_000_000, tag
        assert img.attrs["Config"]["Healthcheck"]["Retries"] == 3, tag
    assert recipes["app"] and len(recipes["app"]) == 1          # three tags, one recipe
    assert docker_client.images.get(APP["2"]).labels["runbook-demo.version"] == "2"
    assert "APP_BROKEN=1" in docker_client.images.get(APP["broken"]).attrs["Config"]["Env"]


# ------------------------------------------------------------------ app

@pytest.mark.parametrize("version", ["1", "2"])
def test_app_version_serves_and_becomes_healthy(demo, redis, version):
    c, port = start_app(demo, redis, version)
    took = wait_health(c, "healthy", timeout=15)
    status, headers, body = http("GET", f"http://127.0.0.1:{port}/")
    assert status == 200
    assert json.loads(body)["version"] == version
    assert headers["X-App-Version"] == version
    status, h = get_json(f"http://127.0.0.1:{port}/health")
    assert (status, h["status"], h["version"]) == (200, "ok", version)
    assert h["checks"] == {"redis": "ok", "data_dir": "ok"}
    assert metric(metrics_text(port), "app_info", version=version) == 1
    assert took < 10


def test_broken_app_starts_but_never_becomes_healthy(demo, redis):
    c, port = start_app(demo, redis, "broken")
    status, _, body = wait_for("app:broken to answer /", lambda: http("GET", f"http://127.0.0.1:{port}/"))
    assert status == 200 and json.loads(body)["version"] == "broken"        # it does start
    took = wait_health(c, "unhealthy", timeout=20)
    status, h = get_json(f"http://127.0.0.1:{port}/health")
    assert status == 503 and h["status"] == "fail"
    assert "dependency check failed" in h["checks"]["dependencies"]
    c.reload()
    log = c.attrs["State"]["Health"]["Log"]
    assert log and all(entry["ExitCode"] != 0 for entry in log)
    assert c.status == "running"
    assert took < 15


def test_health_fails_without_redis(demo, images):
    port, dead = free_port(), free_port()
    c = demo(APP["1"], {"APP_PORT": str(port), "REDIS_ADDR": f"127.0.0.1:{dead}"})
    status, h = wait_for("/health", lambda: get_json(f"http://127.0.0.1:{port}/health"))
    assert status == 503 and h["checks"]["data_dir"] == "ok"
    assert "redis" in h["checks"]["redis"] and "refused" in h["checks"]["redis"].lower()
    # reads still work from the data dir; every read is a miss and a cache error
    status, _, _ = http("POST", f"http://127.0.0.1:{port}/items", b'{"id": "nocache", "n": 1}')
    assert status == 201
    status, headers, body = http("GET", f"http://127.0.0.1:{port}/items/nocache")
    assert (status, headers["X-Cache"], json.loads(body)["n"]) == (200, "miss", 1)
    text = metrics_text(port)
    assert metric(text, "app_redis_up") == 0
    assert metric(text, "cache_errors_total") >= 2
    assert c.status in ("created", "running")


def test_items_round_trip_through_data_dir_and_redis(demo, redis):
    volume = demo.volume()
    c, port = start_app(demo, redis, "1", volumes={volume: {"bind": "/data", "mode": "rw"}})
    wait_health(c, "healthy", timeout=15)
    base = f"http://127.0.0.1:{port}"
    item_id = f"it-{uuid.uuid4().hex[:8]}"
    status, headers, body = http("POST", f"{base}/items", json.dumps({"id": item_id, "name": "widget"}).encode())
    assert status == 201 and json.loads(body) == {"id": item_id, "name": "widget"}
    assert headers["Location"] == f"/items/{item_id}"
    code, out = c.exec_run(["cat", f"/data/items/{item_id}.json"])
    assert code == 0 and json.loads(out) == {"id": item_id, "name": "widget"}

    before = metrics_text(port)
    hits0, misses0 = metric(before, "cache_hits_total"), metric(before, "cache_misses_total")
    status, headers, body = http("GET", f"{base}/items/{item_id}")
    assert (status, headers["X-Cache"]) == (200, "miss")
    assert json.loads(redis_cli(redis, "GET", f"item:{item_id}")) == {"id": item_id, "name": "widget"}
    status, headers, body2 = http("GET", f"{base}/items/{item_id}")
    assert (status, headers["X-Cache"], body2) == (200, "hit", body)
    after = metrics_text(port)
    assert metric(after, "cache_hits_total") == hits0 + 1
    assert metric(after, "cache_misses_total") == misses0 + 1
    assert metric(after, "app_items") == 1
    assert metric(after, "app_items_total") == 1
    assert metric(after, "http_requests_total", code="200", path="/items/:id") == 2
    status, listing = get_json(f"{base}/items")
    assert listing == {"count": 1, "items": [item_id]}
    assert http("GET", f"{base}/items/no-such-item")[0] == 404
    assert http("GET", f"{base}/items/..%2Fetc")[0] in (400, 404)
    assert http("POST", f"{base}/items", b"[1, 2]")[0] == 400

    # the data lives in the volume: the next version of the app finds it (what a deploy relies on)
    c.remove(force=True)
    c2, port2 = start_app(demo, redis, "2", volumes={volume: {"bind": "/data", "mode": "rw"}})
    wait_health(c2, "healthy", timeout=15)
    status, _, body3 = http("GET", f"http://127.0.0.1:{port2}/items/{item_id}")
    assert status == 200 and json.loads(body3)["name"] == "widget"
    assert http("DELETE", f"http://127.0.0.1:{port2}/items/{item_id}")[0] == 200
    assert redis_cli(redis, "EXISTS", f"item:{item_id}") == "0"


def test_incident_knobs(demo, redis):
    c, port = start_app(demo, redis, "1")
    wait_health(c, "healthy", timeout=15)
    base = f"http://127.0.0.1:{port}"
    # /fail: share of / and /items requests answered 500; /health and /metrics unaffected
    assert get_json(f"{base}/fail?rate=1") == (200, {"fail_rate": 1.0})
    assert [http("GET", f"{base}/")[0] for _ in range(5)] == [500] * 5
    assert http("GET", f"{base}/items")[0] == 500
    assert http("GET", f"{base}/health")[0] == 200
    text = metrics_text(port)
    assert metric(text, "http_requests_total", code="500", path="/") == 5
    assert metric(text, "app_injected_failure_ratio") == 1
    assert get_json(f"{base}/fail?rate=0.5")[1] == {"fail_rate": 0.5}
    codes = [http("GET", f"{base}/")[0] for _ in range(200)]
    assert 40 < codes.count(500) < 160 and set(codes) == {200, 500}
    assert get_json(f"{base}/fail?rate=0")[1] == {"fail_rate": 0.0}
    assert http("GET", f"{base}/")[0] == 200
    assert http("GET", f"{base}/fail?rate=2")[0] == 400            # rejected, not applied
    assert http("GET", f"{base}/work?ms=abc")[0] == 400
    assert get_json(f"{base}/fail")[1] == {"fail_rate": 0.0}
    # /work: burns CPU
    cpu0 = metric(metrics_text(port), "process_cpu_seconds_total")
    status, res = get_json(f"{base}/work?ms=400")
    assert status == 200 and res["burned_ms"] == 400
    assert metric(metrics_text(port), "process_cpu_seconds_total") - cpu0 >= 0.3
    # /leak: resident memory grows and stays until freed
    rss0 = metric(metrics_text(port), "process_resident_memory_bytes")
    assert get_json(f"{base}/leak?mb=64")[1] == {"leaked_bytes": 64 << 20}
    text = metrics_text(port)
    assert metric(text, "process_resident_memory_bytes") - rss0 >= 60 << 20
    assert metric(text, "app_leaked_bytes") == 64 << 20
    assert get_json(f"{base}/leak?free=1")[1] == {"leaked_bytes": 0}


def test_crash_restarts_with_a_new_start_time(demo, redis):
    c, port = start_app(demo, redis, "1", restart_policy={"Name": "on-failure", "MaximumRetryCount": 3})
    wait_health(c, "healthy", timeout=15)
    start0 = metric(metrics_text(port), "process_start_time_seconds")
    assert metric(metrics_text(port), "app_start_time_seconds") >= start0
    status, _, _ = http("POST", f"http://127.0.0.1:{port}/crash")
    assert status == 202

    def restarted():
        c.reload()
        return c.attrs["RestartCount"] >= 1 and c.status == "running"

    wait_for("the app to be restarted by docker", restarted, timeout=15)
    start1 = wait_for("the restarted app's metrics",
                      lambda: metric(metrics_text(port), "process_start_time_seconds"))
    assert start1 > start0                  # what ContainerRestarting counts


# ------------------------------------------------------------------ worker

def test_worker_processes_jobs(demo, redis):
    port = free_port()
    queue = f"jobs-{uuid.uuid4().hex[:8]}"
    volume = demo.volume()
    w = demo(WORKER, {"WORKER_PORT": str(port), "REDIS_ADDR": redis["addr"], "JOB_QUEUE": queue,
                      "WORKER_ID": "w-test-1"}, volumes={volume: {"bind": "/data", "mode": "rw"}})
    wait_health(w, "healthy", timeout=15)
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    assert redis_cli(redis, "RPUSH", queue, json.dumps({"id": job_id, "data": {"n": 42}}),
                     json.dumps({"id": f"{job_id}-bad", "fail": True}), "plain text job") == "3"

    def result():
        code, out = w.exec_run(["cat", f"/data/results/{job_id}.json"])
        return json.loads(out) if code == 0 else None

    res = wait_for("the job's result file", result, timeout=15)
    assert res["status"] == "done" and res["worker"] == "w-test-1" and res["version"] == "1"
    assert res["input"] == {"id": job_id, "data": {"n": 42}}

    def all_done():
        text = metrics_text(port)
        return text if metric(text, "jobs_processed_total") == 2 and metric(text, "jobs_failed_total") == 1 else None

    text = wait_for("jobs_processed_total 2 and jobs_failed_total 1", all_done, timeout=15)
    assert metric(text, "worker_info", version="1", worker="w-test-1") == 1
    assert metric(text, "worker_queue_length") == 0
    code, out = w.exec_run(["ls", "/data/results"])
    assert len(out.split()) == 3
    status, h = get_json(f"http://127.0.0.1:{port}/health")
    assert (status, h["status"], h["worker"]) == (200, "ok", "w-test-1")
    promtool_check_metrics(text)


# ------------------------------------------------------------------ metrics

def test_metrics_pass_promtool_and_cover_the_alert_rules(demo, redis):
    c, port = start_app(demo, redis, "1")
    wait_health(c, "healthy", timeout=15)
    base = f"http://127.0.0.1:{port}"
    http("POST", f"{base}/items", b'{"id": "m1"}')
    for path in ("/", "/items/m1", "/items/m1", "/nope", "/work?ms=5"):
        http("GET", base + path)
    text = metrics_text(port)
    promtool_check_metrics(text)
    for name in ("http_requests_total", "http_request_duration_seconds_bucket", "app_info",
                 "cache_hits_total", "cache_misses_total", "process_resident_memory_bytes",
                 "process_cpu_seconds_total", "app_items_total", "app_data_dir_free_bytes",
                 "app_data_dir_size_bytes", "app_start_time_seconds", "process_start_time_seconds"):
        assert re.search(rf"^{name}[{{ ]", text, re.M), f"{name} missing from /metrics"
    assert metric(text, "http_request_duration_seconds_count", path="/items/:id") == 2
    free, size = metric(text, "app_data_dir_free_bytes"), metric(text, "app_data_dir_size_bytes")
    assert 0 < free <= size
    # every metric the alert rules read is exported by the app or the worker
    exported = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", text, re.M))
    exported |= {"jobs_processed_total", "worker_info"}
    rules = yaml.safe_load(RULES.read_text())
    used = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            used |= set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", rule["expr"]))
    used -= {"up", "absent", "rate", "changes", "sum", "by"}
    assert used and used <= exported, f"alert rules read metrics nobody exports: {used - exported}"


# ------------------------------------------------------------------ cache

def test_redis_snapshots_to_data_and_survives_restart(demo, images):
    port = free_port()
    c = demo(CACHE, {"REDIS_PORT": str(port)})
    wait_health(c, "healthy", timeout=15)
    r = {"port": port, "container": c}
    assert redis_cli(r, "SET", "backup-probe", "v1") == "OK"
    assert redis_cli(r, "SAVE") == "OK"
    code, out = c.exec_run(["sh", "-c", "test -s /data/dump.rdb && ls -l /data/dump.rdb"])
    assert code == 0, out
    assert redis_cli(r, "CONFIG", "GET", "dir").split() == ["dir", "/data"]
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:   # loopback, from the host
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert s.recv(64) == b"+PONG\r\n"
    c.restart(timeout=10)
    wait_health(c, "healthy", timeout=15)
    assert redis_cli(r, "GET", "backup-probe") == "v1"


# ------------------------------------------------------------------ demo/stack.sh

def test_stack_script_up_status_down(images, docker_client):
    prefix = f"rbt-stack-{uuid.uuid4().hex[:6]}"
    workers_base = free_port(3)
    env = {"DEMO_PREFIX": prefix, "DEMO_REDIS_PORT": str(free_port()), "DEMO_APP_PORT": str(free_port()),
           "DEMO_WORKER_BASE_PORT": str(workers_base), "DEMO_WORKERS": "2",
           "DEMO_LABELS": "runbook-test=1"}

    def stack(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(STACK_SH), *args], capture_output=True, text=True,
                              timeout=180, env={**os.environ, **env}, cwd=ROOT)

    try:
        up = stack("up")
        assert up.returncode == 0, up.stdout + up.stderr
        st = stack("status")
        assert st.returncode == 0, st.stdout + st.stderr
        for name in ("cache", "app", "worker-1", "worker-2"):
            assert re.search(rf"^{prefix}-{name} .*\(healthy\)", st.stdout, re.M), st.stdout
        assert "4/4 healthy" in st.stdout
        status, root = get_json(f"http://127.0.0.1:{env['DEMO_APP_PORT']}/")
        assert root["version"] == "1"
        status, h = get_json(f"http://127.0.0.1:{workers_base + 2}/health")
        assert h["worker"] == f"{prefix}-worker-2"
        app = docker_client.containers.get(f"{prefix}-app")
        assert app.labels["runbook-demo"] == "1" and app.labels["runbook-demo.role"] == "app"
        assert app.attrs["HostConfig"]["NetworkMode"] == "host"
        assert any(m.get("Name") == f"{prefix}-data" for m in app.attrs["Mounts"])
        again = stack("up", "--no-build")                    # idempotent: nothing created
        assert again.returncode == 0 and "creating" not in again.stderr, again.stderr
    finally:
        down = stack("down", "--volumes")
    assert down.returncode == 0, down.stderr
    assert stack("status").returncode == 3
    assert not docker_client.containers.list(all=True, filters={"label": f"runbook-demo.stack={prefix}"})
