"""A well-formed runbook using every feature loads into the expected model.

The broken runbooks and their messages live in the corpus (test_corpus.py); here
the loader's output is checked field by field: ids, paths, tags, includes, retry
defaults, conditions, rollback steps, params, serial, durations.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.checker import check_runbook
from engine.errors import ValidationFailed
from engine.loader import load_runbook
from engine.model import NO_RETRY, Condition, RetryPolicy, Runbook, Step, parse_duration
from engine.templating import Lazy

DEPLOY = """\
name: deploy api
description: roll out a new version of the api
hosts: [web, "!web03"]
params:
  version: {type: str, required: true, description: image tag}
  replicas: {type: int, default: 2, choices: [1, 2, 4]}
  ratio: {type: float, default: 0.5}
  force: {type: bool, default: false}
  zones: {type: list, default: [a, b]}
  labels: {type: dict, default: {team: core}}
  token: {secret: true}
  note:
vars:
  image: "registry.local/api:{{ version }}"
  port: 8080
  urls: ["http://127.0.0.1:{{ port }}/health"]
serial: [1, "25%", "100%"]
max_fail_percentage: 10
forks: 5
timeout: 1h
on_failure: continue
lock: "deploy-{{ version }}"
preflight:
  - name: disk has room
    shell: df -h /
    check: result.rc == 0
steps:
  - name: Pull the image!
    shell: docker pull {{ image }}
    register: pulled
    retries: 2
    delay: 5s
    backoff: 2
    timeout: 1m30s
    tags: pull, images
    rollback:
      - name: remove image
        shell: docker rmi {{ image }}
  - id: swap
    name: swap containers
    tags: [swap]
    vars: {old: blue}
    when:
      - pulled.changed
      - not force
    block:
      - name: stop old
        command: [docker, stop, "{{ old }}"]
        rollback:
          shell: docker start {{ old }}
      - file: {dest: /srv/api, state: directory, mode: "0755"}
    rescue:
      - log: swap failed
    always:
      - log: {msg: swap done, level: warning}
  - name: wait healthy
    http: "{{ urls[0] }}"
    register: health
    until: health.status == 200
    check:
      - that: health.json.ok
        msg: not healthy
      - health.elapsed < 2
  - name: Pull the image
    shell: echo again
    when: force
    ignore_errors: true
    no_log: true
    run_once: true
    delegate_to: localhost
  - shell: echo {{ svc }}
    loop: "{{ zones }}"
    loop_var: svc
    failed_when: result.rc > 1
    changed_when: false
  - id: db
    include: _db.yml
    tags: db
    vars: {schema: v2}
  - shell: echo one
  - shell:
      cmd: echo two
    args: {chdir: /tmp}
  - set: {done: true, count: 3}
  - pause: 250ms
"""

DB = """\
name: database steps
params:
  schema: {default: v1}
  verbose: {type: bool, default: false}
vars:
  dsn: postgres://db/app
steps:
  - name: migrate
    shell: ./migrate --schema {{ schema }} {{ dsn }}
  - id: verify
    shell: ./verify
