"""Files on targets: ``copy``, ``template``, ``file`` and ``fetch``.

All of them are idempotent: content is compared by sha256 and modes by stat, so a
second run reports no change.  In a dry run they read the target and say what would
change, with a unified diff for text files when ``--diff`` is given.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import posixpath
from typing import Any, Iterable, Mapping

from ..errors import StepFailed, TemplateError
from .base import Action, ActionContext, Plan, StepResult
from .schema import ParamSpec

__all__ = ["Copy", "Template", "File", "Fetch", "parse_mode", "text_diff"]

_MAX_DIFF_BYTES = 256 * 1024

OWNERSHIP = {
    "mode": ParamSpec("str|int", doc="permissions as a quoted octal string, e.g. '0644'"),
    "owner": ParamSpec("str", doc="user that should own the file"),
    "group": ParamSpec("str", doc="group that should own the file"),
}


def parse_mode(value: Any) -> int | None:
    """'0644', '644', 0o644 (YAML 0644) -> 0o644.  Raises ValueError."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 0o7777:
            return value
        raise ValueError(f"mode {value} is out of range")
    text = str(value).strip()
    if text.startswith("0o"):
        text = text[2:]
    if not text or any(c not in "01234567" for c in text) or len(text) > 4:
        raise ValueError(f"mode {value!r} is not an octal number such as '0644'")
    return int(text, 8)


def _mode_problems(args: Mapping[str, Any]) -> Iterable[tuple[str, str | None]]:
    value = args.get("mode")
    if value is None or (isinstance(value, str) and "{{" in value):
        return []
    if isinstance(value, int) and not isinstance(value, bool) and value > 0o777 and \
            set(str(value)) <= set("01234567") and len(str(value)) in (3, 4):
        return [(f"mode {value} is read by YAML as the decimal number {value}; write "
                 f"'0{value}' in quotes", "mode")]
    try:
        parse_mode(value)
    except ValueError as exc:
        return [(str(exc), "mode")]
    return []


def text_diff(old: bytes | None, new: bytes | None, path: str) -> str | None:
    """A unified diff between two versions of a file, or None for binary/large files."""
    if (old and len(old) > _MAX_DIFF_BYTES) or (new and len(new) > _MAX_DIFF_BYTES):
        return f"(diff of {path} skipped: larger than {_MAX_DIFF_BYTES // 1024} KiB)\n"
    try:
        old_lines = (old or b"").decode("utf-8").splitlines(keepends=True)
        new_lines = (new or b"").decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return f"(binary file {path} differs)\n"
    lines = difflib.unified_diff(old_lines, new_lines,
                                 fromfile=f"{path} (before)" if old is not None else "/dev/null",
                                 tofile=f"{path} (after)" if new is not None else "/dev/null")
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)
    return text or None


def _local_path(ctx: ActionContext, src: str) -> str:
    src = os.path.expanduser(src)
    return src if os.path.isabs(src) else os.path.join(ctx.runbook_dir, src)


def _read_local(ctx: ActionContext, src: str) -> bytes:
    path = _local_path(ctx, src)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise StepFailed(f"cannot read local file {path}: {exc.strerror}") from None


class _ContentAction(Action):
    """Shared by copy and template: make a file on the target hold given bytes."""

    supports_dry_run = True
    idempotent = True

    def desired(self, ctx: ActionContext, args: Mapping[str, Any]) -> bytes:
        raise NotImplementedError

    def destination(self, ctx: ActionContext, args: Mapping[str, Any]) -> str:
        dest = str(args["dest"])
        src = args.get("src")
        if src and (dest.endswith("/") or ctx.conn.stat(dest).is_dir):
            dest = posixpath.join(dest, os.path.basename(str(src)))
        return dest

    def _compare(self, ctx: ActionContext, args: Mapping[str, Any]
                 ) -> tuple[str, bytes, list[str], Any]:
        data = self.desired(ctx, args)
        dest = self.destination(ctx, args)
        conn = ctx.conn
        stat = conn.stat(dest)
        if stat.is_dir:
            raise StepFailed(f"{dest} is a directory")
        changes = []
        if not stat.exists:
            changes.append(f"create {dest} ({len(data)} bytes)")
        elif conn.checksum(dest) != hashlib.sha256(data).hexdigest():
            changes.append(f"update content of {dest}")
        changes.extend(_attribute_changes(args, stat, dest, created=not stat.exists))
        return dest, data, changes, stat

    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        dest, data, changes, stat = self._compare(ctx, args)
        diff = None
        if ctx.diff and any("content" in c or "create" in c for c in changes):
            diff = text_diff(ctx.conn.read_bytes(dest) if stat.exists else None, data, dest)
        return Plan(changed=bool(changes), changes=tuple(changes), diff=diff,
                    reason="" if changes else f"{dest} is up to date",
                    fields={"dest": dest, "checksum": hashlib.sha256(data).hexdigest()})

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        dest, data, changes, stat = self._compare(ctx, args)
        conn = ctx.conn
        diff = None
        content_changed = any("content" in c or "create" in c for c in changes)
        if ctx.diff and content_changed:
            diff = text_diff(conn.read_bytes(dest) if stat.exists else None, data, dest)
        if content_changed:
            mode = parse_mode(args.get("mode"))
            conn.put_bytes(data, dest, mode=mode if mode is not None else
                           (stat.mode if stat.exists else None))
        _apply_attributes(ctx, args, dest)
        return StepResult(changed=bool(changes), diff=diff,
                          msg="; ".join(changes) if changes else f"{dest} is up to date",
                          fields={"dest": dest, "checksum": hashlib.sha256(data).hexdigest(),
                                  "size": len(data), "existed": stat.exists})


