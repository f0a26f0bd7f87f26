"""docs/runbook-format.md stays true to the code.

- The actions reference (between the ``actions:begin``/``actions:end`` markers) is
  generated from the actions' ParamSpecs; regenerate it with
  ``python tests/unit/test_docs.py --write`` after changing an action.
- Every key the loader accepts, every filter, test and global of the templating
  environment is named in the document.
- Every ```yaml block whose first line is ``# check`` loads without a single
  problem (``# check: xfail REASON`` while a known bug breaks it); blocks starting
  with ``# file: NAME`` are written beside them first (for includes).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "runbook-format.md"
BEGIN, END = "<!-- actions:begin -->", "<!-- actions:end -->"

if str(ROOT) not in sys.path:   # when run as a script
    sys.path.insert(0, str(ROOT))

from engine.actions import action_names, get_action  # noqa: E402
from engine.actions.schema import ParamSpec  # noqa: E402


# ---------------------------------------------------------------- the generated table
def _type(spec: ParamSpec) -> str:
    words = []
    for kind in spec.types:
        if kind == "list" and spec.elements:
            words.append("list of " + spec.elements.replace("|", " or "))
        else:
            words.append(kind)
    return " or ".join(words)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _dry_run(action: type) -> str:
    """What --dry-run does with the action (from its capabilities)."""
    params = getattr(action, "params", {})
    if "check_mode_safe" in params:
        skip = "; with `creates`/`removes` says whether it would run" \
            if "creates" in params else ""
        return f"runs only with `check_mode_safe: true`{skip}; otherwise reported as not simulated"
    if "method" in params and action.supports_dry_run and not action.read_only:
        return "GET, HEAD and OPTIONS run as usual; other methods say what they would send"
    if action.read_only:
        return "changes nothing, runs as usual"
    if action.supports_dry_run:
        return "reads the target and says what it would change"
    return "cannot be simulated"


def _default(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def action_table() -> str:
    """The actions reference, as markdown, from the code."""
    out: list[str] = []
    for name in action_names():
        action = get_action(name)
        assert action is not None
        out.append(f"#### `{name}`")
        out.append("")
        out.append(f"{action.summary[:1].upper() + action.summary[1:]}.")
        facts = []
        if action.shorthand:
            facts.append(f"short form: `{name}: <{action.shorthand}>`")
        if getattr(action, "free_form", False):
            facts.append("takes any `name: value` pairs")
        facts.append("dry run: " + _dry_run(action))
        if action.idempotent:
            facts.append("idempotent")
        for group in action.exclusive:
            facts.append("at most one of " + ", ".join(f"`{k}`" for k in group))
        for group in action.one_of:
            facts.append("at least one of " + ", ".join(f"`{k}`" for k in group))
        out.append("")
        sentence = "; ".join(facts)
        out.append(sentence[:1].upper() + sentence[1:] + ".")
        if action.params:
            out.append("")
            out.append("| parameter | type | default | description |")
            out.append("|---|---|---|---|")
            for key, spec in action.params.items():
                label = f"`{key}`" + (" (required)" if spec.required else "")
                notes = [spec.doc] if spec.doc else []
                if spec.choices:
                    notes.append("one of " + ", ".join(f"`{c}`" for c in spec.choices))
                if spec.aliases:
                    notes.append("also written " + ", ".join(f"`{a}`" for a in spec.aliases))
                if spec.fields:
                    notes.append("keys: " + ", ".join(f"`{k}`" for k in spec.fields))
                out.append(f"| {label} | {_cell(_type(spec))} | {_cell(_default(spec.default))} | "
                           f"{_cell('; '.join(notes))} |")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def _documented_table(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n") + "\n"


def write_table() -> None:
    text = _doc_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + action_table() + text[end:], encoding="utf-8")


def test_the_actions_reference_matches_the_code() -> None:
    assert _documented_table(_doc_text()) == action_table(), \
        "the actions in docs/runbook-format.md are stale: run python tests/unit/test_docs.py --write"


# ---------------------------------------------------------------- every word is there
def _named(word: str, text: str) -> bool:
    return any(f"`{word}{end}" in text for end in ("`", ":", "(")) or f"| {word} |" in text


def test_every_key_is_documented() -> None:
    from engine.loader import (BLOCK_KEYS, INCLUDE_KEYS, PARAM_KEYS, RUNBOOK_KEYS,
                               STEP_KEYS)
    from engine.model import ON_FAILURE_MODES, PARAM_TYPES
    text = _doc_text()
    words = {*RUNBOOK_KEYS, *STEP_KEYS, *BLOCK_KEYS, *INCLUDE_KEYS, *PARAM_KEYS,
             *ON_FAILURE_MODES, *PARAM_TYPES, "that", "msg"}
    missing = sorted(w for w in words if not _named(w, text))
    assert not missing, f"not documented: {missing}"


def test_every_filter_test_and_global_is_documented() -> None:
    from engine.templating import FILTERS, GLOBALS, TESTS
    text = _doc_text()
    missing = sorted(w for w in (*FILTERS, *TESTS, *GLOBALS) if not _named(w, text))
    assert not missing, f"not documented: {missing}"


def test_every_builtin_variable_is_documented() -> None:
    from engine.checker import BUILTIN_NAMES
    text = _doc_text()
    skip = {"true", "false", "none", "True", "False", "None", "omit"}
    missing = sorted(w for w in BUILTIN_NAMES - skip if not _named(w, text))
    assert not missing, f"not documented: {missing}"


# ---------------------------------------------------------------- examples
_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.M | re.S)


def _examples() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if not DOC.exists():
        return out
    for match in _BLOCK.finditer(_doc_text()):
        body = match.group(1)
        first = body.split("\n", 1)[0].strip()
        line = _doc_text()[:match.start()].count("\n") + 1
        if first.startswith(("# check", "# file:")):
            out.append((f"line-{line}", body))
    return out


def test_there_are_checked_examples() -> None:
    assert sum(1 for _, body in _examples() if body.startswith("# check")) >= 8


def _checked() -> list[object]:
    """``# check`` blocks; ``# check: xfail REASON`` marks an example a known bug breaks."""
    out = []
    for name, body in _examples():
        first = body.split("\n", 1)[0]
        if not first.startswith("# check"):
            continue
        reason = first.partition("xfail")[2].strip()
        marks = [pytest.mark.xfail(reason=reason, strict=False)] if reason else []
        out.append(pytest.param(name, body, id=name, marks=marks))
    return out


@pytest.mark.parametrize("name, body", _checked())
def test_example_passes_runbook_check(name: str, body: str, tmp_path: Path) -> None:
    from engine.checker import check_runbook
    from engine.loader import load_runbook
    for _, other in _examples():
        first = other.split("\n", 1)[0]
        if first.startswith("# file:"):
            (tmp_path / first.split(":", 1)[1].strip()).write_text(other, encoding="utf-8")
    path = tmp_path / f"{name}.yml"
    path.write_text(body, encoding="utf-8")
    loaded = load_runbook(str(path), raise_errors=False)
    problems = list(loaded.problems)
    if loaded.runbook is not None and not loaded.errors:
        problems += check_runbook(loaded, inventory=None)
    assert [str(p) for p in problems] == []


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        write_table()
        print(f"updated {DOC}")
    else:
        sys.stdout.write(action_table())
