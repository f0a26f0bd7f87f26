"""Pure logic of the docker actions, with a fake DockerApi: spec parsing, the comparison
that decides a recreate, what plans say, the order of a recreate and of scaling, and
the small parsers (ports, volumes, memory, since, stats, compose output)."""

from __future__ import annotations

import copy
import itertools
from typing import Any, Mapping

import pytest

from engine.actions.base import ActionContext
from engine.actions.docker import parse_since, stats_facts
from engine.actions.docker_compose import _CHANGE_LINE, project_name_for
from engine.actions.docker_container import Container, converge
from engine.actions.docker_image import Prune
from engine.actions.docker_scale import Scale
from engine.actions.docker_spec import (differences, inherit_spec, parse_healthcheck,
                                        parse_memory, parse_port, parse_restart, parse_spec,
                                        parse_volume, with_replica)
from engine.errors import StepFailed
from engine.inventory import ConnectionSettings, Host

IMAGE_ID = "sha256:" + "a" * 64
NEW_IMAGE_ID = "sha256:" + "b" * 64
IMAGE = {"Id": IMAGE_ID, "RepoTags": ["app:1"],
         "Config": {"Env": ["PATH=/usr/bin:/bin", "APP_HOME=/app"],
                    "Labels": {"maintainer": "ops"}, "Volumes": {"/data": {}}}}


def inspect_of(name: str, *, image_id: str = IMAGE_ID, env: list[str] | None = None,
               labels: Mapping[str, str] | None = None, running: bool = True,
               **host: Any) -> dict[str, Any]:
    """Inspect data shaped the way dockerd 20.10 writes it for a container created by
    DockerApi.create_container from the spec in ``test_same_spec_has_no_differences``."""
    return {
        "Id": f"id-{name}", "Name": f"/{name}", "Image": image_id, "RestartCount": 0,
        "State": {"Status": "running" if running else "exited", "Running": running,
                  "ExitCode": 0},
        "Config": {"Image": "app:1", "Cmd": ["serve", "--port", "80"], "Entrypoint": None,
                   "Env": env if env is not None else
                   ["PATH=/usr/bin:/bin", "APP_HOME=/app", "MODE=prod"],
                   "Labels": dict(labels if labels is not None else
                                  {"maintainer": "ops", "tier": "web"}),
                   "User": "", "WorkingDir": "", "Volumes": {"/data": {}, "/srv": {}},
                   "Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost"],
                                   "Interval": 2_000_000_000, "Retries": 3}},
        "HostConfig": {"NetworkMode": "default", "Binds": ["/etc/app:/srv:ro"],
                       "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1",
                                                    "HostPort": "8080"}]},
                       "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
                       "Memory": 268435456, "NanoCpus": 0, "Init": None, **host},
    }


ARGS = {"name": "api", "image": "app:1", "command": "serve --port 80", "env": {"MODE": "prod"},
        "labels": {"tier": "web"}, "ports": ["127.0.0.1:8080:80"],
        "volumes": ["/etc/app:/srv:ro"], "restart_policy": "no", "memory": "256m",
        "healthcheck": {"test": "curl -f localhost", "interval": 2.0, "retries": 3}}


# ---------------------------------------------------------------- parsing

@pytest.mark.parametrize("text, expected", [
    ("80", ("80", "tcp", "", "")),
    ("8080:80", ("80", "tcp", "", "8080")),
    ("127.0.0.1:8080:80/udp", ("80", "udp", "127.0.0.1", "8080")),
    ("127.0.0.1::80", ("80", "tcp", "127.0.0.1", "")),
    (9000, ("9000", "tcp", "", "")),
])
def test_parse_port(text, expected):
    assert parse_port(text) == expected


@pytest.mark.parametrize("bad", ["http", "1.2.3.4:80", "80/xyz", "a:b:c:d"])
def test_parse_port_rejects(bad):
    with pytest.raises(StepFailed, match="ports"):
        parse_port(bad)


def test_parse_volume():
    assert parse_volume("/data") == ("anonymous", "/data")
    assert parse_volume("/host:/ctr") == ("bind", "/host:/ctr:rw")
    assert parse_volume("named:/ctr:ro") == ("bind", "named:/ctr:ro")
    for bad in ("./rel:/x", "dir/sub:/x", "/a:rel", "data"):
        with pytest.raises(StepFailed):
            parse_volume(bad)


