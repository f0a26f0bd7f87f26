"""End-to-end tests of the shipped runbooks (runbooks/*.yml) against the real demo stack.

Every test here runs the real ``runbook`` CLI in a subprocess (tests/e2e/clitools.py:
``python -m engine.cli ... --output json``, a private journal per test) against a demo
stack brought up by ``demo/stack.sh`` on TEST names and ports, so that a stack a
developer runs (demo-*, 18080...) is never touched:

- names ``rbt-<module>-<hex>-app|cache|worker-N``, volumes ``<prefix>-data`` and
  ``<prefix>-cache-data``; ports picked free in 32000-32999 (the integration tests use
  31000-31999); every container labelled ``runbook-test=1`` and
  ``runbook-test.suite=e2e_demo`` (DEMO_LABELS), so a crashed run is cleaned up by label;
- an inventory written from inventory/local.yml with the same variables set to the
  test values (``DemoStack.inventory``), so the runbooks run exactly as shipped.

One stack per test module (``stack`` fixture), torn down after it (containers, helper
containers the runbooks start, volumes). Tests must leave the stack healthy and at the
state the module expects (documented per module).

Like tests/integration, every test gets the ``integration`` marker and needs the real
infrastructure (``infra``): with CI set (or RUNBOOK_REQUIRE_INFRA=1) a missing dockerd
stops the session with exit 3, never a skip; elsewhere too, unless RUNBOOK_SKIP_INFRA=1.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.e2e.clitools import Cli, Result  # noqa: E402
from tests.infra.fixtures import free_ports as shared_free_ports  # noqa: E402
from tests.infra.fixtures import wait_for as shared_wait_for  # noqa: E402
from tests.infra.fixtures import load_or_fail, mark_integration  # noqa: E402
from tests.infra.infra import Infra  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNBOOKS = ROOT / "runbooks"
STACK_SH = ROOT / "demo" / "stack.sh"
BUILD_SH = ROOT / "demo" / "build.sh"
LOCAL_INVENTORY = ROOT / "inventory" / "local.yml"
SUITE_LABEL = "runbook-test.suite=e2e_demo"
APP_IMAGE = "runbook-demo/app"


# ------------------------------------------------------------------ marker + infra


def pytest_collection_modifyitems(config, items):
    mark_integration(items, HERE)


@pytest.fixture(scope="session")
def infra() -> Infra:
    """The real test infrastructure (dockerd...), as tests/integration/conftest.py."""
    return load_or_fail()


@pytest.fixture(autouse=True)
def _needs_infra(infra):
    """Every test here needs the infrastructure, whatever fixtures it asks for."""


@pytest.fixture(scope="session")
def docker_client(infra):
    return infra.docker_client()


@pytest.fixture(scope="session")
def demo_images(infra) -> None:
    """Every demo image, built or found in the cache (demo/build.sh: ~0.3 s when warm)."""
    proc = subprocess.run(["bash", str(BUILD_SH), "--quiet"], capture_output=True, text=True,
                          timeout=900, cwd=ROOT)
    assert proc.returncode == 0, f"demo/build.sh failed:\n{proc.stdout}\n{proc.stderr}"


# ------------------------------------------------------------------ helpers

def free_ports(count: int, low: int = 32000, high: int = 32999) -> int:
    """A port p such that p .. p+count-1 are all free on loopback."""
    return shared_free_ports(count, low, high)


def http(method: str, url: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    """(status, parsed JSON or text) without raising for 4xx/5xx."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_for(what: str, check, timeout: float = 30, interval: float = 0.2):
    return shared_wait_for(what, check, timeout, interval)


