"""``docker.container``: one container made to match a spec, created, recreated, started,
stopped or removed, with an optional wait until it is healthy.

A recreate (the image id or a given option differs, or ``recreate: true``) stops the
old container, renames it aside, creates and starts the new one, and removes the old
one only then: if create or start fails, the old container is put back as it was.
The result names the previous image, so a rollback step can deploy it again; with
``inherit: true`` every option the step does not give (env, volumes, labels, network
mode, restart policy, healthcheck, command...) is taken from the existing container, so
only the image changes::

    - id: deploy
      docker.container: {name: api, image: "api:{{ version }}", network_mode: host}
      register: deployed
      rollback:
        docker.container: {name: api, image: "{{ deployed.previous_image }}", inherit: true}

Without ``inherit`` a recreated container has only the options the step gives.
What the old container had from its image (env entries and labels equal to the image's,
its default command, entrypoint, user, workdir and healthcheck) is not inherited: the
new image's defaults apply.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from ..errors import RunbookError, StepFailed
from .base import Action, ActionContext, Plan, StepResult
from .docker_spec import (SPEC_PARAMS, ContainerSpec, differences, inherit_spec, parse_spec,
                          spec_problems)
from .schema import ParamSpec

__all__ = ["Container", "Converged", "converge", "resolve_image", "CONTROL_PARAMS"]

#: how docker.container and docker.scale go about it
CONTROL_PARAMS: dict[str, ParamSpec] = {
    "recreate": ParamSpec("bool", default=False,
                          doc="recreate even when nothing changed"),
    "wait_healthy": ParamSpec("bool", default=False,
                              doc="wait until healthy (without a healthcheck: running for 1 s)"),
    "health_timeout": ParamSpec("duration", default=60, doc="how long wait_healthy waits"),
    "pull": ParamSpec("str", default="missing", choices=("missing", "always", "never"),
                      doc="pull the image when it is missing, always, or never"),
}


@dataclass
class Converged:
    """What converging one container did (or, in a plan, would do)."""

    changes: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def resolve_image(api: Any, ref: str, pull: str, plan: bool) -> tuple[dict[str, Any] | None,
                                                                        list[str]]:
    """The wanted image's inspect data, pulled as ``pull`` says; in a plan only noted."""
    info = api.image(ref)
    if pull == "always" or (info is None and pull == "missing"):
        if plan:
            return (None if pull == "always" else info), [f"pull image {ref}"]
        before = info["Id"] if info else None
        info = api.pull(ref)
        return info, ([f"pulled image {ref}"] if info["Id"] != before else [])
    if info is None:
        raise StepFailed(f"image {ref} is not on the daemon and pull is 'never'",
                         hint="build or load it first (docker.image), or allow pulling")
    return info, []


def _previous_image(api: Any, info: Mapping[str, Any]) -> str:
    """The reference that gives back the image a container runs (its tag if still there)."""
    ref = str((info.get("Config") or {}).get("Image") or "")
    image_id = str(info.get("Image") or "")
    if ref and not ref.startswith("sha256:"):
        current = api.image(ref)
        if current is not None and current.get("Id") == image_id:
            return ref
    return image_id or ref


def converge(ctx: ActionContext, api: Any, spec: ContainerSpec, state: str, *,
             recreate: bool = False, pull: str = "missing", wait: bool = False,
             health_timeout: float = 60.0, plan: bool = False,
             image_info: Mapping[str, Any] | None = None, inherit: bool = False) -> Converged:
    """Make one container match ``spec`` and ``state`` (or say what that would take).

    ``inherit``: the options the spec does not give are the existing container's
    (see inherit_spec); an image not given is the one it runs (its tag while that still
    names it), never pulled.
    """
    name = spec.name
    info = api.container(name)
    if inherit and info is not None and state != "absent":
        old_image = api.image(str(info.get("Image") or "")) if info.get("Image") else None
        if spec.image is None:
            spec = replace(spec, image=_previous_image(api, info))
            if image_info is None and old_image is not None:
                image_info = old_image
        spec = inherit_spec(spec, info, old_image)
    done = Converged()
    fields = done.fields
    fields.update(name=name, id=None, image=spec.image, image_id=None, previous_id=None,
                  previous_image=None, previous_image_id=None, created=False, recreated=False,
                  started=False, stopped=False, restarted=False, removed=False, health=None,
                  status=None, exists=info is not None)
    if info is not None:
        fields.update(previous_id=info["Id"], previous_image_id=info.get("Image"),
                      previous_image=_previous_image(api, info))
    running = bool(info and (info.get("State") or {}).get("Running"))
    if state == "absent":
        if info is not None:
            done.changes.append(f"remove container {name}")
            if not plan:        # with its anonymous volumes; named volumes stay
                api.remove_container(name, force=True, volumes=True)
                fields.update(removed=True, exists=False)
        return done
    if state == "stopped":
        if running:
            done.changes.append(f"stop container {name}")
            if not plan:
                api.stop(name, spec.stop_grace)
                fields["stopped"] = True
        return _finish(api, done)
    if spec.image is not None and image_info is None:
        image_info, notes = resolve_image(api, spec.image, pull, plan)
        done.changes.extend(notes)
    elif spec.image is None and info is not None:
        image_info = api.image(str(info.get("Image")))
    if info is None:
        if spec.image is None:
            raise StepFailed(f"container {name} does not exist and no image is given to "
                             f"create it")
        done.changes.append(f"create container {name} from {spec.image}")
        start = state in ("started", "restarted")
        if start:
            done.changes.append(f"start container {name}")
        if not plan:
            new_id = api.create_container(name, spec.create_args())
            fields["created"] = True
            if start:
                api.start(new_id)
                fields["started"] = True
    else:
        if spec.image is not None and image_info is None:
            reasons = [f"recreate if the pulled image {spec.image} differs"]
        else:
            reasons = differences(spec, info, image_info)
        if recreate:
            reasons.insert(0, "recreate: true")
        if reasons:
            start = state != "present" or running
            done.changes.append(f"recreate container {name}: {'; '.join(reasons)}")
            if not plan:
                _recreate(api, spec, info, start)
                fields.update(recreated=True, started=start)
        elif state == "started" and not running:
            done.changes.append(f"start container {name}")
            if not plan:
                api.start(name)
                fields["started"] = True
        elif state == "restarted":
            done.changes.append(f"restart container {name}")
            if not plan:
                api.restart(name, spec.stop_grace)
                fields["restarted"] = True
    if wait and not plan and state != "present":
        try:
            api.wait_healthy(name, health_timeout, cancelled=ctx.cancelled)
        except StepFailed as exc:
            _finish(api, done)
            raise StepFailed(exc.message, hint=exc.hint,
                             result=StepResult(changed=done.changed, fields=dict(fields))) from None
    return _finish(api, done)