def test_parse_memory_restart_healthcheck():
    assert parse_memory("256m") == 256 << 20
    assert parse_memory("1g") == 1 << 30
    assert parse_memory("1.5G") == int(1.5 * (1 << 30))
    assert parse_memory(4096) == 4096
    with pytest.raises(StepFailed, match="memory"):
        parse_memory("lots")
    assert parse_restart("on-failure:3") == ("on-failure", 3)
    assert parse_restart("unless-stopped") == ("unless-stopped", 0)
    for bad in ("sometimes", "always:3"):
        with pytest.raises(StepFailed, match="restart_policy"):
            parse_restart(bad)
    assert parse_healthcheck({"test": "true", "interval": "500ms", "retries": 2}) == {
        "test": ["CMD-SHELL", "true"], "interval": 500_000_000, "retries": 2}
    assert parse_healthcheck({"test": ["curl", "-f", "x"]})["test"] == ["CMD", "curl", "-f", "x"]
    assert parse_healthcheck({"test": "NONE"})["test"] == ["NONE"]
    with pytest.raises(StepFailed, match="unknown field"):
        parse_healthcheck({"tset": "true"})


def test_with_replica_replaces_the_placeholder_everywhere():
    args = {"command": "httpd -p 300{replica}", "env": {"ID": "{replica}", "N": 3},
            "ports": ["300{replica}:80"], "healthcheck": {"test": "wget :300{replica}"}}
    assert with_replica(args, 2) == {"command": "httpd -p 3002", "env": {"ID": "2", "N": 3},
                                     "ports": ["3002:80"],
                                     "healthcheck": {"test": "wget :3002"}}


# ---------------------------------------------------------------- comparison

def test_same_spec_has_no_differences():
    assert differences(parse_spec(ARGS), inspect_of("api"), IMAGE) == []


def test_unspecified_options_are_not_compared():
    assert differences(parse_spec({"name": "api"}), inspect_of("api"), IMAGE) == []


@pytest.mark.parametrize("change, expected", [
    ({"env": {"MODE": "dev"}}, "env differs (changed MODE)"),
    ({"env": {}}, "env differs (no longer wanted MODE)"),
    ({"labels": {"tier": "db"}}, "labels differs (changed tier)"),
    ({"command": "serve --port 81"}, "command differs"),
    ({"restart_policy": "always"}, "restart_policy no -> always"),
    ({"memory": "512m"}, "memory 268435456 -> 536870912"),
    ({"ports": ["127.0.0.1:9090:80"]}, "ports differ"),
    ({"volumes": ["/etc/app:/srv"]}, "volumes differ"),
    ({"network_mode": "host"}, "network_mode bridge -> host"),
    ({"healthcheck": {"test": "curl -f localhost", "interval": 5}},
     "healthcheck interval differs"),
    ({"user": "nobody"}, "user (image default) -> nobody"),
    ({"cpus": 0.5}, "cpus 0 -> 0.5"),
    ({"init": True}, "init False -> True"),
])
def test_each_change_is_a_difference(change, expected):
    diffs = differences(parse_spec({**ARGS, **change}), inspect_of("api"), IMAGE)
    assert len(diffs) == 1 and diffs[0].startswith(expected), diffs


def test_a_new_image_id_is_a_difference():
    diffs = differences(parse_spec(ARGS), inspect_of("api"), {**IMAGE, "Id": NEW_IMAGE_ID})
    assert diffs == ["image app:1 is bbbbbbbbbbbb, the container runs aaaaaaaaaaaa"]


def test_normalisation_quirks():
    spec = parse_spec({"name": "api", "network_mode": "bridge", "restart_policy": "no",
                       "ports": ["127.0.0.1:9999:80"]})
    # 'default' is bridge, an empty policy is 'no'; ports differ
    assert differences(spec, inspect_of("api"), IMAGE) == ["ports differ"]
    # with host networking published ports are moot
    host = inspect_of("api", NetworkMode="host")
    spec = parse_spec({"name": "api", "network_mode": "host", "ports": ["1:2"]})
    assert differences(spec, host, IMAGE) == []
    # on-failure counts matter, others not
    policy = inspect_of("api", RestartPolicy={"Name": "on-failure", "MaximumRetryCount": 2})
    assert differences(parse_spec({"name": "api", "restart_policy": "on-failure:2"}),
                       policy, IMAGE) == []
    assert differences(parse_spec({"name": "api", "restart_policy": "on-failure:3"}),
                       policy, IMAGE)


