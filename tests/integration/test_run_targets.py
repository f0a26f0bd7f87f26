"""`runbook run` (the real CLI, in a subprocess, ``--output json``) against real targets:
the local Docker daemon, a daemon reached over SSH (``docker_host: ssh://...`` and the
automatic ssh:// of an ``ssh`` host), the sshd fleet, containers (``connection:
docker``), and a fan-out to 10 SSH hosts + 10 containers at once.  Also how targets
that cannot be used are reported (``unreachable``, not failed): nothing listening,
missing container, host key mismatch, authentication failure, an sshd session killed
mid-run; a dry run of a deploy over ssh://; become through sudo with a password.

Every container is labelled runbook-test=1 (plus a per-module/per-test case label
removed afterwards); files go under /tmp/rbt-run-<case>/ (the fleet's sshds run on
this machine, so "remote" files are local files too).  HTTP ports: 33000-33999.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.e2e.clitools import Cli, Result
from tests.infra.infra import _descendants

LABEL = {"runbook-test": "1"}
BOGUS_DOCKER_HOST = "unix:///nonexistent/runbook-test-docker.sock"
N_BOXES = 10

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------- helpers

def free_port() -> int:
    """A TCP port of 33000-33999 nothing listens on (bind-checked)."""
    ports = list(range(33000, 34000))
    random.shuffle(ports)
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 33000-33999")


def dead_port() -> int:
    """A port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ssh_host(target, **overrides: Any) -> dict[str, Any]:
    """Inventory vars of a fleet target (strict host key checking, key auth)."""
    return {**target.inventory_vars(), "host_key_checking": "strict", **overrides}


def write_inventory(path: Path, groups: dict[str, dict[str, dict[str, Any]]]) -> str:
    data = {"all": {"children": {g: {"hosts": hosts} for g, hosts in groups.items()}}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def ends(res: Result, step: str, phase: str = "steps") -> dict[str, dict[str, Any]]:
    """step_end events of one step, by host (each host at most once)."""
    out: dict[str, dict[str, Any]] = {}
    for e in res.of("step_end", step=step, phase=phase):
        assert e["host"] not in out, f"two step_end of {step} on {e['host']}"
        out[e["host"]] = e
    return out


def run_end(res: Result) -> dict[str, Any]:
    assert res.events and res.events[-1]["event"] == "run_end", res
    assert res.events[0]["event"] == "run_start", res
    return res.events[-1]


def box_exec(box, *argv: str) -> str:
    code, out = box.exec_run(list(argv))
    assert code == 0, (argv, out)
    return out.decode()


def recap_row(stderr: str, host: str) -> list[str]:
    """The recap line of a host: its counters and status."""
    recap = stderr[stderr.index("RECAP"):]
    for line in recap.splitlines():
        words = line.split()
        if words and words[0] == host:
            return words
    raise AssertionError(f"no recap line for {host}:\n{recap}")


@pytest.fixture(scope="module")
def case() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def boxes(infra, docker_client, case):
    """N_BOXES busybox containers (no network: each has its own hostname = its id)."""
    made = []
    try:
        for i in range(1, N_BOXES + 1):
            made.append(infra.run_container(
                "busybox", f"rbt-run-{case}-c{i:02d}", network="none",
                labels={"runbook-test.case": case}))
        yield made
    finally:
        for c in docker_client.containers.list(all=True,
                                               filters={"label": f"runbook-test.case={case}"}):
            c.remove(force=True, v=True)


@pytest.fixture
def work(tmp_path, docker_client):
    """Per test: a Cli in tmp_path, a unique id, a files root; cleans containers/files."""
    w = SimpleNamespace()
    w.id = uuid.uuid4().hex[:8]
    w.cli = Cli(tmp_path)
    w.tmp = tmp_path
    w.root = f"/tmp/rbt-run-{w.id}"
    w.labels = {**LABEL, "runbook-test.case": w.id}
    yield w
    for c in docker_client.containers.list(all=True,
                                           filters={"label": f"runbook-test.case={w.id}"}):
        c.remove(force=True, v=True)
    shutil.rmtree(w.root, ignore_errors=True)


def deploy_runbook(w, image: str) -> str:
    """A docker.container deploy of a busybox httpd on the host's own port (`web_port`)."""
    text = f"""\
name: deploy web
hosts: all
steps:
  - id: deploy
    name: deploy web container
    docker.container:
      name: "rbt-run-{w.id}-{{{{ inventory_hostname }}}}"
      image: {image}
      command: "httpd -f -p 127.0.0.1:{{{{ web_port }}}} -h /etc"
      network_mode: host
      init: true
      labels: {yaml.safe_dump(w.labels, default_flow_style=True).strip()}
      healthcheck:
        test: "wget -q -O /dev/null http://127.0.0.1:{{{{ web_port }}}}/passwd"
        interval: 200ms
        timeout: 2s
        retries: 3
      wait_healthy: true
      health_timeout: 30s
    register: web
  - id: report
    log: "{{{{ inventory_hostname }}}} {{{{ web.health | default('none') }}}} {{{{ web.id | default('none') }}}}"
"""
    path = w.tmp / "deploy.yml"
    path.write_text(text)
    return str(path)


def check_deployed(res: Result, docker_client, w, ports: dict[str, int], image: str) -> None:
    assert res.code == 0, res
    end = run_end(res)
    assert end["status"] == "ok" and end["exit_code"] == 0
    deploy = ends(res, "deploy")
    assert set(deploy) == set(ports)
    for host, port in ports.items():
        name = f"rbt-run-{w.id}-{host}"
        assert deploy[host]["status"] == "changed", deploy[host]
        assert deploy[host]["changes"] == [f"create container {name} from {image}",
                                           f"start container {name}"], deploy[host]
        assert end["hosts"][host]["status"] == "ok"
        info = docker_client.api.inspect_container(name)
        assert info["State"]["Running"] and info["State"]["Health"]["Status"] == "healthy"
        assert info["HostConfig"]["NetworkMode"] == "host"
        assert info["Config"]["Labels"]["runbook-test"] == "1"
        (log,) = res.of("log", host=host, step="report")
        assert log["msg"] == f"{host} healthy {info['Id']}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/passwd", timeout=5) as resp:
            assert resp.status == 200 and b"root:" in resp.read()


