"""The test infrastructure itself works: dockerd, images, sshd fleet, users, no bridge."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import paramiko
import pytest
import yaml


def _exec(client: paramiko.SSHClient, command: str, stdin: bytes | None = None,
          timeout: float = 30) -> tuple[int, str, str]:
    chan = client.get_transport().open_session(timeout=timeout)
    chan.settimeout(timeout)
    chan.exec_command(command)
    if stdin is not None:
        chan.sendall(stdin)
    chan.shutdown_write()
    out = chan.makefile("rb").read().decode()
    err = chan.makefile_stderr("rb").read().decode()
    return chan.recv_exit_status(), out, err


def test_dockerd_answers(docker_client, infra):
    assert docker_client.ping() is True
    assert infra.docker_host.startswith("unix://")


def test_images_exist_and_run(docker_client, infra):
    for key in ("busybox", "debian"):
        ref = infra.images[key]
        img = docker_client.images.get(ref)
        assert img.labels.get("runbook-test.image") == key
        assert ref.split(":")[1] == img.labels["runbook-test.recipe"]
        assert f"runbook-test/{key}:latest" in img.tags
    out = docker_client.containers.run(infra.images["busybox"], ["echo", "ok"], network_mode="none",
                                       labels={"runbook-test": "1"}, remove=True)
    assert out == b"ok\n"
    out = docker_client.containers.run(
        infra.images["debian"],
        ["sh", "-c", "command -v python3 sudo ps curl /usr/sbin/sshd >/dev/null && "
                     "test -x /usr/sbin/policy-rc.d && python3 -c 'print(\"ok\")'"],
        network_mode="none", labels={"runbook-test": "1"}, remove=True)
    assert out == b"ok\n"


def test_container_factory_host_network(container):
    c = container("busybox", network="host")
    code, out = c.exec_run(["sh", "-c", "echo hi; id -u"])
    assert (code, out) == (0, b"hi\n0\n")
    c.reload()
    assert c.attrs["HostConfig"]["NetworkMode"] == "host"
    assert c.labels["runbook-test"] == "1"


def test_every_sshd_accepts_key_with_strict_host_keys(infra, ssh_targets):
    assert len(ssh_targets) >= 1
    known = paramiko.HostKeys(infra.known_hosts)
    for t in ssh_targets:
        entry = known.lookup(f"[{t.address}]:{t.port}")
        assert entry, f"{t.name} missing from known_hosts"
        client = t.connect()
        try:
            sock = client.get_transport().sock
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert client.get_transport().get_remote_server_key().fingerprint == t.host_key_fingerprint
            assert _exec(client, "echo ok") == (0, "ok\n", "")
        finally:
            client.close()


def test_unknown_host_key_is_rejected(infra, tmp_path):
    t = infra.ssh_targets(1)[0]
    other = tmp_path / "known_hosts"
    other.write_text("".join(l for l in Path(infra.known_hosts).read_text().splitlines(True)
                             if not l.startswith(f"[{t.address}]:{t.port} ")))
    client = paramiko.SSHClient()
    client.load_host_keys(str(other))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException):
        client.connect(t.address, port=t.port, username="root", key_filename=t.key_file,
                       look_for_keys=False, allow_agent=False, timeout=10)
    client.close()


def test_password_sshd_and_sudo_with_password(password_target, infra):
    pw = password_target.password
    assert pw and pw == infra.rbtest_password
    client = password_target.connect(password=pw)
    try:
        assert _exec(client, "id -un") == (0, "rbtest\n", "")
        # sudo asks for the password (never cached) and accepts it
        code, _, err = _exec(client, "sudo -n true")
        assert code != 0 and "password" in err
        assert _exec(client, "sudo -S -p '' -u root -- /bin/sh -c 'id -u'",
                     stdin=(pw + "\n").encode()) == (0, "0\n", "")
        code, out, _ = _exec(client, "sudo -S -p '' -- id -u", stdin=b"wrong\n")
        assert code != 0 and out == ""
    finally:
        client.close()
    with pytest.raises(paramiko.AuthenticationException):
        password_target.connect(password="not-the-password").close()


def test_fleet_sshd_refuses_passwords(infra, ssh_targets):
    with pytest.raises(paramiko.AuthenticationException):
        ssh_targets[0].connect(user="rbtest", password=infra.rbtest_password).close()


def test_become_users_by_key(ssh_targets, infra):
    nopw = infra.users["sudo_nopasswd"]["name"]
    client = ssh_targets[0].connect(user=nopw)
    try:
        assert _exec(client, "sudo -n -u root -- /bin/sh -c 'id -u'") == (0, "0\n", "")
    finally:
        client.close()
    client = ssh_targets[0].connect(user="rbtest")
    try:
        assert _exec(client, "sudo -S -p '' -- id -un", stdin=(infra.rbtest_password + "\n").encode()) \
            == (0, "root\n", "")
    finally:
        client.close()


def test_jump_host(ssh_targets):
    jump, target = ssh_targets[0], ssh_targets[1]
    j = jump.connect()
    try:
        chan = j.get_transport().open_channel("direct-tcpip", (target.address, target.port),
                                              ("127.0.0.1", 0))
        client = paramiko.SSHClient()
        client.load_host_keys(target.known_hosts)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(target.address, port=target.port, username="root", sock=chan,
                       key_filename=target.key_file, look_for_keys=False, allow_agent=False)
        try:
            assert _exec(client, "echo via-jump") == (0, "via-jump\n", "")
        finally:
            client.close()
    finally:
        j.close()


def test_kill_and_restore_sshd(infra, sshd_control):
    t = infra.ssh_targets()[-1]
    client = t.connect()
    chan = client.get_transport().open_session()
    chan.exec_command("sleep 30")
    sshd_control.kill(t.port)
    chan.settimeout(10)
    assert chan.recv(1) == b""                 # the session dropped at once
    client.close()
    with pytest.raises(OSError):
        socket.create_connection((t.address, t.port), timeout=2).close()
    sshd_control.start(t.port)
    c2 = t.connect()
    try:
        assert _exec(c2, "echo back") == (0, "back\n", "")
    finally:
        c2.close()


def test_write_inventory(infra, inventory, container):
    c = container("busybox")
    path = inventory(n_ssh=2, containers=[c], password_host=True)
    data = yaml.safe_load(path.read_text())["all"]["children"]
    t01 = data["ssh"]["hosts"]["t01"]
    assert t01 == {"connection": "ssh", "address": "127.0.0.1", "port": infra.hosts[0].port,
                   "user": "root", "key_file": infra.key_file, "known_hosts": infra.known_hosts}
    assert data["docker"]["hosts"][c.name] == {"connection": "docker", "container": c.name}
    assert data["password"]["hosts"]["pwd"]["user"] == "rbtest"


def test_no_container_uses_bridge_networking(docker_client, container):
    container("busybox", network="none")
    for c in docker_client.containers.list(all=True):
        mode = c.attrs["HostConfig"]["NetworkMode"]
        assert mode in ("host", "none"), f"container {c.name} uses network {mode}"
        assert "bridge" not in (c.attrs["NetworkSettings"].get("Networks") or {}), c.name
    assert not docker_client.networks.list(names=["bridge"]), "dockerd runs with a bridge"
    assert subprocess.run(["ip", "link", "show", "docker0"], capture_output=True).returncode != 0