def test_image_env_and_labels_are_not_differences_but_overrides_are():
    # the container overrides an image variable: wanted, so no difference
    container = inspect_of("api", env=["PATH=/usr/bin:/bin", "APP_HOME=/opt", "MODE=prod"])
    spec = parse_spec({"name": "api", "env": {"MODE": "prod", "APP_HOME": "/opt"}})
    assert differences(spec, container, IMAGE) == []
    # the override is no longer wanted: the image's value would come back
    spec = parse_spec({"name": "api", "env": {"MODE": "prod"}})
    assert differences(spec, container, IMAGE) == ["env differs (changed APP_HOME)"]


# ---------------------------------------------------------------- a fake daemon

class FakeApi:
    """Containers and images in dicts; every change is recorded in ``calls``."""

    def __init__(self, containers: Mapping[str, dict] = (), images: Mapping[str, dict] = ()):
        self.containers_by_name = {k: copy.deepcopy(v) for k, v in dict(containers).items()}
        self.images_by_ref = dict(images)
        self.calls: list[tuple] = []
        self.created: dict[str, dict] = {}      # name -> the spec create_container got
        self.fail_create = False
        self.ids = itertools.count(1)

    def _find(self, name: str) -> dict | None:
        for key, info in self.containers_by_name.items():
            if name in (key, info["Id"]):
                return info
        return None

    def container(self, name):
        info = self._find(name)
        return copy.deepcopy(info) if info else None

    def containers(self, labels=None, **_):
        out = []
        for key, info in self.containers_by_name.items():
            have = info["Config"]["Labels"]
            if not labels or all(have.get(k) == v for k, v in labels.items()):
                out.append({"Id": info["Id"], "Names": [f"/{key}"], "Labels": have})
        return out

    def image(self, ref):
        for key, info in self.images_by_ref.items():
            if ref in (key, info["Id"]):
                return info
        return None

    def pull(self, ref):
        self.calls.append(("pull", ref))
        raise StepFailed(f"cannot pull {ref}: no registry")

    def create_container(self, name, spec):
        self.calls.append(("create", name))
        self.created[name] = copy.deepcopy(spec)
        if self.fail_create:
            raise StepFailed("create failed")
        ident = f"new-{next(self.ids)}"
        info = inspect_of(name, running=False,
                          image_id=self.image(spec["image"])["Id"])
        info["Id"] = ident
        image = self.image(spec["image"])
        info["Config"]["Labels"] = {**image["Config"]["Labels"], **spec["labels"]}
        self.containers_by_name[name] = info
        return ident

    def _set_running(self, name, running):
        info = self._find(name)
        info["State"]["Running"] = running

    def start(self, name):
        self.calls.append(("start", name))
        self._set_running(name, True)

    def stop(self, name, timeout=10):
        self.calls.append(("stop", name))
        self._set_running(name, False)

    def restart(self, name, timeout=10):
        self.calls.append(("restart", name))

    def rename(self, name, new):
        self.calls.append(("rename", name, new))
        for key, info in list(self.containers_by_name.items()):
            if name in (key, info["Id"]):
                self.containers_by_name[new] = self.containers_by_name.pop(key)

    def remove_container(self, name, force=True, volumes=False):
        self.calls.append(("remove", name))
        for key, info in list(self.containers_by_name.items()):
            if name in (key, info["Id"]):
                del self.containers_by_name[key]
                return True
        return False

    def wait_healthy(self, name, timeout, **_):
        self.calls.append(("wait", name))
        return self.container(name)


def ctx_for(api: FakeApi) -> ActionContext:
    host = Host("h", {}, ("all",), ConnectionSettings())
    return ActionContext(host=host, step=None, connection_factory=lambda: None,  # type: ignore
                         render=lambda v: v, truth=bool, render_text=lambda t: t,
                         runbook_dir="/tmp", docker_factory=lambda: api)