# ---------------------------------------------------------------- docker deploys

def test_deploy_on_the_local_docker_daemon(infra, docker_client, work):
    port = free_port()
    inv = write_inventory(work.tmp / "inv.yml",
                          {"locals": {"lab": {"connection": "local", "web_port": port}}})
    res = work.cli("run", deploy_runbook(work, infra.image("busybox")), "-i", inv,
                   "-o", "json", timeout=60)
    check_deployed(res, docker_client, work, {"lab": port}, infra.image("busybox"))


def test_deploy_on_docker_daemons_reached_over_ssh(infra, docker_client, work, ssh_targets):
    """docker_host: ssh://... on a local host, and an ssh host's own daemon (ssh://
    derived from it).  DOCKER_HOST points at nothing, so only SSH can reach a daemon."""
    t01, t02 = ssh_targets[0], ssh_targets[1]
    ports = {"viassh": free_port(), "fleet": free_port()}
    inv = write_inventory(work.tmp / "inv.yml", {
        "dockerssh": {"viassh": {
            "connection": "local", "docker_host": f"ssh://root@{t01.address}:{t01.port}",
            "key_file": infra.key_file, "known_hosts": infra.known_hosts,
            "host_key_checking": "strict", "web_port": ports["viassh"]}},
        "ssh": {"fleet": ssh_host(t02, web_port=ports["fleet"])},
    })
    work.cli.env["DOCKER_HOST"] = BOGUS_DOCKER_HOST
    res = work.cli("run", deploy_runbook(work, infra.image("busybox")), "-i", inv,
                   "-o", "json", timeout=60)
    check_deployed(res, docker_client, work, ports, infra.image("busybox"))


def test_control_bogus_docker_host_env_leaves_a_local_host_without_daemon(infra, work):
    """Control for the test above: with the same bogus DOCKER_HOST a local host's docker
    step cannot reach a daemon (so the deploys above really went over SSH)."""
    inv = write_inventory(work.tmp / "inv.yml", {"locals": {"lab": {"connection": "local"}}})
    (work.tmp / "info.yml").write_text("name: info\nhosts: all\nsteps:\n  - docker.info:\n")
    work.cli.env["DOCKER_HOST"] = BOGUS_DOCKER_HOST
    res = work.cli("run", "info.yml", "-i", inv, "-o", "json")
    assert res.code == 1, res
    (e,) = res.of("step_end")
    assert e["status"] == "unreachable" and "nonexistent" in e["msg"], e