"""


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


@pytest.fixture()
def deploy(tmp_path: Path) -> Runbook:
    write(tmp_path, "_db.yml", DB)
    loaded = load_runbook(write(tmp_path, "deploy.yml", DEPLOY))
    assert loaded.problems == []
    assert loaded.runbook is not None
    return loaded.runbook


def by_path(runbook: Runbook) -> dict[str, Step]:
    return {step.path: step for step in runbook.walk()}


def test_top_level_fields(deploy: Runbook, tmp_path: Path) -> None:
    assert deploy.name == "deploy api"
    assert deploy.description == "roll out a new version of the api"
    assert deploy.path == str(tmp_path / "deploy.yml")
    assert (deploy.loc.line, deploy.loc.col) == (1, 1)
    assert len(deploy.content_hash) == 64
    assert deploy.hosts == "web:!web03"
    assert deploy.hosts_loc is not None and deploy.hosts_loc.line == 3
    assert deploy.serial == (1, "25%", "100%")
    assert deploy.max_fail_percentage == 10.0
    assert deploy.forks == 5
    assert deploy.timeout == 3600.0
    assert deploy.on_failure == "continue"
    assert deploy.lock == "deploy-{{ version }}"
    assert deploy.includes == (str(tmp_path / "_db.yml"),)


def test_defaults_of_a_minimal_runbook(tmp_path: Path) -> None:
    runbook = load_runbook(write(tmp_path, "min.yml", "name: x\nsteps:\n  - shell: echo\n")).runbook
    assert runbook is not None
    assert runbook.hosts == "localhost" and runbook.hosts_loc is None
    assert runbook.serial == () and runbook.max_fail_percentage is None
    assert runbook.forks is None and runbook.timeout is None
    assert runbook.on_failure == "rollback" and runbook.lock is True
    assert runbook.params == () and dict(runbook.vars) == {} and runbook.preflight == ()
    step = runbook.steps[0]
    assert step.retry is NO_RETRY and step.timeout is None and step.when == ()
    assert step.loop is None and step.loop_var == "item" and step.tags == frozenset()
    assert not (step.ignore_errors or step.run_once or step.no_log)
    assert step.title.startswith("shell")


def test_params_with_types_defaults_and_choices(deploy: Runbook) -> None:
    params = {p.name: p for p in deploy.params}
    assert list(params) == ["version", "replicas", "ratio", "force", "zones", "labels",
                            "token", "note"]
    version = params["version"]
    assert (version.type, version.required, version.has_default, version.description) == \
        ("str", True, False, "image tag")
    assert (version.loc.line, version.loc.col) == (5, 3)
    assert (params["replicas"].type, params["replicas"].default, params["replicas"].choices) == \
        ("int", 2, (1, 2, 4))
    assert params["ratio"].default == 0.5 and params["ratio"].type == "float"
    assert params["force"].default is False and params["force"].has_default
    assert params["zones"].default == ["a", "b"]
    assert params["labels"].default == {"team": "core"}
    assert params["token"].secret and not params["token"].has_default
    assert params["note"].type == "str" and not params["note"].required
    assert deploy.param("replicas") is params["replicas"] and deploy.param("nope") is None


def test_vars_with_templates_are_lazy(deploy: Runbook) -> None:
    assert isinstance(deploy.vars["image"], Lazy)
    assert deploy.vars["image"].value == "registry.local/api:{{ version }}"
    assert deploy.vars["image"].loc.line == 14
    assert deploy.vars["port"] == 8080
    assert isinstance(deploy.vars["urls"], Lazy)


def test_step_paths_and_ids(deploy: Runbook) -> None:
    ids = {step.path: step.id for step in deploy.walk()}
    assert ids == {
        "preflight.1": "disk-has-room",
        "1": "pull-the-image",
        "1.rollback.1": "remove-image",
        "2": "swap",
        "2.block.1": "stop-old",
        "2.block.1.rollback.1": "undo-stop-old",
        "2.block.2": "file",
        "2.rescue.1": "log",
        "2.always.1": "log-2",
        "3": "wait-healthy",
        "4": "pull-the-image-2",
        "5": "shell",
        "6": "db",
        "6.include.1": "db.migrate",
        "6.include.2": "db.verify",
        "7": "shell-2",
        "8": "shell-3",
        "9": "set",
        "10": "pause",
    }
    assert [step.path for step in deploy.walk()] == list(ids)
    assert deploy.find_step("db.verify") is by_path(deploy)["6.include.2"]
    assert deploy.find_step("missing") is None


def test_derived_ids_never_take_an_explicit_one(tmp_path: Path) -> None:
    runbook = load_runbook(write(tmp_path, "ids.yml", """\
        name: ids
        steps:
          - name: restart
            shell: echo 1
          - id: restart
            shell: echo 2
          - id: 7
            shell: echo 3
        """)).runbook
    assert runbook is not None
    assert [s.id for s in runbook.steps] == ["restart-2", "restart", "7"]


def test_tags_are_inherited_and_split(deploy: Runbook) -> None:
    steps = by_path(deploy)
    assert steps["1"].tags == {"pull", "images"}
    assert steps["1.rollback.1"].tags == {"pull", "images"}
    for path in ("2", "2.block.1", "2.block.1.rollback.1", "2.block.2", "2.rescue.1",
                 "2.always.1"):
        assert steps[path].tags == {"swap"}, path
    assert steps["6.include.1"].tags == {"db"} and steps["6.include.2"].tags == {"db"}
    assert steps["7"].tags == frozenset()


def test_retry_policies(deploy: Runbook) -> None:
    steps = by_path(deploy)
    assert steps["1"].retry == RetryPolicy(retries=2, delay=5.0, backoff=2.0)
    assert steps["1"].retry.attempts == 3
    assert steps["1"].timeout == 90.0
    until = steps["3"].retry
    assert (until.retries, until.delay, until.backoff) == (3, 1.0, 1.0)
    assert [c.expr for c in until.until] == ["health.status == 200"]
    assert steps["7"].retry is NO_RETRY


def test_until_with_explicit_retries_and_delay(tmp_path: Path) -> None:
    runbook = load_runbook(write(tmp_path, "u.yml", """\
        name: u
        steps:
          - http: http://127.0.0.1/
            register: r
            until: [r.status == 200, "r.json is not none"]
            retries: 10
            delay: 2
        """)).runbook
    assert runbook is not None
    retry = runbook.steps[0].retry
    assert (retry.retries, retry.delay) == (10, 2.0)
    assert [c.expr for c in retry.until] == ["r.status == 200", "r.json is not none"]


def test_conditions(deploy: Runbook, tmp_path: Path) -> None:
    steps = by_path(deploy)
    swap = steps["2"]
    assert swap.when == (
        Condition("pulled.changed", swap.when[0].loc), Condition("not force", swap.when[1].loc))
    assert (swap.when[0].loc.line, swap.when[0].loc.col) == (44, 9)
    assert steps["preflight.1"].check[0].expr == "result.rc == 0"
    check = steps["3"].check
    assert [(c.expr, c.msg) for c in check] == [("health.json.ok", "not healthy"),
                                                ("health.elapsed < 2", None)]
    assert [c.expr for c in steps["5"].failed_when] == ["result.rc > 1"]
    assert [c.expr for c in steps["5"].changed_when] == ["false"]
    assert [c.expr for c in steps["4"].when] == ["force"]


def test_braces_around_a_condition_are_a_warning(tmp_path: Path) -> None:
    loaded = load_runbook(write(tmp_path, "w.yml", """\
        name: w
        params: {force: {type: bool, default: false}}
        steps:
          - shell: echo
            when: "{{ force }}"
        """))
    assert [p.severity for p in loaded.problems] == ["warning"]
    assert loaded.runbook is not None
    assert loaded.runbook.steps[0].when[0].expr.strip() == "force"


def test_blocks(deploy: Runbook) -> None:
    swap = by_path(deploy)["2"]
    assert swap.is_block and swap.action is None
    assert dict(swap.vars) == {"old": "blue"}
    assert [s.path for s in swap.block or ()] == ["2.block.1", "2.block.2"]
    assert [s.path for s in swap.rescue] == ["2.rescue.1"]
    assert [s.path for s in swap.always] == ["2.always.1"]
    assert swap.children() == (swap.block or ()) + swap.rescue + swap.always
    assert swap.title == "swap containers"


def test_rollback_steps(deploy: Runbook) -> None:
    steps = by_path(deploy)
    assert [s.id for s in steps["1"].rollback] == ["remove-image"]
    single = steps["2.block.1"].rollback
    assert len(single) == 1 and single[0].action == "shell"
    assert dict(single[0].args) == {"cmd": "docker start {{ old }}"}
    assert steps["1"].children() == ()


def test_include_with_vars_and_id_prefix(deploy: Runbook, tmp_path: Path) -> None:
    include = by_path(deploy)["6"]
    assert include.include == "_db.yml" and include.is_block
    assert include.title == "include _db.yml"
    # the included file's param defaults and vars, overridden by the include's vars
    assert dict(include.vars) == {"schema": "v2", "verbose": False,
                                  "dsn": "postgres://db/app"}
    migrate, verify = include.block or ()
    assert (migrate.id, migrate.path) == ("db.migrate", "6.include.1")
    assert (verify.id, verify.path) == ("db.verify", "6.include.2")
    assert migrate.loc.path == str(tmp_path / "_db.yml")
    assert migrate.loc.line == 8


def test_action_arguments(deploy: Runbook) -> None:
    steps = by_path(deploy)
    assert dict(steps["1"].args) == {"cmd": "docker pull {{ image }}"}
    assert steps["1"].arg_locs["cmd"].line == 29
    assert dict(steps["2.block.1"].args) == {"argv": ["docker", "stop", "{{ old }}"]}
    # an alias (dest) is stored under the parameter's name (path)
    assert dict(steps["2.block.2"].args) == {"path": "/srv/api", "state": "directory",
                                             "mode": "0755"}
    assert dict(steps["3"].args) == {"url": "{{ urls[0] }}"}
    assert dict(steps["8"].args) == {"cmd": "echo two", "chdir": "/tmp"}
    assert dict(steps["9"].args) == {"done": True, "count": 3}
    assert dict(steps["10"].args) == {"duration": "250ms"}


def test_step_options(deploy: Runbook, tmp_path: Path) -> None:
    steps = by_path(deploy)
    again = steps["4"]
    assert again.ignore_errors and again.no_log and again.run_once
    assert again.delegate_to == "localhost"
    looped = steps["5"]
    assert looped.loop == "{{ zones }}" and looped.loop_var == "svc"
    assert steps["1"].register == "pulled" and steps["3"].register == "health"


def test_registers_and_template_sites(tmp_path: Path) -> None:
    write(tmp_path, "_db.yml", DB)
    loaded = load_runbook(write(tmp_path, "deploy.yml", DEPLOY))
    assert loaded.registers == {"pulled": "1", "health": "3"}
    assert [s.text for s in loaded.sites["1"]] == ["docker pull {{ image }}"]
    assert {s.text for s in loaded.sites["3"] if s.condition} == {
        "health.status == 200", "health.json.ok", "health.elapsed < 2"}
    assert "svc" in next(s for s in loaded.sites["5"] if not s.condition and "svc" in s.text).extra
    assert check_runbook(loaded, inventory=None) == []


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("2d", 172800.0), ("250ms", 0.25),
    ("1m30s", 90.0), ("1h 30m", 5400.0), (10, 10.0), (2.5, 2.5), ("7", 7.0), (0, 0.0),
])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "-1", -1, True, "1x", "", [1], "m5"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("serial, expected", [
    ("3", (3,)), ('"50%"', ("50%",)), ("[1, 5, '100%']", (1, 5, "100%")), ('" 25 % "', ("25%",)),
])
def test_serial_forms(tmp_path: Path, serial: str, expected: tuple) -> None:
    runbook = load_runbook(write(tmp_path, "s.yml",
                                 f"name: s\nserial: {serial}\nsteps:\n  - shell: echo\n")).runbook
    assert runbook is not None and runbook.serial == expected


def test_hosts_forms(tmp_path: Path) -> None:
    for text, expected in (("web", "web"), ("[web, db]", "web:db"), ("'web:&prod'", "web:&prod")):
        runbook = load_runbook(write(tmp_path, "h.yml",
                                     f"name: h\nhosts: {text}\nsteps:\n  - shell: x\n")).runbook
        assert runbook is not None and runbook.hosts == expected


def test_lock_forms(tmp_path: Path) -> None:
    for text, expected in (("false", False), ("true", True), ("api", "api")):
        runbook = load_runbook(write(tmp_path, "l.yml",
                                     f"name: l\nlock: {text}\nsteps:\n  - shell: x\n")).runbook
        assert runbook is not None and runbook.lock == expected


def test_errors_raise_validation_failed_with_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yml", "name: b\nsteps:\n  - shel: x\n  - shell: y\n    retires: 1\n")
    with pytest.raises(ValidationFailed) as info:
        load_runbook(path)
    assert [p.loc.line for p in info.value.problems] == [3, 5]
    assert str(info.value).splitlines()[0].startswith(f"{path}:3:5: ")


def test_text_can_be_given_instead_of_reading_the_file(tmp_path: Path) -> None:
    loaded = load_runbook(str(tmp_path / "not-there.yml"), "name: t\nsteps:\n  - log: hi\n")
    assert loaded.runbook is not None and loaded.runbook.steps[0].action == "log"


def test_yaml_merge_keys_and_anchors(tmp_path: Path) -> None:
    runbook = load_runbook(write(tmp_path, "m.yml", """\
        name: m
        steps:
          - &base
            shell: echo base
            retries: 2
          - <<: *base
            name: again
        """)).runbook
    assert runbook is not None
    second = runbook.steps[1]
    assert second.name == "again" and second.retry.retries == 2
    assert dict(second.args) == {"cmd": "echo base"}
