"""The Docker daemon a host's docker steps talk to, behind one small typed facade.

``api_for(host)`` gives the ``DockerApi`` of the daemon a host's docker steps talk to
(which one: ``daemon_address`` in docker_client.py).  Its low-level client is shared
with every other ``DockerApi`` and ``DockerConnection`` of that daemon.  ``DockerApi``
returns plain data (the API's JSON) and converts every docker/requests/paramiko
exception where it is met (``convert_error`` in docker_client.py).
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import docker
import docker.errors

from ..errors import RunbookError, StepFailed
from .base import CommandResult
from .docker_client import (LOCAL_SOCKET, THIRD_PARTY_ERRORS, DaemonAddress, acquire_daemon,
                            convert_error, daemon_address, make_client, release_daemon)

if TYPE_CHECKING:
    from ..inventory import Host

# the addressing and error names are re-exported: connections/docker.py and tests import
# them from here
__all__ = ["DaemonAddress", "DockerApi", "api_for", "daemon_address", "LOCAL_SOCKET",
           "THIRD_PARTY_ERRORS", "convert_error"]


def api_for(host: "Host") -> "DockerApi":
    """The DockerApi of the daemon a host's docker steps talk to."""
    return DockerApi(daemon_address(host.connection), host_name=host.name)


# ---------------------------------------------------------------- the facade