def test_dry_run_of_a_deploy_over_ssh_changes_nothing(infra, docker_client, work,
                                                      ssh_targets):
    t = ssh_targets[2]
    port = free_port()
    inv = write_inventory(work.tmp / "inv.yml", {"dockerssh": {"viassh": {
        "connection": "local", "docker_host": f"ssh://root@{t.address}:{t.port}",
        "key_file": infra.key_file, "known_hosts": infra.known_hosts,
        "host_key_checking": "strict", "web_port": port}}})
    work.cli.env["DOCKER_HOST"] = BOGUS_DOCKER_HOST

    def ps() -> list[tuple[str, str, str]]:
        return sorted((c.id, c.name, c.status) for c in docker_client.containers.list(all=True))

    before = ps()
    res = work.cli("run", deploy_runbook(work, infra.image("busybox")), "-i", inv,
                   "--dry-run", "-o", "json", timeout=60)
    assert ps() == before
    assert res.code == 0, res
    end = run_end(res)
    assert end["dry_run"] is True and end["hosts"]["viassh"]["simulated"] >= 1
    name = f"rbt-run-{work.id}-viassh"
    (e,) = res.of("step_end", step="deploy")
    assert e["status"] == "simulated" and e["changed"] is True, e
    assert f"create container {name} from {infra.image('busybox')}" in e["changes"], e
    assert "nothing was changed" in res.stderr
    assert not docker_client.containers.list(all=True, filters={"name": name})


# ---------------------------------------------------------------- shell on ssh and containers

MIXED = """\
name: mixed targets
hosts: all
vars:
  dir: "{root}/{{{{ inventory_hostname }}}}"
steps:
  - id: facts
    shell: 'mkdir -p {{{{ dir }}}} && hostname && echo "${{SSH_CONNECTION:-none}}"'
    register: facts
  - id: colours
    shell: "echo {{{{ colour }}}} >> {{{{ dir }}}}/colours"
    loop: [red, green, blue]
    loop_var: colour
    register: colours
  - id: evens
    shell: "echo {{{{ item }}}} >> {{{{ dir }}}}/evens"
    loop: [1, 2, 3, 4]
    when: item is even
  - id: over-ssh
    shell: "echo {{{{ facts.stdout_lines[1].split()[3] }}}} > {{{{ dir }}}}/sshd-port"
    when: facts.stdout_lines[1] != 'none'
  - id: in-container
    shell: "echo {{{{ facts.stdout_lines[0] }}}} > {{{{ dir }}}}/container"
    when: "'docker' in group_names"
  - id: across
    assert:
      that:
        - colours.results | length == 3
        - hostvars['{first_box}'].colours.results | map(attribute='colour') | list == ['red', 'green', 'blue']
        - hostvars['t01'].facts.stdout_lines[1] != 'none'
"""


