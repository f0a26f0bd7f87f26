"""Docker actions that run a command or read facts: ``docker.exec``, ``docker.inspect``,
``docker.info``, ``docker.logs`` and ``docker.stats``.

Every docker action talks to the host's Docker daemon through ``ctx.docker`` (a
``DockerApi``: connections/docker_api.py), never the SDK.  The others live beside
this module: docker_container.py (``docker.container``), docker_scale.py
(``docker.scale``), docker_image.py (``docker.image``, ``docker.prune``) and
docker_compose.py (``docker.compose``).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import shlex
import time
from typing import Any, Iterable, Mapping

from ..errors import Unreachable, StepFailed
from ..model import parse_duration
from .command import COMMAND_OPTIONS
from .base import Action, ActionContext, CannotSimulate, Plan, StepResult
from .schema import ParamSpec

__all__ = ["Exec", "Inspect", "Info", "Logs", "Stats", "container_facts", "stats_facts"]


class Exec(Action):
    """Run a command in a running container (any container on the host's daemon)."""

    name = "docker.exec"
    summary = "run a command inside a container"
    supports_dry_run = True
    params = {
        "container": ParamSpec("str", required=True, doc="container name or id"),
        "command": ParamSpec("str|list", required=True,
                             doc="a string runs with /bin/sh -c; a list is argv"),
        "workdir": ParamSpec("str", doc="working directory"),
        "user": ParamSpec("str", doc="user to run as (default: the container's)"),
        **{key: COMMAND_OPTIONS[key] for key in ("env", "stdin", "ok_codes",
                                                 "check_mode_safe")},
    }

    @classmethod
    def is_read_only(cls, args: Mapping[str, Any]) -> bool:
        return args.get("check_mode_safe") is True

    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        raise CannotSimulate("docker.exec runs an arbitrary command: it cannot be simulated "
                             "(set check_mode_safe: true if it only reads)")

    def _exec(self, ctx: ActionContext, args: Mapping[str, Any], command: Any, env: Any,
              stdin: Any) -> Any:
        return ctx.docker.exec(str(args["container"]), command,
                               stdin=stdin.encode() if isinstance(stdin, str) else None,
                               timeout=ctx.remaining(),
                               env={str(k): "" if v is None else str(v)
                                    for k, v in env.items()} if env else None,
                               workdir=args.get("workdir"), user=args.get("user"))

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        command = args["command"]
        if not isinstance(command, str):
            command = [str(c) for c in command]
            if not command:
                raise StepFailed("docker.exec: command is empty")
        env = args.get("env")
        stdin = args.get("stdin")
        try:
            run = self._exec(ctx, args, command, env, stdin)
        except Unreachable:
            # the step's target container is gone: that is this step failing; the host
            # (its daemon) is unreachable when the daemon or the link to it is the cause
            if _container_running(ctx, str(args["container"])) is not False:
                raise
            raise StepFailed(f"docker.exec: container {args['container']} is not "
                             "running") from None
        codes = args.get("ok_codes", [0])
        codes = (codes,) if isinstance(codes, int) else tuple(int(c) for c in codes)
        failed = run.exit_code not in codes
        # a command declared read-only (check_mode_safe) changes nothing
        return StepResult(changed=not args.get("check_mode_safe"), failed=failed,
                          rc=run.exit_code,
                          stdout=run.stdout.rstrip("\r\n"), stderr=run.stderr.rstrip("\r\n"),
                          command=run.command if isinstance(command, str) else
                          shlex.join(command), duration=run.duration,
                          msg=f"exit code {run.exit_code}" if failed else "")


def _container_running(ctx: ActionContext, name: str) -> bool | None:
    """Whether the container runs; None when the daemon cannot tell us."""
    try:
        info = ctx.docker.container(name)
    except Exception:  # any failure: the daemon (or the link to it) is the problem
        return None
    return bool(info and (info.get("State") or {}).get("Running"))


def container_facts(info: Mapping[str, Any] | None) -> dict[str, Any]:
    """The facts runbooks use about a container (exists: false when there is none)."""
    if info is None:
        return {"exists": False, "state": "absent", "running": False, "health": None,
                "image": None, "image_id": None, "restart_count": 0, "started_at": None,
                "exit_code": None, "labels": {}, "id": None}
    state = info.get("State") or {}
    config = info.get("Config") or {}
    return {
        "exists": True, "id": info.get("Id"), "name": str(info.get("Name") or "").lstrip("/"),
        "state": state.get("Status"), "running": bool(state.get("Running")),
        "health": (state.get("Health") or {}).get("Status"),
        "image": config.get("Image"), "image_id": info.get("Image"),
        "restart_count": int(info.get("RestartCount") or 0),
        "started_at": state.get("StartedAt"), "finished_at": state.get("FinishedAt"),
        "exit_code": state.get("ExitCode"), "oom_killed": bool(state.get("OOMKilled")),
        "labels": dict(config.get("Labels") or {}),
        "network_mode": (info.get("HostConfig") or {}).get("NetworkMode"),
    }


class Inspect(Action):
    """Facts about a container or an image; a missing one is ``exists: false``."""

    name = "docker.inspect"
    summary = "facts about a container or an image"
    supports_dry_run = True
    read_only = True
    params = {
        "container": ParamSpec("str", doc="container name or id"),
        "image": ParamSpec("str", doc="image reference or id"),
        "must_exist": ParamSpec("bool", default=False, doc="fail when it does not exist"),
    }
    one_of = (("container", "image"),)
    exclusive = (("container", "image"),)

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        api = ctx.docker
        if args.get("container"):
            name = str(args["container"])
            facts = container_facts(api.container(name))
            what = f"container {name}"
            msg = f"{what}: {facts['state']}" + (f", {facts['health']}" if facts["health"]
                                                  else "")
        else:
            name = str(args["image"])
            info = api.image(name)
            facts = {"exists": info is not None, "id": info.get("Id") if info else None,
                     "tags": list(info.get("RepoTags") or []) if info else [],
                     "labels": dict((info.get("Config") or {}).get("Labels") or {})
                     if info else {},
                     "created": info.get("Created") if info else None,
                     "size": info.get("Size") if info else None}
            what = f"image {name}"
            msg = f"{what}: {str(facts['id'])[7:19]}" if info else f"{what}: absent"
        if not facts["exists"] and args.get("must_exist"):
            raise StepFailed(f"{what} does not exist",
                             result=StepResult(fields=facts))
        return StepResult(changed=False, msg=msg, fields=facts)


class Info(Action):
    """Facts about the host's Docker daemon."""

    name = "docker.info"
    summary = "facts about the Docker daemon"
    supports_dry_run = True
    read_only = True

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        info = ctx.docker.info()
        facts = {
            "server_version": info.get("ServerVersion"),
            "containers": info.get("Containers"),
            "containers_running": info.get("ContainersRunning"),
            "containers_paused": info.get("ContainersPaused"),
            "containers_stopped": info.get("ContainersStopped"),
            "images": info.get("Images"), "mem_total": info.get("MemTotal"),
            "ncpu": info.get("NCPU"), "driver": info.get("Driver"),
            "cgroup_version": info.get("CgroupVersion"), "os": info.get("OperatingSystem"),
            "name": info.get("Name"),
        }
        return StepResult(changed=False, fields=facts,
                          msg=f"docker {facts['server_version']}: {facts['containers_running']}"
                              f" running, {facts['containers_stopped']} stopped, "
                              f"{facts['images']} images")


def parse_since(value: Any, now: float | None = None) -> float:
    """A duration ago (30s, 10m), an ISO timestamp, or epoch seconds -> epoch seconds."""
    now = time.time() if now is None else now
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if value > 1e9 else now - float(value)
    text = str(value).strip()
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        stamp = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise StepFailed(f"since: {text!r} is neither a duration (10m) nor a timestamp "
                         f"(2024-05-01T12:00:00Z)") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp()


class Logs(Action):
    """The last lines of a container's output."""

    name = "docker.logs"
    shorthand = "container"
    summary = "read a container's log"
    supports_dry_run = True
    read_only = True
    params = {
        "container": ParamSpec("str", required=True, doc="container name or id"),
        "tail": ParamSpec("int", default=100, doc="how many lines at most (per stream)"),
        "since": ParamSpec("duration|str|number", doc="only lines newer than this: a "
                                                      "duration (10m) or a timestamp"),
        "timestamps": ParamSpec("bool", default=False, doc="prefix lines with their time"),
    }

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        name = str(args["container"])
        api = ctx.docker
        if api.container(name) is None:
            raise StepFailed(f"container {name} does not exist")
        since = parse_since(args["since"]) if args.get("since") is not None else None
        tail = args.get("tail")
        out, err = api.logs(name, tail=100 if tail is None else int(tail), since=since,
                            timestamps=bool(args.get("timestamps")))
        lines = len(out.splitlines()) + len(err.splitlines())
        return StepResult(changed=False, stdout=out.rstrip("\n"), stderr=err.rstrip("\n"),
                          msg=f"{lines} line(s) from {name}", fields={"container": name})


def stats_facts(sample: Mapping[str, Any]) -> dict[str, Any]:
    """cpu_percent, mem_usage, mem_limit, mem_percent from one stats sample."""
    cpu = sample.get("cpu_stats") or {}
    pre = sample.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - \
        (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage")
                                           or []) or 1
    cpu_percent = cpu_delta / system_delta * online * 100 if system_delta > 0 and \
        cpu_delta >= 0 else 0.0
    memory = sample.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    cache = detail.get("total_inactive_file", detail.get("inactive_file", detail.get("cache", 0)))
    usage = max(0, int(memory.get("usage") or 0) - int(cache or 0))
    limit = int(memory.get("limit") or 0)
    return {"cpu_percent": round(cpu_percent, 2), "mem_usage": usage, "mem_limit": limit,
            "mem_percent": round(usage / limit * 100, 3) if limit else 0.0,
            "pids": (sample.get("pids_stats") or {}).get("current"),
            "running": bool(memory)}


class Stats(Action):
    """One resource snapshot of one or more containers."""

    name = "docker.stats"
    shorthand = "container"
    summary = "CPU and memory use of containers (one snapshot)"
    supports_dry_run = True
    read_only = True
    params = {
        "container": ParamSpec("str|list", required=True, aliases=("containers",),
                               doc="a container, or a list of them"),
    }

    @staticmethod
    def check_args(args: Mapping[str, Any]) -> Iterable[tuple[str, str | None]]:
        if isinstance(args.get("container"), list) and not args["container"]:
            return [("container: the list is empty", "container")]
        return []

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        api = ctx.docker
        value = args["container"]
        names = [str(value)] if isinstance(value, str) else [str(v) for v in value]
        for name in names:
            if api.container(name) is None:
                raise StepFailed(f"container {name} does not exist")
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
            samples = list(pool.map(api.stats, names))     # each takes about a second
        per = {name: stats_facts(sample) for name, sample in zip(names, samples)}
        fields: dict[str, Any] = {"containers": per}
        if len(names) == 1:
            fields.update(per[names[0]])
        lines = [f"{n}: cpu {s['cpu_percent']}%, mem {s['mem_usage'] / 1048576:.1f} MiB "
                 f"({s['mem_percent']}%)" for n, s in per.items()]
        return StepResult(changed=False, msg="; ".join(lines), stdout="\n".join(lines),
                          fields=fields)
