"""Inventory: YAML and INI forms, vars folders, precedence, settings, secrets, patterns, CLI."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli import cli, main
from engine.errors import InventoryError, UserError, ValidationFailed
from engine.inventory import ConnectionSettings, Host, Inventory
from engine.model import SourceLoc

DATA = Path(__file__).resolve().parent.parent / "data" / "inventories"
ANSIBLE_INI = str(DATA / "ansible" / "hosts.ini")
ANSIBLE_YML = str(DATA / "ansible" / "hosts.yml")


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def problems_of(path: str, environ: dict[str, str] | None = None) -> list[tuple[int, int, str]]:
    with pytest.raises(ValidationFailed) as info:
        Inventory.load(path, environ=environ or {})
    return [(p.loc.line, p.loc.col, p.message) for p in info.value.problems
            if p.severity == "error"]


def names(hosts: list[Host]) -> list[str]:
    return [host.name for host in hosts]


# -- the Ansible-style inventory, INI and YAML --------------------------------------

@pytest.fixture(params=[ANSIBLE_INI, ANSIBLE_YML], ids=["ini", "yaml"])
def ansible(request: pytest.FixtureRequest) -> Inventory:
    return Inventory.load(request.param, environ={})


def test_ansible_inventory_hosts_and_groups(ansible: Inventory) -> None:
    assert list(ansible.hosts) == [
        "localhost", "web01.example.com", "web02.example.com", "web03.example.com",
        "db01.example.com", "db02.example.com", "lb.example.com", "cache"]
    assert {"all", "ungrouped", "app", "webservers", "dbservers", "loadbalancers",
            "containers"} == set(ansible.groups)
    assert ansible.groups["app"].children == ("webservers", "dbservers")
    assert ansible.groups["ungrouped"].hosts == ("localhost",)
    assert ansible.host("web02.example.com").groups == ("all", "app", "webservers")
    assert ansible.host("localhost").groups == ("all", "ungrouped")
    assert ansible.warnings == []


def test_ansible_inventory_vars_and_files(ansible: Inventory) -> None:
    web01 = ansible.host("web01.example.com")
    assert web01.vars == {
        "timezone": "UTC", "ansible_python_interpreter": "/usr/bin/python3",
        "ntp_server": "ntp.example.com", "max_clients": 200, "debug": False,
        "ansible_host_key_checking": False, "http_port": 8080, "document_root": "/srv/www",
        "ansible_user": "deploy", "role": "primary"}
    db01 = ansible.host("db01.example.com").vars
    assert (db01["db_engine"], db01["db_port"], db01["role"]) == ("postgres", 6432, "primary")
    assert ansible.host("db02.example.com").vars["db_port"] == 5433   # folder, name order
    assert ansible.host("cache").vars["maxmemory"] == "256mb"        # host_vars/cache.json


def test_ansible_inventory_connections(ansible: Inventory) -> None:
    assert ansible.host("localhost").connection.kind == "local"
    web = ansible.host("web03.example.com").connection
    assert (web.kind, web.address, web.user, web.port, web.host_key_checking) == \
        ("ssh", "web03.example.com", "deploy", None, "off")
    assert web.extra == {"ansible_python_interpreter": "/usr/bin/python3"}
    db1 = ansible.host("db01.example.com").connection
    db2 = ansible.host("db02.example.com").connection
    assert (db1.address, db1.port, db2.address, db2.port) == \
        ("10.0.0.21", 2222, "10.0.0.22", 2223)
    lb = ansible.host("lb.example.com").connection
    assert (lb.kind, lb.key_file) == ("ssh", os.path.expanduser("~/.ssh/lb_key"))
    cache = ansible.host("cache").connection
    assert (cache.kind, cache.container) == ("docker", "redis-1")


def test_ini_and_yaml_forms_agree() -> None:
    ini, yml = Inventory.load(ANSIBLE_INI, environ={}), Inventory.load(ANSIBLE_YML, environ={})
    assert list(ini.hosts) == list(yml.hosts)
    for name in ini.hosts:
        a, b = ini.host(name), yml.host(name)
        assert (a.vars, a.groups, a.connection) == (b.vars, b.groups, b.connection), name


def test_locations_point_at_the_definition(ansible: Inventory) -> None:
    host = ansible.host("db01.example.com")
    assert host.loc is not None and host.loc.path == ansible.path
    expected = {ANSIBLE_INI: (8, 1), ANSIBLE_YML: (21, 13)}[ansible.path or ""]
    assert (host.loc.line, host.loc.col) == expected


# -- YAML shapes, ranges, INI values ------------------------------------------------

def test_top_level_groups_are_children_of_all(tmp_path: Path) -> None:
    inv = Inventory.load(write(tmp_path, "inv.yaml", """\
