"""Secrets never appear in any byte the engine writes: stdout and stderr of the CLI (text,
``--output json``, ``-v``/``-vv``), the journal files (``state.db``, ``-wal``, ``-shm``,
read as raw bytes) and crash logs.

The secrets: a ``secret: true`` param given with ``-e name=value``, as ``env:NAME``, as
``file:PATH`` (and one full of quotes and backslashes), inventory passwords
(``password: env:X``, ``become_password: file:...`` on local hosts), and what a
``no_log`` step printed.  They are used in commands, echoed to stdout (also as JSON
text), put in a failing command's error, in a ``check`` message, in a template error,
in a copied file shown with ``--diff``; then read back with ``show``, ``history`` and
``resume``.

Each output is searched for the secret as written and as JSON-escaped, shell-quoted
and Python-repr text (the forms an error message may carry).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.clitools import Cli, Result

pytestmark = pytest.mark.timeout(120)

PLAIN = "Tk9-pl41n-s3cr3t"
FROM_ENV = "Env-T0ken-4b8f"
FROM_FILE = "F1le-T0ken-c9d1"
SPECIAL = "q\"u\\o'te$-7Zx"          # q"u\o'te$-7Zx
HOST_PASSWORD = "H0st-Passw0rd-99"
BECOME_PASSWORD = "B3come-Pw-5e1"
GENERATED = "Gen3rated-S3cretValue"   # printed by a no_log step (not in its command)

ALWAYS = (HOST_PASSWORD, BECOME_PASSWORD)

INVENTORY = """\
all:
  hosts:
    h1: {connection: local, password: "env:HOST_PW"}
    h2: {connection: local, become_password: "file:FOLDER/become.txt"}
"""

RUNBOOK = """\
name: secret deploy
hosts: all
params:
  token: {secret: true, required: true}
  fail_how: {choices: [command, template, check], default: command}
steps:
  - id: use
    shell: "echo using {{ token | quote }}; echo pw=$HOST_PW; echo become=$(cat become.txt)"
    register: used
    rollback:
      id: undo-use
      shell: "echo {{ token | quote }} > undo-{{ inventory_hostname }}.txt"
  - id: as-json
    shell: "printf '{\\"t\\": %s}\\n' {{ token | to_json | quote }}"
  - id: say
    log: "the token is {{ token }}"
  - id: conf
    copy:
      dest: "app-{{ inventory_hostname }}.conf"
      content: "token = {{ token }}\\n"
  - id: fail-command
    when: fail_how == 'command'
    shell: "echo failing with {{ token | quote }} >&2; exit 3"
  - id: fail-template
    when: fail_how == 'template'
    shell: "cat {{ lookup('file', '/nonexistent/' ~ token) }}"
  - id: fail-check
    when: fail_how == 'check'
    shell: "echo checked"
    check:
      - that: result.rc == 1
        msg: "rc is not 1 with {{ token }}"
"""

NO_LOG = """\
name: no log
hosts: h1
params:
  token: {secret: true, default: unused-secret-default}
steps:
  - id: gen
    no_log: true
    shell: "printf '%s-%s\\n' Gen3rated S3cretValue"
    register: gen
    rollback:
      id: undo-gen
      shell: "echo '{{ gen.stdout }}' > undo-gen.txt"
  - id: gate
    shell: "test -e go"
  - id: echo-gen
    shell: "echo generated: {{ gen.stdout }}; echo '{{ gen.stdout }}' > echoed.txt"
"""


def forms(secret: str) -> set[str]:
    """The secret as written, JSON-escaped, shell-quoted and as Python's repr shows it."""
    return {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
            shlex.quote(secret), repr(secret)[1:-1]}


