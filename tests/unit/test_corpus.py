"""The corpus of broken runbooks and inventories: every mistake, its exact message.

Each file in ``tests/data/corpus/runbooks/`` (and ``inventories/``) starts with
comment lines naming every problem ``runbook check`` must report for it::

    # what: a tab used for indentation            (free text, ignored)
    # xfail: the hint is missing with libyaml     (optional: a known bug, see the reason)
    # args: -i ../inventories/_good.yml -e n=3    (optional: extra CLI arguments)
    # expect: 5:1: error: YAML syntax error: ...  ([FILE:]LINE:COL:, or no position)
    # hint: YAML does not allow tabs ...          (optional: the hint of the line above)
    # expect: none                                (instead: no problem at all, for the
                                                   checks that must not cry wolf)

The reported problems must equal the expected ones exactly (as a multiset of
position, severity and message; hints where given).  ``{dir}`` in an expectation
stands for the case file's folder, ``\\n`` for a line break.  Files whose names
start with ``_`` are helpers (included files, a valid inventory), not cases.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.checker import check_runbook
from engine.errors import LoadError
from engine.loader import load_runbook

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
RUNBOOK_DIR = CORPUS / "runbooks"
INVENTORY_DIR = CORPUS / "inventories"

_EXPECT = re.compile(r"^(?:(?:(?P<file>[^\s:]+):)?(?P<line>\d+):(?P<col>\d+): )?"
                     r"(?P<severity>error|warning): (?P<message>.*)$", re.S)


@dataclass
class Case:
    path: Path
    expected: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    xfail: str | None = None
    expects_none: bool = False

    @property
    def has_errors(self) -> bool:
        return any(severity == "error" for _, severity, _, _ in self.expected)


def parse_case(path: Path) -> Case:
    """The header of a case file: expectations, extra arguments, xfail reason."""
    case = Case(path)
    folder = str(path.parent)
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.startswith("#"):
            break
        line = raw[1:].strip()
        word, _, rest = line.partition(":")
        rest = rest.strip().replace("{dir}", folder).replace("\\n", "\n")
        if word == "expect" and rest == "none":
            case.expects_none = True
        elif word == "expect":
            match = _EXPECT.match(rest)
            assert match, f"{path.name}: cannot read expectation {raw!r}"
            pos = ""
            if match["line"]:
                pos = f"{match['file'] + ':' if match['file'] else ''}{match['line']}:{match['col']}"
            case.expected.append((pos, match["severity"], match["message"], None))
        elif word == "hint":
            assert case.expected, f"{path.name}: '# hint:' before any '# expect:'"
            pos, severity, message, _ = case.expected[-1]
            case.expected[-1] = (pos, severity, message, rest)
        elif word == "args":
            case.args = shlex.split(rest)
        elif word == "xfail":
            case.xfail = rest
    return case


def _cases(folder: Path, pattern: str) -> list[Case]:
    return [parse_case(p) for p in sorted(folder.glob(pattern))
            if p.is_file() and not p.name.startswith("_")]


RUNBOOK_CASES = _cases(RUNBOOK_DIR, "*.yml")
INVENTORY_CASES = _cases(INVENTORY_DIR, "*")


def _params(cases: list[Case], *, only_plain: bool = False, xfail: bool = True) -> list[object]:
    out = []
    for case in cases:
        if only_plain and case.args:
            continue
        marks = [pytest.mark.xfail(reason=case.xfail, strict=False)] if case.xfail and xfail \
            else []
        out.append(pytest.param(case, id=case.path.name, marks=marks))
    return out


# ---------------------------------------------------------------- comparing
def _position(case_path: Path, path: str | None, line: int | None, col: int | None) -> str:
    if line is None:
        return ""
    same = path is None or os.path.realpath(path) == os.path.realpath(case_path)
    prefix = "" if same else os.path.relpath(path, case_path.parent) + ":"
    return f"{prefix}{line}:{col}"


def _as_lines(problems: list[tuple[str, str, str, str | None]], hinted: set[tuple[str, str, str]]
              ) -> list[str]:
    out = []
    for pos, severity, message, hint in problems:
        text = f"{pos + ': ' if pos else ''}{severity}: {message}"
        if (pos, severity, message) in hinted:
            text += f"\n    hint: {hint}"
        out.append(text)
    return sorted(out)


def assert_problems(case: Case, actual: list[tuple[str, str, str, str | None]]) -> None:
    hinted = {(p, s, m) for p, s, m, h in case.expected if h is not None}
    assert _as_lines(actual, hinted) == _as_lines(case.expected, hinted)


def _from_errors(case: Case, problems: list[LoadError]) -> list[tuple[str, str, str, str | None]]:
    return [(_position(case.path, p.loc.path if p.loc else None, p.loc.line if p.loc else None,
                       p.loc.col if p.loc else None), p.severity, p.message, p.hint)
            for p in problems]


def _from_json(case: Case, problems: list[dict]) -> list[tuple[str, str, str, str | None]]:
    return [(_position(case.path, p["path"], p["line"], p["col"]), p["severity"], p["message"],
             p["hint"]) for p in problems]


# ---------------------------------------------------------------- the CLI
@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(argv: list[str], cwd: Path, tmp_path: Path) -> CliResult:
    """``runbook ARGV`` in-process, the way the console script runs it (``engine.cli.main``)."""
    from engine.cli import main
    runner = CliRunner()
    env = {"NO_COLOR": "1", "XDG_STATE_HOME": str(tmp_path / "state"),
           "RUNBOOK_INVENTORY": None}
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with runner.isolation(env=env) as (out, err, _):
            code = main(argv)
            sys.stdout.flush()
            sys.stderr.flush()
            stdout = out.getvalue().decode("utf-8", "replace")
            stderr = err.getvalue().decode("utf-8", "replace")
    finally:
        os.chdir(old)
    return CliResult(int(code or 0), stdout, stderr)


def _check_json(case: Case, argv: list[str], tmp_path: Path) -> list[tuple[str, str, str,
                                                                          str | None]]:
    result = run_cli(["check", "--output", "json", *argv], case.path.parent, tmp_path)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, \
        result.stderr
    report = json.loads(result.stdout)
    assert result.exit_code == (2 if case.has_errors else 0), result.stdout
    assert report["ok"] is (not case.has_errors)
    return _from_json(case, report["problems"])


# ---------------------------------------------------------------- runbooks
def test_corpus_is_big_enough() -> None:
    assert len(RUNBOOK_CASES) >= 60
    assert len(INVENTORY_CASES) >= 8
    unclear = [c.path.name for c in RUNBOOK_CASES + INVENTORY_CASES
               if bool(c.expected) == c.expects_none]
    assert not unclear, f"cases without '# expect:' lines (or with 'none' and others): {unclear}"


@pytest.mark.parametrize("case", _params(RUNBOOK_CASES))
def test_runbook_case(case: Case, tmp_path: Path) -> None:
    """Loader + checker report exactly the expected problems (the CLI for '# args:' cases)."""
    if case.args:
        actual = _check_json(case, [*case.args, str(case.path)], tmp_path)
        assert_problems(case, actual)
        return
    loaded = load_runbook(str(case.path), raise_errors=False)
    problems = list(loaded.problems)
    if loaded.runbook is not None and not loaded.errors:
        problems.extend(check_runbook(loaded, inventory=None))
    assert_problems(case, _from_errors(case, problems))


@pytest.mark.parametrize("case", _params(RUNBOOK_CASES, only_plain=True))
def test_runbook_case_cli(case: Case, tmp_path: Path) -> None:
    """``runbook check --output json`` reports the same problems and exits 2 on errors."""
    actual = _check_json(case, [str(case.path)], tmp_path)
    assert_problems(case, actual)


@pytest.mark.parametrize("case", _params(RUNBOOK_CASES, xfail=False))
def test_runbook_case_text_output(case: Case, tmp_path: Path) -> None:
    """Text output: the exit code says whether there were errors; never a traceback."""
    result = run_cli(["check", *case.args, str(case.path)], case.path.parent, tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert "internal error" not in result.stderr, result.stderr
    if case.xfail:   # a known bug: the messages (even the verdict) may differ, never a crash
        assert result.exit_code in (0, 2), result.stderr
        return
    assert result.exit_code == (2 if case.has_errors else 0), result.stderr
    for pos, severity, message, _ in case.expected:
        if "\n" not in message:
            assert f"{severity}: {message}" in result.stderr


# ---------------------------------------------------------------- inventories
@pytest.mark.parametrize("case", _params(INVENTORY_CASES))
def test_inventory_case(case: Case, tmp_path: Path) -> None:
    """``runbook check -i FILE --output json`` reports exactly the expected problems."""
    actual = _check_json(case, ["-i", str(case.path), *case.args], tmp_path)
    assert_problems(case, actual)


# ---------------------------------------------------------------- the header parser
def test_parse_case_reads_every_kind_of_line(tmp_path: Path) -> None:
    path = tmp_path / "x.yml"
    path.write_text("# what: demo\n# xfail: known bug\n# args: -e 'a=b c'\n"
                    "# expect: 3:5: error: one\n# hint: did you mean {dir}?\n"
                    "# expect: other.yml:1:2: warning: two\n# expect: error: three\\nlines\n"
                    "name: x\n# expect: 9:9: error: not in the header\n")
    case = parse_case(path)
    assert case.xfail == "known bug"
    assert case.args == ["-e", "a=b c"]
    assert case.expected == [("3:5", "error", "one", f"did you mean {tmp_path}?"),
                             ("other.yml:1:2", "warning", "two", None),
                             ("", "error", "three\nlines", None)]
    assert case.has_errors
