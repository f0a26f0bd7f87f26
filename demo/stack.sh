#!/usr/bin/env bash
# The demo stack: Redis cache, the API, job workers, as containers on the host network
# (services bind 127.0.0.1 only), labelled runbook-demo=1.
#
#   bash demo/stack.sh up [--no-build]   build images if needed (demo/build.sh), start what
#                                        is missing, wait until every container is healthy
#   bash demo/stack.sh down [--volumes]  remove the stack's containers (and its volumes)
#   bash demo/stack.sh status            containers, images, ports, health; exit 0 when all
#                                        run healthy, 1 when some do not, 3 when none exist
#
#   <prefix>-cache     runbook-demo/cache:1   redis on 127.0.0.1:16379, volume <prefix>-cache-data:/data
#   <prefix>-app       runbook-demo/app:1     API on 127.0.0.1:18080, volume <prefix>-data:/data
#   <prefix>-worker-N  runbook-demo/worker:1  /health,/metrics on 127.0.0.1:(18100+N), volume <prefix>-data:/data
#
# `up` never replaces a container that exists (a deploy runbook may have moved the app
# to app:2, a scale runbook added workers): it only starts stopped ones and adds missing ones.
#
# Environment (defaults):
#   DEMO_PREFIX=demo                 container/volume name prefix, label runbook-demo.stack
#   DEMO_REDIS_PORT=16379  DEMO_APP_PORT=18080  DEMO_WORKER_BASE_PORT=18100  DEMO_WORKERS=1
#   DEMO_APP_IMAGE=runbook-demo/app:1  DEMO_WORKER_IMAGE=runbook-demo/worker:1
#   DEMO_CACHE_IMAGE=runbook-demo/cache:1
#   DEMO_LABELS="k=v ..."            extra labels on every container (tests add runbook-test=1)
#   DEMO_DATA_TMPFS_MB=N             app's /data on an N MiB tmpfs instead of the volume
#                                    (disk-full drills; the data is lost when it stops)
#   DEMO_WAIT_SECONDS=60             how long `up` waits for health
#   RUNBOOK_TEST_DOCKER_HOST         docker socket (default unix:///var/run/docker.sock)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export DOCKER_HOST=${RUNBOOK_TEST_DOCKER_HOST:-unix:///var/run/docker.sock}
if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

PREFIX=${DEMO_PREFIX:-demo}
REDIS_PORT=${DEMO_REDIS_PORT:-16379}
APP_PORT=${DEMO_APP_PORT:-18080}
WORKER_BASE_PORT=${DEMO_WORKER_BASE_PORT:-18100}
WORKERS=${DEMO_WORKERS:-1}
APP_IMAGE=${DEMO_APP_IMAGE:-runbook-demo/app:1}
WORKER_IMAGE=${DEMO_WORKER_IMAGE:-runbook-demo/worker:1}
CACHE_IMAGE=${DEMO_CACHE_IMAGE:-runbook-demo/cache:1}
WAIT_SECONDS=${DEMO_WAIT_SECONDS:-60}
STACK_LABEL="runbook-demo.stack=$PREFIX"

log() { printf 'demo stack: %s\n' "$*" >&2; }
die() { printf 'demo stack: ERROR: %s\n' "$*" >&2; exit 1; }

[[ $PREFIX =~ ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ ]] || die "DEMO_PREFIX '$PREFIX' is not a valid container name"
for v in REDIS_PORT APP_PORT WORKER_BASE_PORT WORKERS WAIT_SECONDS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number (got '${!v}')"
done

label_args() {   # role [replica] -> --label ... for docker run
    local a=(--label runbook-demo=1 --label "$STACK_LABEL" --label "runbook-demo.role=$1")
    [[ -n ${2:-} ]] && a+=(--label "runbook-demo.replica=$2")
    local l
    for l in ${DEMO_LABELS:-}; do a+=(--label "$l"); done
    printf '%s\n' "${a[@]}"
}

state() {   # name -> running|exited|...|absent
    local s
    s=$("$DOCKER" inspect --type container --format '{{.State.Status}}' "$1" 2>/dev/null) && [[ -n $s ]] \
        && echo "$s" || echo absent
}

run() {   # name role port replica image [docker run args...]
    local name=$1 role=$2 port=$3 replica=$4 image=$5; shift 5
    case $(state "$name") in
        running) return 0 ;;
        absent) ;;
        *) log "starting existing $name"; "$DOCKER" start "$name" >/dev/null; return 0 ;;
    esac
    local labels
    mapfile -t labels < <(label_args "$role" "$replica")
    log "creating $name ($image, 127.0.0.1:$port)"
    "$DOCKER" run -d --name "$name" --network host --restart unless-stopped \
        "${labels[@]}" --label "runbook-demo.port=$port" "$@" "$image" >/dev/null
}