def _attribute_changes(args: Mapping[str, Any], stat: Any, path: str,
                       created: bool) -> list[str]:
    changes = []
    mode = parse_mode(args.get("mode"))
    if mode is not None and (created or stat.mode != mode):
        if not created:
            changes.append(f"mode of {path} {oct(stat.mode or 0)[2:]:0>4} -> {oct(mode)[2:]:0>4}")
    owner, group = args.get("owner"), args.get("group")
    if owner and (created or stat.owner != str(owner)):
        if not created:
            changes.append(f"owner of {path} {stat.owner} -> {owner}")
    if group and (created or stat.group != str(group)):
        if not created:
            changes.append(f"group of {path} {stat.group} -> {group}")
    return changes


def _apply_attributes(ctx: ActionContext, args: Mapping[str, Any], path: str) -> None:
    conn = ctx.conn
    mode = parse_mode(args.get("mode"))
    stat = conn.stat(path) if (mode is not None or args.get("owner") or args.get("group")) \
        else None
    if stat is None:
        return
    if mode is not None and stat.mode != mode:
        _must(conn.run(["chmod", oct(mode)[2:], path]), "chmod")
    owner, group = args.get("owner"), args.get("group")
    if (owner and stat.owner != str(owner)) or (group and stat.group != str(group)):
        spec = f"{owner or ''}:{group or ''}" if group else str(owner)
        _must(conn.run(["chown", spec, path]), "chown")


def _must(result: Any, what: str) -> None:
    if not result.ok:
        raise StepFailed(f"{what} failed (exit {result.exit_code}): {result.tail(3)}")


class Copy(_ContentAction):
    """Put a local file or given content at a path on the target."""

    name = "copy"
    summary = "put content or a local file on the target"
    params = {"dest": ParamSpec("path", required=True, doc="path on the target"),
              "content": ParamSpec("str", doc="the file's content"),
              "src": ParamSpec("path", doc="a local file, relative to the runbook's folder"),
              **OWNERSHIP}
    exclusive = (("content", "src"),)
    one_of = (("content", "src"),)

    @staticmethod
    def check_args(args: Mapping[str, Any]) -> Iterable[tuple[str, str | None]]:
        return _mode_problems(args)

    def desired(self, ctx: ActionContext, args: Mapping[str, Any]) -> bytes:
        if args.get("src") is not None:
            return _read_local(ctx, str(args["src"]))
        content = args.get("content")
        return content.encode() if isinstance(content, str) else str(content or "").encode()


class Template(_ContentAction):
    """Render a local Jinja2 file with the host's variables and put it on the target."""

    name = "template"
    summary = "render a Jinja2 file onto the target"
    params = {"src": ParamSpec("path", required=True, doc="the template, relative to the "
                                                           "runbook's folder"),
              "dest": ParamSpec("path", required=True, doc="path on the target"),
              **OWNERSHIP}

    @staticmethod
    def check_args(args: Mapping[str, Any]) -> Iterable[tuple[str, str | None]]:
        return _mode_problems(args)

    def destination(self, ctx: ActionContext, args: Mapping[str, Any]) -> str:
        dest = str(args["dest"])
        if dest.endswith("/"):
            base = os.path.basename(str(args["src"]))
            dest = posixpath.join(dest, base[:-3] if base.endswith(".j2") else base)
        return dest

    def desired(self, ctx: ActionContext, args: Mapping[str, Any]) -> bytes:
        source = _read_local(ctx, str(args["src"])).decode("utf-8", errors="replace")
        try:
            rendered = ctx.render_text(source)
        except TemplateError as exc:
            raise StepFailed(f"template {args['src']}: {exc.message}", hint=exc.hint) from None
        return rendered.encode()


