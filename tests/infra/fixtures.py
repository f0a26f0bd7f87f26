"""What every conftest of a folder that needs the real infrastructure shares.

``load_or_fail()``: the Infra, or the session ends: with ``CI`` (or
``RUNBOOK_REQUIRE_INFRA=1``) a missing dockerd/sshd is a failure, never a skip;
elsewhere it fails too unless ``RUNBOOK_SKIP_INFRA=1`` asks to skip those tests.
``mark_integration(items, folder)``: the ``integration`` marker for a folder's tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import pytest

from tests.infra.infra import Infra, load_infra

__all__ = ["load_or_fail", "mark_integration", "infra_required", "EXIT_NO_INFRA", "free_ports",
           "wait_for"]

EXIT_NO_INFRA = 3


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def infra_required() -> bool:
    """CI (or RUNBOOK_REQUIRE_INFRA=1): a missing infrastructure is a failure, never a skip."""
    return _env_true("CI") or os.environ.get("RUNBOOK_REQUIRE_INFRA") == "1"


def load_or_fail() -> Infra:
    try:
        return load_infra()
    except Exception as exc:  # noqa: BLE001 - InfraError, docker or OS errors alike
        msg = f"integration test infrastructure (tests/infra/setup.sh) unavailable: {exc}"
        if infra_required():
            pytest.exit(msg + "\n[CI or RUNBOOK_REQUIRE_INFRA=1: integration tests must run, "
                        "not be skipped]", returncode=EXIT_NO_INFRA)
        if os.environ.get("RUNBOOK_SKIP_INFRA") == "1":
            pytest.skip(f"RUNBOOK_SKIP_INFRA=1 and {msg}")
        pytest.exit(msg + "\n[set RUNBOOK_SKIP_INFRA=1 to skip integration tests instead]",
                    returncode=EXIT_NO_INFRA)


def mark_integration(items: Iterable[Any], folder: Path) -> None:
    for item in items:
        path = Path(str(getattr(item, "path", item.fspath))).resolve()
        if folder in path.parents:
            item.add_marker(pytest.mark.integration)


def free_ports(count: int = 1, low: int = 31000, high: int = 31999) -> int:
    """A port p in [low, high] such that p .. p+count-1 are all free on loopback."""
    import random
    import socket
    for _ in range(500):
        base = random.randint(low, high - count)
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {count} free ports in {low}-{high}")


def wait_for(what: str, check: Any, timeout: float = 30, interval: float = 0.2,
             errors: tuple[type[BaseException], ...] = (OSError, ValueError)) -> Any:
    """Poll check() until it returns something truthy; fail with ``what`` after timeout.
    ``errors`` raised by check() count as "not yet" (not listening, half-written file)."""
    import time
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except errors as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
