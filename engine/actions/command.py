"""Running commands: ``shell``, ``command`` and ``script``."""

from __future__ import annotations

import os
import shlex
from typing import Any, Mapping

from ..connections.base import Become, CommandResult
from ..errors import StepFailed
from .base import Action, ActionContext, CannotSimulate, Plan, StepResult
from .schema import ParamSpec

__all__ = ["Shell", "Command", "Script", "COMMAND_OPTIONS", "become_for"]

COMMAND_OPTIONS: dict[str, ParamSpec] = {
    "chdir": ParamSpec("path", doc="run the command in this directory"),
    "env": ParamSpec("dict", doc="environment variables added for the command"),
    "creates": ParamSpec("path", doc="skip the command when this path exists"),
    "removes": ParamSpec("path", doc="skip the command unless this path exists"),
    "become": ParamSpec("bool|str", doc="run through sudo: true (as root) or a user name"),
    "stdin": ParamSpec("str", doc="text fed to the command's standard input"),
    "ok_codes": ParamSpec("list|int", default=[0], elements="int",
                          doc="exit codes that count as success"),
    "check_mode_safe": ParamSpec("bool", default=False,
                                 doc="the command only reads: run it in dry runs too"),
}


def become_for(ctx: ActionContext, value: Any) -> Become | None:
    """The sudo settings of a step, with the host's become password if it has one."""
    if value in (None, False):
        return None
    user = "root" if value is True else str(value)
    return Become(user=user, password=ctx.host.connection.become_password)


def _ok_codes(args: Mapping[str, Any]) -> tuple[int, ...]:
    codes = args.get("ok_codes", [0])
    if isinstance(codes, int):
        return (codes,)
    return tuple(int(c) for c in codes)


def skip_reason(ctx: ActionContext, args: Mapping[str, Any]) -> str | None:
    """Why ``creates``/``removes`` make the command unnecessary, or None."""
    creates, removes = args.get("creates"), args.get("removes")
    if creates and ctx.conn.stat(_in_dir(args, creates)).exists:
        return f"{creates} exists"
    if removes and not ctx.conn.stat(_in_dir(args, removes)).exists:
        return f"{removes} does not exist"
    return None


def _in_dir(args: Mapping[str, Any], path: str) -> str:
    chdir = args.get("chdir")
    return os.path.join(chdir, path) if chdir and not path.startswith("/") else path


def result_of(run: CommandResult, args: Mapping[str, Any], *, changed: bool = True) -> StepResult:
    failed = run.exit_code not in _ok_codes(args)
    if args.get("check_mode_safe"):   # declared read-only: it changes nothing
        changed = False
    return StepResult(changed=changed, failed=failed, rc=run.exit_code,
                      stdout=run.stdout.rstrip("\r\n"), stderr=run.stderr.rstrip("\r\n"),
                      command=run.command, duration=run.duration,
                      msg=f"exit code {run.exit_code}" if failed else "")


class _CommandAction(Action):
    """What shell, command and script share: options, skip rules, dry-run rules."""

    supports_dry_run = True

    @classmethod
    def is_read_only(cls, args: Mapping[str, Any]) -> bool:
        return args.get("check_mode_safe") is True

    def command_line(self, ctx: ActionContext, args: Mapping[str, Any]) -> str | list[str]:
        raise NotImplementedError

    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        if not (args.get("creates") or args.get("removes")):
            raise CannotSimulate(
                f"an arbitrary {self.name} command cannot be simulated (declare creates/removes, "
                "or check_mode_safe: true if it only reads)")
        reason = skip_reason(ctx, args)
        if reason:
            return Plan(changed=False, reason=f"skipped: {reason}")
        line = self.command_line(ctx, args)
        shown = line if isinstance(line, str) else shlex.join(line)
        return Plan(changed=True, changes=(f"would run: {shown}",))

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        reason = skip_reason(ctx, args)
        if reason:
            return StepResult(changed=False, msg=f"skipped: {reason}")
        stdin = args.get("stdin")
        run = ctx.conn.run(self.command_line(ctx, args),
                           stdin=stdin.encode() if isinstance(stdin, str) else None,
                           timeout=ctx.remaining(), env=_env(args), cwd=args.get("chdir"),
                           become=become_for(ctx, args.get("become")))
        return result_of(run, args)


def _env(args: Mapping[str, Any]) -> dict[str, str] | None:
    env = args.get("env")
    return {str(k): "" if v is None else str(v) for k, v in env.items()} if env else None


class Shell(_CommandAction):
    """A command line run by ``/bin/sh -c`` (pipes, redirects and globs work)."""

    name = "shell"
    shorthand = "cmd"
    summary = "run a command line with /bin/sh"
    params = {"cmd": ParamSpec("str", required=True, doc="the command line"), **COMMAND_OPTIONS}

    def command_line(self, ctx: ActionContext, args: Mapping[str, Any]) -> str:
        return str(args["cmd"])


class Command(_CommandAction):
    """A program and its arguments, run without a shell: nothing can be injected."""

    name = "command"
    shorthand = "argv"
    summary = "run a program without a shell"
    params = {"argv": ParamSpec("list|str", required=True,
                                doc="the program and its arguments (a string is split "
                                    "like a shell would, but never run by one)"),
              **COMMAND_OPTIONS}

    def command_line(self, ctx: ActionContext, args: Mapping[str, Any]) -> list[str]:
        argv = args["argv"]
        if isinstance(argv, str):
            try:
                argv = shlex.split(argv)
            except ValueError as exc:
                raise StepFailed(f"cannot split command {argv!r}: {exc}") from None
        if not argv:
            raise StepFailed("command: argv is empty")
        return [str(a) for a in argv]


class Script(_CommandAction):
    """A local script copied to the target and run there."""

    name = "script"
    shorthand = "src"
    summary = "copy a local script to the target and run it"
    params = {"src": ParamSpec("path", required=True,
                               doc="the script, relative to the runbook's folder"),
              "args": ParamSpec("list|str", doc="arguments passed to the script"),
              "interpreter": ParamSpec("str", doc="run it with this program (default: "
                                                  "its #! line)"),
              **COMMAND_OPTIONS}

    def local_path(self, ctx: ActionContext, args: Mapping[str, Any]) -> str:
        src = os.path.expanduser(str(args["src"]))
        return src if os.path.isabs(src) else os.path.join(ctx.runbook_dir, src)

    def command_line(self, ctx: ActionContext, args: Mapping[str, Any]) -> str:
        extra = args.get("args") or []
        words = shlex.split(extra) if isinstance(extra, str) else [str(a) for a in extra]
        remote = "/tmp/.runbook-script-" + os.path.basename(self.local_path(ctx, args))
        head = [str(args["interpreter"])] if args.get("interpreter") else []
        return shlex.join([*head, remote, *words])

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        reason = skip_reason(ctx, args)
        if reason:
            return StepResult(changed=False, msg=f"skipped: {reason}")
        local = self.local_path(ctx, args)
        try:
            with open(local, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise StepFailed(f"script: cannot read {local}: {exc.strerror}") from None
        remote = "/tmp/.runbook-script-" + os.path.basename(local)
        conn = ctx.conn
        conn.put_bytes(data, remote, mode=0o700)
        try:
            stdin = args.get("stdin")
            run = conn.run(self.command_line(ctx, args),
                           stdin=stdin.encode() if isinstance(stdin, str) else None,
                           timeout=ctx.remaining(), env=_env(args), cwd=args.get("chdir"),
                           become=become_for(ctx, args.get("become")))
        finally:
            conn.run(["rm", "-f", remote])
        return result_of(run, args)
