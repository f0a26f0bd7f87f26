"""Images and clean-up: ``docker.image`` and ``docker.prune``."""

from __future__ import annotations

import os
import time
from typing import Any, Iterable, Mapping

from ..errors import StepFailed
from .base import Action, ActionContext, Plan, StepResult
from .schema import ParamSpec

__all__ = ["Image", "Prune"]

_BUILD_FIELDS = {
    "context": ParamSpec("path", required=True,
                         doc="the build context folder (relative to the runbook's folder)"),
    "dockerfile": ParamSpec("str", doc="Dockerfile path inside the context"),
    "args": ParamSpec("dict", doc="build arguments"),
    "network_mode": ParamSpec("str", doc="network for RUN steps (host where there is no "
                                         "bridge)"),
    "target": ParamSpec("str", doc="stage to build"),
    "labels": ParamSpec("dict", doc="labels of the image"),
    "pull": ParamSpec("bool", doc="pull newer base images"),
    "nocache": ParamSpec("bool", doc="do not use the build cache"),
}


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


class Image(Action):
    """Make an image present (pulled, built or already local) or absent, with extra tags."""

    name = "docker.image"
    shorthand = "name"
    summary = "pull, build, tag or remove an image"
    supports_dry_run = True
    idempotent = True
    params = {
        "name": ParamSpec("str", required=True, doc="the image reference, repo:tag"),
        "state": ParamSpec("str", default="present", choices=("present", "absent")),
        "source": ParamSpec("str", choices=("pull", "build", "local"),
                            doc="where a missing image comes from (default: build when "
                                "'build' is given, else pull)"),
        "build": ParamSpec("dict", fields=_BUILD_FIELDS,
                           doc="context, dockerfile, args, network_mode, target, labels"),
        "tag": ParamSpec("str|list", doc="more references to tag the image as"),
        "force": ParamSpec("bool", default=False,
                           doc="pull or build again although the image is there; with "
                               "state: absent, remove it even if containers use it"),
    }

    @staticmethod
    def check_args(args: Mapping[str, Any]) -> Iterable[tuple[str, str | None]]:
        if args.get("source") == "build" and not args.get("build"):
            return [("source: build needs 'build: {context: DIR}'", "source")]
        return []

    def _source(self, args: Mapping[str, Any]) -> str:
        return str(args.get("source") or ("build" if args.get("build") else "pull"))

    def _changes(self, ctx: ActionContext, args: Mapping[str, Any]
                 ) -> tuple[list[str], dict[str, Any] | None]:
        api = ctx.docker
        ref = str(args["name"])
        info = api.image(ref)
        changes: list[str] = []
        if (args.get("state") or "present") == "absent":
            for name in [ref, *_tags(args.get("tag"))]:
                present = info is not None if name == ref else api.image(name) is not None
                if present:
                    changes.append(f"remove image {name}")
            return changes, info
        source = self._source(args)
        if info is None or (args.get("force") and source != "local"):
            if source == "local":
                raise StepFailed(f"image {ref} is not on the daemon (source: local)",
                                 hint="build or load it first, or use source: pull/build")
            changes.append(f"{'build' if source == 'build' else 'pull'} image {ref}")
        for extra in _tags(args.get("tag")):
            current = api.image(extra)
            if changes or current is None or info is None or current["Id"] != info["Id"]:
                changes.append(f"tag {ref} as {extra}")
        return changes, info

    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        changes, info = self._changes(ctx, args)
        return Plan(changed=bool(changes), changes=tuple(changes),
                    reason="" if changes else f"image {args['name']} is as wanted",
                    fields={"name": args["name"], "id": info["Id"] if info else None})

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        api = ctx.docker
        ref = str(args["name"])
        changes, info = self._changes(ctx, args)
        previous = info["Id"] if info else None
        fields: dict[str, Any] = {"name": ref, "previous_id": previous, "pulled": False,
                                  "built": False, "removed": False}
        if (args.get("state") or "present") == "absent":
            for name in [ref, *_tags(args.get("tag"))]:
                if api.remove_image(name, force=bool(args.get("force"))):
                    fields["removed"] = True
            fields["id"] = None
            return StepResult(changed=bool(changes), fields={**fields, "changes": changes},
                              msg="; ".join(changes) or f"image {ref} is absent")
        log = ""
        if any(c.startswith(("pull ", "build ")) for c in changes):
            if self._source(args) == "build":
                build = dict(args.get("build") or {})
                context = os.path.expanduser(str(build.get("context") or "."))
                if not os.path.isabs(context):
                    context = os.path.join(ctx.runbook_dir, context)
                if not os.path.isdir(context):
                    raise StepFailed(f"build context {context} is not a folder")
                _, log = api.build(context, ref, dockerfile=build.get("dockerfile"),
                                   buildargs={str(k): str(v) for k, v in
                                              (build.get("args") or {}).items()},
                                   network_mode=build.get("network_mode"),
                                   nocache=bool(build.get("nocache")),
                                   pull=bool(build.get("pull")), labels=build.get("labels"),
                                   target=build.get("target"))
                fields["built"] = True
            else:
                api.pull(ref)
                fields["pulled"] = True
        info = api.image(ref)
        if info is None:
            raise StepFailed(f"image {ref} is still missing after {self._source(args)}")
        tagged = False
        for extra in _tags(args.get("tag")):
            current = api.image(extra)
            if current is None or current["Id"] != info["Id"]:
                api.tag(info["Id"], extra)
                tagged = True
        if tagged:
            info = api.image(ref) or info
        changed = bool(changes) and (info["Id"] != previous or
                                     any(c.startswith("tag ") for c in changes))
        fields.update(id=info["Id"], tags=list(info.get("RepoTags") or []),
                      size=info.get("Size"), created=info.get("Created"))
        if log:
            fields["build_log"] = log[-4000:]
        return StepResult(changed=changed, fields={**fields, "changes": changes},
                          msg="; ".join(changes) if changed else f"image {ref} is as wanted")


