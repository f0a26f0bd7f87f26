"""``docker.compose``: a Compose project up, down, restarted or scaled.

It runs ``docker-compose`` (or ``docker compose`` where only v2 exists) through the
host's connection, so it works over SSH as it does locally, always with ``-p`` (the
project name: given, or the project folder's name as Compose would derive it) and
``-f`` for each file.  The plan compares ``config --hash`` with the
``com.docker.compose.config-hash`` label of the project's containers (read through
the host's Docker daemon) to say what would be created, recreated or started.
"""

from __future__ import annotations

import os
import posixpath
import re
import weakref
from typing import Any, Iterable, Mapping, Sequence

from ..errors import StepFailed
from .base import Action, ActionContext, Plan, StepResult
from .schema import ParamSpec

__all__ = ["Compose", "project_name_for"]

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
HASH_LABEL = "com.docker.compose.config-hash"
# what Compose v1 ("Creating x ... done") and v2 ("Container x  Started") print for a change
_CHANGE_LINE = re.compile(r"^\s*(Creating|Recreating|Starting|Stopping|Removing|Restarting|"
                          r"Killing)\s|\b(Created|Recreated|Started|Stopped|Removed|Restarted|"
                          r"Killed)\s*$", re.MULTILINE)


_BINARIES: "weakref.WeakKeyDictionary[Any, list[str]]" = weakref.WeakKeyDictionary()


def project_name_for(folder: str) -> str:
    """The project name Compose derives from a folder (lower case, [-_a-z0-9] only)."""
    base = posixpath.basename(folder.rstrip("/")) or "default"
    return re.sub(r"[^-_a-z0-9]", "", base.lower()) or "default"


