"""The incident playbooks (playbooks/*.yml) end to end, against a real demo stack.

Every test here is an integration test (marker ``integration``): it needs dockerd and the
demo images. With ``CI`` set (or ``RUNBOOK_REQUIRE_INFRA=1``) a missing infrastructure
fails the session, never skips it; elsewhere the session stops too, unless
``RUNBOOK_SKIP_INFRA=1`` (then the tests are skipped, with the reason).

Fixtures:

- ``stack`` (one per test module): a demo stack started by ``demo/stack.sh`` on test
  ports in 32000-32999 (never the demo's own 16379/18080/181xx), named
  ``rbp-<random>-*``, its containers labelled ``runbook-test=1`` and
  ``runbook-test.playbooks=<prefix>``; removed by label (with its volumes) after the
  module. ``stack.inventory(folder)`` writes an inventory with the variables of
  inventory/local.yml, pointed at this stack.
- ``playbook``: runs ``runbook run playbooks/<name>.yml`` with that inventory in the
  test's folder (private journal, report_dir in the folder, stdin not a terminal) and
  parses the JSON events; ``playbook.report()`` reads the report file the run named.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from tests.e2e.clitools import Cli, Result
from tests.infra.fixtures import free_ports as shared_free_ports
from tests.infra.fixtures import load_or_fail, mark_integration, wait_for  # noqa: E402
from tests.infra.infra import Infra

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PLAYBOOKS = ROOT / "playbooks"
STACK_SH = ROOT / "demo" / "stack.sh"
BUILD_SH = ROOT / "demo" / "build.sh"
LOCAL_INVENTORY = ROOT / "inventory" / "local.yml"
PORTS = (32000, 32999)
STACK_LABEL = "runbook-test.playbooks"
#: the demo's own ports, as inventory/local.yml writes them -> the stack's attribute
DEMO_PORTS = {18080: "app_port", 16379: "redis_port", 18100: "worker_base", 18090: "canary_port"}


def pytest_collection_modifyitems(config, items):
    mark_integration(items, HERE)


# ------------------------------------------------------------------ infrastructure

@pytest.fixture(scope="session")
def infra() -> Infra:
    """dockerd and the test images (tests/infra/setup.sh); never a skip in CI."""
    return load_or_fail()


@pytest.fixture(autouse=True)
def _needs_infra(infra):
    """Every test of this folder needs the infrastructure, whatever else it asks for."""


@pytest.fixture(scope="session")
def demo_images(infra) -> None:
    """The demo images (demo/build.sh: cached by recipe, about 0.3 s when warm)."""
    env = {**os.environ, "RUNBOOK_TEST_DOCKER_HOST": infra.docker_host}
    proc = subprocess.run(["bash", str(BUILD_SH), "--quiet"], capture_output=True, text=True,
                          env=env, timeout=900, cwd=ROOT)
    if proc.returncode != 0:
        pytest.fail(f"demo/build.sh failed (exit {proc.returncode}):\n{proc.stdout}\n"
                    f"{proc.stderr[-4000:]}", pytrace=False)


# ------------------------------------------------------------------ helpers

def free_ports(count: int) -> int:
    """A port p in 32000-32999 such that p .. p+count-1 are all free on loopback."""
    return shared_free_ports(count, *PORTS)


def http(method: str, url: str, body: bytes | None = None,
         timeout: float = 10) -> tuple[int | None, dict[str, str], bytes]:
    """(status, headers, body); status None when nothing answers."""
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers or {}), exc.read()
    except (urllib.error.URLError, OSError):
        return None, {}, b""


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30,
               interval: float = 0.2) -> Any:
    """Poll check() until it is truthy; fail with ``what`` after timeout."""
    return wait_for(what, check, timeout, interval, errors=(OSError, ValueError, KeyError))


def metric(text: str, name: str) -> float | None:
    """The value of an unlabelled sample in Prometheus text, or None."""
    m = re.search(rf"(?m)^{re.escape(name)} (\S+)$", text)
    return float(m.group(1)) if m else None


# ------------------------------------------------------------------ the demo stack

@dataclass
class Stack:
    """One demo stack on test ports (demo/stack.sh), and what tests do to it."""

    infra: Infra
    prefix: str
    app_port: int
    redis_port: int
    canary_port: int
    worker_base: int
    labels: dict[str, str] = field(default_factory=dict)

    # ---- names and addresses
    @property
    def app(self) -> str:
        return f"{self.prefix}-app"

    @property
    def cache(self) -> str:
        return f"{self.prefix}-cache"

    def worker(self, n: int) -> str:
        return f"{self.prefix}-worker-{n}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def docker(self):
        return self.infra.docker_client()

    # ---- stack.sh
    def env(self, **extra: str) -> dict[str, str]:
        labels = " ".join(f"{k}={v}" for k, v in self.labels.items())
        env = {**os.environ, "RUNBOOK_TEST_DOCKER_HOST": self.infra.docker_host,
               "DEMO_PREFIX": self.prefix, "DEMO_APP_PORT": str(self.app_port),
               "DEMO_REDIS_PORT": str(self.redis_port),
               "DEMO_WORKER_BASE_PORT": str(self.worker_base), "DEMO_LABELS": labels,
               "DEMO_WAIT_SECONDS": "60"}
        env.pop("DEMO_DATA_TMPFS_MB", None)
        env.update(extra)
        return env

    def up(self, **extra: str) -> None:
        """Create what is missing (stack.sh up --no-build) and wait until it is healthy."""
        proc = subprocess.run(["bash", str(STACK_SH), "up", "--no-build"], capture_output=True,
                              text=True, env=self.env(**extra), timeout=120, cwd=ROOT)
        # `up` ends with `status`, whose exit code is 1 when a container made by a playbook
        # (docker.scale) lacks the runbook-demo.port label; what matters is our containers
        if proc.returncode != 0 and "healthy" not in proc.stdout:
            pytest.fail(f"demo/stack.sh up failed (exit {proc.returncode}):\n{proc.stdout}\n"
                        f"{proc.stderr[-3000:]}", pytrace=False)
        for name in (self.cache, self.app, self.worker(1)):
            self.wait_healthy(name)

    def replace_app(self, image: str = "runbook-demo/app:1", tmpfs_mb: int | None = None,
                    labels: dict[str, str] | None = None) -> None:
        """Remove the app container and let stack.sh create it again, as told."""
        self.docker.containers.get(self.app).remove(force=True)
        extra = {"DEMO_APP_IMAGE": image}
        if tmpfs_mb:
            extra["DEMO_DATA_TMPFS_MB"] = str(tmpfs_mb)
        if labels:
            all_labels = {**self.labels, **labels}
            extra["DEMO_LABELS"] = " ".join(f"{k}={v}" for k, v in all_labels.items())
        self.up(**extra)

    def remove(self) -> None:
        """Every container, volume and image of this stack (found by label)."""
        import docker

        client = self.docker
        mine = {"label": f"{STACK_LABEL}={self.prefix}"}
        for c in client.containers.list(all=True, filters=mine):
            try:
                c.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
        for volume in (f"{self.prefix}-data", f"{self.prefix}-cache-data"):
            try:
                client.volumes.get(volume).remove(force=True)
            except docker.errors.NotFound:
                pass
        for image in client.images.list(filters=mine):
            try:
                client.images.remove(image.id, force=True)
            except docker.errors.APIError:
                pass

    # ---- containers
    def inspect(self, name: str) -> dict[str, Any]:
        return self.docker.api.inspect_container(name)

    def health(self, name: str) -> str:
        state = self.inspect(name)["State"]
        return (state.get("Health") or {}).get("Status") or state["Status"]

    def wait_healthy(self, name: str, timeout: float = 60) -> None:
        wait_until(f"{name} to be healthy", lambda: self.health(name) == "healthy", timeout)

    def exec(self, name: str, *cmd: str) -> str:
        result = self.docker.containers.get(name).exec_run(list(cmd))
        assert result.exit_code == 0, (cmd, result.output.decode(errors="replace"))
        return result.output.decode(errors="replace")

    def redis(self, *args: str) -> str:
        return self.exec(self.cache, "redis-cli", "-p", str(self.redis_port), *args).strip()

    # ---- the app
    def get(self, path: str, timeout: float = 10):
        return http("GET", self.url + path, timeout=timeout)

    def post(self, path: str, body: bytes | None = None, timeout: float = 10):
        return http("POST", self.url + path, body, timeout=timeout)

    def metrics(self) -> str:
        status, _, body = self.get("/metrics")
        assert status == 200, status
        return body.decode()

    # ---- the inventory
    def inventory_data(self) -> dict[str, Any]:
        """inventory/local.yml with every demo name, port and label moved to this stack
        (variables another engineer adds there come along, moved the same way)."""
        data = yaml.safe_load(LOCAL_INVENTORY.read_text())
        ports = {str(k): str(getattr(self, v)) for k, v in DEMO_PORTS.items()}

        def move(value: Any) -> Any:
            if isinstance(value, dict):
                return {move(k): move(v) for k, v in value.items()}
            if isinstance(value, list):
                return [move(v) for v in value]
            if isinstance(value, bool):
                return value
            if isinstance(value, int):
                return int(ports.get(str(value), value))
            if isinstance(value, str):
                if value == "demo":
                    return self.prefix
                value = re.sub(r"(?<![\w./-])demo-", self.prefix + "-", value)
                value = re.sub(r"=demo$", "=" + self.prefix, value)
                for old, new in ports.items():
                    value = re.sub(rf"(?<!\d){old}(?!\d)", new, value)
                return value
            return value

        data = move(data)
        variables = data["all"]["vars"]
        # containers a playbook (re)creates keep the test labels: cleanup finds them
        for key in ("app_labels", "worker_labels"):
            if isinstance(variables.get(key), dict):
                variables[key] = {**variables[key], **self.labels}
        variables["backup_dir"] = f"/tmp/{self.prefix}-backups"
        expected = {"app_container": self.app, "cache_container": self.cache,
                    "app_url": self.url, "app_port": self.app_port,
                    "cache_port": self.redis_port, "worker_prefix": f"{self.prefix}-worker",
                    "worker_base_port": self.worker_base, "app_data_volume": f"{self.prefix}-data",
                    "stack_label": f"runbook-demo.stack={self.prefix}"}
        wrong = {k: variables.get(k) for k, v in expected.items() if variables.get(k) != v}
        assert not wrong, (f"inventory/local.yml changed shape: could not move {wrong} to "
                           f"the test stack")
        return data

    def inventory(self, folder: Path) -> Path:
        path = folder / "inventory.yml"
        path.write_text(yaml.safe_dump(self.inventory_data(), sort_keys=False))
        return path


@pytest.fixture(scope="module")
def stack(infra, demo_images) -> Iterator[Stack]:
    """A demo stack of its own for each test module, removed (by label) afterwards."""
    prefix = f"rbp-{uuid.uuid4().hex[:6]}"
    base = free_ports(20)          # app, cache, canary, then workers base+10+N
    s = Stack(infra=infra, prefix=prefix, app_port=base, redis_port=base + 1,
              canary_port=base + 2, worker_base=base + 10,
              labels={"runbook-test": "1", STACK_LABEL: prefix})
    try:
        s.up()
        yield s
    finally:
        s.remove()


# ------------------------------------------------------------------ running playbooks

@dataclass
class PlaybookRun:
    """A finished ``runbook run playbooks/<name>.yml`` and what it left."""

    name: str
    result: Result
    report_dir: Path

    @property
    def code(self) -> int:
        return self.result.code

    @property
    def end(self) -> dict[str, Any]:
        ends = self.result.of("run_end")
        assert ends, self.result
        return ends[0]

    def step(self, step_id: str) -> dict[str, Any]:
        """The step_end of a step (the last one, for steps run more than once)."""
        ends = [e for e in self.result.of("step_end") if e["step"] == step_id]
        assert ends, (f"step {step_id} did not run; steps: "
                      f"{[e['step'] for e in self.result.of('step_end')]}")
        return ends[-1]

    def status(self, step_id: str) -> str:
        return self.step(step_id)["status"]

    def logs(self) -> list[str]:
        return [e["msg"] for e in self.result.of("log")]

    @property
    def report_path(self) -> Path:
        run_id = self.result.of("run_start")[0]["run_id"]
        return self.report_dir / f"{self.name}-{run_id}.md"

    def report(self) -> str:
        assert self.report_path.exists(), (f"no report {self.report_path}; "
                                           f"{sorted(p.name for p in self.report_dir.glob('*'))}")
        return self.report_path.read_text()

    def facts(self) -> dict[str, Any]:
        """The JSON block at the end of the report."""
        match = re.search(r"## Facts \(JSON\)\s+```json\n(.*?)\n```", self.report(), re.S)
        assert match, self.report()
        return json.loads(match.group(1))


class PlaybookRunner:
    def __init__(self, folder: Path, stack: Stack) -> None:
        self.folder = folder
        self.stack = stack
        self.cli = Cli(folder)
        self.cli.env["DOCKER_HOST"] = stack.infra.docker_host
        self.inventory = stack.inventory(folder)
        self.report_dir = folder / "reports"

    def __call__(self, name: str, *args: str, yes: bool = False, dry_run: bool = False,
                 timeout: float = 180, **params: Any) -> PlaybookRun:
        argv = ["run", str(PLAYBOOKS / f"{name}.yml"), "-i", str(self.inventory), "-o", "json",
                "-e", f"report_dir={self.report_dir}"]
        for key, value in params.items():
            argv += ["-e", json.dumps({key: value})]
        if yes:
            argv.append("--yes")
        if dry_run:
            argv.append("--dry-run")
        argv += list(args)
        # input="" : standard input is a pipe, never a terminal (what a pager's script sees)
        result = self.cli(*argv, input="", timeout=timeout)
        return PlaybookRun(name, result, self.report_dir)


@pytest.fixture
def playbook(tmp_path: Path, stack: Stack) -> PlaybookRunner:
    return PlaybookRunner(tmp_path, stack)


# ------------------------------------------------------------------ shared assertions

def container_state(stack: Stack, name: str) -> dict[str, Any]:
    """What a remediation would change: id, image, start time, restart count, running."""
    info = stack.inspect(name)
    return {"id": info["Id"], "image": info["Config"]["Image"],
            "started": info["State"]["StartedAt"], "restarts": info["RestartCount"],
            "running": info["State"]["Running"]}


def assert_refused_at_confirm(run: PlaybookRun, confirm_step: str = "confirm") -> None:
    """A run without --yes and without a terminal: the diagnosis ran and was saved, the
    confirm step failed saying why, and no remediation step ran."""
    assert run.code == 1, run.result
    failures = run.end["failures"]
    assert [f["step"] for f in failures] == [confirm_step], run.result
    assert failures[0]["message"].startswith("confirmation needed: "), failures[0]
    report = run.report()
    assert "**not done**: confirmation needed" in report
    assert "--yes" in report


def assert_dry_run_changes_nothing(stack: Stack, playbook: PlaybookRunner,
                                   name: str) -> PlaybookRun:
    """--dry-run on the healthy stack: exit 0, no report written, no container touched."""
    names = [stack.app, stack.cache, stack.worker(1)]
    before = {n: container_state(stack, n) for n in names}
    run = playbook(name, dry_run=True)
    assert run.code == 0, run.result
    assert run.end["dry_run"] is True
    assert not run.report_dir.exists(), sorted(run.report_dir.rglob("*"))
    assert {n: container_state(stack, n) for n in names} == before
    assert not [e for e in run.result.of("step_end") if e["status"] == "failed"
                and not e.get("ignored")], run.result
    return run
