"""The project's benchmark: `runbook` against the raw limits on this machine.

    python bench/run.py [--reps 5] [--only ssh,local,docker,journal,scale,check,startup]
                        [--scale-hosts 10,100,500] [--out .metrics/baselines]

Workloads (the performance issue's anchors), each measured interleaved with its
limit so that machine noise hits both alike:

- ssh NxM: M shell steps per host (echo, then a file write, then stat), `runbook run
  --forks N` against a dedicated sshd fleet on loopback (host keys checked), vs a bare
  paramiko runner (one connection and thread per host, TCP_NODELAY);
- local 1x100: `runbook run` on localhost vs a bare subprocess loop (start-up included);
- docker: M steps inside a container vs a bare docker-SDK exec_run loop;
- journal: 10x20 over SSH with the journal and --output json vs --no-journal, text;
- scale: 10/100/500 hosts x 5 steps (500 hosts share 50 sshd listeners), peak RSS and
  open file descriptors of the runbook process;
- check: `runbook check` of a 1,000-step runbook; startup: `runbook --help`.

Prints medians with min-max and the ratios, and writes everything to
`<out>/bench-<timestamp>.json` so runs can be compared.  Public tools only: python's
timers, /usr/bin/time -v for peak RSS, /proc for file descriptors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HERE = Path(__file__).resolve().parent
# the console script of the interpreter running this (a venv's bin/runbook), else -m
_BESIDE = Path(sys.executable).parent / "runbook"
RUNBOOK = [str(_BESIDE)] if _BESIDE.exists() else [sys.executable, "-m", "engine.cli"]
if os.environ.get("RUNBOOK_BIN"):
    RUNBOOK = [os.environ["RUNBOOK_BIN"]]
WORK = Path(os.environ.get("RUNBOOK_BENCH_WORK", "/tmp/runbook-bench"))
FLEET_PORT = int(os.environ.get("RUNBOOK_BENCH_SSH_PORT", "25001"))
FLEET_SIZE = int(os.environ.get("RUNBOOK_BENCH_SSHD", "50"))


# ------------------------------------------------------------------ infrastructure
def fleet() -> dict:
    """A dedicated sshd fleet (and dockerd, images) from the test infrastructure."""
    env = dict(os.environ, RUNBOOK_TEST_WORK=str(WORK / "infra"),
               RUNBOOK_TEST_SSHD=str(FLEET_SIZE), RUNBOOK_TEST_SSH_PORT=str(FLEET_PORT))
    subprocess.run(["bash", str(ROOT / "tests/infra/setup.sh")], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return json.loads((WORK / "infra" / "infra.json").read_text())


def commands(m: int, host: str, out_dir: Path) -> list[str]:
    """The peers harness's workload: echo steps, then a file write, then a stat."""
    cmds = [f"echo step-{i}" for i in range(1, m - 1)]
    cmds.append(f"echo bench-{host} > {out_dir}/{host}.txt")
    cmds.append(f"stat -c %s {out_dir}/{host}.txt")
    return cmds


def write_runbook(path: Path, m: int, out_dir: Path, hosts: str = "all") -> None:
    lines = ["name: bench", f"hosts: {hosts}", "steps:"]
    for i, cmd in enumerate(commands(m, "{{ inventory_hostname }}", out_dir), 1):
        lines += [f"  - name: task {i}", f"    shell: {json.dumps(cmd)}"]
    path.write_text("\n".join(lines) + "\n")


def write_ssh_inventory(path: Path, info: dict, n: int) -> list[tuple[str, int]]:
    ssh = info["ssh"]
    ports = [h["port"] for h in ssh["hosts"]]
    hosts = [(f"h{i:03d}", ports[(i - 1) % len(ports)]) for i in range(1, n + 1)]
    lines = ["all:", "  vars:", "    connection: ssh", "    address: 127.0.0.1",
             "    user: root", f"    key_file: {ssh['key_file']}",
             f"    known_hosts: {ssh['known_hosts']}", "  hosts:"]
    lines += [f"    {name}: {{port: {port}}}" for name, port in hosts]
    path.write_text("\n".join(lines) + "\n")
    return hosts


