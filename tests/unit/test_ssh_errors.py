"""The pure parts of the ssh connection: error mapping, host key policy, command lines."""

from __future__ import annotations

import socket

import paramiko
import pytest

from engine.connections import known_hosts
from engine.connections.base import Connection
from engine.connections.ssh import (Hop, KnownHost, SshConnection, check_host_key,
                                    connect_error, fingerprint, host_key_decision,
                                    parse_known_hosts, parse_proxy_jump, remote_command_line)
from engine.errors import AuthFailed, ConnectTimeout, HostKeyError, StepFailed, Unreachable
from engine.inventory import ConnectionSettings

KEY_A = "AAAAC3NzaC1lZDI1NTE5AAAAIHG5H5IvCWcAjiSZueGZ7y5leOlo8BwnwGNtIfAMaST4"
FP_A = "SHA256:nRNjl9AaADS4cqv5HeUEP/ySamf+MFK3tXHxikA9pxM"       # ssh-keygen -lf
KEY_B = "AAAAC3NzaC1lZDI1NTE5AAAAICWc8zlnlrIyHwoLAn0Lx2SRYWCIat65M5S8cYCfU/xP"
FP_B = "SHA256:FplrGfrf4hi9KelwWRcWF9QnoCtxlV+1Ug4OZbxUdeE"
ED = "ssh-ed25519"


# -- fingerprints and known_hosts ---------------------------------------------------------

def test_fingerprint_matches_ssh_keygen():
    import base64
    assert fingerprint(base64.b64decode(KEY_A)) == FP_A
    assert KnownHost(1, ("h",), ED, KEY_B).fingerprint == FP_B


def test_parse_known_hosts_keeps_line_numbers_and_markers():
    text = (f"# comment\n\nweb1,10.0.0.1 {ED} {KEY_A} comment here\n"
            f"@revoked * {ED} {KEY_B}\nbroken-line\n[db]:2222 {ED} {KEY_B}\n")
    entries = parse_known_hosts(text)
    assert [(e.line, e.patterns, e.marker) for e in entries] == [
        (3, ("web1", "10.0.0.1"), None), (4, ("*",), "@revoked"), (6, ("[db]:2222",), None)]


@pytest.mark.parametrize("patterns, name, expected", [
    (("web1",), "web1", True),
    (("WEB1",), "web1", True),
    (("web1",), "[web1]:2222", False),              # a port-specific lookup needs [host]:port
    (("[web1]:2222",), "[web1]:2222", True),
    (("[web1]:2222",), "web1", False),
    (("*.example.com",), "a.example.com", True),
    (("web?",), "web7", True),
    (("web?",), "web10", False),
    (("*.example.com", "!bad.example.com"), "bad.example.com", False),
    (("[10.0.0.1]:22*",), "[10.0.0.1]:2222", True),
])
def test_host_patterns(patterns, name, expected):
    assert KnownHost(1, patterns, ED, KEY_A).matches(name) is expected


def test_hashed_host_names():
    hashed = paramiko.HostKeys.hash_host("[127.0.0.1]:24001")
    entry = KnownHost(1, (hashed,), ED, KEY_A)
    assert entry.matches("[127.0.0.1]:24001")
    assert not entry.matches("[127.0.0.1]:24002")
    assert not KnownHost(1, ("|1|not-base64|x",), ED, KEY_A).matches("host")


def test_check_host_key_verdicts():
    entries = parse_known_hosts(
        f"web1 {ED} {KEY_A}\n"
        f"db ecdsa-sha2-nistp256 AAAAE2VjZHNh\n"
        f"@cert-authority * {ED} {KEY_B}\n"
        f"@revoked old {ED} {KEY_B}\n"
        f"old {ED} {KEY_B}\n")
    assert check_host_key(entries, "web1", ED, KEY_A) == ("known", [])
    verdict, lines = check_host_key(entries, "web1", ED, KEY_B)
    assert verdict == "changed" and [e.line for e in lines] == [1]
    verdict, lines = check_host_key(entries, "db", ED, KEY_A)        # known by another type
    assert verdict == "changed" and [e.line for e in lines] == [2]
    assert check_host_key(entries, "new", ED, KEY_A) == ("unknown", [])   # CA lines ignored
    verdict, lines = check_host_key(entries, "old", ED, KEY_B)
    assert verdict == "revoked" and [e.line for e in lines] == [4]