def test_plan_changes_nothing_and_says_recreate():
    api = FakeApi({"api": inspect_of("api")}, {"app:1": IMAGE})
    plan = Container().plan(ctx_for(api), {**ARGS, "env": {"MODE": "dev"}})
    assert plan.changed and plan.changes == (
        "recreate container api: env differs (changed MODE)",)
    assert api.calls == []
    same = Container().plan(ctx_for(api), ARGS)
    assert not same.changed and same.reason == "container api is as wanted"
    assert same.fields["id"] == "id-api"


def test_plan_of_a_missing_image_says_pull_without_pulling():
    api = FakeApi({}, {})
    plan = Container().plan(ctx_for(api), {**ARGS, "image": "app:2"})
    assert plan.changes == ("pull image app:2", "create container api from app:2",
                            "start container api")
    assert api.calls == []


def test_recreate_order_and_previous_image():
    api = FakeApi({"api": inspect_of("api")}, {"app:1": IMAGE, "app:2": {**IMAGE,
                                                                         "Id": NEW_IMAGE_ID}})
    result = Container().apply(ctx_for(api), {**ARGS, "image": "app:2", "wait_healthy": True})
    assert [c[0] for c in api.calls] == ["stop", "rename", "create", "start", "remove", "wait"]
    assert api.calls[1] == ("rename", "id-api", "api.runbook-old")
    assert result.fields["recreated"] and result.fields["previous_image"] == "app:1"
    assert result.fields["previous_id"] == "id-api"
    assert result.fields["previous_image_id"] == IMAGE_ID


def test_failed_recreate_puts_the_old_container_back():
    api = FakeApi({"api": inspect_of("api")}, {"app:1": IMAGE, "app:2": {**IMAGE,
                                                                         "Id": NEW_IMAGE_ID}})
    api.fail_create = True
    with pytest.raises(StepFailed, match="create failed"):
        Container().apply(ctx_for(api), {**ARGS, "image": "app:2"})
    assert api.calls[-2:] == [("rename", "id-api", "api"), ("start", "id-api")]
    assert api.container("api")["State"]["Running"]


def test_converge_without_image_cannot_create():
    api = FakeApi({}, {})
    with pytest.raises(StepFailed, match="no image is given"):
        converge(ctx_for(api), api, parse_spec({"name": "x"}), "started")
    done = converge(ctx_for(api), api, parse_spec({"name": "x"}), "stopped")
    assert not done.changed


def test_scale_down_plans_highest_first():
    replicas = {}
    for n in (1, 2, 3):
        info = inspect_of(f"web-{n}", labels={"maintainer": "ops", "runbook.scale": "web",
                                              "runbook.replica": str(n)})
        replicas[f"web-{n}"] = info
    api = FakeApi(replicas, {"app:1": IMAGE})
    plan = Scale().plan(ctx_for(api), {"name": "web", "replicas": 1})
    assert plan.changes == ("remove replica web-3", "remove replica web-2")
    assert plan.fields["previous"] == 3 and plan.fields["current"] == 1
    result = Scale().apply(ctx_for(api), {"name": "web", "replicas": 1})
    assert [c for c in api.calls if c[0] == "remove"] == [("remove", "id-web-3"),
                                                         ("remove", "id-web-2")]
    assert result.fields["removed"] == ["web-3", "web-2"]


def test_scale_up_creates_one_at_a_time_with_a_health_gate():
    api = FakeApi({}, {"app:1": IMAGE})
    result = Scale().apply(ctx_for(api), {"name": "web", "replicas": 2, "image": "app:1",
                                          "env": {"ID": "{replica}"}})
    kinds = [c[:2] for c in api.calls]
    assert kinds == [("create", "web-1"), ("start", "new-1"), ("wait", "web-1"),
                     ("create", "web-2"), ("start", "new-2"), ("wait", "web-2")]
    assert result.fields["created"] == ["web-1", "web-2"] and result.fields["previous"] == 0


def test_prune_filters():
    prune = Prune()
    args = {"until": 3600.0, "labels": {"team": "a", "tmp": None}}
    assert prune._filters("containers", args) == {"until": "3600s",
                                                  "label": ["team=a", "tmp"]}
    assert prune._filters("images", {})["dangling"] == "true"
    assert prune._filters("images", {"all_images": True})["dangling"] == "false"
    assert "until" not in prune._filters("volumes", args)
    assert prune._kinds({}) == ["containers", "images", "networks"]
    assert prune._kinds({"volumes": True, "images": False}) == ["containers", "networks",
                                                               "volumes"]