class File(Action):
    """Make a path a directory, a symlink, an empty file, or absent; set its mode/owner."""

    name = "file"
    shorthand = "path"
    summary = "directories, links, touch, absent, modes"
    supports_dry_run = True
    idempotent = True
    params = {"path": ParamSpec("path", required=True, aliases=("dest", "name"),
                                doc="the path on the target"),
              "state": ParamSpec("str", default="file",
                                 choices=("file", "directory", "absent", "touch", "link"),
                                 doc="what the path should be"),
              "src": ParamSpec("path", doc="where a link points (state: link)"),
              **OWNERSHIP}

    @staticmethod
    def check_args(args: Mapping[str, Any]) -> Iterable[tuple[str, str | None]]:
        problems = list(_mode_problems(args))
        if args.get("state") == "link" and not args.get("src"):
            problems.append(("state: link needs 'src' (where the link points)", "state"))
        return problems

    def _changes(self, ctx: ActionContext, args: Mapping[str, Any]) -> tuple[list[str], Any]:
        path = str(args["path"])
        state = args.get("state") or "file"
        stat = ctx.conn.stat(path)
        changes: list[str] = []
        if state == "absent":
            if stat.exists:
                changes.append(f"remove {path}")
            return changes, stat
        if state == "directory":
            if not stat.exists:
                changes.append(f"create directory {path}")
            elif not stat.is_dir:
                raise StepFailed(f"{path} exists and is not a directory")
        elif state == "touch":
            if not stat.exists:
                changes.append(f"create empty file {path}")
        elif state == "link":
            if not stat.is_link or stat.link_target != str(args["src"]):
                changes.append(f"link {path} -> {args['src']}")
        elif state == "file" and not stat.exists:
            raise StepFailed(f"{path} does not exist",
                             hint="use state: touch to create an empty file")
        if state != "link":
            changes.extend(_attribute_changes(args, stat, path, created=not stat.exists))
        return changes, stat

    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        changes, _ = self._changes(ctx, args)
        return Plan(changed=bool(changes), changes=tuple(changes),
                    reason="" if changes else f"{args['path']} is already as wanted")

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        changes, stat = self._changes(ctx, args)
        path = str(args["path"])
        state = args.get("state") or "file"
        conn = ctx.conn
        if changes:
            if state == "absent":
                _must(conn.run(["rm", "-rf", "--", path]), "rm")
            elif state == "directory" and not stat.exists:
                _must(conn.run(["mkdir", "-p", "--", path]), "mkdir")
            elif state == "touch" and not stat.exists:
                _must(conn.run(["touch", "--", path]), "touch")
            elif state == "link":
                _must(conn.run(["ln", "-sfn", "--", str(args["src"]), path]), "ln")
            if state != "absent" and state != "link":
                _apply_attributes(ctx, args, path)
        return StepResult(changed=bool(changes),
                          msg="; ".join(changes) if changes else f"{path} is already as wanted",
                          fields={"path": path, "state": state})


class Fetch(Action):
    """Copy a file from the target to the machine running the runbook."""

    name = "fetch"
    summary = "copy a file from the target to the runner"
    supports_dry_run = True
    idempotent = True
    params = {"src": ParamSpec("path", required=True, doc="the file on the target"),
              "dest": ParamSpec("path", required=True,
                                doc="local file; ending in '/' it is a folder receiving "
                                    "<dest>/<host>/<file name>")}

    def _dest(self, ctx: ActionContext, args: Mapping[str, Any]) -> str:
        dest = _local_path(ctx, str(args["dest"]))
        if str(args["dest"]).endswith("/"):
            dest = os.path.join(dest, ctx.host.name, posixpath.basename(str(args["src"])))
        return dest

    def _local_sum(self, path: str) -> str | None:
        try:
            with open(path, "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()
        except OSError:
            return None

    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        dest = self._dest(ctx, args)
        remote = ctx.conn.checksum(str(args["src"]))
        if remote is None:
            raise StepFailed(f"{args['src']} does not exist on {ctx.host.name}")
        if remote == self._local_sum(dest):
            return Plan(changed=False, reason=f"{dest} is up to date")
        return Plan(changed=True, changes=(f"fetch {args['src']} to {dest}",))

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        dest = self._dest(ctx, args)
        src = str(args["src"])
        remote = ctx.conn.checksum(src)
        if remote is None:
            raise StepFailed(f"{src} does not exist on {ctx.host.name}")
        if remote == self._local_sum(dest):
            return StepResult(changed=False, msg=f"{dest} is up to date",
                              fields={"dest": dest, "checksum": remote})
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        ctx.conn.get(src, dest)
        return StepResult(changed=True, msg=f"fetched {src} to {dest}",
                          fields={"dest": dest, "checksum": remote})
