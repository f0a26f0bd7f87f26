"""The real test infrastructure, as described by ``$RUNBOOK_TEST_WORK/infra.json``.

``tests/infra/setup.sh`` installs and starts it (dockerd with its bridge off, two test
images, an sshd fleet on 127.0.0.1, users for become tests) and writes infra.json;
this module reads it::

    from tests.infra.infra import load_infra
    infra = load_infra()                     # runs setup.sh if needed
    t = infra.ssh_targets(2)                 # [SshTarget t01, SshTarget t02]
    client = t[0].connect()                  # paramiko, strict host key checking
    infra.write_inventory(tmp / "inv.yml", n_ssh=2, containers=["web1"])
    c = infra.run_container("busybox", "web1", ["sleep", "3600"], network="host")
    infra.kill_sshd(t[0].port)               # drops its live sessions too
    infra.start_sshd(t[0].port)

Environment: ``RUNBOOK_TEST_WORK`` (work dir, default /tmp/runbook-test-infra),
``RUNBOOK_TEST_NO_SETUP=1`` (never run setup.sh: raise InfraError instead).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["Infra", "SshTarget", "InfraError", "load_infra", "work_dir", "SETUP_SH",
           "TEARDOWN_SH", "TEST_LABEL"]

HERE = Path(__file__).resolve().parent
SETUP_SH = HERE / "setup.sh"
TEARDOWN_SH = HERE / "teardown.sh"
DEFAULT_WORK = "/tmp/runbook-test-infra"
SSHD = "/usr/sbin/sshd"
TEST_LABEL = {"runbook-test": "1"}
NETWORKS = ("host", "none")          # never bridge: traffic goes to loopback only


class InfraError(RuntimeError):
    """The test infrastructure is missing or broken."""


def work_dir() -> Path:
    return Path(os.environ.get("RUNBOOK_TEST_WORK") or DEFAULT_WORK)


# ------------------------------------------------------------------ processes

def _alive(pid: int) -> bool:
    """Exists and is not a zombie (PID 1 here may reap orphans late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:][:1] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        for kid in children.get(todo.pop(), []):
            out.append(kid)
            todo.append(kid)
    return out