def _finish(api: Any, done: Converged) -> Converged:
    """Fill the result fields from the container as it is now (in a plan: as it is
    before the changes, the best a dry run can tell)."""
    fields = done.fields
    info = api.container(fields["name"])
    if info is None:
        fields["exists"] = False
        return done
    state = info.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    fields.update(id=info["Id"], image_id=info.get("Image"), exists=True,
                  image=fields.get("image") or (info.get("Config") or {}).get("Image"),
                  status=state.get("Status"),
                  health=health or ("running" if state.get("Running") else None))
    return done


def _recreate(api: Any, spec: ContainerSpec, old: Mapping[str, Any], start: bool) -> str:
    """Replace a container; on failure the old one is put back as it was."""
    aside = f"{spec.name}.runbook-old"
    if api.container(aside) is not None:
        api.remove_container(aside, force=True)
    was_running = bool((old.get("State") or {}).get("Running"))
    if was_running:
        api.stop(old["Id"], spec.stop_grace)
    api.rename(old["Id"], aside)
    new_id = None
    try:
        new_id = api.create_container(spec.name, spec.create_args())
        if start:
            api.start(new_id)
    except RunbookError:
        with contextlib.suppress(RunbookError):
            if new_id is not None:
                api.remove_container(new_id, force=True)
            api.rename(old["Id"], spec.name)
            if was_running:
                api.start(old["Id"])
        raise
    api.remove_container(old["Id"], force=True, volumes=True)
    return new_id


class Container(Action):
    """Make a container exist (or not) with a given spec and state."""

    name = "docker.container"
    shorthand = "name"
    summary = "create, recreate, start, stop or remove a container"
    supports_dry_run = True
    idempotent = True
    params = {
        "name": ParamSpec("str", required=True, doc="the container's name"),
        "state": ParamSpec("str", default="started",
                           choices=("started", "stopped", "restarted", "absent", "present"),
                           doc="started, stopped, restarted (always restarts), absent, or "
                               "present (created, not started)"),
        **SPEC_PARAMS,
        "inherit": ParamSpec("bool", default=False,
                             doc="take every setting not given here from the existing "
                                 "container, so only what is listed changes (e.g. the image)"),
        **CONTROL_PARAMS,
    }

    @staticmethod
    def check_args(args: Mapping[str, Any]) -> Iterable[tuple[str, str | None]]:
        return spec_problems(args)

    def _run(self, ctx: ActionContext, args: Mapping[str, Any], plan: bool) -> Converged:
        spec = parse_spec(args)
        return converge(ctx, ctx.docker, spec, str(args.get("state") or "started"),
                        recreate=bool(args.get("recreate")),
                        pull=str(args.get("pull") or "missing"),
                        wait=bool(args.get("wait_healthy")),
                        health_timeout=float(args.get("health_timeout") or 60), plan=plan,
                        inherit=bool(args.get("inherit")))

    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        done = self._run(ctx, args, plan=True)
        return Plan(changed=done.changed, changes=tuple(done.changes),
                    reason="" if done.changed else f"container {args['name']} is as wanted",
                    fields=done.fields)

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        done = self._run(ctx, args, plan=False)
        return StepResult(changed=done.changed,
                          msg="; ".join(done.changes) if done.changed else
                          f"container {args['name']} is as wanted",
                          fields={**done.fields, "changes": list(done.changes)})
