#!/usr/bin/env bash
# Stop what tests/infra/setup.sh started:
#   - every sshd it recorded (by pid file, only if that pid still runs our config),
#     with the sessions it forked
#   - containers labelled runbook-test=1
#   - dockerd, only if setup started it (pid in $WORK/dockerd.started)
#
#   bash tests/infra/teardown.sh [--purge]
#     --purge  also remove the runbook-test/* images and the work dir (next setup is a fresh one)
#
# Never kills by name: only recorded pids.
set -euo pipefail

WORK=${RUNBOOK_TEST_WORK:-/tmp/runbook-test-infra}
DOCKER_HOST_URL=${RUNBOOK_TEST_DOCKER_HOST:-unix:///var/run/docker.sock}
export DOCKER_HOST="$DOCKER_HOST_URL"
SD="$WORK/sshd"
PURGE=0
for a in "$@"; do
    case "$a" in
        --purge) PURGE=1 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "teardown: unknown argument $a" >&2; exit 2 ;;
    esac
done
log() { printf 'teardown: %s\n' "$*" >&2; }

[[ -d $WORK ]] || { log "nothing to do ($WORK does not exist)"; exit 0; }
exec 9>"$WORK/setup.lock"
flock -w 300 9 || { log "setup.sh holds $WORK/setup.lock"; exit 1; }

if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

alive() { [[ -r /proc/$1/stat ]] && ! grep -q ') Z ' "/proc/$1/stat" 2>/dev/null; }
descendants() {
    ps -eo pid=,ppid= | awk -v root="$1" '{ kids[$2] = kids[$2] " " $1 }
        END { n = split(kids[root], q, " "); while (n > 0) { p = q[n]; n--; print p;
              m = split(kids[p], c, " "); for (i = 1; i <= m; i++) q[++n] = c[i] } }'
}

# ---- sshd
stopped=0
if [[ -d $SD ]]; then
    for f in "$SD"/*.pid; do
        [[ -e $f ]] || continue
        name=$(basename "$f" .pid)
        pid=$(<"$f")
        if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" \
            && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$SD/$name.conf"; then
            kill -STOP "$pid" 2>/dev/null || true
            kids=$(descendants "$pid")
            # shellcheck disable=SC2086
            kill -TERM "$pid" $kids 2>/dev/null || true
            kill -CONT "$pid" 2>/dev/null || true
            for _ in $(seq 1 40); do alive "$pid" || break; sleep 0.05; done
            # shellcheck disable=SC2086
            alive "$pid" && kill -KILL "$pid" $kids 2>/dev/null || true
            stopped=$((stopped + 1))
        fi
        rm -f "$f"
    done
fi
log "stopped $stopped sshd"

# ---- containers (and images with --purge)
if timeout 10 "$DOCKER" info >/dev/null 2>&1; then
    mapfile -t ids < <("$DOCKER" ps -aq --filter label=runbook-test=1)
    if (( ${#ids[@]} )); then
        "$DOCKER" rm -f "${ids[@]}" >/dev/null
    fi
    log "removed ${#ids[@]} container(s) labelled runbook-test=1"
    if [[ $PURGE == 1 ]]; then
        mapfile -t imgs < <("$DOCKER" images --format '{{.Repository}}:{{.Tag}}' | grep '^runbook-test/' || true)
        if (( ${#imgs[@]} )); then "$DOCKER" rmi -f "${imgs[@]}" >/dev/null || true; fi
        log "removed ${#imgs[@]} runbook-test image tag(s)"
    fi
else
    log "docker does not answer at $DOCKER_HOST_URL: no containers to remove"
fi

# ---- dockerd, only if setup started it
if [[ -s $WORK/dockerd.started ]]; then
    pid=$(<"$WORK/dockerd.started")
    if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]]; then
        kill -TERM "$pid"
        for _ in $(seq 1 200); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then log "dockerd $pid ignored SIGTERM for 20 s; killing"; kill -KILL "$pid" || true; fi
        log "stopped dockerd $pid (started by setup)"
    fi
    rm -f "$WORK/dockerd.started"
else
    log "dockerd was not started by setup: left running"
fi

rm -f "$WORK/infra.json"
if [[ $PURGE == 1 ]]; then
    exec 9>&-
    # a dockerd with its own exec root (non-default socket) leaves mounts there
    findmnt -rn -o TARGET 2>/dev/null | awk -v p="$WORK/" 'index($0, p) == 1' | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$WORK"
    log "removed $WORK"
fi