# ---------------------------------------------------------------- inherit

NEW_IMAGE = {**IMAGE, "Id": NEW_IMAGE_ID, "RepoTags": ["app:2"]}


def rich_inspect() -> dict[str, Any]:
    """A container with every kind of setting, some of them from its image (RICH_IMAGE)."""
    info = inspect_of("api", env=["PATH=/usr/bin:/bin", "APP_HOME=/opt", "MODE=prod",
                                  "IMAGE_ONLY=1"],
                      labels={"maintainer": "ops", "tier": "web", "version": "mine"},
                      NetworkMode="host", Init=True, NanoCpus=500_000_000,
                      RestartPolicy={"Name": "on-failure", "MaximumRetryCount": 4},
                      Binds=["appdata:/var/lib/app", "/etc/app:/srv:ro"], PortBindings={})
    info["Config"].update(Cmd=["serve"], Entrypoint=["/entry"], User="app",
                          WorkingDir="/work", StopTimeout=30,
                          Volumes={"/data": {}, "/srv": {}, "/var/lib/app": {}, "/cache": {}},
                          Healthcheck={"Test": ["CMD-SHELL", "curl -f localhost"],
                                       "Interval": 2_000_000_000, "Retries": 5})
    info["Mounts"] = [{"Type": "volume", "Name": "appdata", "Destination": "/var/lib/app"},
                      {"Type": "volume", "Name": "c" * 64, "Destination": "/cache"}]
    return info


RICH_IMAGE = {"Id": IMAGE_ID, "RepoTags": ["app:1"],
              "Config": {"Env": ["PATH=/usr/bin:/bin", "APP_HOME=/app", "IMAGE_ONLY=1"],
                         "Labels": {"maintainer": "ops", "version": "1"},
                         "Volumes": {"/data": {}}, "Cmd": ["serve"], "Entrypoint": ["/entry"],
                         "User": "app", "WorkingDir": "/app",
                         "Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost"],
                                         "Interval": 2_000_000_000, "Retries": 3}}}


def test_inherit_spec_gives_back_the_spec_the_container_was_made_from():
    inherited = inherit_spec(parse_spec({"name": "api", "image": "app:2"}), inspect_of("api"),
                             IMAGE)
    # env PATH/APP_HOME and label maintainer are the image's, /data is the image's volume
    assert inherited == parse_spec({**ARGS, "image": "app:2"})
    assert differences(inherited, inspect_of("api"), NEW_IMAGE) == [
        "image app:2 is bbbbbbbbbbbb, the container runs aaaaaaaaaaaa"]


def test_inherit_spec_keeps_the_containers_own_settings_not_the_images():
    info = rich_inspect()
    spec = inherit_spec(parse_spec({"name": "api", "image": "app:2"}), info, RICH_IMAGE)
    assert spec.env == {"APP_HOME": "/opt", "MODE": "prod"}     # an override is the container's
    assert spec.labels == {"tier": "web", "version": "mine"}
    assert spec.command is None and spec.entrypoint is None and spec.user is None
    assert spec.workdir == "/work"
    assert spec.binds == ("appdata:/var/lib/app:rw", "/etc/app:/srv:ro")
    assert spec.anonymous_volumes == ("/cache",)
    assert spec.network_mode == "host" and spec.ports == ()
    assert spec.restart_policy == ("on-failure", 4)
    assert spec.healthcheck == {"retries": 5}           # test and interval are the image's
    assert (spec.memory, spec.nano_cpus, spec.init) == (268435456, 500_000_000, True)
    assert spec.stop_timeout == 30 and spec.stop_grace == 30
    assert differences(spec, info, RICH_IMAGE) == []
    # what the old image gave is left to the new image
    args = spec.create_args()
    assert args["command"] is None and args["entrypoint"] is None and args["user"] is None
    assert "IMAGE_ONLY" not in args["env"] and "maintainer" not in args["labels"]


