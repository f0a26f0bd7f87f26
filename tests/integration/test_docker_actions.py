"""The docker actions against the real dockerd: container (create, recreate on change,
states, wait_healthy), image (build, tag, absent, pull failure), exec, inspect, info,
logs, stats, scale (1 -> 3 -> 1 gated by health), compose (up, scale, down), prune,
a dry run that changes nothing, and a deploy through an ssh:// daemon.

Every container is host- or none-networked and labelled runbook-test=1 plus a
per-test label that the fixture removes afterwards.  Ports: 30100-30199.
"""

from __future__ import annotations

import contextlib
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from engine.actions import get_action
from engine.actions.base import ActionContext, CannotSimulate, Plan, StepResult
from engine.actions.schema import coerce
from engine.connections import ConnectionPool
from engine.errors import StepFailed
from engine.inventory import ConnectionSettings, Host

LAB = {"runbook-test": "1"}


class Docker:
    """Runs docker actions on a local host whose daemon is the test daemon."""

    def __init__(self, infra, client, tmp_path: Path, case: str,
                 settings: ConnectionSettings | None = None) -> None:
        self.infra = infra
        self.client = client
        self.tmp = tmp_path
        self.case = case
        self.labels = {**LAB, "runbook-test.case": case}
        self.busybox = infra.images["busybox"]
        self.host = Host("lab", {}, ("all",), settings or ConnectionSettings(
            kind="local", docker_host=infra.docker_host))
        self.pool = ConnectionPool()

    def ctx(self, dry_run: bool = False) -> ActionContext:
        return ActionContext(host=self.host, step=None,  # type: ignore[arg-type]
                             connection_factory=lambda: self.pool.get(self.host),
                             docker_factory=lambda: self.pool.docker(self.host),
                             render=lambda v: v, truth=bool, render_text=lambda t: t,
                             runbook_dir=str(self.tmp), dry_run=dry_run)

    def _args(self, action: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        cls = get_action(action)
        assert cls is not None, action
        out = {}
        for key, value in args.items():
            spec = cls.params.get(key)
            assert spec is not None, f"{action} has no parameter {key}"
            out[key] = coerce(spec, value) if value is not None else None
        return cls, out

    def run(self, action: str, **args: Any) -> StepResult:
        cls, coerced = self._args(action, args)
        return cls().apply(self.ctx(), coerced)

    def plan(self, action: str, **args: Any) -> Plan:
        cls, coerced = self._args(action, args)
        return cls().plan(self.ctx(dry_run=True), coerced)

    def name(self, what: str) -> str:
        return f"rbt-{what}-{self.case}"

    def box(self, name: str, **args: Any) -> StepResult:
        """docker.container with busybox, the lab's network and labels."""
        args.setdefault("image", self.busybox)
        args.setdefault("network_mode", "host")
        args.setdefault("init", True)
        args["labels"] = {**self.labels, **(args.get("labels") or {})}
        return self.run("docker.container", name=name, **args)

    def inspect(self, name: str) -> dict[str, Any]:
        return self.client.api.inspect_container(name)

    def cleanup(self) -> None:
        for c in self.client.containers.list(all=True,
                                             filters={"label": f"runbook-test.case={self.case}"}):
            c.remove(force=True, v=True)
        for image in self.client.images.list(filters={"label": f"runbook-test.case={self.case}"}):
            for tag in image.tags or [image.id]:
                try:
                    self.client.images.remove(tag, force=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
        self.pool.close_all()


@pytest.fixture
def d(infra, docker_client, tmp_path):
    helper = Docker(infra, docker_client, tmp_path, uuid.uuid4().hex[:8])
    yield helper
    helper.cleanup()


def http_box(d: Docker, name: str, port: int, **args: Any) -> StepResult:
    """A busybox httpd on 127.0.0.1:port with a wget healthcheck."""
    args.setdefault("command", f"httpd -f -p 127.0.0.1:{port} -h /etc")
    args.setdefault("healthcheck", {"test": f"wget -q -O /dev/null http://127.0.0.1:{port}/passwd",
                                    "interval": "200ms", "timeout": "2s", "retries": 3})
    return d.box(name, **args)


def build_context(d: Docker, version: str) -> Path:
    folder = d.tmp / f"ctx-{version}"
    folder.mkdir(exist_ok=True)
    (folder / "Dockerfile").write_text(
        f"FROM {d.busybox}\nLABEL runbook-test=1 runbook-test.case={d.case} version={version}\n"
        f"ENV APP_VERSION={version}\n")
    return folder


# ---------------------------------------------------------------- docker.container

def test_container_created_then_unchanged_then_recreated_on_env_change(d):
    name = d.name("env")
    first = d.box(name, command="sleep 3600", env={"A": "1"})
    assert first.changed and first.fields["created"] and first.fields["started"]
    assert first.fields["previous_id"] is None and first.fields["health"] == "running"
    same = d.box(name, command="sleep 3600", env={"A": "1"})
    assert not same.changed, same.msg
    assert same.fields["id"] == first.fields["id"]
    changed = d.box(name, command="sleep 3600", env={"A": "2"})
    assert changed.changed and changed.fields["recreated"]
    assert "env differs" in changed.msg
    assert changed.fields["previous_id"] == first.fields["id"] != changed.fields["id"]
    assert "A=2" in d.inspect(name)["Config"]["Env"]
    assert not d.client.containers.list(all=True, filters={"name": f"{name}.runbook-old"})


def test_other_changes_recreate_too(d):
    name = d.name("opts")
    d.box(name, command="sleep 3600", restart_policy="no", memory="64m")
    for change in ({"restart_policy": "unless-stopped"}, {"memory": "96m"},
                   {"labels": {"tier": "web"}}, {"command": "sleep 3601"}):
        args = {"command": "sleep 3600", "restart_policy": "no", "memory": "64m", **change}
        result = d.box(name, **args)
        assert result.fields["recreated"], change
        assert not d.box(name, **args).changed, change       # and then it is stable
        d.box(name, command="sleep 3600", restart_policy="no", memory="64m")


def test_bind_volumes_and_ports_under_host_networking(d):
    data = d.tmp / "data"
    data.mkdir()
    (data / "hello.txt").write_text("from the host\n")
    name = d.name("vol")
    args = dict(command="sleep 3600", volumes=[f"{data}:/data:ro", "/scratch"],
                ports=["127.0.0.1:30191:80"], workdir="/data", user="nobody")
    first = d.box(name, **args)
    assert first.fields["created"]
    assert not d.box(name, **args).changed          # ports are moot with host networking
    out = d.run("docker.exec", container=name, command="cat hello.txt; id -u; touch x")
    assert out.stdout.startswith("from the host\n65534") and out.failed  # read-only bind
    mounts = {m["Destination"]: m for m in d.inspect(name)["Mounts"]}
    assert mounts["/data"]["RW"] is False and mounts["/scratch"]["Type"] == "volume"
    changed = d.box(name, **{**args, "volumes": [f"{data}:/data", "/scratch"]})
    assert changed.fields["recreated"] and "volumes differ" in changed.msg
    anonymous = mounts["/scratch"]["Name"]
    assert anonymous not in [v.name for v in d.client.volumes.list()]   # removed with the old


def test_states_stop_start_restart_present_absent(d):
    name = d.name("states")
    d.box(name, command="sleep 3600")
    stopped = d.box(name, command="sleep 3600", state="stopped", stop_timeout=1)
    assert stopped.changed and stopped.fields["stopped"]
    assert not d.inspect(name)["State"]["Running"]
    assert not d.box(name, state="stopped").changed
    started = d.box(name, command="sleep 3600")
    assert started.changed and started.fields["started"] and not started.fields["recreated"]
    restarted = d.box(name, command="sleep 3600", state="restarted", stop_timeout=1)
    assert restarted.changed and restarted.fields["restarted"]
    gone = d.box(name, state="absent")
    assert gone.changed and gone.fields["removed"]
    assert not d.box(name, state="absent").changed
    present = d.box(name, command="sleep 3600", state="present")
    assert present.fields["created"] and not present.fields["started"]
    assert d.inspect(name)["State"]["Status"] == "created"


def test_image_change_recreates_and_previous_image_rolls_back(d):
    ref = f"rbt-app-{d.case}"
    d.run("docker.image", name=f"{ref}:v1", build={"context": str(build_context(d, "v1"))})
    d.run("docker.image", name=f"{ref}:v2", build={"context": str(build_context(d, "v2"))})
    name = d.name("app")
    one = d.box(name, image=f"{ref}:v1", command="sleep 3600", env={"X": "1"})
    assert one.fields["created"]
    two = d.box(name, image=f"{ref}:v2", command="sleep 3600", env={"X": "1"})
    assert two.fields["recreated"] and "image" in two.msg
    assert two.fields["previous_image"] == f"{ref}:v1"
    assert two.fields["previous_image_id"] == one.fields["image_id"]
    assert "APP_VERSION=v2" in d.inspect(name)["Config"]["Env"]   # image env is not a diff
    back = d.box(name, image=two.fields["previous_image"], command="sleep 3600", env={"X": "1"})
    assert back.fields["recreated"] and back.fields["image_id"] == one.fields["image_id"]


def test_inherit_keeps_the_settings_on_an_image_change_and_without_it_they_go(d):
    """The rollback step that names only the image: with inherit: true the recreated
    container keeps env, the named volume (and its data), labels, restart policy,
    healthcheck, command...; without inherit they are dropped.  v1 and v2 are busybox
    with a label and an env variable of their own (different image ids)."""
    ref = f"rbt-inherit-{d.case}"
    for version in ("v1", "v2"):
        d.run("docker.image", name=f"{ref}:{version}",
              build={"context": str(build_context(d, version))})
    name = d.name("inherit")
    volume = f"rbt-inherit-{d.case}"
    try:
        d.box(name, image=f"{ref}:v1", command="sleep 3600", env={"MODE": "prod"},
              volumes=[f"{volume}:/data"], labels={"tier": "web"}, workdir="/data",
              restart_policy="unless-stopped", memory="64m",
              healthcheck={"test": "test -d /data", "interval": "200ms", "retries": 3},
              wait_healthy=True, health_timeout="20s")
        d.run("docker.exec", container=name, command="echo kept > /data/f")
        before = d.inspect(name)
        # the inherited spec matches the container it came from
        same = d.plan("docker.container", name=name, image=f"{ref}:v1", inherit=True)
        assert not same.changed, same.changes

        args = dict(name=name, image=f"{ref}:v2", inherit=True)
        plan = d.plan("docker.container", **args)
        rolled = d.run("docker.container", **args)
        assert rolled.fields["recreated"] and rolled.msg == plan.changes[0]
        assert rolled.msg.startswith(f"recreate container {name}: image {ref}:v2 is ")
        # the inherited settings are no difference (APP_VERSION and the label version
        # differ: they are v1's and v2's own)
        assert "MODE" not in rolled.msg and "tier" not in rolled.msg
        after = d.inspect(name)
        config, host = after["Config"], after["HostConfig"]
        assert after["Id"] != before["Id"] and after["Image"] != before["Image"]
        assert config["Image"] == f"{ref}:v2" and after["State"]["Running"]
        assert "MODE=prod" in config["Env"]
        assert "APP_VERSION=v2" in config["Env"]          # the new image's, not v1's
        assert config["Labels"]["tier"] == "web" and config["Labels"]["version"] == "v2"
        assert host["Binds"] == before["HostConfig"]["Binds"] == [f"{volume}:/data:rw"]
        assert host["RestartPolicy"]["Name"] == "unless-stopped"
        assert config["Healthcheck"] == before["Config"]["Healthcheck"]
        assert config["Cmd"] == ["sleep", "3600"] and config["WorkingDir"] == "/data"
        assert host["Memory"] == 64 << 20 and host["NetworkMode"] == "host" and host["Init"]
        assert d.run("docker.exec", container=name, command="cat /data/f").stdout == "kept"
        assert not d.run("docker.container", **args).changed

        # the same step without inherit: only what it gives (network_mode: none, the
        # lab's rule; the command becomes the image's `sh`, which exits)
        plain = d.run("docker.container", name=name, image=f"{ref}:v1", network_mode="none")
        assert plain.fields["recreated"]
        dropped = d.inspect(name)
        config, host = dropped["Config"], dropped["HostConfig"]
        assert config["Image"] == f"{ref}:v1" and "APP_VERSION=v1" in config["Env"]
        assert not any(e.startswith("MODE=") for e in config["Env"])
        assert "tier" not in config["Labels"] and config["Labels"]["version"] == "v1"
        assert not host["Binds"] and not dropped["Mounts"]
        assert host["RestartPolicy"]["Name"] in ("", "no")
        assert not config.get("Healthcheck") and config["Cmd"] == ["/bin/sh"]
        assert config["WorkingDir"] == "" and host["Memory"] == 0
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            d.client.api.remove_container(name, force=True, v=True)
        with contextlib.suppress(docker.errors.NotFound):
            d.client.api.remove_volume(volume, force=True)

def test_wait_healthy_passes_for_a_healthy_container(d):
    name = d.name("healthy")
    result = http_box(d, name, 30101, wait_healthy=True, health_timeout="20s")
    assert result.fields["health"] == "healthy"


def test_wait_healthy_fails_with_the_health_log(d):
    name = d.name("sick")
    with pytest.raises(StepFailed) as failure:
        d.box(name, command="sleep 3600", wait_healthy=True, health_timeout="20s",
              healthcheck={"test": "echo probe-says-no; exit 1", "interval": "200ms",
                           "retries": 2})
    assert "unhealthy" in failure.value.message
    assert "probe-says-no" in failure.value.message
    assert failure.value.result.fields["name"] == name


def test_wait_healthy_fails_when_the_container_exits(d):
    with pytest.raises(StepFailed) as failure:
        d.box(d.name("exits"), command=["sh", "-c", "echo starting up; sleep 0.3; exit 3"],
              wait_healthy=True, health_timeout="20s")
    message = failure.value.message
    assert "exited with code 3" in message and "starting up" in message


def test_wait_healthy_times_out(d):
    with pytest.raises(StepFailed, match="not healthy after 1s"):
        d.box(d.name("slow"), command="sleep 3600", wait_healthy=True, health_timeout="1s",
              healthcheck={"test": "exit 1", "interval": "30s", "retries": 3})


# Pulls go to a registry address on loopback where nothing listens: a test never makes
# the daemon look for a registry elsewhere.
NO_REGISTRY = "127.0.0.1:30999"


def test_missing_image_and_no_pull(d):
    ref = f"{NO_REGISTRY}/rbt-none-{d.case}:1"
    with pytest.raises(StepFailed, match="pull is 'never'"):
        d.box(d.name("nopull"), image=ref, pull="never")
    with pytest.raises(StepFailed, match=f"cannot pull {ref}: .*refused") as failure:
        d.box(d.name("nopull"), image=ref)
    assert failure.value.hint and "build" in failure.value.hint


# ---------------------------------------------------------------- docker.image

def test_image_build_tag_and_absent(d):
    ref = f"rbt-img-{d.case}:1"
    context = build_context(d, "1")
    (context / "Dockerfile").write_text(
        f"FROM {d.busybox}\nLABEL runbook-test=1 runbook-test.case={d.case}\n"
        f"RUN echo built > /built\n")
    built = d.run("docker.image", name=ref, tag=f"rbt-img-{d.case}:stable",
                  build={"context": str(context), "network_mode": "host"})
    assert built.changed and built.fields["built"] and built.fields["id"].startswith("sha256:")
    assert f"rbt-img-{d.case}:stable" in built.fields["tags"]
    again = d.run("docker.image", name=ref, tag=f"rbt-img-{d.case}:stable",
                  build={"context": str(context)})
    assert not again.changed
    assert d.run("docker.image", name=ref, source="local").changed is False
    removed = d.run("docker.image", name=ref, state="absent", tag=f"rbt-img-{d.case}:stable")
    assert removed.changed and removed.fields["removed"]
    assert not d.run("docker.image", name=ref, state="absent").changed


def test_image_pull_failure_is_clear(d):
    ref = f"{NO_REGISTRY}/rbt-nowhere/none:1"
    with pytest.raises(StepFailed, match=f"cannot pull {ref}: .*refused") as failure:
        d.run("docker.image", name=ref)
    assert "build" in (failure.value.hint or "")


def test_image_build_failure_shows_the_output(d):
    context = d.tmp / "bad"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {d.busybox}\nRUN echo about to fail; exit 7\n")
    with pytest.raises(StepFailed, match="building .* failed") as failure:
        d.run("docker.image", name=f"rbt-bad-{d.case}:1",
              build={"context": str(context), "network_mode": "host"})
    assert "about to fail" in failure.value.message


# ---------------------------------------------------------------- exec / inspect / logs / stats

def test_exec_inspect_logs(d):
    name = d.name("facts")
    d.box(name, command=["sh", "-c", "echo line-one; echo line-two >&2; exec sleep 3600"])
    result = d.run("docker.exec", container=name, command="echo $GREET; pwd; id -u",
                   env={"GREET": "hi"}, workdir="/tmp", user="nobody")
    assert result.rc == 0 and result.stdout == "hi\n/tmp\n65534" and result.changed
    failed = d.run("docker.exec", container=name, command=["sh", "-c", "exit 4"])
    assert failed.failed and failed.rc == 4
    assert not d.run("docker.exec", container=name, command="exit 4", ok_codes=[0, 4]).failed
    with pytest.raises(CannotSimulate):
        d.plan("docker.exec", container=name, command="true")

    facts = d.run("docker.inspect", container=name).fields
    assert facts["exists"] and facts["running"] and facts["state"] == "running"
    assert facts["image"] == d.busybox and facts["labels"]["runbook-test.case"] == d.case
    assert facts["restart_count"] == 0 and facts["started_at"]
    missing = d.run("docker.inspect", container=d.name("nothing")).fields
    assert missing["exists"] is False
    with pytest.raises(StepFailed, match="does not exist"):
        d.run("docker.inspect", container=d.name("nothing"), must_exist=True)
    image = d.run("docker.inspect", image=d.busybox).fields
    assert image["exists"] and d.busybox in image["tags"]

    time.sleep(0.3)
    logs = d.run("docker.logs", container=name, tail=5)
    assert logs.stdout == "line-one" and logs.stderr == "line-two"
    assert d.run("docker.logs", container=name, since="2000-01-01T00:00:00Z").stdout == "line-one"
    assert d.run("docker.logs", container=name, timestamps=True).stdout.endswith("line-one")


def test_info_and_stats(d):
    info = d.run("docker.info").fields
    assert info["server_version"] and info["ncpu"] >= 1 and info["mem_total"] > 0
    assert info["containers_running"] >= 0 and info["driver"]
    name = d.name("busy")
    d.box(name, command=["sh", "-c", "while :; do :; done"], cpus=0.5, memory="64m")
    stats = d.run("docker.stats", container=name)
    assert 0 < stats.fields["cpu_percent"] <= 100
    assert stats.fields["mem_usage"] > 0 and stats.fields["mem_limit"] > 0
    assert 0 < stats.fields["mem_percent"] < 100
    both = d.run("docker.stats", container=[name, name])
    assert set(both.fields["containers"]) == {name}


# ---------------------------------------------------------------- docker.scale

def test_scale_up_one_at_a_time_gated_by_health_then_down(d):
    name = d.name("web")
    spec = dict(image=d.busybox, network_mode="host", init=True, labels=d.labels,
                command="httpd -f -p 127.0.0.1:3011{replica} -h /etc",
                env={"REPLICA": "{replica}"},
                healthcheck={"test": "wget -q -O /dev/null http://127.0.0.1:3011{replica}/passwd",
                             "interval": "200ms", "retries": 3}, health_timeout="20s")
    one = d.run("docker.scale", name=name, replicas=1, **spec)
    assert (one.fields["previous"], one.fields["current"]) == (0, 1)
    three = d.run("docker.scale", name=name, replicas=3, **spec)
    assert (three.fields["previous"], three.fields["current"]) == (1, 3)
    assert three.fields["created"] == [f"{name}-2", f"{name}-3"]
    infos = {i: d.inspect(f"{name}-{i}") for i in (1, 2, 3)}
    assert "REPLICA=3" in infos[3]["Config"]["Env"]
    assert infos[3]["Config"]["Labels"]["runbook.scale"] == name
    # the gate: replica 2 was healthy before replica 3 was created
    first_ok = min(e["End"] for e in infos[2]["State"]["Health"]["Log"] if e["ExitCode"] == 0)
    assert first_ok < infos[3]["Created"]
    assert not d.run("docker.scale", name=name, replicas=3, **spec).changed
    down = d.run("docker.scale", name=name, replicas=1, **spec)
    assert (down.fields["previous"], down.fields["current"]) == (3, 1)
    assert down.fields["removed"] == [f"{name}-3", f"{name}-2"]
    left = d.client.containers.list(all=True, filters={"label": f"runbook.scale={name}"})
    assert [c.name for c in left] == [f"{name}-1"]


# ---------------------------------------------------------------- docker.compose

def test_compose_up_scale_down(d):
    project = d.tmp / "proj"
    project.mkdir()
    (project / "docker-compose.yml").write_text(textwrap.dedent(f"""\
        version: "3"
        services:
          web:
            image: {d.busybox}
            command: ["httpd", "-f", "-p", "127.0.0.1:30131", "-h", "/tmp"]
            network_mode: host
            init: true
            labels: {{runbook-test: "1", runbook-test.case: "{d.case}"}}
          worker:
            image: {d.busybox}
            command: ["sleep", "3600"]
            network_mode: none
            init: true
            labels: {{runbook-test: "1", runbook-test.case: "{d.case}"}}
        """))
    name = f"rbt{d.case}"
    plan = d.plan("docker.compose", project_dir=str(project), project_name=name)
    assert plan.changed and set(plan.changes) == {"create and start web",
                                                  "create and start worker"}
    up = d.run("docker.compose", project_dir=str(project), project_name=name)
    assert up.changed and set(up.fields["running"]) == {"web", "worker"}
    assert f"{name}_web_1" in up.fields["ps"]
    again = d.run("docker.compose", project_dir=str(project), project_name=name)
    assert not again.changed
    assert not d.plan("docker.compose", project_dir=str(project), project_name=name).changed
    scaled = d.run("docker.compose", project_dir=str(project), project_name=name,
                   state="scaled", scale={"worker": 3})
    assert scaled.changed
    workers = d.client.containers.list(filters={"label": [
        f"com.docker.compose.project={name}", "com.docker.compose.service=worker"]})
    assert len(workers) == 3
    down = d.run("docker.compose", project_dir=str(project), project_name=name, state="down")
    assert down.changed
    assert not d.client.containers.list(all=True, filters={
        "label": f"com.docker.compose.project={name}"})


def test_compose_bad_file_fails_with_its_message(d):
    project = d.tmp / "broken"
    project.mkdir()
    (project / "docker-compose.yml").write_text("services: [not, a, mapping]\n")
    with pytest.raises(StepFailed, match="docker-compose"):
        d.run("docker.compose", project_dir=str(project), project_name=f"rbtbad{d.case}")


# ---------------------------------------------------------------- docker.prune

def test_prune_by_label(d):
    keep = d.name("keep")
    d.box(keep, command="sleep 3600")
    for n in range(2):
        d.box(d.name(f"old{n}"), command="true", labels={"rbt-prune": d.case},
              state="present")
    plan = d.plan("docker.prune", labels={"rbt-prune": d.case}, images=False, networks=False)
    assert sorted(plan.changes) == [f"remove container {d.name('old0')}",
                                    f"remove container {d.name('old1')}"]
    result = d.run("docker.prune", labels={"rbt-prune": d.case}, images=False, networks=False)
    assert result.changed and len(result.fields["containers_deleted"]) == 2
    assert "space_reclaimed" in result.fields
    assert d.inspect(keep)["State"]["Running"]
    assert not d.run("docker.prune", labels={"rbt-prune": d.case}, images=False,
                     networks=False).changed


# ---------------------------------------------------------------- dry run

def _snapshot(d: Docker) -> tuple:
    """This test's containers (by name) and images, and the busybox image: other tests
    share the daemon, so the rest is not compared."""
    containers = sorted((c["Id"], c["State"]) for c in d.client.api.containers(all=True)
                        if any(d.case in n for n in c.get("Names") or []))
    images = sorted(tuple(sorted(i.get("RepoTags") or [])) + (i["Id"],)
                    for i in d.client.api.images()
                    if any(d.case in t or t == d.busybox for t in i.get("RepoTags") or []))
    return containers, images


def test_plans_change_nothing(d):
    name = d.name("dry")
    d.box(name, command="sleep 3600", env={"A": "1"})
    stopped = d.name("dry-stopped")
    d.box(stopped, command="true", state="present", labels={"rbt-prune": d.case})
    project = d.tmp / "dryproj"
    project.mkdir()
    (project / "docker-compose.yml").write_text(
        f'version: "3"\nservices:\n  w:\n    image: {d.busybox}\n    command: ["sleep", "9"]\n'
        f'    network_mode: none\n')
    before = _snapshot(d)
    plans = {
        "recreate": d.plan("docker.container", name=name, image=d.busybox, command="sleep 3600",
                           env={"A": "2"}, network_mode="host", labels=d.labels, init=True),
        "create": d.plan("docker.container", name=d.name("dry-new"), image=d.busybox),
        "stop": d.plan("docker.container", name=name, state="stopped"),
        "absent": d.plan("docker.container", name=name, state="absent"),
        "image": d.plan("docker.image", name=f"rbt-dry-{d.case}:1",
                        build={"context": str(build_context(d, "dry"))}),
        "image-absent": d.plan("docker.image", name=d.busybox, state="absent"),
        "scale": d.plan("docker.scale", name=d.name("dryweb"), replicas=2, image=d.busybox),
        "compose": d.plan("docker.compose", project_dir=str(project),
                          project_name=f"rbtdry{d.case}"),
        "prune": d.plan("docker.prune", labels={"rbt-prune": d.case}),
    }
    assert _snapshot(d) == before
    for what, plan in plans.items():
        assert plan.changed, what
    assert "env differs" in plans["recreate"].changes[0]
    assert plans["scale"].changes[:2] == (f"create container {d.name('dryweb')}-1 from "
                                          f"{d.busybox}", f"start container "
                                          f"{d.name('dryweb')}-1")
    assert plans["prune"].changes == (f"remove container {stopped}",)
    unchanged = d.plan("docker.container", name=name, image=d.busybox, command="sleep 3600",
                       env={"A": "1"}, network_mode="host", labels=d.labels, init=True)
    assert not unchanged.changed and unchanged.reason


def test_dry_run_through_the_executor(d, tmp_path):
    from engine.executor.context import RunContext, RunOptions
    from engine.executor.events import EventBus
    from engine.executor.runner import Executor
    from engine.inventory import Group, Inventory
    from engine.loader import load_runbook
    from engine.params import resolve_params
    from engine.redact import Redactor

    name = d.name("exec-dry")
    text = textwrap.dedent(f"""\
        name: dry
        hosts: all
        steps:
          - id: deploy
            docker.container:
              name: {name}
              image: {d.busybox}
              command: sleep 3600
              network_mode: none
              labels: {{runbook-test: "1", runbook-test.case: "{d.case}"}}
            register: deployed
          - id: facts
            docker.info: {{}}
            register: info
        """)
    path = tmp_path / "dry.yml"
    path.write_text(text)
    runbook = load_runbook(str(path), text).runbook
    inventory = Inventory({"lab": d.host}, {"all": Group("all", hosts=("lab",))})
    before = _snapshot(d)
    run = RunContext(run_id="dry", runbook=runbook, inventory=inventory,
                     params=resolve_params(runbook, {}).values,
                     options=RunOptions(dry_run=True), bus=EventBus(), redactor=Redactor())
    report = Executor(run, [d.host]).execute()
    run.pool.close_all()
    assert report.exit_code == 0
    assert _snapshot(d) == before
    facts = run.states["lab"].facts
    assert facts["deployed"]["simulated"] and facts["deployed"]["changed"]
    assert facts["info"]["server_version"] and not facts["info"]["simulated"]


# ---------------------------------------------------------------- an ssh:// daemon

def test_deploy_through_an_ssh_docker_host(infra, docker_client, tmp_path):
    t = infra.ssh_targets(1)[0]
    settings = ConnectionSettings(kind="local", docker_host=f"ssh://root@{t.address}:{t.port}",
                                  key_file=infra.key_file, known_hosts=infra.known_hosts,
                                  host_key_checking="strict")
    d = Docker(infra, docker_client, tmp_path, uuid.uuid4().hex[:8], settings=settings)
    try:
        name = d.name("over-ssh")
        result = http_box(d, name, 30141, wait_healthy=True, health_timeout="20s")
        assert result.fields["created"] and result.fields["health"] == "healthy"
        assert docker_client.api.inspect_container(name)["State"]["Running"]
        api = d.pool.docker(d.host)
        assert api.address.url.startswith("ssh://") and api.client.base_url == "http+docker://ssh"
        again = http_box(d, name, 30141)
        assert not again.changed
        out = d.run("docker.exec", container=name, command="echo through ssh")
        assert out.stdout == "through ssh"
    finally:
        d.cleanup()