@dataclass
class ProbeLoop:
    """GET url every ``interval`` seconds in a thread, recording what each request got."""

    url: str
    interval: float = 0.05
    results: list[tuple[float, Any, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=2) as resp:
                    self.results.append((t, resp.status, json.loads(resp.read()).get("version")))
            except urllib.error.HTTPError as exc:
                self.results.append((t, exc.code, None))
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                self.results.append((t, type(reason).__name__, None))
            self._stop.wait(self.interval)

    def __enter__(self) -> "ProbeLoop":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def failed(self) -> list[tuple[float, Any, Any]]:
        """Requests that got no 2xx answer (refused, reset, timed out, 5xx)."""
        return [r for r in self.results if not (isinstance(r[1], int) and r[1] < 300)]

    def versions(self) -> Counter:
        return Counter(v for _, s, v in self.results if isinstance(s, int) and s < 300)

    def outage_seconds(self) -> float:
        """Sum of the spans of consecutive failed requests (a rough downtime)."""
        total, start, prev = 0.0, None, None
        for t, status, _ in self.results:
            bad = not (isinstance(status, int) and status < 300)
            if bad and start is None:
                start = t
            if not bad and start is not None:
                total += t - start
                start = None
            prev = t
        if start is not None and prev is not None:
            total += prev - start
        return total


class DemoStack:
    """One demo stack on test names and ports, its inventory, and a CLI to run runbooks."""

    def __init__(self, docker, folder: Path, name: str) -> None:
        self.docker = docker
        self.folder = folder
        self.prefix = f"rbt-{name}-{uuid.uuid4().hex[:4]}"
        base = free_ports(13)       # app, canary, redis, then workers base+1..base+9
        self.app_port, self.canary_port, self.redis_port = base, base + 1, base + 2
        self.worker_base = base + 3
        self.backup_dir = folder / "backups"
        self.baseline_dir = folder / "baselines"
        self.app = f"{self.prefix}-app"
        self.cache = f"{self.prefix}-cache"
        self.worker_prefix = f"{self.prefix}-worker"
        self.data_volume = f"{self.prefix}-data"
        self.cache_volume = f"{self.prefix}-cache-data"
        self.app_url = f"http://127.0.0.1:{self.app_port}"
        self.inventory = self.write_inventory(folder / "inventory.yml")
        self._runs = 0

    # ---- set-up
    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(DEMO_PREFIX=self.prefix, DEMO_APP_PORT=str(self.app_port),
                   DEMO_REDIS_PORT=str(self.redis_port),
                   DEMO_WORKER_BASE_PORT=str(self.worker_base), DEMO_WORKERS="1",
                   DEMO_LABELS=f"runbook-test=1 {SUITE_LABEL}", DEMO_WAIT_SECONDS="60")
        return env

    def write_inventory(self, path: Path) -> Path:
        """inventory/local.yml with every service variable set to this stack's values."""
        data = yaml.safe_load(LOCAL_INVENTORY.read_text())
        v = data["all"]["vars"]
        p, app, redis, wbase = self.prefix, self.app_port, self.redis_port, self.worker_base
        labels = {"runbook-test": "1", "runbook-test.suite": "e2e_demo"}
        v.update(
            service=p, app_container=self.app, app_port=app, app_url=self.app_url,
            app_data_volume=self.data_volume, cache_container=self.cache, cache_port=redis,
            cache_data_volume=self.cache_volume, worker_prefix=self.worker_prefix,
            worker_base_port=wbase, backup_dir=str(self.backup_dir),
            stack_label=f"runbook-demo.stack={p}",
            app_env={**v["app_env"], "APP_PORT": str(app), "REDIS_ADDR": f"127.0.0.1:{redis}"},
            app_volumes=[f"{self.data_volume}:/data"],
            app_labels={**v["app_labels"], "runbook-demo.stack": p,
                        "runbook-demo.port": str(app), **labels},
            app_canary_port=self.canary_port,
            app_canary_env={"APP_PORT": str(self.canary_port)},
            worker_env={**v["worker_env"], "REDIS_ADDR": f"127.0.0.1:{redis}",
                        "WORKER_BASE_PORT": str(wbase),
                        "WORKER_ID": f"{self.worker_prefix}-{{replica}}"},
            worker_volumes=[f"{self.data_volume}:/data"],
            worker_labels={**v["worker_labels"], "runbook-demo.stack": p, **labels},
        )
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def stack_sh(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(STACK_SH), *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout, cwd=ROOT)

    def up(self) -> None:
        proc = self.stack_sh("up", "--no-build")
        assert proc.returncode == 0, f"stack.sh up failed:\n{proc.stdout}\n{proc.stderr}"

    def containers(self, all: bool = True) -> list:
        return self.docker.containers.list(
            all=all, filters={"label": [f"runbook-demo.stack={self.prefix}"]})

    def down(self) -> None:
        for c in self.docker.containers.list(all=True, filters={"name": self.prefix}):
            if c.name.startswith(self.prefix):
                c.remove(force=True)
        for c in self.containers():
            c.remove(force=True)
        for name in (self.data_volume, self.cache_volume):
            try:
                self.docker.volumes.get(name).remove(force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass

    # ---- running runbooks
    def run(self, runbook: str, *args: str, timeout: float = 120) -> Result:
        """``runbook run runbooks/<runbook>.yml -i <test inventory> ARGS -o json``."""
        self._runs += 1
        folder = self.folder / f"run-{self._runs:02d}-{runbook}"
        folder.mkdir()
        cli = Cli(folder)
        return cli("run", str(RUNBOOKS / f"{runbook}.yml"), "-i", str(self.inventory),
                   *args, "-o", "json", timeout=timeout)

    # ---- looking at the stack
    def container(self, name: str):
        return self.docker.containers.get(name)

    def worker_names(self) -> list[str]:
        names = [c.name for c in self.docker.containers.list(
            all=True, filters={"name": self.worker_prefix})]
        return sorted(n for n in names if n.startswith(self.worker_prefix + "-")
                      and n[len(self.worker_prefix) + 1:].isdigit())

    def health(self, name: str) -> str:
        c = self.container(name)
        state = c.attrs["State"]
        return (state.get("Health") or {}).get("Status") or state.get("Status")

    def wait_healthy(self, *names: str, timeout: float = 60) -> None:
        names = names or tuple([self.cache, self.app, *self.worker_names()])
        wait_for(f"{', '.join(names)} healthy",
                 lambda: all(self.health(n) == "healthy" for n in names), timeout)

    def image_of(self, name: str) -> str:
        return self.container(name).attrs["Config"]["Image"]

    def version(self) -> Any:
        status, body = http("GET", self.app_url + "/")
        assert status == 200, body
        return body["version"]

    def items(self) -> list[str]:
        status, body = http("GET", self.app_url + "/items")
        assert status == 200, body
        return body["items"]

    def post_item(self, item: dict) -> None:
        status, body = http("POST", self.app_url + "/items", item)
        assert status == 201, body

    def delete_item(self, item_id: str) -> None:
        status, body = http("DELETE", f"{self.app_url}/items/{item_id}")
        assert status == 200, body

    def redis(self, *args: str) -> str:
        out = self.container(self.cache).exec_run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.redis_port), *args])
        assert out.exit_code == 0, out.output
        return out.output.decode().strip()

    def data_digest(self) -> dict[str, str]:
        """sha256 of every file of the app's data volume (the app's health probes aside),
        read through a throwaway container (network none) like the backup does."""
        out = self.docker.containers.run(
            "runbook-demo/cache:1", ["sh", "-c",
                                     "cd /v && find . -type f ! -name '.health-*' -print0 "
                                     "| LC_ALL=C sort -z | xargs -0 -r sha256sum"],
            volumes={self.data_volume: {"bind": "/v", "mode": "ro"}}, network_mode="none",
            remove=True, labels={"runbook-test": "1", "runbook-test.suite": "e2e_demo"})
        lines = out.decode().splitlines()
        return {line[66:]: line[:64] for line in lines}

    def cache_dump_digest(self) -> str:
        out = self.docker.containers.run(
            "runbook-demo/cache:1", ["sha256sum", "/v/dump.rdb"],
            volumes={self.cache_volume: {"bind": "/v", "mode": "ro"}}, network_mode="none",
            remove=True, labels={"runbook-test": "1", "runbook-test.suite": "e2e_demo"})
        return out.decode().split()[0]

    def state_digest(self) -> dict[str, Any]:
        """What a dry run must not change: containers (id, image, running, start time),
        image ids of the demo repo, the data volume and the backup/baseline folders."""
        containers = {c.name: (c.id, c.attrs["Config"]["Image"], c.attrs["State"]["Running"],
                               c.attrs["State"]["StartedAt"])
                      for c in self.docker.containers.list(all=True, filters={"name": self.prefix})}
        images = sorted((tuple(i.tags), i.id) for i in self.docker.images.list(APP_IMAGE))
        files = {}
        for folder in (self.backup_dir, self.baseline_dir):
            if folder.exists():
                for f in sorted(folder.rglob("*")):
                    if f.is_file():
                        files[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
        return {"containers": containers, "images": images, "data": self.data_digest(),
                "files": files}


@pytest.fixture(scope="module")
def stack(request, docker_client, demo_images, tmp_path_factory) -> Iterator[DemoStack]:
    """A demo stack (cache, app:1, one worker) for the whole module, removed after it."""
    name = request.module.__name__.rsplit(".", 1)[-1].replace("test_", "")[:10].replace("_", "")
    s = DemoStack(docker_client, tmp_path_factory.mktemp(f"demo-{name}"), name)
    try:
        s.up()
        yield s
    finally:
        s.down()


def step_ends(result: Result, step: str, phase: str | None = None) -> list[dict[str, Any]]:
    return [e for e in result.of("step_end", step=step)
            if phase is None or e["phase"] == phase]


def run_end(result: Result) -> dict[str, Any]:
    ends = result.of("run_end")
    assert len(ends) == 1, result
    return ends[0]


def logs(result: Result) -> list[str]:
    return [e["msg"] for e in result.of("log")]
