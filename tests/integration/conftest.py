"""Fixtures for integration tests: the real test infrastructure of tests/infra.

Every test under tests/integration gets the ``integration`` marker and needs the
infrastructure (dockerd, test images, sshd fleet); the session fixture ``infra``
runs tests/infra/setup.sh when it is not there yet.

When it cannot be had:
- ``CI`` set (or ``RUNBOOK_REQUIRE_INFRA=1``): the session stops with exit code 3,
  never a skip;
- otherwise the session stops too, unless ``RUNBOOK_SKIP_INFRA=1``: then the
  integration tests are skipped, with the reason.

Fixtures: ``infra`` (Infra), ``docker_client``, ``ssh_targets`` (all fleet SshTargets),
``password_target`` (the password sshd, user rbtest), ``container`` (factory:
``container("busybox"|"debian", cmd=None, network="host"|"none", name=None,
labels=None, **run_kwargs)``; removed after the test), ``inventory`` (factory:
``inventory(n_ssh=2, containers=[...], **kw)`` -> path of a YAML inventory in
tmp_path), ``sshd_control`` (``.kill(port)``/``.start(port)``; whatever was
killed is started again after the test).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:           # `pytest` (not `python -m pytest`) from anywhere
    sys.path.insert(0, str(ROOT))

from tests.infra.fixtures import load_or_fail, mark_integration  # noqa: E402
from tests.infra.infra import Infra, SshTarget  # noqa: E402

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    mark_integration(items, HERE)


@pytest.fixture(scope="session")
def infra() -> Infra:
    return load_or_fail()


@pytest.fixture(autouse=True)
def _integration_needs_infra(infra):
    """Every integration test, whatever fixtures it asks for, needs the infrastructure."""


@pytest.fixture(scope="session")
def docker_client(infra):
    return infra.docker_client()


@pytest.fixture(scope="session")
def ssh_targets(infra) -> list[SshTarget]:
    return infra.ssh_targets()


@pytest.fixture(scope="session")
def password_target(infra) -> SshTarget:
    return infra.password_host


@pytest.fixture
def container(infra, request):
    """Factory: start a test container (host or no network), removed after the test."""
    import docker

    made = []

    def make(image: str = "busybox", cmd=None, network: str = "host", name: str | None = None,
             labels: dict | None = None, **kwargs):
        name = name or f"rbt-{image}-{uuid.uuid4().hex[:10]}"
        lab = {"runbook-test.test": request.node.nodeid[-200:], **(labels or {})}
        c = infra.run_container(image, name, cmd, network=network, labels=lab, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.remove(force=True)
        except docker.errors.NotFound:
            pass


@pytest.fixture
def inventory(infra, tmp_path):
    """Factory: write a YAML inventory (Infra.write_inventory) into tmp_path."""
    count = iter(range(1, 1000))

    def make(n_ssh: int = 1, containers=(), **kwargs) -> Path:
        return infra.write_inventory(tmp_path / f"inventory-{next(count)}.yml", n_ssh=n_ssh,
                                     containers=containers, **kwargs)

    return make


class SshdControl:
    def __init__(self, infra: Infra):
        self.infra = infra
        self.killed: set[int] = set()

    def kill(self, which, sessions: bool = True) -> int:
        t = self.infra.target(which)
        self.killed.add(t.port)
        return self.infra.kill_sshd(t.port, sessions=sessions)

    def start(self, which) -> int:
        return self.infra.start_sshd(which)

    def restore(self) -> None:
        for port in sorted(self.killed):
            self.infra.start_sshd(port)
        self.killed.clear()


@pytest.fixture
def sshd_control(infra):
    """Kill a target's sshd mid-test (``.kill(port)``); restored after the test."""
    ctl = SshdControl(infra)
    yield ctl
    ctl.restore()
