"""``-e`` parsing and typed params: what the command line gives, what the runbook gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ParamError
from engine.loader import load_runbook
from engine.model import Runbook
from engine.params import parse_extra_vars, resolve_params, resolve_secret_ref

RUNBOOK = """\
name: typed
params:
  version: {required: true, description: image tag}
  replicas: {type: int, default: 2}
  ratio: {type: float, default: 0.5}
  force: {type: bool, default: false}
  zones: {type: list, default: [a]}
  labels: {type: dict, default: {}}
  env: {choices: [staging, prod], default: staging}
  size: {type: int, choices: [1, 2, 4]}
  note:
  token: {secret: true}
steps:
  - log: "{{ version }}"
"""


@pytest.fixture()
def runbook(tmp_path: Path) -> Runbook:
    path = tmp_path / "typed.yml"
    path.write_text(RUNBOOK, encoding="utf-8")
    loaded = load_runbook(str(path))
    assert loaded.runbook is not None
    return loaded.runbook


def resolve(runbook: Runbook, *items: str, **kwargs: object) -> dict[str, object]:
    return dict(resolve_params(runbook, parse_extra_vars(items), **kwargs).values)  # type: ignore[arg-type]


# ---------------------------------------------------------------- parse_extra_vars
def test_name_value_pairs_stay_strings_until_typed() -> None:
    given = parse_extra_vars(["version=1.2", "replicas=3", "empty=", "expr=a=b", " pad =x"])
    assert given == {"version": "1.2", "replicas": "3", "empty": "", "expr": "a=b", "pad": "x"}
    assert all(isinstance(v, str) for v in given.values())


def test_later_values_win() -> None:
    assert parse_extra_vars(["a=1", "a=2"]) == {"a": "2"}


def test_json_and_yaml_mappings() -> None:
    assert parse_extra_vars(['{"replicas": 3, "zones": ["a", "b"]}']) == {
        "replicas": 3, "zones": ["a", "b"]}
    assert parse_extra_vars(["{force: true, n: 1.5}"]) == {"force": True, "n": 1.5}


def test_param_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yml"
    path.write_text("version: '2.0'\nreplicas: 4\nlabels: {team: core}\n", encoding="utf-8")
    assert parse_extra_vars([f"@{path}"]) == {"version": "2.0", "replicas": 4,
                                              "labels": {"team": "core"}}
    empty = tmp_path / "empty.yml"
    empty.write_text("# nothing\n", encoding="utf-8")
    assert parse_extra_vars([f"@{empty}"]) == {}


@pytest.mark.parametrize("item, message", [
    ("version", "-e 'version' is not name=value, @file.yml or a mapping"),
    ("=1", "-e '=1': the name before '=' is empty"),
    ("{a: [1", "-e '{a: [1' is not a valid JSON/YAML mapping"),
])
def test_bad_extra_vars(item: str, message: str) -> None:
    with pytest.raises(ParamError) as info:
        parse_extra_vars([item])
    assert info.value.message.startswith(message)


def test_bad_param_files(tmp_path: Path) -> None:
    with pytest.raises(ParamError, match="file not found"):
        parse_extra_vars([f"@{tmp_path / 'missing.yml'}"])
    listed = tmp_path / "list.yml"
    listed.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ParamError, match="must hold a mapping of name: value"):
        parse_extra_vars([f"@{listed}"])
    broken = tmp_path / "broken.yml"
    broken.write_text("a: [1\n", encoding="utf-8")
    with pytest.raises(ParamError) as info:
        parse_extra_vars([f"@{broken}"])
    assert info.value.message.startswith(f"{broken}:") and "invalid YAML" in info.value.message


# ---------------------------------------------------------------- typing
def test_defaults_fill_what_is_not_given(runbook: Runbook) -> None:
    assert resolve(runbook, "version=1") == {
        "version": "1", "replicas": 2, "ratio": 0.5, "force": False, "zones": ["a"],
        "labels": {}, "env": "staging", "size": None, "note": None, "token": None}


@pytest.mark.parametrize("item, name, value", [
    ("replicas=3", "replicas", 3),
    ("replicas= 7 ", "replicas", 7),
    ("ratio=2", "ratio", 2.0),
    ("ratio=0.25", "ratio", 0.25),
    ("force=true", "force", True),
    ("force=yes", "force", True),
    ("force=False", "force", False),
    ("force=0", "force", False),
    ("zones=a,b, c", "zones", ["a", "b", "c"]),
    ("zones=[x, y]", "zones", ["x", "y"]),
    ("zones=", "zones", []),
    ("labels={team: web, tier: 1}", "labels", {"team": "web", "tier": 1}),
    ('labels={"a": [1]}', "labels", {"a": [1]}),
    ("version=007", "version", "007"),
    ("version=true", "version", "true"),
    ("note=a b c", "note", "a b c"),
])
def test_values_are_typed(runbook: Runbook, item: str, name: str, value: object) -> None:
    given = resolve(runbook, "version=1", item) if name != "version" else resolve(runbook, item)
    assert given[name] == value
    assert type(given[name]) is type(value)


def test_values_from_mappings_keep_their_type(runbook: Runbook) -> None:
    values = resolve(runbook, '{"version": "3", "replicas": 5, "force": true, "zones": ["q"]}')
    assert values["replicas"] == 5 and values["force"] is True and values["zones"] == ["q"]
    # a number given for a str param becomes its text
    assert resolve(runbook, "{version: 3}")["version"] == "3"


@pytest.mark.parametrize("item, message", [
    ("replicas=three", "param 'replicas': expected an integer, got 'three'"),
    ("ratio=half", "param 'ratio': expected a number, got 'half'"),
    ("force=maybe", "param 'force': expected true or false, got 'maybe'"),
    ("labels=[1, 2]", "param 'labels': expected a mapping, got [1, 2]"),
    ('{"version": [1]}', "param 'version': expected a string, got [1]"),
])
def test_values_of_the_wrong_type(runbook: Runbook, item: str, message: str) -> None:
    with pytest.raises(ParamError) as info:
        resolve(runbook, "version=1", item) if "version" not in item else resolve(runbook, item)
    assert info.value.message == message
    name = message.split("'")[1]
    assert info.value.loc is not None
    assert info.value.loc.line == 3 + ["version", "replicas", "ratio", "force", "zones",
                                       "labels"].index(name)


def test_choices(runbook: Runbook) -> None:
    assert resolve(runbook, "version=1", "env=prod")["env"] == "prod"
    assert resolve(runbook, "version=1", "size=4")["size"] == 4
    with pytest.raises(ParamError) as info:
        resolve(runbook, "version=1", "env=production")
    assert info.value.message == \
        "param 'env' must be one of 'staging', 'prod'; got 'production'"
    with pytest.raises(ParamError) as info:
        resolve(runbook, "version=1", "size=3")
    assert info.value.message == "param 'size' must be one of 1, 2, 4; got 3"


def test_missing_required_param_points_at_its_declaration(runbook: Runbook) -> None:
    with pytest.raises(ParamError) as info:
        resolve(runbook, "replicas=3")
    assert info.value.message == "missing required param 'version'"
    assert info.value.hint == "give it with -e version=... (image tag)"
    assert info.value.loc is not None and (info.value.loc.line, info.value.loc.col) == (3, 3)


def test_unknown_param_with_did_you_mean(runbook: Runbook) -> None:
    with pytest.raises(ParamError) as info:
        resolve(runbook, "version=1", "replica=3")
    assert info.value.message == "unknown param 'replica'"
    assert info.value.hint == "did you mean 'replicas'?"
    assert info.value.loc is None


def test_unknown_param_without_a_close_match(runbook: Runbook) -> None:
    with pytest.raises(ParamError) as info:
        resolve(runbook, "version=1", "zzz=1")
    assert info.value.message == "unknown param 'zzz'"
    assert info.value.hint is not None
    assert info.value.hint.startswith("this runbook takes: version, replicas, ")


def test_unknown_params_are_kept_when_not_strict(runbook: Runbook) -> None:
    values = resolve(runbook, "version=1", "extra=5", strict=False)
    assert values["extra"] == "5"


def test_every_problem_is_reported_at_once(runbook: Runbook) -> None:
    with pytest.raises(ParamError) as info:
        resolve(runbook, "verison=1", "replicas=x")
    assert info.value.message.splitlines()[0] == "3 problems with params:"
    each = {p.message: p for p in info.value.problems}  # type: ignore[attr-defined]
    assert set(each) == {"unknown param 'verison'", "missing required param 'version'",
                         "param 'replicas': expected an integer, got 'x'"}
    assert each["unknown param 'verison'"].hint == "did you mean 'version'?"
    assert each["missing required param 'version'"].loc.line == 3
    assert each["param 'replicas': expected an integer, got 'x'"].loc.line == 4
    for problem in each.values():
        assert f"  - {problem}" in info.value.message


def test_a_runbook_without_params(tmp_path: Path) -> None:
    path = tmp_path / "none.yml"
    path.write_text("name: n\nsteps:\n  - log: hi\n", encoding="utf-8")
    runbook = load_runbook(str(path)).runbook
    assert runbook is not None
    assert dict(resolve_params(runbook, {}).values) == {}
    with pytest.raises(ParamError) as info:
        resolve(runbook, "x=1")
    assert (info.value.message, info.value.hint) == ("unknown param 'x'",
                                                     "this runbook takes no params")


# ---------------------------------------------------------------- secrets
def test_secret_from_the_environment(runbook: Runbook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_TEST_TOKEN", "s3cret")
    resolved = resolve_params(runbook, parse_extra_vars(["version=1",
                                                         "token=env:RUNBOOK_TEST_TOKEN"]))
    assert resolved.values["token"] == "s3cret"
    assert resolved.secrets == {"s3cret"}
    assert resolved.secret_names == {"token"}


def test_secret_from_a_file(runbook: Runbook, tmp_path: Path) -> None:
    secret = tmp_path / "token.txt"
    secret.write_text("from-file\n", encoding="utf-8")
    resolved = resolve_params(runbook, parse_extra_vars(["version=1", f"token=file:{secret}"]))
    assert resolved.values["token"] == "from-file"
    assert "from-file" in resolved.secrets


def test_a_plain_secret_is_still_masked(runbook: Runbook) -> None:
    resolved = resolve_params(runbook, parse_extra_vars(["version=1", "token=plain"]))
    assert resolved.values["token"] == "plain" and resolved.secrets == {"plain"}


def test_env_and_file_refs_only_apply_to_secret_params(runbook: Runbook) -> None:
    assert resolve(runbook, "version=env:HOME")["version"] == "env:HOME"


def test_missing_secret_sources(runbook: Runbook, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_TEST_UNSET", raising=False)
    with pytest.raises(ParamError) as info:
        resolve(runbook, "version=1", "token=env:RUNBOOK_TEST_UNSET")
    assert info.value.message == \
        "param 'token': environment variable RUNBOOK_TEST_UNSET is not set"
    with pytest.raises(ParamError) as info:
        resolve(runbook, "version=1", f"token=file:{tmp_path / 'nope'}")
    assert info.value.message.startswith(f"param 'token': cannot read {tmp_path / 'nope'}")


def test_secret_values_are_not_shown_in_choice_errors(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.yml"
    path.write_text("name: s\nparams:\n  key: {secret: true, choices: [a, b]}\n"
                    "steps:\n  - log: hi\n", encoding="utf-8")
    runbook = load_runbook(str(path)).runbook
    assert runbook is not None
    monkeypatch.setenv("RUNBOOK_TEST_KEY", "hunter2")
    with pytest.raises(ParamError) as info:
        resolve(runbook, "key=env:RUNBOOK_TEST_KEY")
    assert "hunter2" not in info.value.message and "********" in info.value.message


def test_resolve_secret_ref_passes_other_values_through() -> None:
    assert resolve_secret_ref(5, "x") == 5
    assert resolve_secret_ref("plain", "x") == "plain"