class Compose(Action):
    """Bring a Compose project up or down, restart it, or scale its services."""

    name = "docker.compose"
    summary = "docker-compose up/down/restart/scale a project"
    supports_dry_run = True
    idempotent = True
    params = {
        "project_dir": ParamSpec("path", doc="the project folder (relative: to the runbook's "
                                             "folder); the default file is looked up there"),
        "files": ParamSpec("list|str", elements="str", doc="compose files (-f), relative to "
                                                          "project_dir"),
        "project_name": ParamSpec("str", doc="-p (default: project_dir's name)"),
        "state": ParamSpec("str", default="up", choices=("up", "down", "restarted", "scaled"),
                           doc="up, down, restarted, or scaled (with scale)"),
        "services": ParamSpec("list", elements="str", doc="only these services"),
        "scale": ParamSpec("dict", doc="service: replicas (state scaled, or with up)"),
        "pull": ParamSpec("bool", default=False, doc="pull images before up"),
        "build": ParamSpec("bool", doc="true: --build, false: --no-build"),
        "remove_orphans": ParamSpec("bool", default=False, doc="--remove-orphans"),
        "remove_volumes": ParamSpec("bool", default=False, doc="down -v"),
        "env": ParamSpec("dict", doc="environment for docker-compose (variables in the "
                                     "file)"),
    }
    one_of = (("project_dir", "files"),)

    @staticmethod
    def check_args(args: Mapping[str, Any]) -> Iterable[tuple[str, str | None]]:
        if args.get("state") == "scaled" and not args.get("scale"):
            return [("state: scaled needs 'scale: {service: replicas}'", "scale")]
        return []

    # ------------------------------------------------------------ command lines
    def _layout(self, ctx: ActionContext, args: Mapping[str, Any]
                ) -> tuple[str | None, list[str], str]:
        folder = args.get("project_dir")
        if folder is not None:
            folder = os.path.expanduser(str(folder))
            if not folder.startswith("/") and ctx.conn.kind == "local":
                folder = os.path.join(ctx.runbook_dir, folder)
        files = args.get("files") or []
        files = [str(files)] if isinstance(files, str) else [str(f) for f in files]
        if folder is None:
            first = files[0]
            if not first.startswith("/") and ctx.conn.kind == "local":
                files = [f if f.startswith("/") else os.path.join(ctx.runbook_dir, f)
                         for f in files]
            folder = posixpath.dirname(files[0]) or "."
        name = str(args.get("project_name") or project_name_for(folder))
        return folder, files, name

    def _compose(self, ctx: ActionContext) -> list[str]:
        """docker-compose, or docker compose (looked up once per connection)."""
        conn = ctx.conn
        found = _BINARIES.get(conn)
        if found is None:
            if conn.run(["docker-compose", "version", "--short"]).ok:
                found = ["docker-compose"]
            elif conn.run(["docker", "compose", "version", "--short"]).ok:
                found = ["docker", "compose"]
            else:
                raise StepFailed(f"neither docker-compose nor 'docker compose' works on "
                                 f"{ctx.host.name}", hint="install docker-compose")
            _BINARIES[conn] = found
        return found

    def _run(self, ctx: ActionContext, args: Mapping[str, Any], words: Sequence[str],
             check: bool = True) -> Any:
        folder, files, name = self._layout(ctx, args)
        argv = [*self._compose(ctx), "-p", name]
        for f in files:
            argv += ["-f", f]
        env = {str(k): str(v) for k, v in (args.get("env") or {}).items()}
        docker_host = ctx.host.connection.docker_host
        if ctx.conn.kind == "local" and docker_host and not docker_host.startswith("ssh://"):
            env.setdefault("DOCKER_HOST", docker_host)
        result = ctx.conn.run([*argv, *words], cwd=folder, env=env or None,
                              timeout=ctx.remaining())
        if check and not result.ok:
            tail = (result.stderr or result.stdout).rstrip().splitlines()[-8:]
            raise StepFailed(f"{' '.join(argv[:1])} {' '.join(words[:2])} failed with exit code "
                             f"{result.exit_code}" + "".join(f"\n  | {line}" for line in tail),
                             result=StepResult(failed=True, rc=result.exit_code,
                                               stdout=result.stdout, stderr=result.stderr,
                                               command=result.command))
        return result

    def _services(self, args: Mapping[str, Any]) -> list[str]:
        return [str(s) for s in args.get("services") or []]

    def _scale_words(self, args: Mapping[str, Any]) -> list[str]:
        words: list[str] = []
        for service, count in (args.get("scale") or {}).items():
            words += ["--scale", f"{service}={int(count)}"]
        return words

    # ------------------------------------------------------------ plan
    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        _, _, project = self._layout(ctx, args)
        hashes: dict[str, str] = {}
        for line in self._run(ctx, args, ["config", "--hash=*"]).stdout.splitlines():
            parts = line.split()
            if len(parts) == 2:
                hashes[parts[0]] = parts[1]
        listed = list(hashes)
        wanted = self._services(args) or listed
        unknown = [s for s in wanted if s not in listed]
        if unknown:
            raise StepFailed(f"no service {', '.join(unknown)} in the project (services: "
                             f"{', '.join(listed)})")
        containers: dict[str, list[dict[str, Any]]] = {}
        for c in ctx.docker.containers(labels={PROJECT_LABEL: project}, all=True):
            containers.setdefault((c.get("Labels") or {}).get(SERVICE_LABEL, ""), []).append(c)
        state = args.get("state") or "up"
        changes: list[str] = []
        if state == "down":
            count = sum(len(v) for v in containers.values())
            if count:
                changes.append(f"stop and remove {count} container(s) of project {project}")
        elif state == "restarted":
            changes += [f"restart {s}" for s in wanted if containers.get(s)]
        else:
            scale = {str(k): int(v) for k, v in (args.get("scale") or {}).items()}
            for service in (list(scale) if state == "scaled" and not self._services(args)
                            else wanted):
                have = containers.get(service, [])
                running = [c for c in have if c.get("State") == "running"]
                stale = [c for c in have if hashes.get(service) and
                         (c.get("Labels") or {}).get(HASH_LABEL) != hashes[service]]
                want = scale.get(service, max(1, len(have)) if state == "scaled" else 1)
                if service in scale and len(have) != want:
                    changes.append(f"scale {service} {len(have)} -> {want}")
                elif not have:
                    changes.append(f"create and start {service}")
                if stale and state == "up":
                    changes.append(f"recreate {service} (configuration changed)")
                elif have and len(running) < min(len(have), want):
                    changes.append(f"start {service}")
        return Plan(changed=bool(changes), changes=tuple(changes),
                    reason="" if changes else f"project {project} is as wanted",
                    fields={"project": project, "services": wanted})

    # ------------------------------------------------------------ apply
    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        _, _, project = self._layout(ctx, args)
        state = args.get("state") or "up"
        services = self._services(args)
        outputs = []
        if state in ("up", "scaled"):
            if args.get("pull"):
                outputs.append(self._run(ctx, args, ["pull", *services]))
            words = ["up", "-d"]
            if args.get("build") is True:
                words.append("--build")
            elif args.get("build") is False:
                words.append("--no-build")
            if args.get("remove_orphans"):
                words.append("--remove-orphans")
            words += self._scale_words(args)
            outputs.append(self._run(ctx, args, [*words, *services]))
        elif state == "down":
            words = ["down"]
            if args.get("remove_orphans"):
                words.append("--remove-orphans")
            if args.get("remove_volumes"):
                words.append("-v")
            outputs.append(self._run(ctx, args, words))
        else:
            outputs.append(self._run(ctx, args, ["restart", *services]))
        text = "\n".join(r.stdout + "\n" + r.stderr for r in outputs)
        changed = state == "restarted" or bool(_CHANGE_LINE.search(text))
        ps = self._ps(ctx, project)
        last = outputs[-1]
        return StepResult(changed=changed, rc=last.exit_code,
                          stdout="\n".join(r.stdout.rstrip("\n") for r in outputs).strip("\n"),
                          stderr="\n".join(r.stderr.rstrip("\n") for r in outputs).strip("\n"),
                          command=last.command,
                          msg=f"project {project} {state}" + ("" if changed else
                                                              " (nothing changed)"),
                          fields={"project": project, "state": state, "containers": ps,
                                  "ps": _ps_table(ps),
                                  "running": sorted({c["service"] for c in ps
                                                     if c["state"] == "running"})})

    def _ps(self, ctx: ActionContext, project: str) -> list[dict[str, Any]]:
        """The project's containers as the daemon sees them (what ``ps`` shows)."""
        out = []
        for c in ctx.docker.containers(labels={PROJECT_LABEL: project}, all=True):
            labels = c.get("Labels") or {}
            out.append({"name": (c.get("Names") or ["?"])[0].lstrip("/"),
                        "service": labels.get(SERVICE_LABEL, ""), "state": c.get("State"),
                        "status": c.get("Status"), "command": c.get("Command"),
                        "id": c.get("Id")})
        return sorted(out, key=lambda c: c["name"])


def _ps_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'NAME':<30} {'SERVICE':<16} {'STATE':<10} STATUS"]
    lines += [f"{r['name']:<30} {r['service']:<16} {str(r['state']):<10} {r['status']}"
              for r in rows]
    return "\n".join(lines)