web:
  hosts:
    w1:
db:
  hosts:
    d1:
  children:
    replicas:
      hosts:
        r1:
"""), environ={})
    assert inv.groups["all"].children == ("ungrouped", "web", "db")
    assert inv.host("r1").groups == ("all", "db", "replicas")
    assert names(inv.select("db")) == ["d1", "r1"]
    assert inv.groups["ungrouped"].hosts == ()


def test_host_ranges(tmp_path: Path) -> None:
    inv = Inventory.load(write(tmp_path, "inv.yml", """\
all:
  hosts:
    web[01:03]:
    db-[a:c]-[1:2]:
    node[0:10:5].lan:2222:
    app[8:10]:
"""), environ={})
    assert list(inv.hosts) == [
        "web01", "web02", "web03", "db-a-1", "db-a-2", "db-b-1", "db-b-2", "db-c-1", "db-c-2",
        "node0.lan", "node5.lan", "node10.lan", "app8", "app9", "app10"]
    assert inv.host("node5.lan").connection.port == 2222


def test_ini_values_follow_ansible(tmp_path: Path) -> None:
    inv = Inventory.load(write(tmp_path, "hosts", """\
[web]
w1 count=5 flag=True word=yes quoted="two words" text='5' list="[1, 2]" lead=0755 empty=
w2   # only a comment here ; really

[web:vars]
motd = "hello # world"
raw = hello # not a comment in :vars
number=42
flag=false
"""), environ={})
    w1 = inv.host("w1").vars
    assert (w1["count"], w1["flag"], w1["word"], w1["quoted"], w1["text"]) == \
        (5, True, "yes", "two words", 5)
    assert (w1["list"], w1["lead"], w1["empty"]) == ([1, 2], "0755", "")
    w2 = inv.host("w2").vars
    assert (w2["motd"], w2["raw"], w2["number"], w2["flag"]) == \
        ("hello # world", "hello # not a comment in :vars", 42, "false")


def test_ini_hosts_before_any_section_are_ungrouped(tmp_path: Path) -> None:
    inv = Inventory.load(write(tmp_path, "inv.ini", "solo\n[web]\nw1\n[all:vars]\nx=1\n"),
                         environ={})
    assert inv.groups["ungrouped"].hosts == ("solo",)
    assert inv.host("w1").vars == {"x": 1}


def test_format_detection_without_extension(tmp_path: Path) -> None:
    ini = Inventory.load(write(tmp_path, "a/hosts", "w1 ansible_port=2200\nw2\n"), environ={})
    assert names(ini.select("all")) == ["w1", "w2"]
    yml = Inventory.load(write(tmp_path, "b/hosts", "all:\n  hosts:\n    w1:\n"), environ={})
    assert list(yml.hosts) == ["w1"]
    empty = Inventory.load(write(tmp_path, "c/inv.yml", "# nothing yet\n"), environ={})
    assert (empty.hosts, set(empty.groups)) == ({}, {"all", "ungrouped"})


def test_ungrouped_only_holds_hosts_in_no_other_group(tmp_path: Path) -> None:
    inv = Inventory.load(write(tmp_path, "inv.yml", """\
all:
  hosts: {a: , b: }
  children:
    ungrouped:
      hosts: {c: }
    web:
      hosts: {b: , c: }
