"""End-to-end fixtures, all working in the test's temporary folder:

- ``cli(...)`` runs the real CLI in a subprocess (``python -m engine.cli``);
- ``inproc(...)`` runs the same command line in this process (``engine.cli.main``,
  what the console script calls), for the many short cases where a new Python costs
  more than the run;
- ``inventory(["h1", "h2"])`` writes an inventory of local hosts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.clitools import Cli, Result, parse_events


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(tmp_path)
    yield runner


@pytest.fixture
def inproc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """``inproc("run", "rb.yml", ...)`` -> Result, through ``engine.cli.main``."""
    from engine.cli import main

    env = Cli(tmp_path).env

    def call(*args: str) -> Result:
        monkeypatch.chdir(tmp_path)
        for name in ("RUNBOOK_INVENTORY", "FORCE_COLOR"):
            monkeypatch.delenv(name, raising=False)
        for name in ("NO_COLOR", "RUNBOOK_PLAIN", "XDG_STATE_HOME", "RUNBOOK_STATE"):
            monkeypatch.setenv(name, env[name])
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err, parse_events(out) if "json" in args else [])
    return call


@pytest.fixture
def inventory(tmp_path: Path):
    """``inventory(["h1", "h2"])`` -> path of an inventory of local hosts."""
    def write(names: list[str], name: str = "inventory.yml") -> str:
        lines = ["all:", "  hosts:"] + [f"    {n}: {{connection: local}}" for n in names]
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        return str(path)
    return write