class Leaks:
    """Collects every byte the engine wrote, then searches it for secrets."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.outputs: list[tuple[str, bytes]] = []

    def add(self, label: str, result: Result) -> Result:
        self.outputs.append((f"{label} stdout", result.stdout.encode()))
        self.outputs.append((f"{label} stderr", result.stderr.encode()))
        return result

    def files(self) -> list[tuple[str, bytes]]:
        """The journal (db, -wal, -shm) and crash logs: everything under the state folder."""
        state = self.folder / ".state"
        return [(str(p.relative_to(self.folder)), p.read_bytes())
                for p in sorted(state.rglob("*")) if p.is_file()]

    def found(self, secrets: tuple[str, ...], files: bool = True) -> list[str]:
        where = []
        chunks = self.outputs + (self.files() if files else [])
        for label, blob in chunks:
            for secret in secrets:
                for form in forms(secret):
                    at = blob.find(form.encode())
                    if at >= 0:
                        where.append(f"{secret!r} (as {form!r}) in {label}: "
                                     f"...{blob[max(0, at - 80):at + 40]!r}...")
        return where


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "inventory.yml").write_text(INVENTORY.replace("FOLDER", str(tmp_path)))
    (tmp_path / "become.txt").write_text(BECOME_PASSWORD + "\n")
    (tmp_path / "deploy.yml").write_text(RUNBOOK)
    (tmp_path / "nolog.yml").write_text(NO_LOG)
    return tmp_path


@pytest.fixture
def cli(folder: Path) -> Cli:
    runner = Cli(folder)
    runner.env.update({"HOST_PW": HOST_PASSWORD, "RB_TOKEN": FROM_ENV, "RB_SPECIAL": SPECIAL})
    return runner


SOURCES = {
    # name: (the -e value, the secret, whether resume needs it again,
    #        how the run fails in text, json and verbose mode)
    "plain": (f"token={PLAIN}", PLAIN, True, ("command", "template", "check")),
    "env": ("token=env:RB_TOKEN", FROM_ENV, False, ("template", "check", "command")),
    "file": ("token=file:token.txt", FROM_FILE, False, ("check", "command", "template")),
    # (template: see test_secret_with_quotes_in_a_template_error)
    "special": ("token=env:RB_SPECIAL", SPECIAL, False, ("command", "check", "command")),
}
MODES = {"text": ("--diff",), "json": ("--diff", "-o", "json", "-v"), "verbose": ("--diff", "-vv")}


@pytest.mark.parametrize("source", list(SOURCES))
def test_secret_param_never_written(cli: Cli, folder: Path, inproc: Any, source: str) -> None:
    given, secret, ask_again, fails = SOURCES[source]
    (folder / "token.txt").write_text(FROM_FILE + "\n")
    leaks = Leaks(folder)
    run_id = ""
    for (mode, flags), fail in zip(MODES.items(), fails):
        for conf in folder.glob("app-*.conf"):
            conf.unlink()                      # so that --diff has a diff to show
        result = leaks.add(f"run {mode} (fails by {fail})",
                           cli("run", "deploy.yml", "-i", "inventory.yml", "-e", given,
                               "-e", f"fail_how={fail}", *flags))
        assert result.code == 1, result
        # the masks are there: the test is not passing because nothing was printed
        shown = result.stdout + result.stderr
        assert "********" in shown
        if mode == "json":
            run_id = result.events[0]["run_id"]
            use = result.of("step_end", host="h1", step="use")[0]
            assert use["result"]["stdout"] == "using ********\npw=********\nbecome=********"
            assert result.of("step_end", host="h1", step="conf")[0]["diff"].endswith(
                "+token = ********\n")
            failed = result.of("step_end", host="h1", step=f"fail-{fail}")[0]
            assert failed["status"] == "failed"
            if fail == "command":
                assert failed["command"] == "echo failing with ******** >&2; exit 3"
                assert failed["stderr_tail"] == "failing with ********"
            else:
                assert "********" in failed["msg"], failed
            assert result.events[0]["params"]["token"] == "********"
        if mode == "verbose":
            assert "> using ********" in result.stdout
            assert "+token = ********" in result.stdout
        # the rollback used the real value: only the output is masked
        assert (folder / "undo-h1.txt").read_text() == secret + "\n"
        assert (folder / "app-h1.conf").read_text() == f"token = {secret}\n"
    # the journal read back
    # (--output=json: the inproc fixture parses events when an argument is "json")
    for argv in (("show", run_id), ("show", run_id, "--output=json"), ("history",),
                 ("history", "--output=json"), ("show", run_id, "--host", "h2")):
        shown = leaks.add(" ".join(argv), inproc(*argv))
        assert shown.code == 0, shown
    params = json.loads(leaks.outputs[-4][1])[0]["params"]
    assert params["token"] == ("********" if ask_again else given.split("=", 1)[1])
    # resume: a secret given as a value must be given again; a reference is read again
    if ask_again:
        again = leaks.add("resume without -e", cli("resume", run_id))
        assert again.code == 2, again
        assert "secret param(s) token" in again.stderr and "-e token=" in again.stderr
        resumed = leaks.add("resume", cli("resume", run_id, "-e", given, "-o", "json", "-v"))
    else:
        resumed = leaks.add("resume", cli("resume", run_id, "-o", "json", "-v"))
    assert resumed.code == 1, resumed          # the same step fails again
    assert resumed.events[0]["params"]["token"] == "********"
    assert (folder / "undo-h1.txt").read_text() == secret + "\n"
    assert not leaks.found((secret,) + ALWAYS), "\n".join(leaks.found((secret,) + ALWAYS))


def test_secret_with_quotes_in_a_template_error(cli: Cli, folder: Path) -> None:
    leaks = Leaks(folder)
    result = leaks.add("run", cli("run", "deploy.yml", "-i", "inventory.yml", "-e",
                                  "token=env:RB_SPECIAL", "-e", "fail_how=template",
                                  "-o", "json"))
    assert result.code == 1, result
    assert "TemplateRuntimeError: lookup('file'" in \
        result.of("step_end", host="h1", step="fail-template")[0]["msg"]
    assert not leaks.found((SPECIAL,)), "\n".join(leaks.found((SPECIAL,)))


def test_no_log_output_echoed_later_is_masked_in_every_output(cli: Cli, folder: Path) -> None:
    leaks = Leaks(folder)
    (folder / "go").touch()
    for mode, flags in MODES.items():
        result = leaks.add(mode, cli("run", "nolog.yml", "-i", "inventory.yml", *flags))
        assert result.code == 0, result
        if mode == "json":
            gen = result.of("step_end", step="gen")[0]
            assert gen["result"] is None and gen["command"] == "********"
            echo = result.of("step_end", step="echo-gen")[0]
            assert echo["result"]["stdout"] == "generated: ********"
            assert echo["command"] == "echo generated: ********; echo '********' > echoed.txt"
        if mode == "verbose":
            assert "> generated: ********" in result.stdout
        assert (folder / "echoed.txt").read_text() == GENERATED + "\n"
    assert not leaks.found((GENERATED,), files=False), leaks.found((GENERATED,), files=False)


def test_no_log_output_never_reaches_the_journal(cli: Cli, folder: Path) -> None:
    (folder / "go").touch()
    leaks = Leaks(folder)
    result = leaks.add("run", cli("run", "nolog.yml", "-i", "inventory.yml"))
    assert result.code == 0, result
    assert not leaks.found((GENERATED,)), "\n".join(leaks.found((GENERATED,)))


def test_resume_does_not_print_a_restored_no_log_value(cli: Cli, folder: Path) -> None:
    leaks = Leaks(folder)
    failed = cli("run", "nolog.yml", "-i", "inventory.yml", "-o", "json", "--no-rollback")
    assert failed.code == 1           # the gate is closed
    (folder / "go").touch()
    resumed = leaks.add("resume", cli("resume", failed.events[0]["run_id"], "-v"))
    assert resumed.code == 0, resumed
    assert (folder / "echoed.txt").read_text() == GENERATED + "\n"   # the right value
    assert not leaks.found((GENERATED,), files=False), \
        "\n".join(leaks.found((GENERATED,), files=False))


def test_rollback_does_not_print_a_no_log_value_from_the_journal(cli: Cli,
                                                                folder: Path) -> None:
    """The journal never holds a no_log value, so a later `runbook rollback` cannot
    render a rollback step that needs one: it says so (exit 3) instead of running it
    with a masked value, and prints no secret."""
    leaks = Leaks(folder)
    failed = cli("run", "nolog.yml", "-i", "inventory.yml", "-o", "json", "--no-rollback")
    assert failed.code == 1
    undone = leaks.add("rollback", cli("rollback", failed.events[0]["run_id"], "-v"))
    assert undone.code == 3, undone
    assert "which held a secret" in undone.stdout + undone.stderr
    assert not (folder / "undo-gen.txt").exists()
    assert not leaks.found((GENERATED,), files=False), \
        "\n".join(leaks.found((GENERATED,), files=False))


def test_short_secrets_are_not_masked(cli: Cli, folder: Path) -> None:
    """Documented limit: values shorter than 3 characters are not masked (they would
    mask ordinary text)."""
    result = cli("run", "deploy.yml", "-i", "inventory.yml", "-e", "token=ab", "-o", "json")
    assert result.code == 1
    assert result.of("step_end", host="h1", step="use")[0]["result"]["stdout"].startswith(
        "using ab\n")


def test_crash_log_of_an_internal_error_holds_no_secret(folder: Path, inproc: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An action that raises a bug (an unexpected exception whose message carries the
    rendered command): the step fails with 'internal error ... (details in PATH)' and
    the traceback goes to a crash log; neither holds the secret."""
    from engine.actions.command import Shell

    def broken(self: Any, ctx: Any, args: Any) -> Any:
        raise RuntimeError(f"boom while running {args['cmd']}")

    monkeypatch.setattr(Shell, "apply", broken)
    monkeypatch.setenv("HOST_PW", HOST_PASSWORD)
    argv = ["run", "deploy.yml", "-i", "inventory.yml", "-e", f"token={PLAIN}"]
    monkeypatch.setattr(sys, "argv", ["runbook", *argv])    # what the console script sees
    leaks = Leaks(folder)
    result = leaks.add("run", inproc(*argv))
    assert result.code == 1, result
    assert "internal error: RuntimeError: boom while running" in result.stdout
    logs = list((folder / ".state").rglob("crash-*.log"))
    assert logs, result.stdout
    found = leaks.found((PLAIN,) + ALWAYS)
    assert not found, "\n".join(found)