"""), environ={})
    assert inv.groups["ungrouped"].hosts == ("a",)
    assert inv.host("c").groups == ("all", "web")


# -- group_vars / host_vars and precedence --------------------------------------------

def test_precedence_all_parent_child_host_and_files() -> None:
    inv = Inventory.load(str(DATA / "precedence" / "inventory.yml"), environ={})
    p1, p2 = inv.host("p1"), inv.host("p2")
    assert p1.groups == ("all", "europe", "tier1", "paris")
    assert p1.vars == {"level": "host", "a": "all-file", "b": "europe", "c": "europe-file",
                       "g": "tier1", "d": "paris-10", "e": "paris-20", "f": "host-file"}
    assert p2.vars["level"] == "paris"
    assert p2.vars["g"] == "europe"
    assert inv.groups["paris"].vars == {"level": "paris", "d": "paris-10", "e": "paris-20"}


def test_vars_file_for_an_unknown_name_is_a_warning(tmp_path: Path) -> None:
    write(tmp_path, "group_vars/webb.yml", "x: 1\n")
    write(tmp_path, "host_vars/localhost.yml", "local_only: true\n")
    inv = Inventory.load(write(tmp_path, "inv.yml", "web:\n  hosts:\n    w1:\n"), environ={})
    assert [(w.message, w.hint) for w in inv.warnings] == [
        ("group_vars/webb.yml matches no group of the inventory: ignored",
         "did you mean 'web'?")]
    assert inv.host("localhost").vars == {"local_only": True}   # the implicit localhost


def test_vault_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path, "group_vars/all/vault.yml", "$ANSIBLE_VAULT;1.1;AES256\n6231\n")
    write(tmp_path, "group_vars/all/main.yml", "plain: 1\n")
    inv = Inventory.load(write(tmp_path, "inv.yml", "all:\n  hosts:\n    w1:\n"), environ={})
    assert [w.message for w in inv.warnings] == [
        "Ansible Vault encrypted file skipped: its variables are missing"]
    assert inv.host("w1").vars == {"plain": 1}


# -- connection settings ------------------------------------------------------------

def test_default_connection_kinds(tmp_path: Path) -> None:
    inv = Inventory.load(write(tmp_path, "inv.yml", """\
all:
  vars:
    ansible_user: deploy
  hosts:
    localhost:
    127.0.0.1:
      port: 2222
    web1:
    box:
      container: box-1
    explicit:
      connection: local
    tunnel:
      ansible_connection: smart
      ansible_host: 10.1.1.1
      proxy_jump: bastion
      connect_timeout: "2.5"
      known_hosts: keys/known_hosts
    dockerized:
      ansible_connection: docker
"""), environ={})
    kinds = {name: host.connection.kind for name, host in inv.hosts.items()}
    assert kinds == {"localhost": "local", "127.0.0.1": "ssh", "web1": "ssh", "box": "docker",
                     "explicit": "local", "tunnel": "ssh", "dockerized": "docker"}
    assert inv.host("web1").connection.address == "web1"
    assert inv.host("dockerized").connection.container == "dockerized"
    tunnel = inv.host("tunnel").connection
    assert (tunnel.address, tunnel.proxy_jump, tunnel.connect_timeout) == \
        ("10.1.1.1", "bastion", 2.5)
    assert tunnel.known_hosts == str(tmp_path / "keys" / "known_hosts")


def test_alias_from_a_higher_layer_wins(tmp_path: Path) -> None:
    inv = Inventory.load(write(tmp_path, "inv.yml", """\
all:
  vars:
    port: 2200
    address: group-address
  hosts:
    h1:
      ansible_port: 2201
    h2:
      port: 2202
      ansible_port: 2203
"""), environ={})
    h1, h2 = inv.host("h1").connection, inv.host("h2").connection
    assert (h1.port, h1.address, h2.port) == (2201, "group-address", 2202)


def test_docker_and_host_key_settings(tmp_path: Path) -> None:
    inv = Inventory.load(write(tmp_path, "inv.ini", """\
