"""DockerConnection and DockerApi against the real dockerd: commands (stdin, env, cwd,
timeouts, large output, become), files through tar archives, a stopped, missing or
killed container, an unreachable daemon, an ssh:// daemon with strict host keys, and
the cost of one command next to the SDK's bare exec_run.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from engine.connections.docker import DockerConnection
from engine.connections.docker_api import DockerApi, api_for, daemon_address
from engine.errors import ActionTimeout, HostKeyError, StepFailed, Unreachable
from engine.inventory import ConnectionSettings, Host
from engine.connections.base import Become


def settings(infra, container: str, **extra) -> ConnectionSettings:
    return ConnectionSettings(kind="docker", container=container,
                              docker_host=extra.pop("docker_host", infra.docker_host), **extra)


def ssh_settings(infra, container: str, known_hosts: str | None = None) -> ConnectionSettings:
    t = infra.ssh_targets(1)[0]
    return ConnectionSettings(kind="docker", container=container,
                              docker_host=f"ssh://root@{t.address}:{t.port}",
                              key_file=infra.key_file,
                              known_hosts=known_hosts or infra.known_hosts,
                              host_key_checking="strict")


@pytest.fixture
def box(container):
    """A running busybox container (no network) and a connection to it."""
    c = container("busybox", network="none")
    return c


@pytest.fixture
def conn(infra, box):
    connection = DockerConnection("box", settings(infra, box.name))
    yield connection
    connection.close()


# ---------------------------------------------------------------- commands

def test_string_runs_with_sh_and_argv_runs_as_is(conn):
    r = conn.run("echo out; echo err >&2; exit 3")
    assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = conn.run(["echo", "$HOME", "a b"])
    assert r.ok and r.stdout == "$HOME a b\n"
    assert r.command == "echo '$HOME' 'a b'"


def test_stdin_env_and_cwd(conn):
    data = os.urandom(300_000)
    r = conn.run(["sh", "-c", "cat | sha256sum"], stdin=data)
    import hashlib
    assert r.stdout.split()[0] == hashlib.sha256(data).hexdigest()
    r = conn.run('echo "$GREETING" $(pwd)', env={"GREETING": "hello world"}, cwd="/tmp")
    assert r.stdout == "hello world /tmp\n"
    r = conn.run("pwd", cwd="/no/such/dir")
    assert r.exit_code == 1 and "no such directory" in r.stderr


def test_missing_program_is_exit_127(conn):
    r = conn.run(["no-such-program", "x"])
    assert r.exit_code == 127 and "no-such-program: command not found" in r.stderr


def test_large_output_is_complete(conn):
    r = conn.run("head -c 12000000 /dev/zero | tr '\\0' x; echo; echo tail >&2")
    assert len(r.stdout) == 12_000_001 and set(r.stdout[:-1]) == {"x"}
    assert r.stderr == "tail\n"


def test_timeout_raises_and_kills_the_command(conn):
    start = time.monotonic()
    with pytest.raises(ActionTimeout, match="timed out after 0.5s"):
        conn.run("sleep 31 | cat", timeout=0.5)
    assert time.monotonic() - start < 4
    assert "sleep 31" not in conn.run("ps").stdout


def test_output_read_ahead_by_the_http_parser_is_kept():
    """Bytes that arrived with the 101 response (read into the HTTP parser's buffer)
    belong to the command's output."""
    import socket
    from types import SimpleNamespace
    from engine.connections.docker import _Stream
    ours, daemon = socket.socketpair()
    daemon.sendall(b"HTTP/1.1 101 UPGRADED\r\n\r\n\x01\x00\x00\x00\x00\x00\x00\x02hi")
    fp = ours.makefile("rb")
    while fp.readline() not in (b"\r\n", b""):
        pass
    raw = socket.SocketIO(ours, "rb")
    raw._response = SimpleNamespace(raw=SimpleNamespace(_fp=SimpleNamespace(fp=fp)))
    stream = _Stream(raw)
    daemon.close()
    assert stream.recv(None) == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert stream.recv(None) == b""
    stream.close()


def test_become_runs_as_that_user(conn):
    assert conn.run("id -u", become=Become("nobody")).stdout == "65534\n"
    assert conn.run("id -u").stdout == "0\n"


def test_cancel_interrupts_a_running_command(conn):
    threading.Timer(0.5, conn.cancel).start()
    start = time.monotonic()
    with pytest.raises(StepFailed, match="cancelled"):
        conn.run("sleep 32")
    assert time.monotonic() - start < 5
    assert "sleep 32" not in conn.run("ps").stdout


# ---------------------------------------------------------------- files

def test_put_and_get_are_binary_safe_with_modes(conn, tmp_path):
    data = bytes(range(256)) * 4000 + b"\x00\r\n"
    conn.put_bytes(data, "/tmp/blob.bin", mode=0o640)
    st = conn.stat("/tmp/blob.bin")
    assert st.exists and not st.is_dir and st.mode == 0o640 and st.size == len(data)
    assert st.owner == "root"
    assert conn.read_bytes("/tmp/blob.bin") == data
    import hashlib
    assert conn.checksum("/tmp/blob.bin") == hashlib.sha256(data).hexdigest()
    local = tmp_path / "src"
    local.write_bytes(data[::-1])
    conn.put(str(local), "/tmp/blob.bin")          # overwrite through a temp name + rename
    back = tmp_path / "back"
    conn.get("/tmp/blob.bin", str(back))
    assert back.read_bytes() == data[::-1]
    assert conn.stat("/tmp/blob.bin").mode == 0o644
    assert not [n for n in conn.run("ls -a /tmp").stdout.split() if n.startswith(".runbook-")]


def test_missing_files_and_folders(conn, tmp_path):
    assert conn.read_bytes("/tmp/nope") is None
    assert conn.checksum("/tmp/nope") is None
    assert not conn.stat("/tmp/nope").exists
    with pytest.raises(StepFailed, match="folder /no/such does not exist"):
        conn.put_bytes(b"x", "/no/such/file")
    with pytest.raises(StepFailed, match="no such file"):
        conn.get("/tmp/nope", str(tmp_path / "x"))


def test_symlinks_and_directories(conn):
    conn.put_bytes(b"target\n", "/tmp/real")
    assert conn.run("ln -s real /tmp/link").ok
    st = conn.stat("/tmp/link")
    assert st.is_link and st.link_target == "real"
    assert conn.read_bytes("/tmp/link") == b"target\n"
    assert conn.stat("/tmp").is_dir
    with pytest.raises(StepFailed, match="is a directory"):
        conn.read_bytes("/tmp")


def test_stat_without_a_shell_uses_the_daemon(conn):
    st = conn._stat_via_api("/bin/sh")
    assert st.exists and st.is_link and st.link_target == "/bin/busybox"
    assert conn._stat_via_api("/tmp").mode == 0o1777
    assert not conn._stat_via_api("/nope").exists


def test_probe_tcp_from_inside(infra, container):
    c = container("busybox", cmd=["httpd", "-f", "-p", "127.0.0.1:30011"], network="host")
    conn = DockerConnection("web", settings(infra, c.name))
    try:
        deadline = time.monotonic() + 5
        while not conn.probe_tcp("127.0.0.1", 30011) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert conn.probe_tcp("127.0.0.1", 30011)
        assert not conn.probe_tcp("127.0.0.1", 30012)
    finally:
        conn.close()


# ---------------------------------------------------------------- a container that is not there

def test_stopped_container_is_unreachable(infra, box):
    box.stop(timeout=0)
    conn = DockerConnection("box-host", settings(infra, box.name))
    with pytest.raises(Unreachable, match=f"container {box.name} is not running.*box-host"):
        conn.run("true")
    with pytest.raises(Unreachable, match="not running"):
        conn.open()


def test_missing_container_is_unreachable(infra):
    name = f"rbt-missing-{uuid.uuid4().hex[:8]}"
    conn = DockerConnection("ghost", settings(infra, name))
    with pytest.raises(Unreachable, match=f"container {name} does not exist.*ghost"):
        conn.run("true")
    with pytest.raises(Unreachable, match="does not exist"):
        conn.put_bytes(b"x", "/tmp/x")


def test_container_killed_mid_command_does_not_hang(infra, box):
    conn = DockerConnection("box", settings(infra, box.name))
    threading.Timer(0.7, lambda: box.kill()).start()
    start = time.monotonic()
    with pytest.raises(Unreachable, match="during the command"):
        conn.run("sleep 60")
    assert time.monotonic() - start < 10


def test_unreachable_daemon(infra):
    conn = DockerConnection("h", settings(infra, "x", docker_host="unix:///tmp/no-such-docker.sock"))
    with pytest.raises(Unreachable, match="unreachable.*socket not found"):
        conn.run("true")
    conn = DockerConnection("h", settings(infra, "x", docker_host="tcp://127.0.0.1:30999"))
    with pytest.raises(Unreachable, match="connection refused"):
        conn.run("true")


# ---------------------------------------------------------------- one client per daemon

def test_one_client_per_daemon(infra, box):
    one = DockerConnection("a", settings(infra, box.name))
    two = DockerConnection("b", settings(infra, box.name))
    host = Host("c", {}, ("all",), ConnectionSettings(kind="local", docker_host=infra.docker_host))
    api = api_for(host)
    try:
        assert one.run("true").ok and two.run("true").ok
        assert one.api.client is two.api.client is api.client
        assert daemon_address(host.connection) == one.address
    finally:
        one.close()
        two.close()
        api.close()


def test_daemon_for_an_ssh_host_is_ssh(infra):
    t = infra.ssh_targets(1)[0]
    s = ConnectionSettings(kind="ssh", address=t.address, port=t.port, user="root",
                           key_file=infra.key_file, known_hosts=infra.known_hosts)
    address = daemon_address(s)
    assert address.url == f"ssh://root@{t.address}:{t.port}"
    with DockerApi(address, host_name="t01") as api:
        assert api.info()["ServerVersion"]


# ---------------------------------------------------------------- ssh:// daemon

def test_ssh_daemon_runs_commands_and_files(infra, box):
    conn = DockerConnection("box", ssh_settings(infra, box.name))
    try:
        r = conn.run(["sh", "-c", "cat; echo done >&2"], stdin=b"over ssh\n")
        assert (r.exit_code, r.stdout, r.stderr) == (0, "over ssh\n", "done\n")
        conn.put_bytes(b"\x00\x01binary", "/tmp/ssh.bin", mode=0o600)
        assert conn.read_bytes("/tmp/ssh.bin") == b"\x00\x01binary"
        start = time.monotonic()
        with pytest.raises(ActionTimeout):
            conn.run("sleep 33", timeout=0.5)
        assert time.monotonic() - start < 6
        assert "sleep 33" not in conn.run("ps").stdout
    finally:
        conn.close()


def test_ssh_daemon_with_unknown_host_key_is_refused(infra, box, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    conn = DockerConnection("box", ssh_settings(infra, box.name, known_hosts=str(empty)))
    with pytest.raises(HostKeyError, match="not found in known_hosts"):
        conn.run("true")


def test_ssh_daemon_accept_new_records_the_key(infra, box, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    s = ssh_settings(infra, box.name, known_hosts=str(known))
    from dataclasses import replace
    conn = DockerConnection("box", replace(s, host_key_checking="accept-new"))
    try:
        assert conn.run("echo ok").stdout == "ok\n"
    finally:
        conn.close()
    t = infra.ssh_targets(1)[0]
    assert f"[{t.address}]:{t.port}" in known.read_text()


