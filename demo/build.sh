#!/usr/bin/env bash
# Build the demo stack's images, each cached by tag: an image carries the hash of its
# recipe in the label runbook-demo.recipe and is rebuilt only when that recipe changes
# (about 0.3 s when nothing changed).
#
#   bash demo/build.sh [--force] [--quiet]
#
#   runbook-demo/base:<hash>   runbook-test/debian (tests/infra/setup.sh) + redis, demokit.py
#   runbook-demo/app:1         demo API, APP_VERSION=1
#   runbook-demo/app:2         demo API, APP_VERSION=2
#   runbook-demo/app:broken    starts, but /health answers 503 forever
#   runbook-demo/worker:1      job worker
#   runbook-demo/cache:1       redis-server with RDB snapshots in /data
#
# Needs dockerd and the project's Debian test image: when either is missing it runs
# tests/infra/setup.sh (installs Debian packages, starts dockerd with its bridge off,
# builds runbook-test/debian from debootstrap). Builds use --network host (apt only).
#
# Environment: RUNBOOK_TEST_WORK (default /tmp/runbook-test-infra: lock and build log),
# RUNBOOK_TEST_DOCKER_HOST (default unix:///var/run/docker.sock), as setup.sh.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
IMAGES="$HERE/images"
WORK=${RUNBOOK_TEST_WORK:-/tmp/runbook-test-infra}
export DOCKER_HOST=${RUNBOOK_TEST_DOCKER_HOST:-unix:///var/run/docker.sock}
export DOCKER_BUILDKIT=0          # daemon 20.10 without buildx: the classic builder
if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
LOG="$WORK/demo-build.log"

FORCE=0 QUIET=0
for a in "$@"; do
    case "$a" in
        --force) FORCE=1 ;;
        --quiet|-q) QUIET=1 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "build: unknown argument $a" >&2; exit 2 ;;
    esac
done

log() { [[ $QUIET == 1 ]] || printf 'demo build: %s\n' "$*" >&2; }
die() { printf 'demo build: ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b - a}'; }
T0=$(now)

mkdir -p "$WORK"
# One build at a time (parallel test workers all call this). fd 9: setup.sh closes it
# for the daemons it leaves running, so they never hold this lock.
exec 9>"$WORK/demo-build.lock"
flock -w 600 9 || die "another demo/build.sh has held $WORK/demo-build.lock for 10 minutes"

recipe_hash() {   # dir -> 12 hex chars over every file's name and content (as setup.sh)
    (cd "$1" && find . -type f ! -name '*~' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) \
        | sha256sum | cut -c1-12
}
tree_hash() {     # extra-text path... (relative to demo/images) -> 12 hex chars
    local extra=$1; shift
    { (cd "$IMAGES" && find "$@" -type f ! -name '*~' ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
          | LC_ALL=C sort -z | xargs -0 sha256sum); printf '%s\n' "$extra"; } | sha256sum | cut -c1-12
}
image_exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
image_recipe() { "$DOCKER" image inspect --format '{{index .Config.Labels "runbook-demo.recipe"}}' "$1" 2>/dev/null || true; }

# ---------------------------------------------------------------- dockerd + Debian base
DEB_TAG="runbook-test/debian:$(recipe_hash "$ROOT/tests/infra/images/debian")"
if ! timeout 10 "$DOCKER" info >/dev/null 2>&1 || ! image_exists "$DEB_TAG"; then
    log "dockerd or $DEB_TAG missing: running tests/infra/setup.sh"
    bash "$ROOT/tests/infra/setup.sh" 9>&- >&2 || die "tests/infra/setup.sh failed"
    DEB_TAG=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["docker"]["images"]["debian"])' \
              "$WORK/infra.json") || die "cannot read the debian image from $WORK/infra.json"
    image_exists "$DEB_TAG" || die "setup.sh did not produce $DEB_TAG"
fi

# ---------------------------------------------------------------- images
build() {   # tag dockerfile-dir recipe-hash image-name [build-arg...]; FROM the image $FROM
    local tag=$1 dir=$2 hash=$3 name=$4; shift 4
    local args=() a t
    for a in "$@"; do args+=(--build-arg "$a"); done
    if [[ $FORCE == 0 && $(image_recipe "$tag") == "$hash" ]]; then return 0; fi
    log "building $tag"
    t=$(now)
    local old_id
    old_id=$("$DOCKER" image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    echo "=== $(date -u +%FT%TZ) build $tag (recipe $hash)" >>"$LOG"
    "$DOCKER" build --network host --build-arg "BASE=$FROM" "${args[@]}" \
        --label "runbook-demo.image=$name" --label "runbook-demo.recipe=$hash" \
        -f "$IMAGES/$dir/Dockerfile" -t "$tag" "$IMAGES" >>"$LOG" 2>&1 \
        || { tail -n 25 "$LOG" >&2; die "building $tag failed (log: $LOG)"; }
    log "built $tag in $(since "$t") s"
    # the image this tag named before, unless a container or another tag still uses it
    [[ -n $old_id ]] && "$DOCKER" rmi "$old_id" >/dev/null 2>&1 || true
    BUILT+=("$tag")
}
BUILT=()

BASE_HASH=$(tree_hash "from $DEB_TAG" .dockerignore base lib)
BASE_TAG="runbook-demo/base:$BASE_HASH"
FROM=$DEB_TAG
build "$BASE_TAG" base "$BASE_HASH" base

FROM=$BASE_TAG

APP_HASH=$(tree_hash "from $BASE_TAG" .dockerignore app)
build runbook-demo/app:1 app "$APP_HASH" app APP_VERSION=1 APP_BROKEN=0
build runbook-demo/app:2 app "$APP_HASH" app APP_VERSION=2 APP_BROKEN=0
build runbook-demo/app:broken app "$APP_HASH" app APP_VERSION=broken APP_BROKEN=1

WORKER_HASH=$(tree_hash "from $BASE_TAG" .dockerignore worker)
build runbook-demo/worker:1 worker "$WORKER_HASH" worker WORKER_VERSION=1

CACHE_HASH=$(tree_hash "from $BASE_TAG" .dockerignore cache)
build runbook-demo/cache:1 cache "$CACHE_HASH" cache CACHE_VERSION=1

# older bases are no longer used by any current tag
if (( ${#BUILT[@]} )); then
    while read -r old; do
        [[ -n $old && $old != "$BASE_TAG" ]] && "$DOCKER" rmi "$old" >/dev/null 2>&1 || true
    done < <("$DOCKER" images runbook-demo/base --format '{{.Repository}}:{{.Tag}}')
fi

log "ready in $(since "$T0") s ($([[ ${#BUILT[@]} == 0 ]] && echo "all cached" || echo "built ${#BUILT[@]}")): $BASE_TAG runbook-demo/app:{1,2,broken} runbook-demo/worker:1 runbook-demo/cache:1"