def test_shell_steps_on_ssh_hosts_and_containers_with_register_when_loop(
        infra, ssh_targets, boxes, work):
    fleet = {t.name: ssh_host(t) for t in ssh_targets[:3]}
    cont = {c.name: {"connection": "docker", "container": c.name} for c in boxes[:2]}
    inv = write_inventory(work.tmp / "inv.yml", {"ssh": fleet, "docker": cont})
    (work.tmp / "mixed.yml").write_text(MIXED.format(root=work.root, first_box=boxes[0].name))
    res = work.cli("run", "mixed.yml", "-i", inv, "-o", "json", timeout=60)
    assert res.code == 0, res
    end = run_end(res)
    hosts = [*fleet, *cont]
    assert all(end["hosts"][h]["status"] == "ok" for h in hosts), end["hosts"]
    for step in ("facts", "colours", "evens", "across"):
        assert {h: e["status"] for h, e in ends(res, step).items()} == \
            {h: "ok" if step == "across" else "changed" for h in hosts}, step
    assert {h: e["status"] for h, e in ends(res, "over-ssh").items()} == \
        {**{h: "changed" for h in fleet}, **{h: "skipped" for h in cont}}
    assert {h: e["status"] for h, e in ends(res, "in-container").items()} == \
        {**{h: "skipped" for h in fleet}, **{h: "changed" for h in cont}}
    by_name = {t.name: t for t in ssh_targets}
    for h in fleet:          # the sshds share this machine's file system
        folder = Path(work.root, h)
        assert (folder / "colours").read_text() == "red\ngreen\nblue\n"
        assert (folder / "evens").read_text() == "2\n4\n"
        assert (folder / "sshd-port").read_text() == f"{by_name[h].port}\n"
        assert not (folder / "container").exists()
    for box in boxes[:2]:
        folder = f"{work.root}/{box.name}"
        assert box_exec(box, "cat", f"{folder}/colours") == "red\ngreen\nblue\n"
        assert box_exec(box, "cat", f"{folder}/evens") == "2\n4\n"
        assert box_exec(box, "cat", f"{folder}/container") == f"{box.id[:12]}\n"
        assert box_exec(box, "sh", "-c", f"test ! -e {folder}/sshd-port && echo no") == "no\n"
        assert not Path(work.root, box.name).exists()     # it ran inside, not here
        box.exec_run(["rm", "-rf", work.root])


FANOUT = """\
name: fan out
hosts: all
vars:
  dir: "{root}/{{{{ inventory_hostname }}}}"
steps:
  - id: prepare
    shell: "mkdir -p {{{{ dir }}}}"
  - id: work
    shell: 'sleep 1; echo "{{{{ inventory_hostname }}}} $(hostname) ${{SSH_CONNECTION:-none}}" > {{{{ dir }}}}/marker'
    register: worked
  - id: items
    shell: "echo {{{{ item }}}} >> {{{{ dir }}}}/items"
    loop: [a, b, c]
  - id: done
    shell: "test -s {{{{ dir }}}}/marker && echo {{{{ worked.rc }}}} > {{{{ dir }}}}/done"
"""


def test_fan_out_to_10_ssh_hosts_and_10_containers_at_once(infra, ssh_targets, boxes, work):
    fleet = {t.name: ssh_host(t) for t in ssh_targets[:10]}
    cont = {c.name: {"connection": "docker", "container": c.name} for c in boxes[:10]}
    assert len(fleet) == 10 and len(cont) == 10
    inv = write_inventory(work.tmp / "inv.yml", {"ssh": fleet, "docker": cont})
    (work.tmp / "fanout.yml").write_text(FANOUT.format(root=work.root))
    started = time.monotonic()
    res = work.cli("run", "fanout.yml", "-i", inv, "--forks", "20", "-o", "json", timeout=90)
    wall = time.monotonic() - started
    assert res.code == 0, res
    end = run_end(res)
    hosts = [*fleet, *cont]
    assert res.events[0]["hosts"] == hosts
    assert {h: s["status"] for h, s in end["hosts"].items()} == {h: "ok" for h in hosts}
    assert all(end["hosts"][h]["changed"] == 4 for h in hosts), end["hosts"]
    durations = 0.0
    for step in ("prepare", "work", "items", "done"):
        by_host = ends(res, step)
        assert {h: e["status"] for h, e in by_host.items()} == {h: "changed" for h in hosts}
        durations += sum(e["duration"] for e in by_host.values())
    # parallel: the 20 one-second sleeps overlap (one after the other: >= 20 s) ...
    work_ends = ends(res, "work")
    assert sum(e["duration"] for e in work_ends.values()) >= 20
    span = max(e["ts"] for e in work_ends.values()) - \
        min(e["ts"] for e in res.of("step_start", step="work"))
    assert span < 8, span
    # ... and so do all the steps: the run takes far less than the sum of the step times
    assert end["duration"] < durations / 4, (end["duration"], durations)
    assert wall < 60, wall
    ports = {t.name: t.port for t in ssh_targets}
    for h in fleet:
        folder = Path(work.root, h)
        name, _hostname, *conn = (folder / "marker").read_text().split()
        assert name == h and conn[3] == str(ports[h]), conn   # through its own sshd
        assert (folder / "items").read_text() == "a\nb\nc\n"
        assert (folder / "done").read_text() == "0\n"
    for box in boxes[:10]:
        folder = f"{work.root}/{box.name}"
        assert box_exec(box, "cat", f"{folder}/marker") == f"{box.name} {box.id[:12]} none\n"
        assert box_exec(box, "cat", f"{folder}/items") == "a\nb\nc\n"
        assert box_exec(box, "cat", f"{folder}/done") == "0\n"
        box.exec_run(["rm", "-rf", work.root])
    assert not any(Path(work.root, b.name).exists() for b in boxes)


