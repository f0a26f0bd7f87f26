"""SshConnection against the real sshd fleet of tests/infra (loopback only)."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import paramiko
import pytest

from engine.connections import ssh as ssh_module
from engine.connections.base import Become
from engine.connections.ssh import SshConnection
from engine.errors import (ActionTimeout, AuthFailed, ConnectTimeout, HostKeyError,
                           Interrupted, StepFailed, Unreachable)
from engine.inventory import ConnectionSettings


def settings(target, **overrides) -> ConnectionSettings:
    values = dict(kind="ssh", address=target.address, port=target.port, user="root",
                  key_file=target.key_file, known_hosts=target.known_hosts,
                  connect_timeout=5.0)
    values.update(overrides)
    return ConnectionSettings(**values)


@pytest.fixture
def conn_for():
    """Factory: an SshConnection to a fleet target, closed after the test."""
    made: list[SshConnection] = []

    def make(target, name: str | None = None, **overrides) -> SshConnection:
        conn = SshConnection(name or target.name, settings(target, **overrides))
        made.append(conn)
        return conn

    yield make
    for conn in made:
        conn.close()


@pytest.fixture
def conn(ssh_targets, conn_for) -> SshConnection:
    return conn_for(ssh_targets[0])


@pytest.fixture
def remote_dir(conn):
    path = f"/tmp/rb-ssh-test-{uuid.uuid4().hex[:10]}"
    assert conn.run(["mkdir", "-p", path]).ok
    yield path
    conn.run(["rm", "-rf", path])


def _pids_of(argv: list[str]) -> list[int]:
    """Local pids whose command line is exactly argv (the sshd fleet runs on this machine)."""
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


def _wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return predicate()


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def _unique_sleep(seconds: int) -> list[str]:
    return ["sleep", f"{seconds}.{uuid.uuid4().int % 10**6:06d}"]


# -- commands -----------------------------------------------------------------------------

def test_exit_code_and_both_streams(conn):
    result = conn.run("echo out; echo err >&2; exit 7")
    assert (result.exit_code, result.stdout, result.stderr) == (7, "out\n", "err\n")
    assert not result.ok and result.command == "echo out; echo err >&2; exit 7"
    assert conn.run("true").ok


def test_stdin_env_cwd_and_argv_quoting(conn, remote_dir):
    tricky = "a b'c\"$(touch /tmp/rb-injected)`id`;\n*"
    folder = f"{remote_dir}/with space"
    assert conn.run(["mkdir", folder]).ok
    result = conn.run('printf "%s|%s|" "$RB_X" "$PWD"; cat', env={"RB_X": tricky},
                      cwd=folder, stdin=b"from stdin\x00\xff")
    assert result.ok, result
    assert result.stdout == f"{tricky}|{folder}|from stdin\x00\ufffd"
    argv = conn.run(["printf", "%s\n", "$HOME", "a b", "; exit 3"], cwd=folder)
    assert (argv.exit_code, argv.stdout) == (0, "$HOME\na b\n; exit 3\n")
    assert argv.command == "printf '%s\n' '$HOME' 'a b' '; exit 3'"
    assert not conn.stat("/tmp/rb-injected").exists
    missing = conn.run("pwd", cwd=f"{remote_dir}/nope")
    assert missing.exit_code == 1 and missing.stdout == ""
    with pytest.raises(StepFailed, match="environment variable name"):
        conn.run("true", env={"BAD NAME": "x"})


def test_environment_is_not_polluted(conn):
    """No login shell: profile files do not run and nothing of ours is exported."""
    env = conn.run("env").stdout
    assert "RB_" not in env
    assert conn.run("shopt -q login_shell && echo login || echo plain").stdout == "plain\n"


def test_timeout_closes_channel_and_kills_the_command(conn):
    argv = _unique_sleep(5)
    start = time.monotonic()
    with pytest.raises(ActionTimeout, match=r"timed out after 0\.5s: sleep 5\.") as info:
        conn.run(argv, timeout=0.5)
    assert time.monotonic() - start < 1.2
    assert info.value.message.endswith(" ".join(argv))
    assert _wait_for(lambda: not _pids_of(argv), 3.0), "remote sleep survived the timeout"
    assert conn.run("echo still usable").stdout == "still usable\n"


def test_timeout_kills_the_command_of_a_non_root_login(ssh_targets, conn_for, infra):
    """Non-root sessions are signalled by sshd itself (root ones through a marker)."""
    conn = conn_for(ssh_targets[0], user=infra.users["sudo_nopasswd"]["name"])
    argv = _unique_sleep(5)
    with pytest.raises(ActionTimeout):
        conn.run(argv, timeout=0.3)
    assert _wait_for(lambda: not _pids_of(argv), 3.0), "remote sleep survived the timeout"


def test_large_output_on_both_streams_at_once(conn):
    result = conn.run("yes abcdefghi | head -c 10485760 & "
                      "yes E | head -c 1048576 >&2; wait", timeout=30)
    assert result.ok
    assert len(result.stdout) == 10485760 and result.stdout.startswith("abcdefghi\n")
    assert len(result.stderr) == 1048576 and set(result.stderr) == {"E", "\n"}


def test_large_stdin_echoed_back(conn):
    """More stdin than the SSH window while output flows back: no deadlock."""
    data = os.urandom(3 << 20).hex().encode()        # 6 MB
    result = conn.run("cat; echo done >&2", stdin=data, timeout=30)
    assert result.ok and result.stderr == "done\n"
    assert hashlib.sha256(result.stdout.encode()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert conn.run("head -c 3 >/dev/null; echo ok", stdin=data, timeout=30).stdout == "ok\n"


def test_concurrent_runs_on_one_connection(conn):
    errors: list[BaseException] = []
    outputs: dict[int, list[str]] = {}

    def worker(n: int) -> None:
        try:
            outputs[n] = [conn.run(f"echo {n}-{i}; echo e{n} >&2").stdout for i in range(10)]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert outputs == {n: [f"{n}-{i}\n" for i in range(10)] for n in range(8)}
    assert len(conn._transports) == 1          # one transport shared by all threads


def test_cancel_ends_running_commands_promptly(conn):
    argv = _unique_sleep(30)
    caught: list[BaseException] = []

    def worker() -> None:
        try:
            conn.run(argv)
        except BaseException as exc:  # noqa: BLE001 - checked below
            caught.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    assert _wait_for(lambda: _pids_of(argv))
    start = time.monotonic()
    conn.cancel()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - start < 2
    assert len(caught) == 1 and isinstance(caught[0], Interrupted), caught
    assert "sleep 30." in str(caught[0])
    assert _wait_for(lambda: not _pids_of(argv), 3.0)
    assert conn.run("echo after").stdout == "after\n"


def test_probe_tcp_from_the_target(conn, ssh_targets):
    assert conn.probe_tcp(ssh_targets[1].address, ssh_targets[1].port) is True
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    start = time.monotonic()
    assert conn.probe_tcp("127.0.0.1", closed_port) is False
    assert time.monotonic() - start < 1.0
    assert conn.run("true").ok


def test_close_then_reuse_and_context_manager(ssh_targets, conn_for):
    conn = conn_for(ssh_targets[0])
    with conn:
        assert conn.run("echo 1").stdout == "1\n"
    assert conn._transport is None
    conn.close()                                        # twice is fine
    assert conn.run("echo 2").stdout == "2\n"          # opened again, lazily


# -- become ---------------------------------------------------------------------------------

def test_become_with_password_over_password_auth(password_target, infra):
    password = infra.rbtest_password
    conn = SshConnection("pwd", settings(password_target, user=password_target.user,
                                          key_file=None, password=password,
                                          become_password=password))
    try:
        assert conn.run("id -un").stdout == "rbtest\n"
        result = conn.run(["id", "-un"], become=Become("root", password))
        assert (result.exit_code, result.stdout) == (0, "root\n")
        piped = conn.run('cat; echo " $RB_V in $PWD"', stdin=b"input", env={"RB_V": "v"},
                         cwd="/tmp", become=Become("root", password))
        assert piped.stdout == "input v in /tmp\n"
        wrong = conn.run(["id", "-un"], become=Become("root", "not-the-password"))
        assert wrong.exit_code != 0 and wrong.stdout == ""
    finally:
        conn.close()


def test_become_without_password_by_key(ssh_targets, conn_for, infra):
    nopw = conn_for(ssh_targets[0], user=infra.users["sudo_nopasswd"]["name"])
    assert nopw.run("id -u", become=Become()).stdout == "0\n"
    asks = conn_for(ssh_targets[0], user="rbtest")
    refused = asks.run("id -u", become=Become())        # sudo -n: no password, no prompt
    assert refused.exit_code != 0 and "password" in refused.stderr


# -- files ----------------------------------------------------------------------------------

def test_binary_safe_put_and_get(conn, remote_dir, tmp_path):
    every_byte = bytes(range(256)) * 4
    big = os.urandom(5 << 20)
    conn.put_bytes(every_byte, f"{remote_dir}/bytes")
    assert conn.read_bytes(f"{remote_dir}/bytes") == every_byte
    local = tmp_path / "big.bin"
    local.write_bytes(big)
    conn.put(str(local), f"{remote_dir}/big")
    back = tmp_path / "back.bin"
    conn.get(f"{remote_dir}/big", str(back))
    assert back.read_bytes() == big
    assert conn.read_bytes(f"{remote_dir}/big") == big
    assert conn.checksum(f"{remote_dir}/big") == hashlib.sha256(big).hexdigest()
    assert conn.checksum(f"{remote_dir}/bytes") == hashlib.sha256(every_byte).hexdigest()
    assert conn.run(["sha256sum", f"{remote_dir}/big"]).stdout.split()[0] == \
        hashlib.sha256(big).hexdigest()
    assert conn.read_bytes(f"{remote_dir}/missing") is None
    assert conn.checksum(f"{remote_dir}/missing") is None
    assert conn.checksum(remote_dir) is None
    with pytest.raises(StepFailed, match="cannot copy"):
        conn.get(f"{remote_dir}/missing", str(tmp_path / "x"))
    assert not list(tmp_path.glob("x*"))


def test_put_modes_overwrite_and_no_temp_files(conn, remote_dir, tmp_path):
    conn.put_bytes(b"secret\n", f"{remote_dir}/key", mode=0o600)
    conn.put_bytes(b"plain\n", f"{remote_dir}/plain")
    script = tmp_path / "s.sh"
    script.write_text("#!/bin/sh\necho ran\n")
    conn.put(str(script), f"{remote_dir}/s.sh", mode=0o755)
    assert conn.stat(f"{remote_dir}/key").mode == 0o600
    assert conn.stat(f"{remote_dir}/plain").mode == 0o644
    assert conn.stat(f"{remote_dir}/s.sh").mode == 0o755
    assert conn.run(f"{remote_dir}/s.sh").stdout == "ran\n"
    conn.put_bytes(b"new\n", f"{remote_dir}/plain", mode=0o640)        # replaces atomically
    assert conn.read_bytes(f"{remote_dir}/plain") == b"new\n"
    assert conn.stat(f"{remote_dir}/plain").mode == 0o640
    assert conn.run(["ls", "-A", remote_dir]).stdout.split() == ["key", "plain", "s.sh"]
    with pytest.raises(StepFailed, match="does not exist"):
        conn.put_bytes(b"x", f"{remote_dir}/no/such/folder/f")
    with pytest.raises(StepFailed, match="cannot read"):
        conn.put(str(tmp_path / "missing"), f"{remote_dir}/m")


def test_stat(conn, remote_dir):
    conn.put_bytes(b"12345", f"{remote_dir}/f", mode=0o640)
    assert conn.run(["ln", "-s", "f", f"{remote_dir}/link"]).ok
    f = conn.stat(f"{remote_dir}/f")
    assert (f.exists, f.is_dir, f.is_link, f.mode, f.size, f.owner, f.group) == \
        (True, False, False, 0o640, 5, "root", "root")
    d = conn.stat(remote_dir)
    assert d.exists and d.is_dir
    link = conn.stat(f"{remote_dir}/link")
    assert link.is_link and link.link_target == "f"
    assert not conn.stat(f"{remote_dir}/missing").exists
    assert not conn.stat(f"{remote_dir}/f/below").exists


# -- connecting: errors --------------------------------------------------------------------

def _strip_host(known_hosts: str, target) -> str:
    prefix = f"[{target.address}]:{target.port} "
    return "".join(line for line in Path(known_hosts).read_text().splitlines(True)
                   if not line.startswith(prefix))


def test_changed_host_key_is_rejected_naming_the_line(ssh_targets, conn_for, tmp_path):
    target, other = ssh_targets[0], ssh_targets[1]
    lines = Path(target.known_hosts).read_text().splitlines()
    other_key = next(l for l in lines if l.startswith(f"[{other.address}]:{other.port} "))
    known = tmp_path / "known_hosts"
    known.write_text("# test file\n" + _strip_host(target.known_hosts, target)
                     + f"[{target.address}]:{target.port} " + other_key.split(" ", 1)[1] + "\n")
    line_number = len(known.read_text().splitlines())
    conn = conn_for(target, known_hosts=str(known))
    with pytest.raises(HostKeyError) as info:
        conn.run("true")
    message = str(info.value)
    assert "CHANGED" in message and target.host_key_fingerprint in message
    assert other.host_key_fingerprint in message
    assert f"{target.name} ({target.address}:{target.port})" in message
    assert f"remove line {line_number} of {known}" in message
    assert info.value.host == target.name
    accept_new = conn_for(target, known_hosts=str(known), host_key_checking="accept-new")
    with pytest.raises(HostKeyError, match="CHANGED"):
        accept_new.open()


def test_unknown_host_key_strict_and_accept_new(ssh_targets, conn_for, tmp_path):
    target = ssh_targets[0]
    known = tmp_path / "ssh" / "known_hosts"
    with pytest.raises(HostKeyError) as info:
        conn_for(target, known_hosts=str(known)).open()
    assert "unknown host key" in str(info.value)
    assert target.host_key_fingerprint in str(info.value)
    assert not known.exists()
    accepted = conn_for(target, known_hosts=str(known), host_key_checking="accept-new")
    assert accepted.run("echo hi").stdout == "hi\n"
    text = known.read_text()
    assert text.startswith(f"[{target.address}]:{target.port} ssh-ed25519 ")
    again = conn_for(target, known_hosts=str(known), host_key_checking="accept-new")
    again.open()
    assert known.read_text() == text                 # not written twice
    assert conn_for(target, known_hosts=str(known)).run("true").ok   # strict now passes


def test_host_key_checking_off_warns_once(ssh_targets, conn_for, tmp_path, caplog,
                                          monkeypatch):
    monkeypatch.setattr(ssh_module, "_warned_off", False)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with caplog.at_level(logging.WARNING, logger="runbook.ssh"):
        for target in ssh_targets[:2]:
            conn_for(target, known_hosts=str(empty), host_key_checking="off").run("true")
    warnings = [r for r in caplog.records if r.name == "runbook.ssh"]
    assert len(warnings) == 1 and "host_key_checking is off" in warnings[0].getMessage()
    assert empty.read_text() == ""


def test_wrong_key_is_auth_failed(ssh_targets, conn_for, tmp_path):
    key = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    target = ssh_targets[0]
    with pytest.raises(AuthFailed) as info:
        conn_for(target, key_file=str(key)).run("true")
    message = str(info.value)
    assert f"{target.name} ({target.address}:{target.port})" in message
    assert "user root" in message and str(key) in message
    with pytest.raises(AuthFailed, match="does not exist"):
        conn_for(target, key_file=str(tmp_path / "nope")).open()


def test_agent_and_default_identity(ssh_targets, conn_for, tmp_path, monkeypatch):
    target = ssh_targets[0]
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(AuthFailed, match="tried: nothing"):
        conn_for(target, key_file=None).open()
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(sock.exists, 5.0)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", target.key_file], env=env, check=True,
                       stderr=subprocess.DEVNULL)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        assert conn_for(target, key_file=None).run("echo agent").stdout == "agent\n"
    finally:
        agent.terminate()
        agent.wait(5)
    monkeypatch.delenv("SSH_AUTH_SOCK")
    (home / ".ssh" / "id_ed25519").write_bytes(Path(target.key_file).read_bytes())
    assert conn_for(target, key_file=None).run("echo default").stdout == "default\n"


def test_wrong_password_is_auth_failed(password_target, conn_for):
    conn = conn_for(password_target, user=password_target.user, key_file=None,
                    password="not-the-password")
    with pytest.raises(AuthFailed, match="password"):
        conn.open()


def test_nothing_listening_is_unreachable_fast(ssh_targets, conn_for):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = conn_for(ssh_targets[0], name="ghost", port=port)
    start = time.monotonic()
    with pytest.raises(Unreachable) as info:
        conn.run("true")
    assert time.monotonic() - start < 1.0
    assert str(info.value) == f"ghost (127.0.0.1:{port}): connection refused"
    assert info.value.host == "ghost"


def test_silent_server_is_connect_timeout(ssh_targets, conn_for):
    with socket.socket() as listener:       # accepts TCP (backlog) but never says a word
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        conn = conn_for(ssh_targets[0], name="mute", port=port, connect_timeout=0.5)
        start = time.monotonic()
        with pytest.raises(ConnectTimeout) as info:
            conn.open()
        assert 0.4 < time.monotonic() - start < 2.0
    assert f"mute (127.0.0.1:{port})" in str(info.value) and "0.5s" in str(info.value)


def test_failed_connects_leak_no_file_descriptors(ssh_targets, conn_for, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    attempts = [dict(port=dead_port), dict(known_hosts=str(empty)),
                dict(key_file=str(tmp_path / "missing"))]

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    for overrides in attempts:                      # warm up lazy imports and caches
        with pytest.raises(Exception):
            conn_for(ssh_targets[0], **overrides).open()
    before = fds()
    for _ in range(20):
        for overrides in attempts:
            with pytest.raises((Unreachable, HostKeyError, AuthFailed)):
                conn_for(ssh_targets[0], **overrides).open()
    assert _wait_for(lambda: fds() <= before + 2, 3.0), (before, fds())


def test_killed_session_gives_unreachable_promptly(ssh_targets, conn_for):
    target = ssh_targets[-1]
    conn = conn_for(target)
    assert conn.run("true").ok
    argv = _unique_sleep(30)
    caught: list[BaseException] = []

    def worker() -> None:
        try:
            conn.run(argv)
        except BaseException as exc:  # noqa: BLE001 - checked below
            caught.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    pids = _wait_for(lambda: _pids_of(argv))
    assert pids, "the remote sleep did not start"
    chain, pid = [], pids[0]            # sleep <- sshd user@notty <- sshd [priv] <- listener
    while pid not in (0, 1, target.pid):
        chain.append(pid)
        pid = _parent(pid)
    assert pid == target.pid, "the session does not descend from the fleet sshd"
    start = time.monotonic()
    for victim in reversed(chain):      # the session's sshd processes, then the command
        os.kill(victim, signal.SIGKILL)
    thread.join(10)
    assert not thread.is_alive(), "run() hung after its sshd session was killed"
    assert time.monotonic() - start < 3
    assert len(caught) == 1 and isinstance(caught[0], Unreachable), caught
    assert "connection lost while running: sleep 30." in str(caught[0])
    assert f"({target.address}:{target.port})" in str(caught[0])
    assert conn.run("echo reconnected").stdout == "reconnected\n"     # lazily re-opened


# -- jump host ------------------------------------------------------------------------------

def test_proxy_jump(ssh_targets, conn_for):
    jump, target = ssh_targets[0], ssh_targets[1]
    conn = conn_for(target, proxy_jump=f"root@{jump.address}:{jump.port}")
    result = conn.run("echo $SSH_CONNECTION")
    assert result.ok and result.stdout.split()[3] == str(target.port)
    assert len(conn._transports) == 2
    assert isinstance(conn._transports[1].sock, paramiko.Channel)   # through the jump host
    conn.put_bytes(b"via jump", "/tmp/rb-ssh-jump-test")
    assert conn.read_bytes("/tmp/rb-ssh-jump-test") == b"via jump"
    conn.run(["rm", "-f", "/tmp/rb-ssh-jump-test"])


def test_proxy_jump_errors_name_the_hop(ssh_targets, conn_for):
    jump, target = ssh_targets[0], ssh_targets[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    beyond = conn_for(target, port=dead, proxy_jump=f"{jump.address}:{jump.port}")
    with pytest.raises(Unreachable, match=rf"\(127\.0\.0\.1:{dead}\): the jump host could "):
        beyond.open()
    no_jump = conn_for(target, proxy_jump=f"127.0.0.1:{dead}")
    with pytest.raises(Unreachable, match=rf"via jump host 127\.0\.0\.1:{dead}: connection "
                                          r"refused"):
        no_jump.open()