def _port_open(address: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------ model

@dataclass(frozen=True)
class SshTarget:
    """One sshd of the fleet (or the password sshd)."""

    name: str
    address: str
    port: int
    user: str
    key_file: str
    known_hosts: str
    host_key_fingerprint: str
    pid_file: str
    config: str
    log: str
    password_file: str | None = None

    @property
    def password(self) -> str | None:
        if self.password_file is None:
            return None
        return Path(self.password_file).read_text().splitlines()[0]

    @property
    def pid(self) -> int | None:
        try:
            return int(Path(self.pid_file).read_text().strip())
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self.pid
        return pid is not None and _alive(pid) and self.config in _cmdline(pid)

    def inventory_vars(self, user: str | None = None) -> dict[str, Any]:
        """This target as inventory host vars (engine format)."""
        return {"connection": "ssh", "address": self.address, "port": self.port,
                "user": user or self.user, "key_file": self.key_file,
                "known_hosts": self.known_hosts}

    def connect(self, user: str | None = None, password: str | None = None,
                use_key: bool | None = None, timeout: float = 10.0):
        """A paramiko SSHClient with strict host key checking (known_hosts + RejectPolicy)
        and TCP_NODELAY. Key auth unless a password is given (or use_key says)."""
        import paramiko

        client = paramiko.SSHClient()
        client.load_host_keys(self.known_hosts)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        sock = socket.create_connection((self.address, self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if use_key is None:
            use_key = password is None
        try:
            client.connect(self.address, port=self.port, username=user or self.user,
                           key_filename=self.key_file if use_key else None,
                           password=password, look_for_keys=False, allow_agent=False,
                           sock=sock, timeout=timeout, banner_timeout=timeout,
                           auth_timeout=timeout)
        except BaseException:
            client.close()
            sock.close()
            raise
        return client


@dataclass
class Infra:
    """What setup.sh made available (see infra.json)."""

    work_dir: Path
    docker_host: str
    images: dict[str, str]
    docker_started_by_setup: bool
    hosts: list[SshTarget]
    password_host: SshTarget
    key_file: str
    known_hosts: str
    user: str
    users: dict[str, Any]
    started_pids: dict[str, Any]
    tools: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    _docker: Any = field(default=None, repr=False)

    # ---- loading
    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Infra":
        data = json.loads(Path(path).read_text())
        ssh = data["ssh"]

        def target(h: Mapping[str, Any], user: str, password_file: str | None = None) -> SshTarget:
            return SshTarget(name=h["name"], address=h["address"], port=int(h["port"]), user=user,
                             key_file=ssh["key_file"], known_hosts=ssh["known_hosts"],
                             host_key_fingerprint=h["host_key_fingerprint"],
                             pid_file=h["pid_file"], config=h["config"], log=h["log"],
                             password_file=password_file)

        pw = ssh["password_host"]
        return cls(work_dir=Path(data["work_dir"]), docker_host=data["docker"]["host"],
                   images=dict(data["docker"]["images"]),
                   docker_started_by_setup=bool(data["docker"].get("started_by_setup")),
                   hosts=[target(h, ssh["user"]) for h in ssh["hosts"]],
                   password_host=target(pw, pw["user"], pw["password_file"]),
                   key_file=ssh["key_file"], known_hosts=ssh["known_hosts"], user=ssh["user"],
                   users=data.get("users", {}), started_pids=data.get("started_pids", {}),
                   tools=data.get("tools", {}), raw=data)

    def problems(self) -> list[str]:
        """What is not running as infra.json says (empty when all is well)."""
        out = []
        try:
            self.docker_client().ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "not answering"
            out.append(f"dockerd at {self.docker_host} does not answer: {exc}")
        for t in [*self.hosts, self.password_host]:
            if not t.is_running():
                out.append(f"sshd {t.name} (pid file {t.pid_file}) is not running")
            elif not _port_open(t.address, t.port):
                out.append(f"sshd {t.name} does not accept connections on {t.address}:{t.port}")
        return out

    # ---- ssh
    def ssh_targets(self, n: int | None = None) -> list[SshTarget]:
        """The first n fleet targets (all when n is None)."""
        if n is None:
            return list(self.hosts)
        if n > len(self.hosts):
            raise InfraError(f"{n} ssh targets wanted, the fleet has {len(self.hosts)} "
                             f"(set RUNBOOK_TEST_SSHD and re-run setup.sh)")
        return self.hosts[:n]

    def target(self, which: int | str) -> SshTarget:
        """A target (fleet or password sshd) by port or name."""
        for t in [*self.hosts, self.password_host]:
            if which in (t.port, t.name):
                return t
        raise InfraError(f"no test sshd {which!r}")

    @property
    def rbtest_password(self) -> str:
        return Path(self.users["sudo_password"]["password_file"]).read_text().splitlines()[0]

    def kill_sshd(self, which: int | str, sessions: bool = True) -> int:
        """SIGKILL the sshd listening on port ``which`` (or named so); with ``sessions``
        also every process it forked, so open connections drop at once. Returns the pid."""
        t = self.target(which)
        pid = t.pid
        if pid is None or not t.is_running():
            raise InfraError(f"sshd {t.name} is not running")
        os.kill(pid, signal.SIGSTOP)           # no new sessions while we collect them
        victims = [pid] + (_descendants(pid) if sessions else [])
        for p in victims:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        deadline = time.monotonic() + 5
        while _port_open(t.address, t.port, 0.2) and time.monotonic() < deadline:
            time.sleep(0.02)
        return pid

    def start_sshd(self, which: int | str, timeout: float = 10.0) -> int:
        """Start the sshd on port ``which`` (or named so) again with its recorded config;
        no-op if it runs. Returns its pid."""
        t = self.target(which)
        if t.is_running() and _port_open(t.address, t.port):
            return t.pid  # type: ignore[return-value]
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        try:
            os.unlink(t.pid_file)
        except FileNotFoundError:
            pass
        proc = subprocess.run([SSHD, "-f", t.config, "-E", t.log], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
        if proc.returncode != 0:
            raise InfraError(f"sshd {t.name} did not start (exit {proc.returncode}): "
                             f"{proc.stderr.decode(errors='replace')[-500:]} (log {t.log})")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if t.pid is not None and _port_open(t.address, t.port, 0.2):
                return t.pid  # type: ignore[return-value]
            time.sleep(0.02)
        raise InfraError(f"sshd {t.name} did not come up on {t.address}:{t.port}")

    # ---- docker
    def docker_client(self):
        """A docker SDK client for the test daemon (cached)."""
        if self._docker is None:
            import docker

            self._docker = docker.DockerClient(base_url=self.docker_host, version="auto", timeout=120)
        return self._docker

    def image(self, key: str) -> str:
        try:
            return self.images[key]
        except KeyError:
            raise InfraError(f"no test image {key!r} (have {sorted(self.images)})") from None

    def run_container(self, image_key: str, name: str, cmd: str | Sequence[str] | None = None,
                      network: str = "host", labels: Mapping[str, str] | None = None,
                      **kwargs: Any):
        """Start a detached container of test image ``image_key`` ('busybox'|'debian').

        Only ``network='host'`` or ``'none'``; labelled runbook-test=1 (teardown removes
        it); runs under docker-init so it stops on SIGTERM. ``cmd`` defaults to a
        long sleep. Extra kwargs go to ``containers.run``."""
        if network not in NETWORKS:
            raise InfraError(f"network must be one of {NETWORKS}, not {network!r}")
        if "network" in kwargs or "network_mode" in kwargs or "ports" in kwargs:
            raise InfraError("set the network with network='host'|'none' (no port mapping)")
        all_labels = {**TEST_LABEL, **(labels or {})}
        kwargs.setdefault("init", True)
        return self.docker_client().containers.run(
            self.image(image_key), cmd if cmd is not None else ["sleep", "86400"], name=name,
            detach=True, network_mode=network, labels=all_labels, **kwargs)

    # ---- inventory
    def inventory_data(self, n_ssh: int = 0, containers: Iterable[Any] = (),
                       user: str | None = None, vars: Mapping[str, Any] | None = None,
                       password_host: bool = False) -> dict[str, Any]:
        """Inventory as data: groups ``ssh`` (t01..), ``docker`` (containers) and, with
        ``password_host``, ``password`` (the password sshd, user rbtest, password as a
        ``file:`` reference)."""
        children: dict[str, Any] = {}
        if n_ssh:
            children["ssh"] = {"hosts": {t.name: t.inventory_vars(user)
                                         for t in self.ssh_targets(n_ssh)}}
        dock: dict[str, Any] = {}
        for c in containers:
            if isinstance(c, tuple):
                host, cname = c
            else:
                cname = c if isinstance(c, str) else c.name
                host = cname
            dock[host] = {"connection": "docker", "container": cname}
        if dock:
            children["docker"] = {"hosts": dock}
        if password_host:
            p = self.password_host
            children["password"] = {"hosts": {p.name: {
                "connection": "ssh", "address": p.address, "port": p.port, "user": p.user,
                "password": f"file:{p.password_file}",
                "become_password": f"file:{p.password_file}", "known_hosts": p.known_hosts}}}
        data: dict[str, Any] = {"all": {"children": children}}
        if vars:
            data["all"]["vars"] = dict(vars)
        return data

    def write_inventory(self, path: str | os.PathLike, n_ssh: int = 0,
                        containers: Iterable[Any] = (), **kwargs: Any) -> Path:
        """Write a YAML inventory in the engine's format; ``containers`` are names,
        docker Container objects or (host_name, container_name) pairs."""
        import yaml

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.inventory_data(n_ssh, containers, **kwargs),
                                       sort_keys=False))
        return path


# ------------------------------------------------------------------ loading

def _run_setup(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    out = work / "setup.out"
    env = {**os.environ, "RUNBOOK_TEST_WORK": str(work)}
    with open(out, "wb") as fh:
        try:
            proc = subprocess.run(["bash", str(SETUP_SH)], stdin=subprocess.DEVNULL, stdout=fh,
                                  stderr=subprocess.STDOUT, env=env, timeout=900)
        except subprocess.TimeoutExpired:
            raise InfraError(f"{SETUP_SH} took over 15 minutes (output: {out})") from None
    if proc.returncode != 0:
        tail = "\n".join(out.read_text(errors="replace").splitlines()[-25:])
        raise InfraError(f"{SETUP_SH} failed with exit {proc.returncode}; last output:\n{tail}")


def load_infra(setup: bool | None = None) -> Infra:
    """Read infra.json; run setup.sh first when it is missing or what it lists is not
    running (unless RUNBOOK_TEST_NO_SETUP=1 or ``setup=False``). Raises InfraError."""
    if setup is None:
        setup = os.environ.get("RUNBOOK_TEST_NO_SETUP") != "1"
    work = work_dir()
    path = work / "infra.json"
    why = ""
    if path.exists():
        try:
            infra = Infra.from_file(path)
            problems = infra.problems()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems = [f"{path} is unreadable: {exc}"]
        if not problems:
            return infra
        why = "; ".join(problems)
    else:
        why = f"{path} does not exist"
    if not setup:
        raise InfraError(f"test infrastructure not available ({why}); run "
                         f"`bash {SETUP_SH}` (RUNBOOK_TEST_NO_SETUP=1 forbids doing it here)")
    _run_setup(work)
    infra = Infra.from_file(path)
    problems = infra.problems()
    if problems:
        raise InfraError("after setup.sh: " + "; ".join(problems))
    return infra