# ---------------------------------------------------------------- unreachable hosts

REACH = """\
name: reach
hosts: all
max_fail_percentage: {mfp}
steps:
  - id: one
    shell: echo one
  - id: two
    shell: "mkdir -p {root} && echo two > {root}/{{{{ inventory_hostname }}}}"
  - id: three
    shell: echo three
"""


@pytest.mark.parametrize("mfp", [20, 30])
@pytest.mark.parametrize("kind", ["ssh", "docker"])
def test_unreachable_host_counts_toward_max_fail_percentage(infra, ssh_targets, boxes, work,
                                                            kind, mfp):
    ghost = {"connection": "ssh", "address": "127.0.0.1", "port": dead_port(),
             "user": "root", "key_file": infra.key_file, "known_hosts": infra.known_hosts} \
        if kind == "ssh" else {"connection": "docker",
                               "container": f"rbt-run-{work.id}-missing"}
    inv = write_inventory(work.tmp / "inv.yml", {
        "ssh": {t.name: ssh_host(t) for t in ssh_targets[:2]},
        "docker": {boxes[0].name: {"connection": "docker", "container": boxes[0].name}},
        "ghosts": {"ghost": ghost}})
    (work.tmp / "reach.yml").write_text(REACH.format(mfp=mfp, root=work.root))
    res = work.cli("run", "reach.yml", "-i", inv, "-o", "json")
    others = [ssh_targets[0].name, ssh_targets[1].name, boxes[0].name]
    end = run_end(res)
    assert res.code == 1 and end["exit_code"] == 1 and end["status"] == "failed", res
    # reported as unreachable, never as a failed step
    assert not res.of("step_end", status="failed")
    (g,) = res.of("step_end", host="ghost")
    assert g["step"] == "one" and g["status"] == "unreachable", g
    assert ("connection refused" if kind == "ssh" else "does not exist") in g["msg"], g
    counters = end["hosts"]["ghost"]
    assert counters["status"] == "unreachable" and counters["unreachable"] == 1
    assert counters["failed"] == 0
    (failure,) = end["failures"]
    assert failure["host"] == "ghost" and failure["unreachable"] is True
    row = recap_row(res.stderr, "ghost")
    assert row[-1] == "unreachable" and row[-2] == "1" and row[3] == "0", row  # failed 0
    assert "UNREACHABLE: ghost at step 'shell: echo one'" in res.stderr
    assert ends(res, "one").keys() == {*others, "ghost"}
    if mfp == 20:            # 1 of 4 = 25 % > 20 %: the run stops after step one
        assert not res.of("step_start", step="two") and not res.of("step_start", step="three")
        assert not Path(work.root).exists()
    else:                    # 25 % <= 30 %: the others go on to the end
        for step in ("two", "three"):
            assert {h: e["status"] for h, e in ends(res, step).items()} == \
                {h: "changed" for h in others}
        assert sorted(p.name for p in Path(work.root).iterdir()) == others[:2]
        assert box_exec(boxes[0], "cat", f"{work.root}/{boxes[0].name}") == "two\n"
        boxes[0].exec_run(["rm", "-rf", work.root])
    # the run stopped before their last step (mfp 20) or they went through (mfp 30)
    expected = "stopped" if mfp == 20 else "ok"
    for h in others:
        assert end["hosts"][h]["status"] == expected and end["hosts"][h]["unreachable"] == 0
    if mfp == 20:
        assert "max_fail_percentage" in end["stop_reason"], end


SIMPLE = """\
name: simple
hosts: all
steps:
  - id: one
    shell: echo one
  - id: two
    shell: echo two
"""