[box]
c1 container=app-1 docker_host=ssh://root@127.0.0.1 docker_tls_verify=yes docker_cert_path=certs
c2 ansible_connection=community.docker.docker host_key_checking=accept-new
"""), environ={})
    c1, c2 = inv.host("c1").connection, inv.host("c2").connection
    assert (c1.kind, c1.container, c1.docker_host, c1.docker_tls_verify) == \
        ("docker", "app-1", "ssh://root@127.0.0.1", True)
    assert c1.docker_cert_path == str(tmp_path / "certs")
    assert (c2.kind, c2.container, c2.host_key_checking) == ("docker", "c2", "accept-new")


# -- secrets ------------------------------------------------------------------------

def test_secrets_from_env_and_file() -> None:
    inv = Inventory.load(str(DATA / "secrets" / "inventory.yml"),
                         environ={"RUNBOOK_TEST_SSH_PASSWORD": "from-env"})
    app1 = inv.host("app1")
    assert (app1.connection.password, app1.connection.become_password) == \
        ("from-env", "Sup3rSecret!")
    assert app1.secrets == frozenset({"from-env", "Sup3rSecret!"})
    assert app1.vars["password"] == "from-env"
    assert app1.vars["become_password"] == "Sup3rSecret!"
    app2 = inv.host("app2")
    assert app2.connection.password == "plain-text-password"
    assert inv.secrets == {"from-env", "Sup3rSecret!", "plain-text-password"}


def test_missing_env_for_a_group_secret_is_reported_once(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yml", """\
all:
  vars:
    ansible_become_password: env:NOPE_NOT_SET
  hosts:
    a:
    b:
""")
    assert problems_of(path) == [
        (3, 30, "environment variable 'NOPE_NOT_SET' is not set (needed by "
                "'ansible_become_password')")]


# -- errors -------------------------------------------------------------------------

ERRORS = [
    ("top_list.yml", 1, 1,
     "an inventory must be a mapping of groups (such as 'all:'), found a list"),
    ("host_not_mapping.yml", 3, 11,
     "host 'web1' must be followed by a mapping of variables or nothing, found a string"),
    ("hosts_list.yml", 3, 5,
     "'hosts' of group 'all' must be a mapping of host names, found a list"),
    ("unknown_key.yml", 2, 3, "unknown key 'host' in group 'web'"),
    ("host_and_group.yml", 3, 5, "'db' is both a host and a group"),
    ("cycle.yml", 7, 13, "groups form a cycle: a -> b -> c -> a"),
    ("all_child.yml", 3, 5, "group 'all' cannot be a child of group 'web'"),
    ("bad_port.yml", 4, 21, "'ansible_port' must be a port number from 1 to 65535, got 70000"),
    ("bad_connection.yml", 3, 17, "unknown connection kind 'dockr' in 'connection'"),
    ("bad_host_key_checking.yml", 4, 26,
     "'host_key_checking' must be one of strict, accept-new, off, got 'sometimes'"),
    ("missing_env.yml", 4, 17, "environment variable 'RUNBOOK_TEST_UNSET_VARIABLE' is not set "
                               "(needed by 'password')"),
    ("duplicate_key.yml", 4, 5, "duplicate key 'web1' (first defined at line 3)"),
    ("syntax.yml", 4, 21,
     "YAML syntax error: found unexpected end of stream (while scanning a quoted scalar)"),
    ("bad_range.yml", 3, 5,
     "bad host range in 'web[3:1]': the range [3:1] is empty: begin must be <= end"),
    ("template.yml", 4, 21,
     "'ansible_host' is a template, but inventory values are data and are not rendered"),
    ("group_not_mapping.yml", 4, 7,
     "group 'web' must be a mapping with 'hosts', 'children' or 'vars', found a list"),
    ("vars_not_mapping.yml", 3, 5,
     "'vars' of group 'all' must be a mapping of variables, found a list"),
    ("undefined_vars.ini", 4, 1, "[wbe:vars] names group 'wbe', which is never defined"),
    ("undefined_child.ini", 5, 1, "[app:children] names group 'wbe', which is never defined"),
    ("bad_host_var.ini", 2, 6, "expected key=value after host 'web1', got 'ansible_user'"),
    ("unclosed_quote.ini", 2, 11, "unclosed quote in host line"),
    ("bad_port.ini", 2, 19, "'ansible_port' must be a port number from 1 to 65535, got 'ssh'"),
]


@pytest.mark.parametrize("name,line,col,message", ERRORS, ids=[e[0] for e in ERRORS])
def test_error_cases(name: str, line: int, col: int, message: str) -> None:
    path = str(DATA / "errors" / name)
    found = problems_of(path)
    assert found[0] == (line, col, message)
    with pytest.raises(ValidationFailed) as info:
        Inventory.load(path, environ={})
    assert info.value.problems[0].loc == SourceLoc(path, line, col)


def test_error_hints() -> None:
    def first_hint(name: str) -> str | None:
        with pytest.raises(ValidationFailed) as info:
            Inventory.load(str(DATA / "errors" / name), environ={})
        return info.value.problems[0].hint
    assert first_hint("unknown_key.yml") == "did you mean 'hosts'?"
    assert first_hint("bad_connection.yml") == "did you mean 'docker'?"
    assert first_hint("undefined_child.ini") == "did you mean 'web'?"
    assert first_hint("missing_env.yml") == \
        "export RUNBOOK_TEST_UNSET_VARIABLE=... before running, or change 'password'"


def test_several_errors_are_collected_in_file_order() -> None:
    assert problems_of(str(DATA / "errors" / "several.yml")) == [
        (4, 13, "'port' must be a port number from 1 to 65535, got 0"),
        (6, 19, "unknown connection kind 'telnet' in 'connection'"),
        (7, 11, "host 'web3' must be followed by a mapping of variables or nothing, "
                "found a string"),
    ]


def test_ini_section_errors() -> None:
    assert problems_of(str(DATA / "errors" / "bad_section.ini")) == [
        (1, 1, "unknown section type 'host' in '[web:host]'"),
        (4, 1, "invalid section header '[web servers]'"),
    ]


def test_missing_secret_file_names_it() -> None:
    path = str(DATA / "errors" / "missing_file.yml")
    [(line, col, message)] = problems_of(path)
    expected = os.path.join(str(DATA / "errors"), "no-such-secret.txt")
    assert (line, col) == (4, 28)
    assert message == f"secret file not found: {expected} (needed by 'ansible_become_pass')"


def test_bad_vars_file_points_into_it() -> None:
    path = str(DATA / "errors" / "bad_vars_file" / "inventory.yml")
    with pytest.raises(ValidationFailed) as info:
        Inventory.load(path, environ={})
    [problem] = info.value.problems
    assert problem.loc == SourceLoc(str(DATA / "errors" / "bad_vars_file" / "group_vars" /
                                        "web.yml"), 1, 1)
    assert problem.message == "a variables file must be a mapping of variables, found a list"


def test_missing_inventory_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yml")
    with pytest.raises(InventoryError, match=f"inventory file not found: {missing}"):
        Inventory.load(missing)
    with pytest.raises(InventoryError, match="is a directory"):
        Inventory.load(str(tmp_path))


# -- patterns -----------------------------------------------------------------------

@pytest.fixture
def patterns(tmp_path: Path) -> Inventory:
    return Inventory.load(write(tmp_path, "inv.yml", """\
all:
  hosts:
    bastion:
  children:
    web:
      hosts:
        web1:
        web2:
        web10:
    db:
      hosts:
        db-1:
        db-2:
        web2:
    prod:
      children:
        web:
        db:
    empty:
