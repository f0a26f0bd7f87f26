"""``docker.scale``: N replicas of one container spec, changed one container at a time.

Replicas are named ``<name>-1`` .. ``<name>-N`` and labelled ``runbook.scale=<name>``
and ``runbook.replica=<i>``.  In every string of the spec (command, env values,
healthcheck test, labels, ports, volumes, workdir) the placeholder ``{replica}`` becomes
the replica's number, so replicas on the host network can listen on different ports::

    docker.scale:
      name: web
      image: busybox
      replicas: 3
      network_mode: host
      command: "httpd -f -p 300{replica}"
      healthcheck: {test: "wget -q -O- http://127.0.0.1:300{replica}/", interval: 1s}

Scaling down removes the highest-numbered replicas first, one at a time; replicas that
stay and no longer match the spec are recreated one at a time (a rolling update);
scaling up creates the missing replicas one at a time.  With ``wait_healthy`` (the
default) each new or recreated replica must be healthy before the next one is touched.
The result has ``previous`` and ``current`` counts, so a rollback step can scale back
with ``replicas: "{{ scaled.previous }}"``.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from ..errors import StepFailed
from .base import Action, ActionContext, Plan, StepResult
from .docker_container import CONTROL_PARAMS, converge, resolve_image
from .docker_spec import SPEC_PARAMS, parse_spec, spec_problems, with_replica
from .schema import ParamSpec

__all__ = ["Scale", "SCALE_LABEL", "REPLICA_LABEL"]

SCALE_LABEL = "runbook.scale"
REPLICA_LABEL = "runbook.replica"


class Scale(Action):
    """Run N replicas of a container spec, scaling one container at a time."""

    name = "docker.scale"
    summary = "scale a set of identical containers up or down, one at a time"
    supports_dry_run = True
    idempotent = True
    params = {
        "name": ParamSpec("str", required=True,
                          doc="replicas are <name>-1..N, labelled runbook.scale=<name>"),
        "replicas": ParamSpec("int", required=True, doc="how many replicas should run"),
        **SPEC_PARAMS,
        **CONTROL_PARAMS,
        "wait_healthy": ParamSpec("bool", default=True,
                                  doc="each new or recreated replica must be healthy before "
                                      "the next one"),
    }

    @staticmethod
    def check_args(args: Mapping[str, Any]) -> Iterable[tuple[str, str | None]]:
        problems = spec_problems(with_replica(args, 1))
        replicas = args.get("replicas")
        if isinstance(replicas, int) and replicas < 0:
            problems.append((f"replicas cannot be negative (got {replicas})", "replicas"))
        return problems

    def _existing(self, api: Any, name: str) -> dict[int, dict[str, Any]]:
        """Replica number -> container summary, for the containers of this set."""
        found: dict[int, dict[str, Any]] = {}
        # replicas made by this action carry its label; containers named <name>-N that
        # were started by other means (docker run, compose) are members of the set too
        summaries = {s["Id"]: s for s in api.containers(labels={SCALE_LABEL: name}, all=True)}
        for summary in api.containers(filters={"name": f"^/?{re.escape(name)}-[0-9]+$"},
                                      all=True):
            summaries.setdefault(summary["Id"], summary)
        for summary in summaries.values():
            label = (summary.get("Labels") or {}).get(REPLICA_LABEL, "")
            number = int(label) if label.isdigit() else None
            if number is None:
                names = [n.lstrip("/") for n in summary.get("Names") or []]
                match = next((re.fullmatch(re.escape(name) + r"-(\d+)", n) for n in names
                              if re.fullmatch(re.escape(name) + r"-(\d+)", n)), None)
                number = int(match.group(1)) if match else None
            if number is not None:
                found[number] = summary
        return found

    def _run(self, ctx: ActionContext, args: Mapping[str, Any], plan: bool
             ) -> tuple[list[str], dict[str, Any]]:
        api = ctx.docker
        name = str(args["name"])
        wanted = int(args["replicas"])
        if wanted < 0:
            raise StepFailed(f"replicas cannot be negative (got {wanted})")
        existing = self._existing(api, name)
        changes: list[str] = []
        created: list[str] = []
        removed: list[str] = []
        recreated: list[str] = []
        for number in sorted((n for n in existing if n > wanted), reverse=True):
            replica = f"{name}-{number}"
            changes.append(f"remove replica {replica}")
            if not plan:
                api.remove_container(existing[number]["Id"], force=True, volumes=True)
                removed.append(replica)
        pull = str(args.get("pull") or "missing")
        image_info = None
        if args.get("image") is not None and wanted:
            image_info, notes = resolve_image(api, str(args["image"]), pull, plan)
            changes.extend(notes)
        spec_args = {k: v for k, v in args.items() if k in SPEC_PARAMS}
        for number in range(1, wanted + 1):
            replica = f"{name}-{number}"
            spec = parse_spec(with_replica(spec_args, number), name=replica,
                              extra_labels={SCALE_LABEL: name, REPLICA_LABEL: str(number)})
            if number not in existing and spec.image is None:
                raise StepFailed(f"docker.scale {name}: 'image' is needed to create {replica}")
            try:
                done = converge(ctx, api, spec, "started", recreate=bool(args.get("recreate")),
                                pull="never" if image_info is not None else pull,
                                wait=args.get("wait_healthy") is not False,
                                health_timeout=float(args.get("health_timeout") or 60),
                                plan=plan, image_info=image_info)
            except StepFailed as exc:
                fields = {"name": name, "previous": len(existing), "failed_replica": replica,
                          "current": len(self._existing(api, name)),
                          "created": created, "removed": removed, "recreated": recreated}
                raise StepFailed(f"docker.scale {name}: {exc.message}", hint=exc.hint,
                                 result=StepResult(changed=True, fields=fields)) from None
            changes.extend(done.changes)
            if not plan:
                if done.fields["created"]:
                    created.append(replica)
                elif done.fields["recreated"]:
                    recreated.append(replica)
        fields = {"name": name, "previous": len(existing), "current": wanted,
                  "replicas": [f"{name}-{n}" for n in range(1, wanted + 1)],
                  "created": created, "removed": removed, "recreated": recreated}
        return changes, fields

    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        changes, fields = self._run(ctx, args, plan=True)
        return Plan(changed=bool(changes), changes=tuple(changes), fields=fields,
                    reason="" if changes else
                    f"{fields['current']} replica(s) of {fields['name']} run as wanted")

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        changes, fields = self._run(ctx, args, plan=False)
        summary = f"{fields['name']}: {fields['previous']} -> {fields['current']} replica(s)"
        return StepResult(changed=bool(changes),
                          msg=summary + (f" ({'; '.join(changes)})" if changes else ""),
                          fields={**fields, "changes": changes})