def test_host_key_mismatch_and_auth_failure_are_unreachable(infra, ssh_targets,
                                                            password_target, work):
    ok, changed, badkey, other = ssh_targets[0], ssh_targets[1], ssh_targets[2], ssh_targets[3]
    known = _mismatched_known_hosts(infra, work, changed, other)
    wrong_key = work.tmp / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong_key)],
                   check=True)
    inv = write_inventory(work.tmp / "inv.yml", {"ssh": {
        ok.name: ssh_host(ok),
        changed.name: ssh_host(changed, known_hosts=str(known)),
        badkey.name: ssh_host(badkey, key_file=str(wrong_key)),
        "pw": {"connection": "ssh", "address": password_target.address,
               "port": password_target.port, "user": password_target.user,
               "password": "not-the-password", "known_hosts": infra.known_hosts},
    }})
    (work.tmp / "simple.yml").write_text(SIMPLE)
    res = work.cli("run", "simple.yml", "-i", inv, "-o", "json")
    assert res.code == 1, res
    end = run_end(res)
    one = ends(res, "one")
    assert one[ok.name]["status"] == "changed"
    assert ends(res, "two").keys() == {ok.name}          # the others go on
    assert end["hosts"][ok.name]["status"] == "ok"
    for h in (changed.name, badkey.name, "pw"):
        assert one[h]["status"] == "unreachable", one[h]
        assert end["hosts"][h]["status"] == "unreachable"
        assert end["hosts"][h]["unreachable"] == 1 and end["hosts"][h]["failed"] == 0
    msg = one[changed.name]["msg"]
    assert msg.startswith(f"{changed.name} ({changed.address}:{changed.port})"), msg
    assert "HOST KEY CHANGED" in msg and changed.host_key_fingerprint in msg, msg
    assert other.host_key_fingerprint in msg and str(known) in msg, msg
    assert "authentication failed" in one[badkey.name]["msg"], one[badkey.name]
    assert str(wrong_key) in one[badkey.name]["msg"]
    assert one["pw"]["msg"].startswith(f"pw ({password_target.address}:"), one["pw"]
    assert "authentication failed for user rbtest" in one["pw"]["msg"], one["pw"]
    assert "not-the-password" not in res.stdout + res.stderr
    assert not res.of("step_end", status="failed")


def _docker_over_ssh_inventory(infra, work, target, **overrides) -> str:
    return write_inventory(work.tmp / "inv.yml", {"dockerssh": {"viassh": {
        "connection": "local", "docker_host": f"ssh://root@{target.address}:{target.port}",
        "key_file": infra.key_file, "known_hosts": infra.known_hosts,
        "host_key_checking": "strict", **overrides}}})


def _mismatched_known_hosts(infra, work, target, other) -> Path:
    lines = Path(infra.known_hosts).read_text().splitlines()
    entry = f"[{target.address}]:{target.port} "
    other_key = next(l for l in lines if l.startswith(f"[{other.address}]:{other.port} "))
    known = work.tmp / "known_hosts"
    known.write_text("".join(
        (entry + other_key.split(" ", 1)[1] if l.startswith(entry) else l) + "\n"
        for l in lines))
    return known


def test_docker_over_ssh_host_key_mismatch_and_auth_failure_are_unreachable(
        infra, ssh_targets, work):
    target, other = ssh_targets[4], ssh_targets[5]
    (work.tmp / "info.yml").write_text("name: info\nhosts: all\nsteps:\n  - docker.info:\n")
    known = _mismatched_known_hosts(infra, work, target, other)
    res = work.cli("run", "info.yml", "-o", "json",
                   "-i", _docker_over_ssh_inventory(infra, work, target, known_hosts=str(known)))
    assert res.code == 1, res
    (e,) = res.of("step_end")
    assert e["status"] == "unreachable" and "host key" in e["msg"].lower(), e
    assert run_end(res)["hosts"]["viassh"]["status"] == "unreachable"
    wrong_key = work.tmp / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong_key)],
                   check=True)
    res = work.cli("run", "info.yml", "-o", "json",
                   "-i", _docker_over_ssh_inventory(infra, work, target,
                                                    key_file=str(wrong_key)))
    assert res.code == 1, res
    (e,) = res.of("step_end")
    assert e["status"] == "unreachable" and "authentication failed" in e["msg"].lower(), e