# ------------------------------------------------------------------ measuring
def timed(argv: list[str], env: dict | None = None, cwd: str | None = None) -> dict:
    """Wall time, peak RSS (GNU time) and exit code of one command."""
    vfile = tempfile.NamedTemporaryFile(prefix="bench-time-", delete=False)
    vfile.close()
    full = ["/usr/bin/time", "-f", "%M", "-o", vfile.name, *argv] \
        if os.path.exists("/usr/bin/time") else argv
    start = time.perf_counter()
    proc = subprocess.run(full, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    rss = None
    try:
        text = Path(vfile.name).read_text().strip().splitlines()
        rss = int(text[-1]) if text and text[-1].isdigit() else None
    finally:
        os.unlink(vfile.name)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return {"wall": wall, "rss_kb": rss}


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def interleave(variants: dict[str, callable], reps: int) -> dict[str, dict]:
    """One untimed warm-up per variant, then reps rounds of A, B, ..."""
    for run in variants.values():
        run()
    samples: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(reps):
        for name, run in variants.items():
            samples[name].append(run())
    out = {}
    for name, runs in samples.items():
        out[name] = {"wall": summary([r["wall"] for r in runs])}
        rss = [r["rss_kb"] for r in runs if r.get("rss_kb")]
        if rss:
            out[name]["peak_rss_mb"] = max(rss) / 1024
    return out


def env_for(state: Path | None) -> dict:
    env = dict(os.environ, RUNBOOK_PLAIN="1", NO_COLOR="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if state is not None:
        env["RUNBOOK_STATE"] = str(state)
    return env


# ------------------------------------------------------------------ workloads
def bench_ssh(info: dict, reps: int, sizes: list[tuple[int, int]]) -> dict:
    results = {}
    for n, m in sizes:
        d = WORK / f"ssh-{n}x{m}"
        out_dir = d / "out"
        out_dir.mkdir(parents=True, exist_ok=True)
        inventory = d / "inventory.yml"
        hosts = write_ssh_inventory(inventory, info, n)
        runbook = d / "runbook.yml"
        write_runbook(runbook, m, out_dir)
        hosts_tsv = d / "hosts.tsv"
        hosts_tsv.write_text("".join(f"{h}\t{p}\n" for h, p in hosts))
        cmds = d / "cmds.txt"
        cmds.write_text("\n".join(commands(m, "{host}", out_dir)) + "\n")
        state = d / "state.db"

        def run_runbook() -> dict:
            return timed([*RUNBOOK, "run", str(runbook), "-i", str(inventory), "--forks",
                          str(n)], env=env_for(state))

        def run_limit() -> dict:
            return timed([sys.executable, str(HERE / "limit_paramiko.py"), str(hosts_tsv),
                          str(cmds), info["ssh"]["key_file"], info["ssh"]["known_hosts"]])

        res = interleave({"runbook": run_runbook, "paramiko-limit": run_limit}, reps)
        res["ratio"] = res["runbook"]["wall"]["median"] / res["paramiko-limit"]["wall"]["median"]
        results[f"{n}x{m}"] = res
        print_row(f"ssh {n}x{m}", res, "paramiko-limit")
    return results


def bench_local(reps: int, m: int = 100) -> dict:
    d = WORK / "local"
    out_dir = d / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    runbook = d / "runbook.yml"
    write_runbook(runbook, m, out_dir, hosts="localhost")
    cmds = d / "cmds.txt"
    cmds.write_text("\n".join(commands(m, "localhost", out_dir)) + "\n")
    state = d / "state.db"
    res = interleave({
        "runbook": lambda: timed([*RUNBOOK, "run", str(runbook)], env=env_for(state)),
        "subprocess-loop": lambda: timed([sys.executable, str(HERE / "limit_subprocess.py"),
                                          str(cmds)]),
    }, reps)
    res["ratio"] = res["runbook"]["wall"]["median"] / res["subprocess-loop"]["wall"]["median"]
    print_row(f"local 1x{m}", res, "subprocess-loop")
    return res


def bench_docker(info: dict, reps: int, m: int = 20) -> dict:
    import docker
    client = docker.from_env()
    name = "runbook-bench-target"
    try:
        client.containers.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass
    client.containers.run(info["docker"]["images"]["busybox"], ["sleep", "3600"], name=name,
                          detach=True, network_mode="none", labels={"runbook-test": "1"})
    try:
        d = WORK / "docker"
        d.mkdir(parents=True, exist_ok=True)
        inventory = d / "inventory.yml"
        inventory.write_text(f"all:\n  hosts:\n    c1: {{connection: docker, container: {name}}}\n")
        runbook = d / "runbook.yml"
        write_runbook(runbook, m, Path("/tmp"))
        cmds = d / "cmds.txt"
        cmds.write_text("\n".join(commands(m, "c1", Path("/tmp"))) + "\n")
        state = d / "state.db"
        res = interleave({
            "runbook": lambda: timed([*RUNBOOK, "run", str(runbook), "-i", str(inventory)],
                                     env=env_for(state)),
            "exec_run-loop": lambda: timed([sys.executable, str(HERE / "limit_docker.py"),
                                            name, str(cmds)]),
        }, reps)
        res["ratio"] = res["runbook"]["wall"]["median"] / res["exec_run-loop"]["wall"]["median"]
        print_row(f"docker 1x{m}", res, "exec_run-loop")
        return res
    finally:
        client.containers.get(name).remove(force=True)


def bench_journal(info: dict, reps: int, n: int = 10, m: int = 20) -> dict:
    d = WORK / "journal"
    out_dir = d / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    inventory = d / "inventory.yml"
    write_ssh_inventory(inventory, info, n)
    runbook = d / "runbook.yml"
    write_runbook(runbook, m, out_dir)
    state = d / "state.db"
    base = [*RUNBOOK, "run", str(runbook), "-i", str(inventory), "--forks", str(n)]
    res = interleave({
        "journal+json": lambda: timed([*base, "--output", "json"], env=env_for(state)),
        "no-journal": lambda: timed([*base, "--no-journal"], env=env_for(None)),
    }, reps)
    res["ratio"] = res["journal+json"]["wall"]["median"] / res["no-journal"]["wall"]["median"]
    print_row(f"journal {n}x{m}", res, "no-journal")
    return res


def bench_scale(info: dict, counts: list[int], m: int = 5) -> dict:
    results = {}
    for n in counts:
        d = WORK / f"scale-{n}"
        out_dir = d / "out"
        out_dir.mkdir(parents=True, exist_ok=True)
        inventory = d / "inventory.yml"
        write_ssh_inventory(inventory, info, n)
        runbook = d / "runbook.yml"
        write_runbook(runbook, m, out_dir)
        peak_fds = [0]
        proc = subprocess.Popen(
            ["/usr/bin/time", "-f", "%M", "-o", str(d / "rss.txt"), *RUNBOOK, "run",
             str(runbook), "-i", str(inventory), "--forks", str(min(n, 100))],
            env=env_for(d / "state.db"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        start = time.perf_counter()
        stop = threading.Event()

        def watch_fds() -> None:
            while not stop.is_set():
                for child in _children(proc.pid):
                    try:
                        peak_fds[0] = max(peak_fds[0], len(os.listdir(f"/proc/{child}/fd")))
                    except OSError:
                        pass
                time.sleep(0.05)
        watcher = threading.Thread(target=watch_fds, daemon=True)
        watcher.start()
        _, err = proc.communicate()
        wall = time.perf_counter() - start
        stop.set()
        if proc.returncode != 0:
            raise RuntimeError(f"scale {n}: exit {proc.returncode}: {err[-2000:]}")
        written = len(list(out_dir.glob("*.txt")))
        rss_kb = int((d / "rss.txt").read_text().split()[-1])
        results[str(n)] = {"wall": wall, "peak_rss_mb": rss_kb / 1024, "peak_fds": peak_fds[0],
                           "files_written": written, "per_host_step_ms": wall * 1000 / (n * m)}
        print(f"scale {n:>4}x{m}: {wall:6.2f}s  peak RSS {rss_kb / 1024:6.1f} MB  "
              f"peak fds {peak_fds[0]:4d}  files {written}/{n}")
    return results


def _children(pid: int) -> list[int]:
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def bench_check(reps: int, steps: int = 1000) -> dict:
    d = WORK / "check"
    d.mkdir(parents=True, exist_ok=True)
    runbook = d / "big.yml"
    lines = ["name: big", "params:", "  version: {type: str, default: '1'}", "steps:"]
    for i in range(steps):
        lines += [f"  - name: step {i}", f"    shell: echo {{{{ version }}}} {i}",
                  f"    register: r{i}", f"    when: r{i - 1}.rc == 0" if i else "    retries: 1"]
    runbook.write_text("\n".join(lines) + "\n")
    res = interleave({"check": lambda: timed([*RUNBOOK, "check", str(runbook)])}, reps)
    print(f"check {steps} steps: {fmt(res['check']['wall'])}")
    return res


def bench_startup(reps: int) -> dict:
    res = interleave({
        "runbook --help": lambda: timed([*RUNBOOK, "--help"]),
        "python -c pass": lambda: timed([sys.executable, "-c", "pass"]),
    }, reps)
    print(f"runbook --help: {fmt(res['runbook --help']['wall'])}  "
          f"(python -c pass: {fmt(res['python -c pass']['wall'])})")
    return res


def fmt(s: dict) -> str:
    return f"{s['median']:.3f}s [{s['min']:.3f}-{s['max']:.3f}]"


def print_row(label: str, res: dict, limit: str) -> None:
    ours = next(k for k in res if k not in (limit, "ratio"))
    print(f"{label:<14} {ours}: {fmt(res[ours]['wall'])}   {limit}: {fmt(res[limit]['wall'])}"
          f"   ratio {res['ratio']:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", default="startup,check,local,ssh,docker,journal,scale")
    parser.add_argument("--ssh-sizes", default="1x20,10x20,50x10")
    parser.add_argument("--scale-hosts", default="10,100,500")
    parser.add_argument("--out", default=str(ROOT / ".metrics" / "baselines"))
    args = parser.parse_args()
    only = set(args.only.split(","))
    WORK.mkdir(parents=True, exist_ok=True)
    info = fleet() if only & {"ssh", "docker", "journal", "scale"} else {}
    report: dict = {"machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                                "cpus": os.cpu_count(), "load": os.getloadavg()},
                    "reps": args.reps, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if "startup" in only:
        report["startup"] = bench_startup(args.reps)
    if "check" in only:
        report["check"] = bench_check(args.reps)
    if "local" in only:
        report["local"] = bench_local(args.reps)
    if "ssh" in only:
        sizes = [tuple(int(x) for x in s.split("x")) for s in args.ssh_sizes.split(",")]
        report["ssh"] = bench_ssh(info, args.reps, sizes)  # type: ignore[arg-type]
    if "docker" in only:
        report["docker"] = bench_docker(info, args.reps)
    if "journal" in only:
        report["journal"] = bench_journal(info, args.reps)
    if "scale" in only:
        report["scale"] = bench_scale(info, [int(x) for x in args.scale_hosts.split(",")])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
