"""Fuzzing the loader: whatever the text, it reports problems and never crashes.

Two generators: random YAML documents built from the words a runbook uses (and
random ones), dumped with yaml.safe_dump; and random edits of a valid runbook's
text (deleted, inserted or swapped characters and lines, tabs).  For each,
``load_runbook`` returns or raises a UserError, ``check_runbook`` on what it
returns never raises, and every problem has a position and formats cleanly.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.actions import action_names
from engine.checker import check_runbook
from engine.cli.errors_out import format_problem
from engine.errors import UserError
from engine.inventory import Inventory
from engine.loader import (BLOCK_KEYS, INCLUDE_KEYS, PARAM_KEYS, RUNBOOK_KEYS, STEP_KEYS,
                           load_runbook)

HERE = Path(__file__).resolve().parent
FOLDER = HERE.parent / "data" / "corpus" / "runbooks"
PATH = str(FOLDER / "fuzz.yml")          # never written: the text is given directly

VALID = """\
name: deploy api
hosts: [localhost]
params:
  version: {type: str, required: true}
  replicas: {type: int, default: 2, choices: [1, 2, 4]}
vars:
  image: "api:{{ version }}"
serial: [1, "50%"]
timeout: 10m
preflight:
  - shell: df -h /
    check: result.rc == 0
steps:
  - name: pull
    shell: docker pull {{ image }}
    register: pulled
    retries: 2
    delay: 1s
    tags: [pull]
    rollback:
      - shell: docker rmi {{ image }}
  - id: swap
    when: pulled.changed
    vars: {old: blue}
    block:
      - command: [docker, stop, "{{ old }}"]
      - copy: {dest: /etc/api.conf, content: "port=8080\\n", mode: "0644"}
    rescue:
      - log: {msg: failed, level: error}
    always:
      - wait_for: {port: 8080, timeout: 30s}
  - include: _inc_ok.yml
    vars: {service: api}
  - http: http://127.0.0.1:8080/health
    register: health
    until: health.status == 200
    loop: "{{ range(replicas) | list }}"
  - set: {done: true}
  - assert:
      that:
        - done
        - that: health.json is mapping
          msg: no json