def test_docker_over_ssh_host_key_mismatch_names_the_fingerprints(infra, ssh_targets, work):
    target, other = ssh_targets[4], ssh_targets[5]
    (work.tmp / "info.yml").write_text("name: info\nhosts: all\nsteps:\n  - docker.info:\n")
    known = _mismatched_known_hosts(infra, work, target, other)
    res = work.cli("run", "info.yml", "-o", "json",
                   "-i", _docker_over_ssh_inventory(infra, work, target, known_hosts=str(known)))
    (e,) = res.of("step_end")
    assert e["status"] == "unreachable"
    assert f"{target.address}:{target.port}" in e["msg"], e["msg"]
    assert target.host_key_fingerprint in e["msg"], e["msg"]
    assert other.host_key_fingerprint in e["msg"], e["msg"]


# ---------------------------------------------------------------- sshd killed mid-run

def _pids_of(argv: list[str]) -> list[int]:
    want = "\0".join(argv).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().rstrip(b"\0") == want:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


KILLED = """\
name: killed
hosts: all
steps:
  - id: long
    command: [sleep, "{{{{ nap }}}}"]
  - id: after
    shell: "mkdir -p {root} && touch {root}/{{{{ inventory_hostname }}}}"
"""


def test_sshd_session_killed_mid_run_is_unreachable_promptly(infra, ssh_targets, work):
    """The victim's sshd session (its sshd processes and the command) is SIGKILLed while
    it runs a 30 s sleep; only that host's session, so the shared fleet keeps working."""
    victim, *rest = ssh_targets[9:12]
    nap = f"30.{uuid.uuid4().int % 10**6:06d}"
    inv = write_inventory(work.tmp / "inv.yml", {"ssh": {
        victim.name: ssh_host(victim, nap=nap),
        **{t.name: ssh_host(t, nap="2") for t in rest}}})
    (work.tmp / "killed.yml").write_text(KILLED.format(root=work.root))
    running = work.cli.start("run", "killed.yml", "-i", inv, "-o", "json")
    try:
        running.wait_for(lambda e: e["event"] == "step_start" and e["host"] == victim.name)
        deadline = time.monotonic() + 10
        pids: list[int] = []
        while not pids and time.monotonic() < deadline:
            pids = _pids_of(["sleep", nap])
            time.sleep(0.02)
        assert pids, "the remote sleep did not start"
        chain, pid = [], pids[0]           # sleep <- sh <- sshd session <- ... <- listener
        while pid not in (0, 1, victim.pid):
            chain.append(pid)
            pid = _parent(pid)
        assert pid == victim.pid, "the session does not descend from the fleet sshd"
        killed_at = time.monotonic()
        for p in reversed(chain):
            os.kill(p, signal.SIGKILL)
        end_of_victim = running.wait_for(
            lambda e: e["event"] == "step_end" and e["host"] == victim.name, timeout=10)
        assert time.monotonic() - killed_at < 5
        res = running.finish(timeout=20)
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()
    assert end_of_victim["status"] == "unreachable", end_of_victim
    assert "connection lost" in end_of_victim["msg"], end_of_victim
    assert f"({victim.address}:{victim.port})" in end_of_victim["msg"]
    assert res.code == 1
    end = res.events[-1]
    assert end["event"] == "run_end" and end["hosts"][victim.name]["status"] == "unreachable"
    for t in rest:
        assert end["hosts"][t.name]["status"] == "ok"
    assert {h: e["status"] for h, e in ends(res, "after").items()} == \
        {t.name: "changed" for t in rest}
    assert sorted(p.name for p in Path(work.root).iterdir()) == sorted(t.name for t in rest)
    assert not _pids_of(["sleep", nap])
    assert victim.is_running()          # the listener itself was left alone


def _tcp_table() -> list[tuple[int, int, int]]:
    """(local port, remote port, socket inode) of every TCP socket of this machine."""
    rows = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            rows.append((int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16),
                         int(f[9])))
    return rows


def _socket_inodes(pid: int) -> set[int]:
    out = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out