def test_inherit_spec_a_given_parameter_wins_whole():
    given = parse_spec({"name": "api", "image": "app:2", "env": {"MODE": "dev"},
                        "restart_policy": "always", "volumes": ["/scratch"],
                        "command": "serve --debug", "stop_timeout": 5,
                        "healthcheck": {"test": "NONE"}, "init": False})
    spec = inherit_spec(given, rich_inspect(), RICH_IMAGE)
    assert spec.env == {"MODE": "dev"} and spec.restart_policy == ("always", 0)
    assert spec.binds == () and spec.anonymous_volumes == ("/scratch",)
    assert spec.command == ("serve", "--debug") and spec.stop_timeout == 5
    assert spec.healthcheck == {"test": ["NONE"]} and spec.init is False
    assert spec.labels == {"tier": "web", "version": "mine"}      # not given: inherited
    assert spec.network_mode == "host" and spec.memory == 268435456


def test_inherit_spec_without_the_image_takes_everything():
    spec = inherit_spec(parse_spec({"name": "api"}), inspect_of("api"), None)
    assert spec.image == IMAGE_ID
    assert spec.env == {"PATH": "/usr/bin:/bin", "APP_HOME": "/app", "MODE": "prod"}
    assert spec.anonymous_volumes == ("/data",)
    assert differences(spec, inspect_of("api"), IMAGE) == []


def test_mount_volumes_count_like_binds():
    # `docker run --mount`: HostConfig.Mounts, not Binds; a tmpfs cannot be given
    info = inspect_of("api", Binds=None, Mounts=[
        {"Type": "volume", "Source": "appdata", "Target": "/var/lib/app"},
        {"Type": "bind", "Source": "/etc/app", "Target": "/srv", "ReadOnly": True},
        {"Type": "tmpfs", "Target": "/run"}])
    info["Config"]["Volumes"] = None
    info["Mounts"] = [{"Type": "volume", "Name": "appdata", "Destination": "/var/lib/app"},
                      {"Type": "bind", "Source": "/etc/app", "Destination": "/srv"}]
    spec = parse_spec({"name": "api", "volumes": ["appdata:/var/lib/app", "/etc/app:/srv:ro"]})
    assert differences(spec, info, IMAGE) == []
    inherited = inherit_spec(parse_spec({"name": "api"}), info, IMAGE)
    assert inherited.binds == spec.binds and inherited.anonymous_volumes == ()

def test_rollback_with_inherit_recreates_with_everything_but_the_image():
    api = FakeApi({"api": inspect_of("api")}, {"app:1": IMAGE, "app:2": NEW_IMAGE})
    args = {"name": "api", "image": "app:2", "inherit": True}
    plan = Container().plan(ctx_for(api), args)
    assert plan.changes == ("recreate container api: image app:2 is bbbbbbbbbbbb, the "
                            "container runs aaaaaaaaaaaa",)
    assert api.calls == []
    result = Container().apply(ctx_for(api), args)
    assert result.fields["recreated"] and result.fields["previous_image"] == "app:1"
    assert result.msg == plan.changes[0]
    assert api.created["api"] == parse_spec({**ARGS, "image": "app:2"}).create_args()
    created = api.created["api"]
    assert created["env"] == {"MODE": "prod"} and created["labels"] == {"tier": "web"}
    assert created["binds"] == ["/etc/app:/srv:ro"]
    assert created["restart_policy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert created["healthcheck"] == {"test": ["CMD-SHELL", "curl -f localhost"],
                                      "interval": 2_000_000_000, "retries": 3}
    assert created["command"] == ["serve", "--port", "80"] and created["memory"] == 268435456


def test_without_inherit_only_the_given_settings_are_kept():
    api = FakeApi({"api": inspect_of("api")}, {"app:1": IMAGE, "app:2": NEW_IMAGE})
    Container().apply(ctx_for(api), {"name": "api", "image": "app:2"})
    created = api.created["api"]
    assert created["env"] == {} and created["labels"] == {} and created["binds"] == []
    assert created["restart_policy"] is None and created["healthcheck"] is None
    assert created["command"] is None and created["memory"] is None