@pytest.mark.parametrize("policy, verdict, decision", [
    ("strict", "known", "accept"), ("strict", "unknown", "reject"),
    ("strict", "changed", "reject"), ("strict", "revoked", "reject"),
    ("accept-new", "known", "accept"), ("accept-new", "unknown", "add"),
    ("accept-new", "changed", "reject"), ("accept-new", "revoked", "reject"),
    ("off", "unknown", "accept"), ("off", "changed", "accept"),
])
def test_host_key_policy(policy, verdict, decision):
    assert host_key_decision(policy, verdict) == decision


def test_add_known_host_writes_once_and_refreshes_the_cache(tmp_path):
    path = tmp_path / "sub" / "known_hosts"
    key = paramiko.ECDSAKey.generate()
    assert known_hosts.read_known_hosts(str(path)) == []
    known_hosts.add_known_host(str(path), "[10.1.1.1]:2222", key)
    known_hosts.add_known_host(str(path), "[10.1.1.1]:2222", key)
    text = path.read_text()
    assert text == f"[10.1.1.1]:2222 {key.get_name()} {key.get_base64()}\n"
    entries = known_hosts.read_known_hosts(str(path))
    assert check_host_key(entries, "[10.1.1.1]:2222", key.get_name(),
                          key.get_base64())[0] == "known"
    other = tmp_path / "no_newline"
    other.write_text(f"web1 {ED} {KEY_A}")
    known_hosts.add_known_host(str(other), "web2", key)
    assert other.read_text().splitlines()[1].startswith("web2 ")


# -- command lines and settings -----------------------------------------------------------

def test_remote_command_line_quotes_everything():
    assert remote_command_line("echo $HOME | wc -c") == "echo $HOME | wc -c"
    assert remote_command_line(["ls", "-l", "a b", "$x"]) == "ls -l 'a b' '$x'"
    line = remote_command_line("run", env={"A": "1 2", "B": "it's"}, cwd="/srv/my app")
    assert line == "cd '/srv/my app' || exit 1; export A='1 2' B='it'\"'\"'s'; run"
    with pytest.raises(StepFailed, match="invalid environment variable name"):
        remote_command_line("x", env={"A;rm -rf /": "1"})
    with pytest.raises(StepFailed):
        remote_command_line("x", env={"1A": "1"})


@pytest.mark.parametrize("value, hops", [
    ("bastion", [Hop("bastion", 22, "me", True)]),
    ("ops@bastion:2222", [Hop("bastion", 2222, "ops", True)]),
    ("[::1]:2200", [Hop("::1", 2200, "me", True)]),
    ("a, u@b:23", [Hop("a", 22, "me", True), Hop("b", 23, "u", True)]),
])
def test_parse_proxy_jump(value, hops):
    assert parse_proxy_jump(value, "me") == hops


@pytest.mark.parametrize("value", ["", "host:port", "host:70000", "a,,b", "[::1"])
def test_parse_proxy_jump_rejects(value):
    with pytest.raises(ValueError, match="proxy_jump"):
        parse_proxy_jump(value, "me")


def test_hop_names():
    assert Hop("web1").known_hosts_name == "web1"
    assert Hop("10.0.0.1", 2222).known_hosts_name == "[10.0.0.1]:2222"
    assert Hop("::1", 2222).endpoint == "[::1]:2222"