def _kill_sshd_sessions_of(client_pid: int, port: int) -> list[int]:
    """SIGKILL the sshd processes (and their children) serving ``client_pid``'s TCP
    connections to ``port``: only this client's sessions, the listener stays."""
    table = _tcp_table()
    mine = _socket_inodes(client_pid)
    client_ports = {lp for lp, rp, ino in table if ino in mine and rp == port}
    server = {ino for lp, rp, ino in table if lp == port and rp in client_ports and ino}
    sessions = [int(e.name) for e in Path("/proc").iterdir()
                if e.name.isdigit() and int(e.name) != client_pid
                and _socket_inodes(int(e.name)) & server]
    victims = {p for s in sessions for p in (s, *_descendants(s))}
    for p in victims:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return sessions


def test_ssh_killed_during_docker_exec_over_ssh_is_unreachable_promptly(
        infra, ssh_targets, boxes, work):
    t = ssh_targets[10]
    box = boxes[1]
    nap = f"6.{uuid.uuid4().int % 10**6:06d}"
    inv = write_inventory(work.tmp / "inv.yml", {"ssh": {"fleet": ssh_host(t)}})
    (work.tmp / "exec.yml").write_text(f"""\
name: exec over ssh
hosts: all
steps:
  - id: long
    docker.exec: {{container: {box.name}, command: "echo before; sleep {nap}; echo after"}}
  - id: after
    shell: echo after
""")
    running = work.cli.start("run", "exec.yml", "-i", inv, "-o", "json")
    try:
        running.wait_for(lambda e: e["event"] == "step_start" and e["step"] == "long")
        deadline = time.monotonic() + 10
        while not _pids_of(["sleep", nap]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _pids_of(["sleep", nap]), "the exec did not start"
        killed_at = time.monotonic()
        assert _kill_sshd_sessions_of(running.proc.pid, t.port), "no session found"
        end = running.wait_for(lambda e: e["event"] == "step_end", timeout=20)
        took = time.monotonic() - killed_at
        res = running.finish(timeout=20)
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()
    assert res.code == 1
    assert (end["status"], took < 3) == ("unreachable", True), (end["msg"], took)


# ---------------------------------------------------------------- become

BECOME = """\
name: become
hosts: all
steps:
  - id: whoami
    shell: {cmd: "whoami; id -u", become: true}
    register: who
  - id: plain
    shell: whoami
    register: plain
  - id: check
    assert:
      that:
        - who.stdout_lines == ['root', '0']
        - plain.stdout == 'rbtest'
"""


def test_become_via_sudo_with_password_from_env(infra, password_target, work):
    secret = infra.rbtest_password
    inv = write_inventory(work.tmp / "inv.yml", {"password": {"pw": {
        "connection": "ssh", "address": password_target.address,
        "port": password_target.port, "user": password_target.user,
        "password": f"file:{password_target.password_file}",
        "become_password": "env:RB_TEST_BECOME_PW", "known_hosts": infra.known_hosts,
        "host_key_checking": "strict"}}})
    (work.tmp / "become.yml").write_text(BECOME)
    work.cli.env["RB_TEST_BECOME_PW"] = secret
    res = work.cli("run", "become.yml", "-i", inv, "-o", "json")
    assert res.code == 0, res
    (e,) = res.of("step_end", step="whoami")
    assert e["status"] == "changed" and e["result"]["stdout"] == "root\n0", e
    assert ends(res, "check")["pw"]["status"] == "ok"
    assert secret not in res.stdout and secret not in res.stderr
    journal = b"".join(p.read_bytes() for p in (work.tmp / ".state").rglob("*") if p.is_file())
    assert secret.encode() not in journal
    # the env: reference is what sudo gets: a wrong one fails the step (and is not shown)
    wrong = f"wrong-{uuid.uuid4().hex[:12]}"
    work.cli.env["RB_TEST_BECOME_PW"] = wrong
    res = work.cli("run", "become.yml", "-i", inv, "-o", "json")
    assert res.code == 1, res
    (e,) = res.of("step_end", step="whoami")
    assert e["status"] == "failed" and e["rc"] != 0, e
    assert wrong not in res.stdout and wrong not in res.stderr
    assert secret not in res.stdout and secret not in res.stderr