class Prune(Action):
    """Remove unused containers, images, networks, volumes or build cache."""

    name = "docker.prune"
    summary = "remove stopped containers, dangling images, unused networks/volumes"
    supports_dry_run = True
    params = {
        "containers": ParamSpec("bool", default=True, doc="stopped containers"),
        "images": ParamSpec("bool", default=True, doc="dangling images (all unused ones "
                                                      "with all_images)"),
        "all_images": ParamSpec("bool", default=False, doc="unused images too, not only "
                                                           "dangling ones"),
        "networks": ParamSpec("bool", default=True, doc="unused networks"),
        "volumes": ParamSpec("bool", default=False, doc="unused volumes (only when asked)"),
        "builder": ParamSpec("bool", default=False, doc="the build cache"),
        "until": ParamSpec("duration", doc="only what was created longer ago than this"),
        "labels": ParamSpec("dict|list", doc="only what has these labels (k: v, or 'k' / "
                                             "'k=v' in a list)"),
    }

    def _kinds(self, args: Mapping[str, Any]) -> list[str]:
        defaults = {"containers": True, "images": True, "networks": True, "volumes": False,
                    "builder": False}
        return [k for k, d in defaults.items() if (d if args.get(k) is None else args[k])]

    def _filters(self, kind: str, args: Mapping[str, Any]) -> dict[str, Any]:
        filters: dict[str, Any] = {}
        until = args.get("until")
        if until is not None and kind != "volumes":
            filters["until"] = f"{int(float(until))}s"
        labels = args.get("labels")
        if labels and kind != "builder":
            filters["label"] = [f"{k}={v}" if v is not None else str(k)
                                for k, v in labels.items()] if isinstance(labels, dict) \
                else [str(x) for x in labels]
        if kind == "images":
            filters["dangling"] = "false" if args.get("all_images") else "true"
        return filters

    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        api = ctx.docker
        changes: list[str] = []
        until = args.get("until")
        cutoff = time.time() - float(until) if until is not None else None

        def old_enough(created: Any) -> bool:
            return cutoff is None or (isinstance(created, (int, float)) and created < cutoff)

        kinds = self._kinds(args)
        if "containers" in kinds:
            filters = {k: v for k, v in self._filters("containers", args).items() if k != "until"}
            for status in ("exited", "created", "dead"):
                for c in api.containers(all=True, filters={**filters, "status": status}):
                    if old_enough(c.get("Created")):
                        changes.append(f"remove container {(c.get('Names') or ['?'])[0].lstrip('/')}")
        if "images" in kinds:
            filters = {k: v for k, v in self._filters("images", args).items()
                       if k not in ("until", "dangling")}
            used = {c.get("ImageID") for c in api.containers(all=True)}
            for image in api.images(filters={**filters, **({} if args.get("all_images")
                                                            else {"dangling": "true"})}):
                if image.get("Id") not in used and old_enough(image.get("Created")):
                    tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
                    changes.append(f"remove image {tags[0] if tags else image['Id'][7:19]}")
        if "volumes" in kinds:
            filters = {k: v for k, v in self._filters("volumes", args).items()}
            for volume in api.volumes(filters={**filters, "dangling": "true"}):
                changes.append(f"remove volume {volume.get('Name')}")
        if "networks" in kinds:
            filters = {k: v for k, v in self._filters("networks", args).items() if k != "until"}
            for network in api.networks(filters=filters):
                if network.get("Name") in ("bridge", "host", "none"):
                    continue
                detail = api.network(network["Id"]) or {}
                if not detail.get("Containers"):
                    changes.append(f"remove network {network.get('Name')}")
        if "builder" in kinds:
            cache = [c for c in (api.df().get("BuildCache") or []) if not c.get("InUse")]
            if cache:
                size = sum(int(c.get("Size") or 0) for c in cache)
                changes.append(f"remove {len(cache)} build cache entr(ies), {size} bytes")
        return Plan(changed=bool(changes), changes=tuple(changes),
                    reason="" if changes else "nothing to prune")

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        api = ctx.docker
        reclaimed = 0
        fields: dict[str, Any] = {}
        keys = {"containers": "ContainersDeleted", "images": "ImagesDeleted",
                "volumes": "VolumesDeleted", "networks": "NetworksDeleted",
                "builder": "CachesDeleted"}
        changes: list[str] = []
        for kind in self._kinds(args):
            report = api.prune(kind, self._filters(kind, args))
            deleted = report.get(keys[kind]) or []
            if kind == "images":
                deleted = [d.get("Deleted") or d.get("Untagged") for d in deleted]
            fields[f"{kind}_deleted"] = deleted
            reclaimed += int(report.get("SpaceReclaimed") or 0)
            if deleted:
                changes.append(f"{len(deleted)} {kind}")
        fields["space_reclaimed"] = reclaimed
        return StepResult(changed=bool(changes), fields=fields,
                          msg=("pruned " + ", ".join(changes) + f" ({reclaimed} bytes)")
                          if changes else "nothing to prune")
