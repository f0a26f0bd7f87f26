"""docs/execution.md stays true to the code: every public event, every field of it,
every host counter, status and exit code is documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from engine import errors
from engine.executor import events

DOC = Path(__file__).resolve().parents[2] / "docs" / "execution.md"

PUBLIC_EVENTS = [cls for name in events.__all__
                 if isinstance(cls := getattr(events, name), type)
                 and issubclass(cls, events.Event) and cls is not events.Event
                 and not cls.internal]
COMMON = {"run_id", "ts"}


def section(kind: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^### `{kind}`\n(.*?)(?=^### |^## |\Z)", text, re.S | re.M)
    assert match, f"docs/execution.md has no section '### `{kind}`'"
    return match.group(1)


def test_the_public_events_are_the_documented_ones() -> None:
    kinds = {cls.kind for cls in PUBLIC_EVENTS}
    assert kinds == {"run_start", "batch_start", "step_start", "step_end", "retry",
                     "rollback_start", "rollback_step", "rollback_end", "log", "run_end"}


@pytest.mark.parametrize("cls", PUBLIC_EVENTS, ids=lambda cls: cls.kind)
def test_every_field_of_every_event_is_documented(cls: type) -> None:
    text = section(cls.kind)
    documented = set(re.findall(r"`(\w+)`", text))
    fields = set(cls.fields()) - COMMON
    assert fields - documented == set()


def test_every_host_counter_and_status_is_documented() -> None:
    text = section("run_end")
    for counter in (f.name for f in dataclasses.fields(events.HostStats)):
        assert f"`{counter}`" in text, counter
    for status in ("ok", "failed", "unreachable", "rolled_back", "rollback_failed",
                   "not_run", "interrupted"):
        assert f"`{status}`" in text, status


def test_every_exit_code_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("## Exit codes"):text.index("## Output")]
    codes = {int(c) for c in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert {errors.EXIT_OK, errors.EXIT_FAILED, errors.EXIT_USAGE, errors.EXIT_ROLLBACK_FAILED,
            errors.EXIT_CANNOT_START, errors.EXIT_INTERRUPTED} <= codes
