"""Container specs: the parameters of docker.container/docker.scale as a typed value,
and the comparison with a container's inspect data that decides a recreate.

Pure logic (no daemon): ``parse_spec(args)`` validates and normalises the parameters;
``differences(spec, container, image)`` lists what differs, reading the inspect data
the way Docker writes it (the image's env and labels are part of the container's,
``default`` is ``bridge``, an empty restart policy is ``no``...).  Options that are
not given are not compared: the container keeps whatever it has.
``inherit_spec(spec, container, image)`` fills the options a spec does not give from an
existing container (``docker.container``'s ``inherit``), leaving out what the container
only has from its image.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

from ..errors import StepFailed
from ..model import parse_duration
from .schema import ParamSpec

__all__ = ["ContainerSpec", "SPEC_PARAMS", "parse_spec", "spec_problems", "differences",
           "inherit_spec", "with_replica",
           "parse_memory", "parse_port", "parse_volume", "parse_restart", "parse_healthcheck"]

_NS = 1_000_000_000
_HEALTH_FIELDS = {
    "test": ParamSpec("str|list", doc="a shell command (CMD-SHELL), an argv list, or NONE"),
    "interval": ParamSpec("duration", doc="time between checks"),
    "timeout": ParamSpec("duration", doc="a check slower than this fails"),
    "retries": ParamSpec("int", doc="failures in a row that make the container unhealthy"),
    "start_period": ParamSpec("duration", doc="failures during this start-up time don't count"),
}
#: healthcheck fields as parse_healthcheck writes them -> as the inspect data does
_HEALTH_KEYS = {"test": "Test", "interval": "Interval", "timeout": "Timeout",
                "retries": "Retries", "start_period": "StartPeriod"}

#: the container parameters shared by docker.container and docker.scale
SPEC_PARAMS: dict[str, ParamSpec] = {
    "image": ParamSpec("str", doc="image reference (repo:tag); needed to create"),
    "command": ParamSpec("str|list", doc="the command (a string is split like a shell would)"),
    "entrypoint": ParamSpec("str|list", doc="replace the image's entrypoint"),
    "env": ParamSpec("dict", doc="environment variables"),
    "ports": ParamSpec("list", elements="str|int",
                       doc="published ports [host_ip:]host_port:container_port[/proto]; moot "
                           "with network_mode: host"),
    "volumes": ParamSpec("list", elements="str",
                         doc="/host/path:/dst[:ro], volume_name:/dst[:ro] or /dst (anonymous)"),
    "labels": ParamSpec("dict", doc="container labels"),
    "network_mode": ParamSpec("str", doc="host, none, bridge, container:NAME (default: the "
                                         "daemon's default)"),
    "restart_policy": ParamSpec("str", doc="no, always, unless-stopped, on-failure[:N]"),
    "healthcheck": ParamSpec("dict", fields=_HEALTH_FIELDS,
                             doc="test, interval, timeout, retries, start_period"),
    "user": ParamSpec("str", doc="user (name or uid[:gid]) the command runs as"),
    "workdir": ParamSpec("str", doc="working directory of the command"),
    "memory": ParamSpec("str|int", doc="memory limit: bytes or 256m, 1g..."),
    "cpus": ParamSpec("number", doc="CPU limit, e.g. 0.5"),
    "init": ParamSpec("bool", doc="run docker-init as PID 1 (signals, zombies)"),
    "stop_timeout": ParamSpec("duration", default=10, doc="grace time before SIGKILL on stop"),
}

Port = tuple[str, str, str, str]        # container port, proto, host ip, host port


@dataclass(frozen=True)
class ContainerSpec:
    """What a container should look like; None means 'not given, not compared'."""

    name: str
    image: str | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: Mapping[str, str] | None = None
    ports: tuple[Port, ...] | None = None
    binds: tuple[str, ...] | None = None          # normalised src:dst:mode
    anonymous_volumes: tuple[str, ...] | None = None
    labels: Mapping[str, str] | None = None
    network_mode: str | None = None
    restart_policy: tuple[str, int] | None = None
    healthcheck: Mapping[str, Any] | None = None  # API form, only the given fields
    user: str | None = None
    workdir: str | None = None
    memory: int | None = None
    nano_cpus: int | None = None
    init: bool | None = None
    stop_timeout: float | None = None             # None: not given (stop waits 10 s)
    extra_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def stop_grace(self) -> float:
        """Seconds a stop waits before SIGKILL."""
        return 10.0 if self.stop_timeout is None else self.stop_timeout

    def all_labels(self) -> dict[str, str] | None:
        if self.labels is None and not self.extra_labels:
            return None
        return {**(self.labels or {}), **self.extra_labels}

    def create_args(self) -> dict[str, Any]:
        """The neutral spec DockerApi.create_container takes."""
        policy = None
        if self.restart_policy is not None:
            policy = {"Name": self.restart_policy[0],
                      "MaximumRetryCount": self.restart_policy[1]}
        return {
            "image": self.image, "command": list(self.command) if self.command is not None
            else None, "entrypoint": list(self.entrypoint) if self.entrypoint is not None
            else None, "env": dict(self.env or {}), "labels": self.all_labels() or {},
            "ports": list(self.ports or ()), "binds": list(self.binds or ()),
            "anonymous_volumes": list(self.anonymous_volumes or ()),
            "network_mode": self.network_mode, "restart_policy": policy,
            "healthcheck": dict(self.healthcheck) if self.healthcheck else None,
            "user": self.user, "workdir": self.workdir, "memory": self.memory,
            "nano_cpus": self.nano_cpus, "init": self.init,
            "stop_timeout": int(self.stop_timeout) if self.stop_timeout is not None
            else None,
        }


# ---------------------------------------------------------------- parsing

def parse_spec(args: Mapping[str, Any], name: str | None = None,
               extra_labels: Mapping[str, str] | None = None) -> ContainerSpec:
    """The spec of the step's arguments; StepFailed names the bad parameter."""
    def words(key: str) -> tuple[str, ...] | None:
        value = args.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                return tuple(shlex.split(value))
            except ValueError as exc:
                raise StepFailed(f"{key}: cannot split {value!r}: {exc}") from None
        return tuple(str(v) for v in value)

    env = args.get("env")
    labels = args.get("labels")
    binds: list[str] = []
    anonymous: list[str] = []
    volumes = args.get("volumes")
    for item in volumes or []:
        kind, text = parse_volume(str(item))
        (binds if kind == "bind" else anonymous).append(text)
    ports = args.get("ports")
    memory = args.get("memory")
    cpus = args.get("cpus")
    health = args.get("healthcheck")
    return ContainerSpec(
        name=str(name or args["name"]), image=_opt_str(args.get("image")),
        command=words("command"), entrypoint=words("entrypoint"),
        env={str(k): "" if v is None else _text(v) for k, v in env.items()}
        if env is not None else None,
        ports=tuple(parse_port(p) for p in ports) if ports is not None else None,
        binds=tuple(binds) if volumes is not None else None,
        anonymous_volumes=tuple(anonymous) if volumes is not None else None,
        labels={str(k): _text(v) for k, v in labels.items()} if labels is not None else None,
        network_mode=_opt_str(args.get("network_mode")),
        restart_policy=parse_restart(args["restart_policy"])
        if args.get("restart_policy") is not None else None,
        healthcheck=parse_healthcheck(health) if health is not None else None,
        user=_opt_str(args.get("user")), workdir=_opt_str(args.get("workdir")),
        memory=parse_memory(memory) if memory is not None else None,
        nano_cpus=int(round(float(cpus) * _NS)) if cpus is not None else None,
        init=args.get("init"),
        stop_timeout=float(args["stop_timeout"]) if args.get("stop_timeout") is not None
        else None,
        extra_labels=dict(extra_labels or {}))