"""), environ={})


@pytest.mark.parametrize("pattern,expected", [
    ("all", ["bastion", "web1", "web2", "web10", "db-1", "db-2"]),
    ("*", ["bastion", "web1", "web2", "web10", "db-1", "db-2"]),
    ("web", ["web1", "web2", "web10"]),
    ("db-1", ["db-1"]),
    ("db:web", ["web1", "web2", "web10", "db-1", "db-2"]),
    ("db, bastion", ["bastion", "web2", "db-1", "db-2"]),
    ("web:&db", ["web2"]),
    ("prod:!web", ["db-1", "db-2"]),
    ("!web:bastion", ["bastion"]),                    # unions first, whatever the order
    ("!db", ["bastion", "web1", "web10"]),          # only exclusions: from all
    ("web*", ["web1", "web2", "web10"]),
    ("db-?", ["db-1", "db-2"]),
    ("~web\\d$", ["web1", "web2"]),
    ("~(web|db)-?1", ["web1", "web10", "db-1"]),
    ("prod:&~db.*:!web2", ["db-1", "db-2"]),
    ("empty", []),
    ("web:&empty", []),
])
def test_select(patterns: Inventory, pattern: str, expected: list[str]) -> None:
    assert names(patterns.select(pattern)) == expected
    assert names(patterns.select(pattern)) == expected   # cached answer is the same


@pytest.mark.parametrize("pattern,message,hint", [
    ("wbe", "unknown host or group 'wbe' in pattern 'wbe'", "did you mean 'web'?"),
    ("web:dbb", "unknown host or group 'dbb' in pattern 'web:dbb'", "did you mean 'db'?"),
    ("web:!prodd", "unknown host or group 'prodd' in pattern 'web:!prodd'",
     "did you mean 'prod'?"),
    ("zzz*", "no host or group matches 'zzz*' in pattern 'zzz*'", None),
    ("", "empty host pattern ''", "name a host, a group, or 'all'"),
])
def test_select_errors(patterns: Inventory, pattern: str, message: str,
                       hint: str | None) -> None:
    loc = SourceLoc("runbook.yml", 2, 8)
    with pytest.raises(InventoryError) as info:
        patterns.select(pattern, loc=loc)
    assert info.value.message == message
    assert info.value.loc == loc
    if hint:
        assert info.value.hint == hint


def test_invalid_regex(patterns: Inventory) -> None:
    with pytest.raises(InventoryError, match="invalid regular expression"):
        patterns.select("~web(")


def test_known_names_and_host(patterns: Inventory) -> None:
    assert {"web", "db", "prod", "empty", "all", "ungrouped", "bastion", "db-2",
            "localhost"} <= patterns.known_names()
    assert patterns.host("web10").groups == ("all", "prod", "web")
    with pytest.raises(InventoryError, match="unknown host 'web3'"):
        patterns.host("web3")


def test_implicit_localhost_in_a_loaded_inventory(patterns: Inventory) -> None:
    [local] = patterns.select("localhost")
    assert (local.name, local.connection.kind, local.groups) == ("localhost", "local", ())
    assert "localhost" not in names(patterns.select("all"))
    assert names(patterns.select("web1:localhost")) == ["web1", "localhost"]


# -- the implicit inventory -----------------------------------------------------------

def test_implicit_inventory() -> None:
    inv = Inventory.implicit()
    [host] = inv.select("all")
    assert host.name == "localhost"
    assert host.connection == ConnectionSettings(kind="local")
    assert host.groups == ("all", "ungrouped")
    assert set(inv.groups) == {"all", "ungrouped"}
    assert inv.path is None and inv.warnings == []
    assert names(inv.select("localhost")) == ["localhost"]
    with pytest.raises(InventoryError, match="unknown host or group 'web'"):
        inv.select("web")


def test_hosts_are_hashable(ansible: Inventory) -> None:
    assert len(set(ansible.hosts.values())) == len(ansible.hosts)


# -- robustness and speed -------------------------------------------------------------

SNIPPETS = ["all:", "\n", "  ", "hosts:", "children:", "vars:", "web", "[", "]", ":", "=",
            "web[1:3]", "[web]", "[web:vars]", "[web:children]", "- ", "port: 99999",
            "ansible_port=x", "connection: telnet", "password: env:X", "'", '"', "#", "{",
            "}", "~", "&a", "!", "web1 a=1", "\t", "null", "[a:z]", "key_file: ~/k",
            "*x", "host_key_checking: no", "container: c", "file:nope"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(parts=st.lists(st.sampled_from(SNIPPETS), max_size=40),
       ext=st.sampled_from([".yml", ".ini", ""]), pattern=st.text(":,!&*?~[]aw-b", max_size=8))
def test_load_succeeds_or_raises_a_user_error(parts: list[str], ext: str,
                                             pattern: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "inventory" + ext)
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(parts))
        try:
            inv = Inventory.load(path, environ={})
        except UserError:
            return
        try:
            inv.select(pattern)
        except InventoryError:
            pass


def _big_inventory(tmp_path: Path, count: int) -> str:
    lines = ["all:", "  vars:", "    ansible_user: deploy", "  children:"]
    for g in range(10):
        lines += [f"    group{g}:", "      vars:", f"        tier: {g}", "      hosts:"]
        lines += [f"        host{g}-{i:03}:\n          ansible_host: 10.0.{g}.{i}"
                  for i in range(count // 10)]
    write(tmp_path, "group_vars/group3.yml", "extra: true\n")
    return write(tmp_path, "big.yml", "\n".join(lines) + "\n")


def test_500_hosts_load_and_select_quickly(tmp_path: Path) -> None:
    path = _big_inventory(tmp_path, 500)
    started = time.perf_counter()
    inv = Inventory.load(path, environ={})
    loaded = time.perf_counter() - started
    assert len(inv.hosts) == 500
    started = time.perf_counter()
    for _ in range(100):
        inv.select("group1:group2:&~host.-0[0-4].*:!host2-001")
        inv.select("all:!group3")
    selected = time.perf_counter() - started
    assert len(inv.select("group1:group2:&~host.-0[0-4].*:!host2-001")) == 99
    assert loaded < 0.5 and selected < 0.5, (loaded, selected)


# -- the CLI ------------------------------------------------------------------------

def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["inventory", *args], env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_graph() -> None:
    code, out = run_cli("-i", ANSIBLE_INI, "--graph")
    assert code == 0
    assert out.splitlines()[:10] == [
        "@all:",
        "  |--@app:",
        "  |  |--@dbservers:",
        "  |  |  |--db01.example.com",
        "  |  |  |--db02.example.com",
        "  |  |--@webservers:",
        "  |  |  |--web01.example.com",
        "  |  |  |--web02.example.com",
        "  |  |  |--web03.example.com",
        "  |--@containers:",
    ]
    assert out.splitlines()[-2:] == ["  |--@ungrouped:", "  |  |--localhost"]


def test_cli_host_json_masks_secrets() -> None:
    env = {"RUNBOOK_TEST_SSH_PASSWORD": "from-env"}
    path = str(DATA / "secrets" / "inventory.yml")
    code, out = run_cli("-i", path, "--host", "app1", "-o", "json", env=env)
    assert code == 0
    data = json.loads(out)
    assert data["connection"]["password"] == "********"
    assert data["connection"]["become_password"] == "********"
    assert (data["connection"]["kind"], data["connection"]["port"]) == ("ssh", 2201)
    assert data["vars"]["password"] == "********"
    assert data["vars"]["db_url"] == "postgres://deploy:********@db/app"
    assert "from-env" not in out and "Sup3rSecret" not in out


def test_cli_host_text_is_yaml() -> None:
    import yaml
    code, out = run_cli("-i", ANSIBLE_YML, "--host", "db02.example.com")
    assert code == 0
    data = yaml.safe_load(out)
    assert data["vars"]["db_port"] == 5433
    assert data["connection"]["port"] == 2223


def test_cli_list_and_default_view_and_env_var() -> None:
    code, out = run_cli("--list", env={"RUNBOOK_INVENTORY": ANSIBLE_INI})
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["HOST", "GROUPS", "CONNECTION", "ADDRESS", "PORT"]
    assert ["db02.example.com", "app,dbservers", "ssh", "10.0.0.22", "2223"] in rows
    assert ["cache", "containers", "docker", "redis-1", "-"] in rows
    code, out = run_cli("-i", ANSIBLE_INI)
    assert "@webservers: 3 hosts" in out and "  hosts: web01.example.com, " \
        "web02.example.com, web03.example.com" in out
    code, out = run_cli("--list", "-o", "json")
    assert json.loads(out)[0]["host"] == "localhost"


def test_cli_errors_print_location(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "-i", str(DATA / "errors" / "bad_port.yml")]) == 2
    err = capsys.readouterr().err
    assert "bad_port.yml:4:21: error: 'ansible_port' must be a port number" in err
    assert main(["inventory", "--graph", "--list"]) == 2
    assert "give only one" in capsys.readouterr().err
    assert main(["inventory", "--host", "nope"]) == 2
    assert "unknown host 'nope'" in capsys.readouterr().err