"""

WORDS = sorted(set(RUNBOOK_KEYS) | set(STEP_KEYS) | set(BLOCK_KEYS) | set(INCLUDE_KEYS) |
               set(PARAM_KEYS) | set(action_names()) |
               {"that", "msg", "cmd", "argv", "url", "dest", "src", "path", "state", "port",
                "mode", "content", "method", "status", "duration", "tasks", "with_items",
                "become", "handlers", "<<", "type", "choices", "json", "body", "env"})
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**6, max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["{{ x }}", "{{ version", "{% if x %}", "x ==", "{{ a }} {{ b }}", "5m",
                     "1m30s", "-1", "25%", "150%", "0644", "644", "http://x", "item", "result",
                     "web:&prod", "!x", "_inc_ok.yml", "_cycle_b.yml", "fuzz.yml",
                     "missing.yml", "{{ inc }}.yml", "str", "int", "list", "dict", "", " ",
                     "a,b", "\t", "env:HOME", "rollbak", "…", "\x85"]),
    st.text(alphabet=string.printable, max_size=12),
)
# Any text but NUL and lone surrogates (see the regressions at the end of this file).
TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
               max_size=16)
TEMPLATES = st.builds(lambda a, op, b: "{{ " + a + op + b + " }}", TEXT,
                      st.sampled_from(["|", ".", "(", "[", " is ", " in ", "~", "**", "}}", ""]),
                      TEXT)
CONDITIONS = st.builds(lambda a, op: a + op, TEXT,
                       st.sampled_from(["(", ")", " and ", " or not ", "|default", "[0]",
                                        " is defined", "{{", "{%"]))
SCALARS = st.one_of(SCALARS, TEXT, TEMPLATES, CONDITIONS)
KEYS = st.one_of(st.sampled_from(WORDS), TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(KEYS, children, max_size=5)),
    max_leaves=25)
STEP = st.dictionaries(st.sampled_from(WORDS), VALUES, min_size=1, max_size=5)
DOCUMENTS = st.one_of(
    VALUES,
    st.fixed_dictionaries(
        {"name": SCALARS, "steps": st.one_of(st.lists(STEP, max_size=4), VALUES)},
        optional={key: VALUES for key in RUNBOOK_KEYS if key not in ("name", "steps")}),
)

INVENTORY = Inventory.implicit()


def _check_loads_or_rejects(text: str) -> None:
    try:
        loaded = load_runbook(PATH, text, raise_errors=False)
    except UserError:
        return
    problems = list(loaded.problems)
    if loaded.runbook is not None:
        loaded.runbook.walk()
        problems += check_runbook(loaded, inventory=None)
        problems += check_runbook(loaded, inventory=INVENTORY, inventory_given=True)
    for problem in problems:
        assert problem.loc is not None, problem
        assert problem.severity in ("error", "warning")
        assert isinstance(problem.message, str) and problem.message
        format_problem(problem)
    try:
        load_runbook(PATH, text)
    except UserError:
        pass


def _dump(document: object) -> str:
    try:
        return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, ValueError, TypeError):
        return "name: x\nsteps: []\n"


def test_the_valid_runbook_is_valid() -> None:
    loaded = load_runbook(PATH, VALID)
    assert loaded.problems == [] and loaded.runbook is not None
    assert check_runbook(loaded, inventory=None) == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
@example({"name": "x", "steps": [{"include": "fuzz.yml"}]})
@example({"name": "x", "steps": [{"shell": "x", "rollback": {"rollback": [{"shell": "y"}]}}]})
@example({"name": "x", "steps": [{"block": None, "rescue": [{"log": 1}]}]})
@example({"name": "x", "params": {"p": {"type": "list", "default": "{{ x }}",
                                         "choices": [[1]]}}, "steps": []})
def test_random_documents_never_crash(document: object) -> None:
    _check_loads_or_rejects(_dump(document))


EDITS = st.lists(st.tuples(st.sampled_from(["delete", "insert", "swap_lines", "tab",
                                            "dup_line", "truncate", "dedent", "indent"]),
                           st.integers(min_value=0, max_value=10**6),
                           st.sampled_from(list(":-[]{}'\"#&*!|>%@` \t\n") + ["{{", "}}", "- "])),
                 min_size=1, max_size=6)


def _mutate(text: str, edits: list[tuple[str, int, str]]) -> str:
    for kind, where, char in edits:
        lines = text.split("\n")
        if kind == "delete" and text:
            at = where % len(text)
            text = text[:at] + text[at + 1 + where % 3:]
        elif kind == "insert":
            at = where % (len(text) + 1)
            text = text[:at] + char + text[at:]
        elif kind == "swap_lines" and len(lines) > 1:
            a, b = where % len(lines), (where // 7) % len(lines)
            lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
        elif kind == "tab":
            at = where % len(lines)
            lines[at] = "\t" + lines[at].lstrip(" ")
            text = "\n".join(lines)
        elif kind == "dup_line":
            at = where % len(lines)
            lines.insert(at, lines[at])
            text = "\n".join(lines)
        elif kind == "truncate":
            text = text[:where % (len(text) + 1)]
        elif kind == "dedent":
            at = where % len(lines)
            lines[at] = lines[at][2:]
            text = "\n".join(lines)
        elif kind == "indent":
            at = where % len(lines)
            lines[at] = "  " + lines[at]
            text = "\n".join(lines)
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EDITS)
def test_edited_runbooks_never_crash(edits: list[tuple[str, int, str]]) -> None:
    _check_loads_or_rejects(_mutate(VALID, edits))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text: str) -> None:
    _check_loads_or_rejects(text)


@pytest.mark.parametrize("text", [
    "[" * 5000,
    "a:\n" + "".join("  " * i + "- \n" for i in range(300)),
    "&a [*a]",
    "a: &a\n  b: *a\n",
    "name: x\nsteps:\n  - &s {shell: x, rollback: [*s]}\n",
    "name: !!binary aGVsbG8=\nsteps: []\n",
    "name: x\nsteps:\n  - shell: !!python/object:os.system echo\n",
    "name: x\nsteps:\n  - shell: 2001-01-01\n    timeout: 2001-01-01\n",
    "\ufeffname: x\nsteps: []\n",
    "name: x\nsteps:\n  - shell: {{ x }}\n",
    "name: x\nsteps:\n  - ? [a, b]\n    : c\n",
    "name: x\nsteps:\n  - <<: [1, 2]\n    shell: x\n",
    "name: x\nsteps:\n  - loop: .nan\n    shell: x\n    retries: .inf\n    delay: .inf\n",
])
def test_known_awkward_inputs(text: str) -> None:
    _check_loads_or_rejects(text)


# Crashes found while fuzzing, fixed, kept as regressions.
def test_regression_nul_byte_in_include() -> None:
    loaded = load_runbook(PATH, 'name: x\nsteps:\n  - include: "a\\0.yml"\n', raise_errors=False)
    assert [p.severity for p in loaded.problems] == ["error"]


@pytest.mark.parametrize("text", [
    'name: x\nsteps:\n  - shell: "{{ ' + "(" * 100 + "1" + ")" * 100 + ' }}"\n',
    'name: x\nsteps:\n  - shell: x\n    when: "' + "(" * 100 + "1" + ")" * 100 + '"\n',
    'name: x\nsteps:\n  - shell: "{{ ' + "[" * 100 + "]" * 100 + ' }}"\n',
])
def test_regression_deeply_nested_template(text: str) -> None:
    loaded = load_runbook(PATH, text, raise_errors=False)
    assert [p.severity for p in loaded.problems] == ["error"]