def spec_problems(args: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """Static checks of literal spec values (templates are checked when rendered)."""
    def literal(value: Any) -> bool:
        return not (isinstance(value, str) and ("{{" in value or "{%" in value))

    parsers: dict[str, Callable[[Any], Any]] = {
        "memory": parse_memory, "restart_policy": parse_restart, "ports": parse_port,
        "volumes": parse_volume, "healthcheck": parse_healthcheck}
    checks: list[tuple[str, Any]] = []
    for key in ("memory", "restart_policy"):
        value = args.get(key)
        if value is not None and literal(value) and isinstance(value, (str, int)):
            checks.append((key, value))
    for key in ("ports", "volumes"):
        value = args.get(key)
        if isinstance(value, list):
            checks.extend((key, item) for item in value
                          if isinstance(item, (str, int)) and literal(item))
    health = args.get("healthcheck")
    if isinstance(health, dict) and all(literal(v) for v in health.values()):
        checks.append(("healthcheck", health))
    problems: list[tuple[str, str | None]] = []
    for key, value in checks:
        try:
            parsers[key](str(value) if key == "volumes" else value)
        except StepFailed as exc:
            problems.append((exc.message, key))
    return problems


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_PORT = re.compile(r"^(?:(?:\[(?P<ip6>[0-9a-fA-F:]+)\]|(?P<ip>\d+\.\d+\.\d+\.\d+)):)?"
                   r"(?:(?P<host>\d*):)?(?P<cport>\d+)(?:/(?P<proto>tcp|udp|sctp))?$")


def parse_port(value: Any) -> Port:
    """'127.0.0.1:8080:80/tcp', '8080:80', '80' -> (container port, proto, host ip, host port)."""
    text = str(value).strip()
    match = _PORT.match(text)
    if not match:
        raise StepFailed(f"ports: {text!r} is not [host_ip:]host_port:container_port[/proto]")
    if match.group("ip") or match.group("ip6"):
        if match.group("host") is None:
            raise StepFailed(f"ports: {text!r} gives an address but no host port")
    return (match.group("cport"), match.group("proto") or "tcp",
            match.group("ip") or match.group("ip6") or "", match.group("host") or "")


def parse_volume(value: str) -> tuple[str, str]:
    """('bind', 'src:dst:mode') for a bind or named volume, ('anonymous', '/dst') otherwise."""
    parts = value.split(":")
    if len(parts) == 1:
        if not value.startswith("/"):
            raise StepFailed(f"volumes: {value!r}: a container path must be absolute")
        return "anonymous", value
    if len(parts) > 3:
        raise StepFailed(f"volumes: {value!r} is not src:dst[:ro|rw]")
    src, dst = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if not dst.startswith("/"):
        raise StepFailed(f"volumes: {value!r}: the container path must be absolute")
    if src.startswith(".") or (not src.startswith("/") and "/" in src):
        raise StepFailed(f"volumes: {value!r}: a host path must be absolute",
                         hint="use /full/path, or a volume name without '/'")
    if not src:
        raise StepFailed(f"volumes: {value!r} has an empty source")
    return "bind", f"{src}:{dst}:{mode}"


_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?$", re.IGNORECASE)


def parse_memory(value: Any) -> int:
    """'256m', '1g', '512k', 1048576 -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _MEMORY.match(str(value).strip())
    if not match:
        raise StepFailed(f"memory: {value!r} is not a size such as 256m or 1g")
    factor = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    return int(float(match.group(1)) * factor[match.group(2).lower()])


def parse_restart(value: Any) -> tuple[str, int]:
    """'on-failure:3' -> ('on-failure', 3); 'no' -> ('no', 0)."""
    text = str(value).strip()
    name, _, count = text.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise StepFailed(f"restart_policy: {text!r} is not no, always, unless-stopped or "
                         f"on-failure[:N]")
    if count and (name != "on-failure" or not count.isdigit()):
        raise StepFailed(f"restart_policy: {text!r}: only on-failure takes a count (:N)")
    return name, int(count or 0)


def parse_healthcheck(value: Mapping[str, Any]) -> dict[str, Any]:
    """The API's healthcheck (durations in ns), with only the fields given."""
    out: dict[str, Any] = {}
    for key in value:
        if key not in _HEALTH_FIELDS:
            raise StepFailed(f"healthcheck: unknown field {key!r} (fields: "
                             f"{', '.join(_HEALTH_FIELDS)})")
    test = value.get("test")
    if test is not None:
        if isinstance(test, str):
            out["test"] = ["NONE"] if test.strip().upper() == "NONE" else ["CMD-SHELL", test]
        else:
            items = [str(t) for t in test]
            out["test"] = items if items and items[0] in ("CMD", "CMD-SHELL", "NONE") \
                else ["CMD", *items]
    for key in ("interval", "timeout", "start_period"):
        if value.get(key) is not None:
            try:
                out[key] = int(parse_duration(value[key]) * _NS)
            except ValueError as exc:
                raise StepFailed(f"healthcheck.{key}: {exc}") from None
    if value.get("retries") is not None:
        out["retries"] = int(value["retries"])
    return out


def with_replica(args: Mapping[str, Any], replica: int) -> dict[str, Any]:
    """The arguments with ``{replica}`` replaced by the replica number in every string."""
    def sub(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{replica}", str(replica))
        if isinstance(value, list):
            return [sub(v) for v in value]
        if isinstance(value, dict):
            return {k: sub(v) for k, v in value.items()}
        return value
    return {key: sub(value) for key, value in args.items()}


# ---------------------------------------------------------------- comparison

def _env_map(items: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


def _show(keys: Sequence[str]) -> str:
    return ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else "")


def _map_diff(what: str, want: Mapping[str, str], have: Mapping[str, str]) -> str | None:
    changed = [k for k in want if have.get(k) != want[k]]
    extra = [k for k in have if k not in want]
    if not changed and not extra:
        return None
    parts = []
    if changed:
        parts.append("changed " + _show(changed))
    if extra:
        parts.append("no longer wanted " + _show(extra))
    return f"{what} differs ({'; '.join(parts)})"


def _bind_norm(text: str) -> str:
    parts = text.split(":")
    if len(parts) == 2:
        parts.append("rw")
    return ":".join(parts[:3])


def _binds_of(host_config: Mapping[str, Any]) -> list[str]:
    """The binds and named volumes, normalised src:dst:mode: -v ones (Binds) and
    --mount ones (Mounts with a source)."""
    out = [_bind_norm(str(b)) for b in host_config.get("Binds") or []]
    for mount in host_config.get("Mounts") or []:
        target = str(mount.get("Target") or "")
        if mount.get("Type") in ("bind", "volume") and mount.get("Source") and target:
            out.append(f"{mount['Source']}:{target}:{'ro' if mount.get('ReadOnly') else 'rw'}")
    return out


def _ports_of(host_config: Mapping[str, Any]) -> set[Port]:
    out: set[Port] = set()
    for key, bindings in (host_config.get("PortBindings") or {}).items():
        cport, _, proto = str(key).partition("/")
        for binding in bindings or [{}]:
            out.add((cport, proto or "tcp", str(binding.get("HostIp") or ""),
                     str(binding.get("HostPort") or "")))
    return out


def _network(mode: str | None) -> str:
    return "bridge" if mode in (None, "", "default") else str(mode)


def differences(spec: ContainerSpec, container: Mapping[str, Any],
                image: Mapping[str, Any] | None) -> list[str]:
    """Why the container does not match the spec (empty: it does).

    ``image`` is the inspect data of the wanted image (or of the container's own
    image when the spec names none); None when it is not known.
    """
    config = container.get("Config") or {}
    host = container.get("HostConfig") or {}
    image_config = (image or {}).get("Config") or {}
    out: list[str] = []
    if spec.image is not None and image is not None and container.get("Image") != image.get("Id"):
        out.append(f"image {spec.image} is {str(image.get('Id'))[7:19]}, the container runs "
                   f"{str(container.get('Image'))[7:19]}")
    if spec.command is not None and list(config.get("Cmd") or []) != list(spec.command):
        out.append(f"command differs ({shlex.join(config.get('Cmd') or [])!r} -> "
                   f"{shlex.join(spec.command)!r})")
    if spec.entrypoint is not None and \
            list(config.get("Entrypoint") or []) != list(spec.entrypoint):
        out.append("entrypoint differs")
    if spec.env is not None:
        want = {**_env_map(image_config.get("Env")), **spec.env}
        note = _map_diff("env", want, _env_map(config.get("Env")))
        if note:
            out.append(note)
    labels = spec.all_labels()
    if labels is not None:
        want = {**(image_config.get("Labels") or {}), **labels}
        note = _map_diff("labels", want, dict(config.get("Labels") or {}))
        if note:
            out.append(note)
    if spec.network_mode is not None and \
            _network(host.get("NetworkMode")) != _network(spec.network_mode):
        out.append(f"network_mode {_network(host.get('NetworkMode'))} -> {spec.network_mode}")
    if spec.ports is not None and _network(spec.network_mode or host.get("NetworkMode")) \
            not in ("host", "none") and _ports_of(host) != set(spec.ports):
        out.append("ports differ")
    if spec.binds is not None:
        have = set(_binds_of(host))
        if have != set(spec.binds):
            out.append("volumes differ")
        else:
            wanted = set(spec.anonymous_volumes or ()) | {b.split(":")[1] for b in spec.binds}
            known = wanted | set(image_config.get("Volumes") or {})
            # `docker run -v name:/dst` leaves Config.Volumes empty: count real mounts too
            mounted = set(config.get("Volumes") or {}) | {
                str(m.get("Destination")) for m in container.get("Mounts") or []
                if m.get("Destination")}
            if not wanted <= mounted or mounted - known:
                out.append("anonymous volumes differ")
    if spec.restart_policy is not None:
        policy = host.get("RestartPolicy") or {}
        have_policy = (policy.get("Name") or "no", int(policy.get("MaximumRetryCount") or 0))
        want_policy = spec.restart_policy
        if want_policy[0] != "on-failure":
            have_policy = (have_policy[0], 0)
        if have_policy != want_policy:
            out.append(f"restart_policy {have_policy[0]} -> {want_policy[0]}")
    if spec.healthcheck is not None:
        have_health = config.get("Healthcheck") or {}
        for key, value in spec.healthcheck.items():
            have_value = have_health.get(_HEALTH_KEYS[key])
            if key == "test":
                have_value = list(have_value or [])
            elif have_value is None:
                have_value = 0
            if have_value != value:
                out.append(f"healthcheck {key} differs")
    if spec.user is not None and (config.get("User") or "") != spec.user:
        out.append(f"user {config.get('User') or '(image default)'} -> {spec.user}")
    if spec.workdir is not None and (config.get("WorkingDir") or "") != spec.workdir:
        out.append(f"workdir {config.get('WorkingDir') or '(image default)'} -> {spec.workdir}")
    if spec.memory is not None and int(host.get("Memory") or 0) != spec.memory:
        out.append(f"memory {host.get('Memory') or 0} -> {spec.memory}")
    if spec.nano_cpus is not None and int(host.get("NanoCpus") or 0) != spec.nano_cpus:
        out.append(f"cpus {int(host.get('NanoCpus') or 0) / _NS:g} -> {spec.nano_cpus / _NS:g}")
    if spec.init is not None and bool(host.get("Init")) != spec.init:
        out.append(f"init {bool(host.get('Init'))} -> {spec.init}")
    return out


# ---------------------------------------------------------------- inheriting

def inherit_spec(spec: ContainerSpec, container: Mapping[str, Any],
                 image: Mapping[str, Any] | None) -> ContainerSpec:
    """The spec with every option it does not give (None) taken from ``container``.

    ``image`` is the inspect data of the image the container runs (None when unknown).
    What the container only has from that image is left out, so that a new image's
    defaults apply: env entries and labels equal to the image's; Cmd, Entrypoint, User
    and WorkingDir equal to the image's; healthcheck fields equal to the image's; the
    image's volumes.  The values have parse_spec's form, so ``differences`` between the
    result and the container names nothing but what the spec itself gives.  An image not
    given is the image id the container runs.
    """
    config = container.get("Config") or {}
    host = container.get("HostConfig") or {}
    image_config = (image or {}).get("Config") or {}
    found: dict[str, Any] = {}

    def own(key: str) -> Any:
        """The container's value of a Config key, or None when it is the image's."""
        value = config.get(key)
        return None if not value or value == image_config.get(key) else value

    if spec.image is None and container.get("Image"):
        found["image"] = str(container["Image"])
    for key, attr in (("Cmd", "command"), ("Entrypoint", "entrypoint")):
        value = own(key)
        if getattr(spec, attr) is None and value is not None:
            found[attr] = tuple(str(v) for v in value)
    if spec.env is None:
        image_env = _env_map(image_config.get("Env"))
        found["env"] = {k: v for k, v in _env_map(config.get("Env")).items()
                        if image_env.get(k) != v}
    if spec.labels is None:
        image_labels = image_config.get("Labels") or {}
        found["labels"] = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()
                           if image_labels.get(k) != v}
    if spec.ports is None:
        found["ports"] = tuple(sorted(_ports_of(host)))
    if spec.binds is None:
        binds = _binds_of(host)
        anonymous = set(config.get("Volumes") or {}) | {
            str(m["Destination"]) for m in container.get("Mounts") or []
            if m.get("Type") == "volume" and m.get("Destination")}
        anonymous -= {b.split(":")[1] for b in binds} | set(image_config.get("Volumes") or {})
        found["binds"] = tuple(binds)
        found["anonymous_volumes"] = tuple(sorted(anonymous))
    if spec.network_mode is None and host.get("NetworkMode") not in (None, "", "default"):
        found["network_mode"] = str(host["NetworkMode"])
    if spec.restart_policy is None:
        policy = host.get("RestartPolicy") or {}
        name = str(policy.get("Name") or "no")
        found["restart_policy"] = (name, int(policy.get("MaximumRetryCount") or 0)
                                   if name == "on-failure" else 0)
    if spec.healthcheck is None:
        have = config.get("Healthcheck") or {}
        image_health = image_config.get("Healthcheck") or {}
        health = {key: list(have[api]) if key == "test" else int(have[api])
                  for key, api in _HEALTH_KEYS.items()
                  if have.get(api) and have.get(api) != image_health.get(api)}
        if health:
            found["healthcheck"] = health
    for key, attr in (("User", "user"), ("WorkingDir", "workdir")):
        if getattr(spec, attr) is None and own(key) is not None:
            found[attr] = str(own(key))
    if spec.memory is None and host.get("Memory"):
        found["memory"] = int(host["Memory"])
    if spec.nano_cpus is None and host.get("NanoCpus"):
        found["nano_cpus"] = int(host["NanoCpus"])
    if spec.init is None and host.get("Init") is not None:
        found["init"] = bool(host["Init"])
    if spec.stop_timeout is None and config.get("StopTimeout") is not None:
        found["stop_timeout"] = float(config["StopTimeout"])
    return replace(spec, **found)