class DockerApi:
    """Everything docker actions need from one daemon, as plain data and engine errors."""

    def __init__(self, address: DaemonAddress, host_name: str | None = None) -> None:
        self.address = address
        self.host_name = host_name
        self._daemon = acquire_daemon(address)
        self._closed = False

    # -- life cycle
    def close(self) -> None:
        """Release this handle; the daemon's client closes with its last user."""
        if not self._closed:
            self._closed = True
            release_daemon(self._daemon)

    def __enter__(self) -> "DockerApi":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> docker.APIClient:
        """The shared low-level client (only connections/ may use it)."""
        daemon = self._daemon
        if daemon.client is None:
            with daemon.lock:
                if daemon.client is None:
                    with self.errors("connecting"):
                        daemon.client = make_client(self.address)
        return daemon.client

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Convert third-party exceptions raised inside into engine errors."""
        try:
            yield
        except RunbookError:
            raise
        except THIRD_PARTY_ERRORS as exc:
            raise convert_error(exc, what, self.address, self.host_name) from exc

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        client = self.client
        with self.errors(what):
            return fn(client, *args, **kwargs)

    def _maybe(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Like _call, but a 404 gives None."""
        client = self.client
        with self.errors(what):
            try:
                return fn(client, *args, **kwargs)
            except docker.errors.NotFound:
                return None

    # -- daemon
    def ping(self) -> bool:
        return bool(self._call("ping", lambda c: c.ping()))

    def info(self) -> dict[str, Any]:
        return self._call("docker info", lambda c: c.info())

    def version(self) -> dict[str, Any]:
        return self._call("docker version", lambda c: c.version())

    def df(self) -> dict[str, Any]:
        return self._call("docker system df", lambda c: c.df())

    # -- containers
    def container(self, name: str) -> dict[str, Any] | None:
        """The inspect data of a container, or None when there is none of that name/id."""
        return self._maybe(f"inspect container {name}", lambda c: c.inspect_container(name))

    def containers(self, *, name: str | None = None, labels: Mapping[str, str | None] |
                   Sequence[str] | None = None, all: bool = True,
                   filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Container summaries (``docker ps``), by exact name and/or labels."""
        wanted: dict[str, Any] = dict(filters or {})
        if name:
            wanted["name"] = f"^/?{name}$"
        if labels:
            wanted["label"] = _label_filters(labels)
        return self._call("list containers", lambda c: c.containers(all=all, filters=wanted))

    def create_container(self, name: str, spec: Mapping[str, Any]) -> str:
        """Create a container from a neutral spec; returns its id.

        ``spec`` keys: image, command, entrypoint, env (dict), labels, user, workdir,
        ports [(container_port, proto, host_ip, host_port)], binds ["src:dst:mode"],
        anonymous_volumes [dst], network_mode, restart_policy {"Name",
        "MaximumRetryCount"}, healthcheck {"test", "interval", ...} (ns),
        memory (bytes), nano_cpus, init, stop_timeout (s).
        """
        def create(c: docker.APIClient) -> str:
            ports = spec.get("ports") or []
            if spec.get("network_mode") == "host":
                ports = []          # moot on the host's network (the SDK refuses them)
            bindings: dict[str, list[tuple[str, Any]]] = {}
            for cport, proto, hip, hport in ports:
                key = f"{cport}/{proto}"
                bindings.setdefault(key, []).append((hip or "", int(hport) if hport else None))
            host_config = c.create_host_config(
                binds=list(spec.get("binds") or []) or None,
                port_bindings={k: [(ip, p) if ip else p for ip, p in v]
                               for k, v in bindings.items()} or None,
                network_mode=spec.get("network_mode"),
                restart_policy=spec.get("restart_policy"),
                mem_limit=spec.get("memory"), nano_cpus=spec.get("nano_cpus"),
                init=spec.get("init"))
            volumes = [b.split(":")[1] for b in spec.get("binds") or []] + \
                list(spec.get("anonymous_volumes") or [])
            result = c.create_container(
                spec["image"], command=spec.get("command"), name=name,
                entrypoint=spec.get("entrypoint"), environment=spec.get("env") or None,
                labels=dict(spec.get("labels") or {}), user=spec.get("user"),
                working_dir=spec.get("workdir"), detach=True,
                ports=[(int(p[0]), p[1]) for p in ports] or None,
                volumes=volumes or None, host_config=host_config,
                healthcheck=spec.get("healthcheck"), stop_timeout=spec.get("stop_timeout"))
            return str(result["Id"])
        return self._call(f"create container {name}", create)

    def start(self, name: str) -> None:
        self._call(f"start container {name}", lambda c: c.start(name))

    def stop(self, name: str, timeout: float = 10) -> None:
        self._call(f"stop container {name}", lambda c: c.stop(name, timeout=int(timeout)))

    def restart(self, name: str, timeout: float = 10) -> None:
        self._call(f"restart container {name}", lambda c: c.restart(name, timeout=int(timeout)))

    def rename(self, name: str, new_name: str) -> None:
        self._call(f"rename container {name}", lambda c: c.rename(name, new_name))

    def remove_container(self, name: str, *, force: bool = True, volumes: bool = False) -> bool:
        """Remove a container; False when it did not exist."""
        def remove(c: docker.APIClient) -> bool:
            try:
                c.remove_container(name, force=force, v=volumes)
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and "already in progress" in str(exc.explanation):
                    return True
                raise
            return True
        return self._call(f"remove container {name}", remove)

    def logs(self, name: str, *, tail: int | None = None, since: float | None = None,
             timestamps: bool = False) -> tuple[str, str]:
        """(stdout, stderr) of a container's log."""
        def read(c: docker.APIClient, out: bool) -> str:
            data = c.logs(name, stdout=out, stderr=not out, timestamps=timestamps,
                          tail=tail if tail is not None else "all",
                          since=int(since) if since is not None else None)
            return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        return (self._call(f"logs of {name}", read, True),
                self._call(f"logs of {name}", read, False))

    def log_tail(self, name: str, lines: int = 10) -> str:
        """The last lines of a container's output (both streams), for error messages."""
        try:
            def read(c: docker.APIClient) -> bytes:
                return c.logs(name, stdout=True, stderr=True, tail=lines)
            data = self._call(f"logs of {name}", read)
        except StepFailed:
            return ""
        return data.decode("utf-8", "replace").rstrip("\n") if isinstance(data, bytes) else ""

    def stats(self, name: str) -> dict[str, Any]:
        """One stats sample (the daemon takes about a second to measure CPU)."""
        return self._call(f"stats of {name}", lambda c: c.stats(name, stream=False))

    def wait_healthy(self, name: str, timeout: float, *, stable: float = 1.0,
                     poll: float = 0.2, cancelled: Callable[[], bool] | None = None
                     ) -> dict[str, Any]:
        """Wait until a container is healthy (without a healthcheck: running for ``stable``
        seconds).  Returns the last inspect data; raises StepFailed with the health log
        or the exit code and last log lines."""
        deadline = time.monotonic() + timeout
        restarts: int | None = None
        running_since: float | None = None
        while True:
            info = self.container(name)
            if info is None:
                raise StepFailed(f"container {name} disappeared while waiting for it")
            state = info.get("State") or {}
            count = int(info.get("RestartCount") or 0)
            restarts = count if restarts is None else restarts
            if not state.get("Running") or state.get("Restarting") or count > restarts:
                code = state.get("ExitCode")
                logs = self.log_tail(name, 10)
                raise StepFailed(f"container {name} exited with code {code} while waiting for "
                                 f"it to become healthy" + _indent(logs, "last log lines"))
            health = state.get("Health")
            status = (health or {}).get("Status")
            if health:
                if status == "healthy":
                    return info
                if status == "unhealthy":
                    raise StepFailed(f"container {name} is unhealthy"
                                     + _indent(health_log(info), "last health checks"))
            else:
                now = time.monotonic()
                running_since = running_since or now
                if now - running_since >= stable:
                    return info
            if time.monotonic() >= deadline:
                what = f"health is {status}" if health else "not running steadily"
                raise StepFailed(f"container {name} not healthy after {timeout:g}s ({what})"
                                 + _indent(health_log(info), "last health checks"))
            if cancelled is not None and cancelled():
                raise StepFailed(f"stopped while waiting for container {name}")
            time.sleep(poll)

    def exec(self, container: str, command: str | Sequence[str], *, stdin: bytes | None = None,
             timeout: float | None = None, env: Mapping[str, str] | None = None,
             workdir: str | None = None, user: str | None = None) -> CommandResult:
        """Run a command in a running container (see connections/docker.py)."""
        from .docker import exec_command
        return exec_command(self, container, command, stdin=stdin, timeout=timeout, env=env,
                            workdir=workdir, user=user)

    # -- files in containers (used by DockerConnection)
    def put_archive(self, container: str, path: str, data: bytes) -> None:
        self._call(f"copy into {container}:{path}",
                   lambda c: c.put_archive(container, path, data))

    def get_archive(self, container: str, path: str) -> bytes | None:
        """A tar archive of a path in a container, or None when the path is missing."""
        def get(c: docker.APIClient) -> bytes | None:
            try:
                stream, _ = c.get_archive(container, path)
            except docker.errors.NotFound as exc:
                if "no such container" in str(exc.explanation).lower():
                    raise
                return None
            return b"".join(stream)
        return self._call(f"copy from {container}:{path}", get)

    def path_stat(self, container: str, path: str) -> dict[str, Any] | None:
        """The daemon's stat of a path in a container (name, size, mode, linkTarget)."""
        def head(c: docker.APIClient) -> dict[str, Any] | None:
            res = c.head(c._url("/containers/{0}/archive", container), params={"path": path})
            if res.status_code == 404:
                return None
            c._raise_for_status(res)
            import base64
            raw = res.headers.get("X-Docker-Container-Path-Stat", "")
            return json.loads(base64.b64decode(raw)) if raw else None
        return self._call(f"stat {container}:{path}", head)

    # -- images
    def image(self, ref: str) -> dict[str, Any] | None:
        """The inspect data of an image, or None when the daemon does not have it."""
        return self._maybe(f"inspect image {ref}", lambda c: c.inspect_image(ref))

    def images(self, *, name: str | None = None, filters: Mapping[str, Any] | None = None,
               all: bool = False) -> list[dict[str, Any]]:
        return self._call("list images",
                          lambda c: c.images(name=name, filters=dict(filters or {}), all=all))

    def pull(self, ref: str) -> dict[str, Any]:
        """Pull an image; returns its inspect data.  Failure: 'cannot pull REF: why'."""
        repo, tag = split_ref(ref)
        client = self.client
        try:
            with self.errors(f"pull {ref}"):
                last = ""
                for event in client.pull(repo, tag=tag, stream=True, decode=True):
                    if isinstance(event, dict) and event.get("error"):
                        raise StepFailed(str(event["error"]))
                    last = str(event.get("status", "")) if isinstance(event, dict) else last
        except StepFailed as exc:
            reason = exc.message.removeprefix(f"pull {ref}: ")
            raise StepFailed(f"cannot pull {ref}: {reason}",
                             hint="no registry may be reachable from the daemon: build the "
                                  "image (docker.image source: build) or load it, and use "
                                  "pull: never") from exc
        info = self.image(ref)
        if info is None:
            raise StepFailed(f"cannot pull {ref}: the daemon reported no error but has no such "
                             f"image ({last})")
        return info

    def build(self, context: str, tag: str, *, dockerfile: str | None = None,
              buildargs: Mapping[str, str] | None = None, network_mode: str | None = None,
              nocache: bool = False, pull: bool = False, labels: Mapping[str, str] | None = None,
              target: str | None = None) -> tuple[str, str]:
        """Build an image from a local context folder; returns (image id, build log)."""
        client = self.client
        log: list[str] = []
        image_id = ""
        with self.errors(f"build {tag}"):
            for event in client.build(path=context, tag=tag, dockerfile=dockerfile,
                                      buildargs=dict(buildargs or {}) or None,
                                      network_mode=network_mode, nocache=nocache, pull=pull,
                                      labels=dict(labels or {}) or None, target=target,
                                      rm=True, forcerm=True, decode=True):
                if not isinstance(event, dict):
                    continue
                if event.get("stream"):
                    log.append(str(event["stream"]))
                if event.get("aux", {}).get("ID"):
                    image_id = str(event["aux"]["ID"])
                if event.get("error"):
                    text = "".join(log).rstrip("\n").splitlines()[-10:]
                    raise StepFailed(f"building {tag} failed: {str(event['error']).strip()}"
                                     + _indent("\n".join(text), "build output"))
        if not image_id:
            info = self.image(tag)
            image_id = info["Id"] if info else ""
        return image_id, "".join(log)

    def tag(self, image: str, ref: str) -> None:
        repo, tag = split_ref(ref)
        self._call(f"tag {image} as {ref}", lambda c: c.tag(image, repo, tag, force=True))

    def remove_image(self, ref: str, *, force: bool = False) -> bool:
        """Remove an image (tag); False when it did not exist."""
        def remove(c: docker.APIClient) -> bool:
            try:
                c.remove_image(ref, force=force)
            except docker.errors.NotFound:
                return False
            return True
        return self._call(f"remove image {ref}", remove)

    # -- volumes, networks, prune
    def volumes(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._call("list volumes",
                          lambda c: c.volumes(filters=dict(filters or {})).get("Volumes") or [])

    def networks(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._call("list networks", lambda c: c.networks(filters=dict(filters or {})))

    def network(self, ident: str) -> dict[str, Any] | None:
        return self._maybe(f"inspect network {ident}", lambda c: c.inspect_network(ident))

    def prune(self, kind: str, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``kind``: containers, images, volumes, networks or builder."""
        wanted = dict(filters or {})
        calls: dict[str, Callable[[docker.APIClient], Any]] = {
            "containers": lambda c: c.prune_containers(filters=wanted),
            "images": lambda c: c.prune_images(filters=wanted),
            "volumes": lambda c: c.prune_volumes(filters=wanted),
            "networks": lambda c: c.prune_networks(filters=wanted),
            "builder": lambda c: c.prune_builds(filters=wanted or None),
        }
        return self._call(f"prune {kind}", calls[kind]) or {}


# ---------------------------------------------------------------- helpers

def split_ref(ref: str) -> tuple[str, str | None]:
    """'repo:tag' -> ('repo', 'tag'); a registry port or digest is not a tag."""
    if "@" in ref:
        return ref, None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, "latest"


def health_log(info: Mapping[str, Any], lines: int = 3) -> str:
    """The output of a container's last health checks, newest last."""
    entries = ((info.get("State") or {}).get("Health") or {}).get("Log") or []
    out = []
    for entry in entries[-lines:]:
        text = str(entry.get("Output", "")).strip().replace("\n", " | ")
        out.append(f"exit {entry.get('ExitCode')}: {text[:300]}")
    return "\n".join(out)


def _label_filters(labels: Mapping[str, str | None] | Sequence[str]) -> list[str]:
    if isinstance(labels, Mapping):
        return [k if v is None else f"{k}={v}" for k, v in labels.items()]
    return [str(x) for x in labels]


def _indent(text: str, title: str) -> str:
    if not text.strip():
        return ""
    return f"\n  {title}:\n" + "\n".join("  | " + line for line in text.splitlines())
