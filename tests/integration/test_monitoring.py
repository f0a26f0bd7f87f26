"""The monitoring config in .metrics/ is valid (Debian's promtool and amtool: these tests
fail, never skip, when they are missing), its alert rules pass their unit tests, and
alerts really travel: a real Prometheus scrapes the demo app, a real Alertmanager sends
to a webhook in this process. Stopping the app delivers ApiDown, /fail?rate=1 delivers
HighErrorRate, each with its `runbook` annotation.

The end-to-end part runs on loopback ports picked at random in 31xxx, from configs
derived from .metrics: 1 s scrape/evaluation intervals, only the app job, rule `for:`
durations cut to 1 s (expressions, labels and annotations are the real ones; the `for:`
values are covered by the promtool unit tests), Alertmanager group_wait 1 s.
"""

from __future__ import annotations

import json
import random
import re
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import pytest

from tests.infra.fixtures import wait_for as shared_wait_for
import yaml

ROOT = Path(__file__).resolve().parents[2]
METRICS = ROOT / ".metrics"
PROMETHEUS_YML = METRICS / "prometheus.yml"
RULES_YML = METRICS / "alert_rules.yml"
RULES_TEST_YML = METRICS / "tests" / "alert_rules_test.yml"
ALERTMANAGER_YML = METRICS / "alertmanager.yml"
BUILD_SH = ROOT / "demo" / "build.sh"
APP_IMAGE = "runbook-demo/app:1"
EXPECTED_ALERTS = {
    "ApiDown": "playbooks/api-down.yml",
    "HighMemory": "playbooks/high-memory.yml",
    "HighCpu": "playbooks/high-cpu.yml",
    "HighErrorRate": "playbooks/high-error-rate.yml",
    "LowCacheHitRate": "playbooks/low-cache-hit-rate.yml",
    "DiskAlmostFull": "playbooks/disk-almost-full.yml",
    "ContainerRestarting": "playbooks/container-restarting.yml",
}
ALERT_TIMEOUT = 30          # seconds from the trigger to the webhook (measured: a few seconds)


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, (f"{name} not found: install prometheus and prometheus-alertmanager "
                  f"(`bash tests/infra/setup.sh` does)")
    return path