def test_constructor_reads_settings_and_touches_no_network(monkeypatch):
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    conn = SshConnection("web1", ConnectionSettings(kind="ssh", user="deploy",
                                                    proxy_jump="jump.example:2200",
                                                    known_hosts="/x/known_hosts",
                                                    connect_timeout=3))
    assert conn.target == Hop("web1", 22, "deploy")
    assert conn.hops == [Hop("jump.example", 2200, "deploy", True), conn.target]
    assert (conn.known_hosts_file, conn.connect_timeout) == ("/x/known_hosts", 3.0)
    conn.close()                                       # never opened: nothing to do
    with pytest.raises(ValueError, match="host_key_checking"):
        SshConnection("web1", ConnectionSettings(kind="ssh", host_key_checking="yes"))


# -- error mapping --------------------------------------------------------------------------

WHERE = "web1 (10.0.0.1:22)"


@pytest.mark.parametrize("exc, timed_out, kind, text", [
    (ConnectionRefusedError(111, "Connection refused"), False, Unreachable,
     "connection refused"),
    (socket.gaierror(-2, "Name or service not known"), False, Unreachable,
     "cannot resolve the address: Name or service not known"),
    (socket.timeout("timed out"), False, ConnectTimeout, "no answer within 10s"),
    (OSError(113, "No route to host"), False, Unreachable, "No route to host"),
    (paramiko.SSHException("Error reading SSH protocol banner"), True, ConnectTimeout,
     "no answer within 10s"),
    (paramiko.SSHException("Error reading SSH protocol banner[Errno 104] reset"), False,
     Unreachable, "closed the connection during the SSH handshake"),
    (EOFError(), False, Unreachable, "closed the connection during the SSH handshake"),
    (paramiko.SSHException("Incompatible ssh peer"), False, Unreachable,
     "SSH handshake failed: Incompatible ssh peer"),
    (paramiko.AuthenticationException("Authentication failed."), False, AuthFailed,
     "authentication failed"),
    (paramiko.AuthenticationException("Authentication timeout."), False, ConnectTimeout,
     "no answer to authentication within 10s"),
    (paramiko.ChannelException(2, "Connect failed"), False, Unreachable,
     "the jump host could not connect: Connect failed"),
])
def test_connect_errors_become_target_errors(exc, timed_out, kind, text):
    error = connect_error(exc, WHERE, "web1", timed_out=timed_out, timeout=10)
    assert type(error) is kind
    assert str(error).startswith(WHERE + ": ") and text in str(error)
    assert error.host == "web1"


def test_target_errors_pass_through():
    original = HostKeyError("already converted", host="web1")
    assert connect_error(original, WHERE, "web1", timed_out=False, timeout=1) is original


# -- probe_tcp without a server ---------------------------------------------------------------

class _StubTransport:
    def __init__(self, exc: BaseException | None) -> None:
        self.exc = exc
        self.closed = 0

    def is_active(self) -> bool:
        return True

    def open_channel(self, *args, **kwargs):
        if self.exc is not None:
            raise self.exc
        stub = self

        class _Channel:
            def close(self) -> None:
                stub.closed += 1
        return _Channel()


@pytest.mark.parametrize("exc, expected", [
    (None, True),
    (paramiko.ChannelException(2, "Connect failed"), False),
    (paramiko.SSHException("Timeout opening channel."), False),
    (paramiko.ChannelException(1, "Administratively prohibited"), "fallback"),
])
def test_probe_tcp_direct_channel_and_fallback(monkeypatch, exc, expected):
    conn = SshConnection("web1", ConnectionSettings(kind="ssh"))
    transport = _StubTransport(exc)
    monkeypatch.setattr(conn, "_ensure_open", lambda: transport)
    monkeypatch.setattr(Connection, "probe_tcp", lambda self, h, p, t=1.0: "fallback")
    assert conn.probe_tcp("db", 5432) == expected
    assert transport.closed == (1 if expected is True else 0)