wait_healthy() {   # names...
    local deadline=$((SECONDS + WAIT_SECONDS)) name h pending
    while :; do
        pending=()
        for name in "$@"; do
            h=$("$DOCKER" inspect --type container --format \
                '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$name" 2>/dev/null) \
                || h=absent
            case $h in
                healthy) ;;
                unhealthy|exited|dead|absent)
                    "$DOCKER" logs --tail 20 "$name" >&2 2>&1 || true
                    die "$name is $h" ;;
                *) pending+=("$name") ;;
            esac
        done
        (( ${#pending[@]} == 0 )) && return 0
        (( SECONDS < deadline )) || die "not healthy after ${WAIT_SECONDS} s: ${pending[*]}"
        sleep 0.25
    done
}

cmd_up() {
    local build=1 a i
    for a in "$@"; do
        case "$a" in --no-build) build=0 ;; *) die "up: unknown argument $a" ;; esac
    done
    [[ $build == 1 ]] && bash "$HERE/build.sh" --quiet
    local redis_addr="127.0.0.1:$REDIS_PORT" data=(-v "$PREFIX-data:/data")
    [[ -n ${DEMO_DATA_TMPFS_MB:-} ]] && data=(--tmpfs "/data:rw,size=${DEMO_DATA_TMPFS_MB}m")
    run "$PREFIX-cache" cache "$REDIS_PORT" "" "$CACHE_IMAGE" \
        -e "REDIS_PORT=$REDIS_PORT" -v "$PREFIX-cache-data:/data"
    wait_healthy "$PREFIX-cache"
    run "$PREFIX-app" app "$APP_PORT" "" "$APP_IMAGE" \
        -e "APP_PORT=$APP_PORT" -e "REDIS_ADDR=$redis_addr" "${data[@]}"
    local names=("$PREFIX-app")
    for i in $(seq 1 "$WORKERS"); do
        run "$PREFIX-worker-$i" worker $((WORKER_BASE_PORT + i)) "$i" "$WORKER_IMAGE" \
            -e "WORKER_PORT=$((WORKER_BASE_PORT + i))" -e "WORKER_ID=$PREFIX-worker-$i" \
            -e "REDIS_ADDR=$redis_addr" -v "$PREFIX-data:/data"
        names+=("$PREFIX-worker-$i")
    done
    wait_healthy "${names[@]}"
    cmd_status
}

cmd_down() {
    local volumes=0 a ids
    for a in "$@"; do
        case "$a" in --volumes|-v) volumes=1 ;; *) die "down: unknown argument $a" ;; esac
    done
    mapfile -t ids < <("$DOCKER" ps -aq --filter label=runbook-demo=1 --filter "label=$STACK_LABEL")
    if (( ${#ids[@]} )); then "$DOCKER" rm -f "${ids[@]}" >/dev/null; fi
    log "removed ${#ids[@]} container(s) of stack '$PREFIX'"
    if [[ $volumes == 1 ]]; then
        "$DOCKER" volume rm -f "$PREFIX-data" "$PREFIX-cache-data" >/dev/null
        log "removed volumes $PREFIX-data $PREFIX-cache-data"
    fi
}

cmd_status() {
    local lines total=0 good=0 name status
    mapfile -t lines < <("$DOCKER" ps -a --filter label=runbook-demo=1 --filter "label=$STACK_LABEL" \
        --format '{{.Names}}|{{.Image}}|{{.Label "runbook-demo.port"}}|{{.Status}}' | LC_ALL=C sort)
    if (( ${#lines[@]} == 0 )); then
        echo "demo stack '$PREFIX': no containers (bash demo/stack.sh up)"
        return 3
    fi
    printf '%-22s %-26s %-16s %s\n' NAME IMAGE ADDRESS STATUS
    for l in "${lines[@]}"; do
        IFS='|' read -r name image port status <<<"$l"   # '|' keeps empty fields
        printf '%-22s %-26s %-16s %s\n' "$name" "$image" "127.0.0.1:$port" "$status"
        total=$((total + 1))
        [[ $status == Up*"(healthy)"* ]] && good=$((good + 1))
    done
    echo "$good/$total healthy"
    (( good == total )) || return 1
}

case "${1:-}" in
    up) shift; cmd_up "$@" ;;
    down) shift; cmd_down "$@" ;;
    status) shift; cmd_status "$@" ;;
    *) sed -n '2,30p' "$0" >&2; exit 2 ;;
esac