def run_tool(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([tool(args[0]), *args[1:]], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def load(path: Path):
    return yaml.safe_load(path.read_text())


def all_rules():
    return [r for g in load(RULES_YML)["groups"] for r in g["rules"]]


# ------------------------------------------------------------------ static checks

def test_tools_are_installed():
    for name in ("promtool", "prometheus", "amtool", "prometheus-alertmanager"):
        assert os.access(tool(name), os.X_OK), name


def test_prometheus_config_is_valid():
    out = run_tool("promtool", "check", "config", str(PROMETHEUS_YML))
    assert "SUCCESS" in out.stdout + out.stderr


def test_alert_rules_are_valid():
    out = run_tool("promtool", "check", "rules", str(RULES_YML))
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in out.stdout + out.stderr


def test_alert_rules_unit_tests_pass():
    out = run_tool("promtool", "test", "rules", str(RULES_TEST_YML))
    assert "SUCCESS" in out.stdout + out.stderr


def test_alertmanager_config_is_valid():
    out = run_tool("amtool", "check-config", str(ALERTMANAGER_YML))
    assert "SUCCESS" in out.stdout + out.stderr


def test_every_alert_has_for_severity_annotations_and_playbook():
    rules = all_rules()
    assert {r["alert"]: r["annotations"]["runbook"] for r in rules} == EXPECTED_ALERTS
    for r in rules:
        assert "for" in r, r["alert"]
        assert r["labels"]["severity"] in ("critical", "warning"), r["alert"]
        assert r["annotations"]["summary"].strip() and r["annotations"]["description"].strip(), r["alert"]
        assert re.fullmatch(r"playbooks/[a-z0-9-]+\.yml", r["annotations"]["runbook"]), r["alert"]


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    firing, quiet = set(), set()
    for case in load(RULES_TEST_YML)["tests"]:
        for t in case.get("alert_rule_test", []):
            (firing if t.get("exp_alerts") else quiet).add(t["alertname"])
            for exp in t.get("exp_alerts") or []:
                assert exp["exp_annotations"]["runbook"] == EXPECTED_ALERTS[t["alertname"]]
                assert set(exp["exp_annotations"]) == {"summary", "description", "runbook"}
    assert firing == set(EXPECTED_ALERTS) and quiet == set(EXPECTED_ALERTS)


def test_prometheus_scrapes_the_demo_on_loopback():
    cfg = load(PROMETHEUS_YML)
    targets = {j["job_name"]: [t for sc in j["static_configs"] for t in sc["targets"]]
               for j in cfg["scrape_configs"]}
    assert targets["app"] == ["127.0.0.1:18080"]
    assert targets["worker"] == ["127.0.0.1:18101", "127.0.0.1:18102", "127.0.0.1:18103"]
    assert targets["runbook-engine"] == ["127.0.0.1:9464"]
    assert cfg["rule_files"] == ["alert_rules.yml"]
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19093"]
    for addrs in targets.values():
        assert all(a.startswith("127.0.0.1:") for a in addrs)
    am = load(ALERTMANAGER_YML)
    urls = [w["url"] for r in am["receivers"] for w in r.get("webhook_configs", [])]
    assert urls == ["http://127.0.0.1:19095/alerts"]
    assert am["route"]["receiver"] == "runbook-webhook"


# ------------------------------------------------------------------ end to end

def free_port() -> int:
    for _ in range(500):
        port = random.randint(31000, 31999)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 31000-31999")


def http(method: str, url: str, timeout: float = 5):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(what: str, check, timeout: float, interval: float = 0.1):
    return shared_wait_for(what, check, timeout, interval,
                           errors=(OSError, ValueError, KeyError))


class Webhook:
    """Alertmanager's webhook receiver: records every notification it is sent."""

    def __init__(self):
        self.notifications: list[tuple[float, dict]] = []
        self.cond = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook.cond:
                    hook.notifications.append((time.monotonic(), json.loads(body)))
                    hook.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_alert(self, alertname: str, instance: str, since: float, timeout: float) -> tuple[float, dict]:
        """The first firing alert with that name and instance received after ``since``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, note in self.notifications:
                    if t < since:
                        continue
                    for alert in note.get("alerts", []):
                        labels = alert.get("labels", {})
                        if (alert.get("status") == "firing" and labels.get("alertname") == alertname
                                and labels.get("instance") == instance):
                            return t, alert
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [(a["labels"].get("alertname"), a["labels"].get("instance"), a.get("status"))
                           for _, n in self.notifications for a in n.get("alerts", [])]
                    pytest.fail(f"no firing {alertname} for {instance} within {timeout} s; "
                                f"webhook got {got}")
                self.cond.wait(left)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def start_process(args: list[str], log: Path, ready_url: str, what: str) -> subprocess.Popen:
    fh = open(log, "wb")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                            start_new_session=True)
    fh.close()

    def ready():
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}: {log.read_text()[-3000:]}")
        return http("GET", ready_url, timeout=1)[0] == 200

    try:
        wait_for(f"{what} to be ready", ready, timeout=30)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a process this test started, by its pid."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def derived_configs(tmp: Path, app_port: int, am_port: int, hook_port: int) -> dict[str, Path]:
    """Test configs from .metrics: same rules/route/receiver, test ports, 1 s timings."""
    rules = load(RULES_YML)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "1s"
    rules_path = tmp / "alert_rules.yml"
    rules_path.write_text(yaml.safe_dump(rules, sort_keys=False))

    prom = load(PROMETHEUS_YML)
    prom["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    app_job = next(j for j in prom["scrape_configs"] if j["job_name"] == "app")
    app_job["static_configs"] = [{"targets": [f"127.0.0.1:{app_port}"]}]
    prom["scrape_configs"] = [app_job]
    prom["rule_files"] = [str(rules_path)]
    prom["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{am_port}"]}]
    prom_path = tmp / "prometheus.yml"
    prom_path.write_text(yaml.safe_dump(prom, sort_keys=False))

    am = load(ALERTMANAGER_YML)
    am["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    hooks = [w for r in am["receivers"] for w in r.get("webhook_configs", [])]
    assert len(hooks) == 1
    hooks[0]["url"] = f"http://127.0.0.1:{hook_port}/alerts"
    am_path = tmp / "alertmanager.yml"
    am_path.write_text(yaml.safe_dump(am, sort_keys=False))
    return {"rules": rules_path, "prometheus": prom_path, "alertmanager": am_path}


@pytest.fixture(scope="module")
def stack(infra, docker_client, tmp_path_factory, request):
    """The demo app, Prometheus and Alertmanager on loopback, and a webhook receiver."""
    for name in ("prometheus", "prometheus-alertmanager", "promtool"):
        tool(name)
    build = subprocess.run(["bash", str(BUILD_SH)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    if build.returncode != 0:
        pytest.fail(f"demo/build.sh failed:\n{build.stderr[-4000:]}", pytrace=False)
    tmp = tmp_path_factory.mktemp("monitoring")
    app_port, prom_port, am_port = free_port(), free_port(), free_port()
    hook = Webhook()
    procs: list[subprocess.Popen] = []
    app = None
    try:
        cfg = derived_configs(tmp, app_port, am_port, hook.port)
        run_tool("promtool", "check", "config", str(cfg["prometheus"]))
        run_tool("amtool", "check-config", str(cfg["alertmanager"]))
        app = docker_client.containers.run(
            APP_IMAGE, name=f"rbt-mon-app-{uuid.uuid4().hex[:8]}", detach=True, network_mode="host",
            environment={"APP_PORT": str(app_port), "REDIS_ADDR": f"127.0.0.1:{free_port()}"},
            labels={"runbook-test": "1", "runbook-test.test": request.node.nodeid[-200:]})
        procs.append(start_process(
            [tool("prometheus-alertmanager"), f"--config.file={cfg['alertmanager']}",
             f"--storage.path={tmp / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
             "--cluster.listen-address=", "--log.level=warn"],
            tmp / "alertmanager.log", f"http://127.0.0.1:{am_port}/-/ready", "alertmanager"))
        procs.append(start_process(
            [tool("prometheus"), f"--config.file={cfg['prometheus']}",
             f"--storage.tsdb.path={tmp / 'prom-data'}", f"--web.listen-address=127.0.0.1:{prom_port}",
             "--log.level=warn"],
            tmp / "prometheus.log", f"http://127.0.0.1:{prom_port}/-/ready", "prometheus"))
        yield {"app": app, "app_port": app_port, "instance": f"127.0.0.1:{app_port}",
               "prom": f"http://127.0.0.1:{prom_port}", "hook": hook, "tmp": tmp}
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        hook.close()
        if app is not None:
            try:
                app.remove(force=True)
            except docker.errors.NotFound:
                pass


def query(prom: str, expr: str) -> list[dict]:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = http("GET", url)
    data = json.loads(body)
    assert status == 200 and data["status"] == "success", body
    return data["data"]["result"]


def wait_app_up(stack) -> None:
    expr = f'up{{job="app", instance="{stack["instance"]}"}} == 1'
    wait_for("Prometheus to scrape the app", lambda: query(stack["prom"], expr), timeout=30, interval=0.2)


def test_high_error_rate_reaches_the_webhook(stack):
    base = f"http://127.0.0.1:{stack['app_port']}"
    wait_for("the app", lambda: http("GET", base + "/")[0] == 200, timeout=15)
    wait_app_up(stack)
    assert http("GET", base + "/fail?rate=1")[0] == 200
    t0 = time.monotonic()
    stop = threading.Event()

    def traffic():                      # user requests, all failing now
        while not stop.is_set():
            try:
                http("GET", base + "/items", timeout=2)
            except OSError:
                pass
            stop.wait(0.05)

    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    try:
        at, alert = stack["hook"].wait_alert("HighErrorRate", stack["instance"], t0, ALERT_TIMEOUT)
    finally:
        stop.set()
        t.join(5)
        http("GET", base + "/fail?rate=0")
    print(f"HighErrorRate reached the webhook {at - t0:.1f} s after errors started")
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["job"] == "app"
    assert alert["annotations"]["runbook"] == "playbooks/high-error-rate.yml"
    assert "100%" in alert["annotations"]["description"]


def test_api_down_reaches_the_webhook(stack):
    app = stack["app"]
    app.reload()
    if app.status != "running":
        app.start()
    wait_app_up(stack)
    # no ApiDown for this instance before the app stops
    assert not query(stack["prom"], f'ALERTS{{alertname="ApiDown", instance="{stack["instance"]}"}}')
    t0 = time.monotonic()
    app.stop(timeout=5)
    at, alert = stack["hook"].wait_alert("ApiDown", stack["instance"], t0, ALERT_TIMEOUT)
    print(f"ApiDown reached the webhook {at - t0:.1f} s after the app stopped")
    assert alert["labels"] == {"alertname": "ApiDown", "severity": "critical", "job": "app",
                               "instance": stack["instance"], "environment": "demo"}
    assert alert["annotations"]["runbook"] == "playbooks/api-down.yml"
    assert alert["annotations"]["summary"] == f"API down on {stack['instance']}"