def test_inherit_with_the_same_image_is_as_wanted_and_without_an_image_keeps_it():
    api = FakeApi({"api": inspect_of("api")}, {"app:1": IMAGE, "app:2": NEW_IMAGE})
    same = Container().plan(ctx_for(api), {"name": "api", "image": "app:1", "inherit": True})
    assert not same.changed, same.changes
    plan = Container().plan(ctx_for(api), {"name": "api", "inherit": True,
                                           "env": {"MODE": "dev"}})
    assert plan.changes == ("recreate container api: env differs (changed MODE)",)
    Container().apply(ctx_for(api), {"name": "api", "inherit": True, "env": {"MODE": "dev"}})
    created = api.created["api"]
    assert created["image"] == "app:1" and created["env"] == {"MODE": "dev"}
    assert created["labels"] == {"tier": "web"} and ("pull", "app:1") not in api.calls


def test_inherit_without_a_container_is_the_plain_spec():
    args = {**ARGS, "image": "app:2", "restart_policy": None, "memory": None}
    plain, inherited = FakeApi({}, {"app:2": NEW_IMAGE}), FakeApi({}, {"app:2": NEW_IMAGE})
    Container().apply(ctx_for(plain), args)
    Container().apply(ctx_for(inherited), {**args, "inherit": True})
    assert inherited.created["api"] == plain.created["api"] == parse_spec(args).create_args()
    assert inherited.created["api"]["restart_policy"] is None
    plan = Container().plan(ctx_for(FakeApi({}, {"app:2": NEW_IMAGE})),
                            {"name": "api", "image": "app:2", "inherit": True})
    assert plan.changes == ("create container api from app:2", "start container api")


# ---------------------------------------------------------------- small parsers

def test_compose_project_name_and_change_lines():
    assert project_name_for("/srv/My App_1/") == "myapp_1"
    assert _CHANGE_LINE.search("Creating proj_web_1 ... done\n")
    assert _CHANGE_LINE.search(" Container proj-web-1  Started\n")
    assert not _CHANGE_LINE.search("proj_web_1 is up-to-date\n")
    assert not _CHANGE_LINE.search(" Container proj-web-1  Running\n")


def test_parse_since():
    now = 1_700_000_000.0
    assert parse_since("10m", now) == now - 600
    assert parse_since(30.0, now) == now - 30
    assert parse_since(1_600_000_000, now) == 1_600_000_000
    assert parse_since("2023-11-14T22:13:20Z", now) == 1_700_000_000
    with pytest.raises(StepFailed, match="since"):
        parse_since("yesterday", now)


def test_stats_facts_cgroup_v1_and_v2():
    sample = {"cpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000},
                            "system_cpu_usage": 20_000_000_000, "online_cpus": 2},
              "precpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000},
                               "system_cpu_usage": 10_000_000_000},
              "memory_stats": {"usage": 110 << 20, "limit": 1 << 30,
                               "stats": {"total_inactive_file": 10 << 20}}}
    facts = stats_facts(sample)
    assert facts["cpu_percent"] == 20.0
    assert facts["mem_usage"] == 100 << 20 and facts["mem_limit"] == 1 << 30
    assert facts["mem_percent"] == pytest.approx(9.766, abs=0.001)
    v2 = dict(sample, memory_stats={"usage": 50, "limit": 100, "stats": {"inactive_file": 10}})
    assert stats_facts(v2)["mem_usage"] == 40
    assert stats_facts({})["cpu_percent"] == 0.0


def test_static_checks_of_literal_spec_values():
    from engine.actions.docker_scale import Scale as ScaleAction
    problems = Container.check_args({"name": "x", "memory": "lots", "restart_policy": "maybe",
                                     "ports": ["80", "web"], "volumes": ["./rel:/x"],
                                     "healthcheck": {"interval": "soon"}})
    assert [key for _, key in problems] == ["memory", "restart_policy", "ports", "volumes",
                                            "healthcheck"]
    assert problems[0][0] == "memory: 'lots' is not a size such as 256m or 1g"
    # templates are checked once rendered; {replica} is a placeholder, not an error
    assert Container.check_args({"memory": "{{ mem }}", "ports": ["{{ port }}:80"]}) == []
    assert ScaleAction.check_args({"ports": ["30{replica}:80"], "replicas": 2}) == []
    assert ScaleAction.check_args({"replicas": -1}) == [("replicas cannot be negative (got -1)",
                                                         "replicas")]
