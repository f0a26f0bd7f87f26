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

__all__ = ["load_or_fail", "mark_integration", "infra_required", "EXIT_NO_INFRA"]

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
