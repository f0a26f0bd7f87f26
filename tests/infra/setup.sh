#!/usr/bin/env bash
# Real test infrastructure for runbook's integration tests (CI and developers).
#
#   bash tests/infra/setup.sh        install, start and build what is missing (idempotent)
#   bash tests/infra/teardown.sh     stop what this script started
#
# What it provides (all described in $RUNBOOK_TEST_WORK/infra.json):
#   - Debian packages: docker.io, docker-compose, openssh-server, busybox-static,
#     debootstrap, time, procps, iproute2, sudo, prometheus, prometheus-alertmanager
#   - dockerd (bridge off; started only if `docker info` does not answer)
#   - images runbook-test/busybox:<hash> and runbook-test/debian:<hash> (+ :latest),
#     rebuilt only when their recipe in tests/infra/images/<name>/ changes
#   - an sshd fleet on 127.0.0.1 (t01.., key auth for root) and one "pwd" sshd that
#     also accepts password auth (user rbtest)
#   - users rbtest (sudo with its password) and rbnopw (sudo without password)
#
# Environment:
#   RUNBOOK_TEST_WORK           work dir (default /tmp/runbook-test-infra)
#   RUNBOOK_TEST_SSHD           number of fleet sshd (default 12)
#   RUNBOOK_TEST_SSH_PORT       first fleet port (default 24001)
#   RUNBOOK_TEST_SSH_PWD_PORT   port of the password sshd (default first fleet port - 1)
#   RUNBOOK_TEST_DOCKER_HOST    docker socket (default unix:///var/run/docker.sock); a
#                               non-default unix socket gets its own data/exec root
#                               under the work dir when this script starts dockerd
#   RUNBOOK_TEST_DEBIAN_MIRROR  override the mirror taken from the apt sources
#   RUNBOOK_TEST_SKIP_APT=1     do not install packages (fail later if something is missing)
#
# Network rule: nothing here sends traffic anywhere but loopback and the Debian
# mirror (apt/debootstrap). Containers and builds use host or no networking only.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=${RUNBOOK_TEST_WORK:-/tmp/runbook-test-infra}
N=${RUNBOOK_TEST_SSHD:-12}
BASE_PORT=${RUNBOOK_TEST_SSH_PORT:-24001}
PWD_PORT=${RUNBOOK_TEST_SSH_PWD_PORT:-$((BASE_PORT - 1))}
DOCKER_HOST_URL=${RUNBOOK_TEST_DOCKER_HOST:-unix:///var/run/docker.sock}
TEST_USER=rbtest
NOPW_USER=rbnopw
SSHD=/usr/sbin/sshd
SD="$WORK/sshd"

export DEBIAN_FRONTEND=noninteractive
export DOCKER_HOST="$DOCKER_HOST_URL"
export DOCKER_BUILDKIT=0          # daemon 20.10 without buildx: the classic builder

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (installs packages, starts dockerd and sshd)"
[[ $N =~ ^[0-9]+$ && $N -ge 1 && $N -le 200 ]] || die "RUNBOOK_TEST_SSHD must be 1..200 (got '$N')"
[[ $BASE_PORT =~ ^[0-9]+$ && $PWD_PORT =~ ^[0-9]+$ ]] || die "ports must be numbers"
(( BASE_PORT > 1024 && BASE_PORT + N < 65536 && PWD_PORT > 1024 && PWD_PORT < 65536 )) \
    || die "ports out of range"
(( PWD_PORT < BASE_PORT || PWD_PORT >= BASE_PORT + N )) \
    || die "RUNBOOK_TEST_SSH_PWD_PORT ($PWD_PORT) collides with the fleet ports"

mkdir -p "$WORK" "$SD" "$WORK/cache" "$WORK/hostkeys" "$WORK/client"
chmod 755 "$WORK"          # rbtest/rbnopw read authorized_keys as themselves
chmod 700 "$WORK/client" "$WORK/hostkeys"

# One setup at a time (pytest workers may all call it). fd 9 is closed for every
# process we leave running, or it would hold the lock forever.
exec 9>"$WORK/setup.lock"
flock -w 900 9 || die "another setup.sh has held $WORK/setup.lock for 15 minutes"

T0=$(date +%s.%N)
TIMINGS=()
_phase_t=$T0
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}'; }
phase_done() {
    local t; t=$(date +%s.%N)
    TIMINGS+=("$(awk -v n="$1" -v a="$_phase_t" -v b="$t" 'BEGIN{printf "%-9s %6.1fs", n, b - a}')")
    _phase_t=$t
}

# ---------------------------------------------------------------- packages
pkg_missing() {   # prints the packages of "$@" that are not installed
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
    done
}
APT_OPTS=(-y -q -o DPkg::Lock::Timeout=300)
apt_install() {   # [apt options...] packages...
    if apt-get install "${APT_OPTS[@]}" "$@" >>"$WORK/apt.log" 2>&1; then return 0; fi
    log "apt-get install failed; running apt-get update and retrying (log: $WORK/apt.log)"
    apt-get update -q -o DPkg::Lock::Timeout=300 >>"$WORK/apt.log" 2>&1 \
        || die "apt-get update failed (see $WORK/apt.log)"
    apt-get install "${APT_OPTS[@]}" "$@" >>"$WORK/apt.log" 2>&1 \
        || die "apt-get install $* failed (see $WORK/apt.log)"
}
if [[ ${RUNBOOK_TEST_SKIP_APT:-0} != 1 ]]; then
    mapfile -t miss < <(pkg_missing docker.io docker-compose openssh-server busybox-static \
        debootstrap time procps iproute2 sudo tini)
    if (( ${#miss[@]} )); then
        log "installing ${miss[*]}"
        apt_install "${miss[@]}"
    fi
    mapfile -t miss < <(pkg_missing prometheus prometheus-alertmanager)
    if (( ${#miss[@]} )); then
        log "installing ${miss[*]} (no recommends)"
        apt_install --no-install-recommends "${miss[@]}"
    fi
fi
for tool in dockerd "$SSHD" ssh-keygen debootstrap busybox sudo visudo chpasswd ip flock; do
    command -v "$tool" >/dev/null || die "$tool not found (package install skipped or failed)"
done
# classic builder: the docker.io client (same version as the daemon) when present
if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
command -v "$DOCKER" >/dev/null || die "docker client not found"
phase_done packages

# ---------------------------------------------------------------- dockerd
docker_ok() { timeout 10 "$DOCKER" info >/dev/null 2>&1; }
DOCKERD_PID=""
if [[ -s "$WORK/dockerd.started" ]]; then
    # started by an earlier run of this script: still ours if alive
    p=$(<"$WORK/dockerd.started")
    if [[ -r /proc/$p/comm && $(</proc/$p/comm) == dockerd ]]; then DOCKERD_PID=$p
    else rm -f "$WORK/dockerd.started"; fi
fi
if ! docker_ok; then
    [[ $DOCKER_HOST_URL == unix://* ]] \
        || die "docker at $DOCKER_HOST_URL does not answer and is not a local unix socket: cannot start it"
    [[ -z $DOCKERD_PID ]] \
        || die "dockerd $DOCKERD_PID (started earlier by setup) is running but does not answer; see $WORK/dockerd.log"
    sock=${DOCKER_HOST_URL#unix://}
    # a docker0 link left by an earlier daemon would put containers on a private range
    if ip link show docker0 >/dev/null 2>&1; then
        log "deleting stale docker0 link"
        ip link del docker0 || die "cannot delete stale docker0 link"
    fi
    args=(--bridge=none --iptables=false --ip-masq=false -H "$DOCKER_HOST_URL"
          --pidfile "$WORK/dockerd.pid")
    if [[ $sock != /var/run/docker.sock && $sock != /run/docker.sock ]]; then
        mkdir -p "$WORK/docker/data" "$WORK/docker/exec"
        args+=(--data-root "$WORK/docker/data" --exec-root "$WORK/docker/exec")
    fi
    log "starting dockerd ${args[*]}"
    rm -f "$WORK/dockerd.pid"
    setsid dockerd "${args[@]}" </dev/null >>"$WORK/dockerd.log" 2>&1 9>&- &
    launched=$!
    ok=0
    for _ in $(seq 1 300); do      # 30 s
        if docker_ok; then ok=1; break; fi
        kill -0 "$launched" 2>/dev/null || break
        sleep 0.1
    done
    if [[ $ok != 1 ]]; then
        kill "$launched" 2>/dev/null || true
        tail -n 20 "$WORK/dockerd.log" >&2 || true
        die "dockerd did not answer within 30 s (log: $WORK/dockerd.log)"
    fi
    DOCKERD_PID=$launched
    [[ -s $WORK/dockerd.pid ]] && DOCKERD_PID=$(<"$WORK/dockerd.pid")
    echo "$DOCKERD_PID" > "$WORK/dockerd.started"
else
    [[ -n $DOCKERD_PID ]] || log "dockerd already answers at $DOCKER_HOST_URL (not started by setup; left alone)"
fi
DOCKER_API=$("$DOCKER" version --format '{{.Server.APIVersion}}' 2>/dev/null || echo unknown)
phase_done dockerd

# ---------------------------------------------------------------- images
recipe_hash() {   # dir -> 12 hex chars over every file's name and content
    (cd "$1" && find . -type f ! -name '*~' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) \
        | sha256sum | cut -c1-12
}
image_exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
debian_mirror() {
    if [[ -n ${RUNBOOK_TEST_DEBIAN_MIRROR:-} ]]; then echo "$RUNBOOK_TEST_DEBIAN_MIRROR"; return; fi
    local suite=$1 f m=""
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] || continue
        # deb822: first stanza of Types deb whose Suites has exactly $suite
        m=$(awk -v s="$suite" 'BEGIN{RS=""; FS="\n"}
            { t=""; u=""; su="";
              for (i=1;i<=NF;i++) { l=$i; if (l ~ /^#/) continue;
                if (l ~ /^Types:/) t=l; else if (l ~ /^URIs:/) u=l; else if (l ~ /^Suites:/) su=l }
              if (t ~ /[ \t]deb([ \t]|$)/ && (" " su " ") ~ ("[ \t]" s "[ \t]")) {
                  sub(/^URIs:[ \t]*/, "", u); split(u, a, /[ \t]+/); print a[1]; exit } }' "$f")
        [[ -n $m ]] && { echo "$m"; return; }
    done
    if [[ -r /etc/apt/sources.list ]]; then
        m=$(awk -v s="$suite" '$1=="deb" { i=2; if ($2 ~ /^\[/) { while (i<=NF && $i !~ /\]$/) i++; i++ }
                                           if ($(i+1)==s) { print $i; exit } }' /etc/apt/sources.list)
        [[ -n $m ]] && { echo "$m"; return; }
    fi
    echo http://deb.debian.org/debian
}

BUILD_LOG="$WORK/build.log"
# busybox: FROM scratch + the host's static busybox
BB_DIR="$HERE/images/busybox"
BB_HASH=$(recipe_hash "$BB_DIR")
BB_TAG="runbook-test/busybox:$BB_HASH"
if ! image_exists "$BB_TAG"; then
    bb=$(command -v busybox)
    if ldd "$bb" >/dev/null 2>&1; then die "$bb is dynamically linked: install busybox-static"; fi
    ctx=$(mktemp -d "$WORK/ctx.XXXXXX")
    cp -a "$BB_DIR/." "$ctx/"
    cp "$bb" "$ctx/busybox"
    log "building $BB_TAG"
    "$DOCKER" build --network host --label "runbook-test.recipe=$BB_HASH" \
        --label runbook-test.image=busybox -t "$BB_TAG" "$ctx" >>"$BUILD_LOG" 2>&1 \
        || { tail -n 20 "$BUILD_LOG" >&2; die "building $BB_TAG failed (log: $BUILD_LOG)"; }
    rm -rf "$ctx"
fi
"$DOCKER" tag "$BB_TAG" runbook-test/busybox:latest

# debian: debootstrap rootfs (cached tarball) -> docker import -> docker build
DEB_DIR="$HERE/images/debian"
DEB_HASH=$(recipe_hash "$DEB_DIR")
DEB_TAG="runbook-test/debian:$DEB_HASH"
if ! image_exists "$DEB_TAG"; then
    SUITE=bookworm; VARIANT=minbase; INCLUDE=""
    # shellcheck disable=SC1091
    source "$DEB_DIR/rootfs.conf"
    ROOT_HASH=$(sha256sum "$DEB_DIR/rootfs.conf" | cut -c1-12)
    BASE_TAG="runbook-test/debian-base:$ROOT_HASH"
    ROOTFS="$WORK/cache/debian-rootfs-$ROOT_HASH.tar"
    if ! image_exists "$BASE_TAG"; then
        if [[ ! -s $ROOTFS ]]; then
            MIRROR=$(debian_mirror "$SUITE")
            tmp="$WORK/cache/rootfs.tmp"
            rm -rf "$tmp" && mkdir -p "$tmp"
            log "debootstrap --variant=$VARIANT $SUITE from $MIRROR (about 25 s)"
            inc=(); [[ -n $INCLUDE ]] && inc=(--include="$INCLUDE")
            t_ds=$(date +%s.%N)
            debootstrap --variant="$VARIANT" "${inc[@]}" "$SUITE" "$tmp" "$MIRROR" \
                >>"$WORK/debootstrap.log" 2>&1 \
                || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log: $WORK/debootstrap.log)"; }
            rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/* "$tmp"/debootstrap
            tar -C "$tmp" --numeric-owner -cf "$ROOTFS.part" .
            mv "$ROOTFS.part" "$ROOTFS"
            rm -rf "$tmp"
            log "debootstrap + tar took $(elapsed "$t_ds") s (cached as $ROOTFS)"
        fi
        log "importing $BASE_TAG"
        "$DOCKER" import --change 'CMD ["/bin/bash"]' "$ROOTFS" "$BASE_TAG" >>"$BUILD_LOG" 2>&1 \
            || die "docker import failed (log: $BUILD_LOG)"
    fi
    log "building $DEB_TAG (apt inside the build, --network host)"
    t_b=$(date +%s.%N)
    "$DOCKER" build --network host --build-arg "BASE=$BASE_TAG" \
        --label "runbook-test.recipe=$DEB_HASH" --label runbook-test.image=debian \
        -t "$DEB_TAG" "$DEB_DIR" >>"$BUILD_LOG" 2>&1 \
        || { tail -n 20 "$BUILD_LOG" >&2; die "building $DEB_TAG failed (log: $BUILD_LOG)"; }
    log "built $DEB_TAG in $(elapsed "$t_b") s"
fi
"$DOCKER" tag "$DEB_TAG" runbook-test/debian:latest
phase_done images

# ---------------------------------------------------------------- users and sudo
# rbtest is a machine-wide user: one generated password for every work dir, kept
# root-only in $PW_STORE and copied into the work dir.
PW_STORE=/var/lib/runbook-test/$TEST_USER.password
PW_FILE="$WORK/$TEST_USER.password"
if [[ ! -s $PW_STORE ]]; then
    mkdir -p "$(dirname "$PW_STORE")" && chmod 700 "$(dirname "$PW_STORE")"
    pw=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    ( umask 077; printf '%s\n' "rb${pw:0:22}" > "$PW_STORE" )
fi
cmp -s "$PW_STORE" "$PW_FILE" || install -m 0600 "$PW_STORE" "$PW_FILE"
TEST_PW=$(head -n1 "$PW_FILE")
id "$TEST_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$TEST_USER"
id "$NOPW_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$NOPW_USER"
# sshd with UsePAM no checks /etc/shadow itself; "!" would mean locked, "*" only "no password"
printf '%s:%s\n' "$TEST_USER" "$TEST_PW" | chpasswd
[[ $(getent shadow "$NOPW_USER" | cut -d: -f2) == '*' ]] || usermod -p '*' "$NOPW_USER"
SUDOERS=/etc/sudoers.d/runbook-test
sudo_tmp=$(mktemp)
cat > "$sudo_tmp" <<EOF
# Written by runbook tests/infra/setup.sh: users for become tests.
# $TEST_USER: sudo with its own password, asked every time; $NOPW_USER: sudo without one.
Defaults:$TEST_USER lecture=never, timestamp_timeout=0
Defaults:$NOPW_USER lecture=never
$TEST_USER ALL=(ALL:ALL) ALL
$NOPW_USER ALL=(ALL:ALL) NOPASSWD: ALL
EOF
mkdir -p /etc/sudoers.d
if ! cmp -s "$sudo_tmp" "$SUDOERS"; then
    visudo -cf "$sudo_tmp" >/dev/null || { rm -f "$sudo_tmp"; die "generated sudoers file is invalid"; }
    install -m 0440 "$sudo_tmp" "$SUDOERS"
fi
rm -f "$sudo_tmp"
grep -Eq '^[@#]includedir[[:space:]]+/etc/sudoers.d' /etc/sudoers \
    || die "/etc/sudoers does not include /etc/sudoers.d"
phase_done users

# ---------------------------------------------------------------- sshd fleet
mkdir -p /run/sshd && chmod 755 /run/sshd
KEY="$WORK/client/id_ed25519"
[[ -s $KEY ]] || ssh-keygen -q -t ed25519 -N '' -C runbook-test -f "$KEY"
chmod 600 "$KEY"
install -m 0644 "$KEY.pub" "$WORK/authorized_keys"

is_ours() {   # pid name -> alive (not a zombie) and running our config
    local pid=$1 name=$2
    [[ -r /proc/$pid/stat ]] || return 1
    grep -q ') Z ' "/proc/$pid/stat" 2>/dev/null && return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$SD/$name.conf"
}
descendants() {   # pid -> its descendants' pids
    ps -eo pid=,ppid= | awk -v root="$1" '{ kids[$2] = kids[$2] " " $1 }
        END { n = split(kids[root], q, " "); while (n > 0) { p = q[n]; n--; print p;
              m = split(kids[p], c, " "); for (i = 1; i <= m; i++) q[++n] = c[i] } }'
}
stop_sshd() {   # name: the listener and its sessions
    local name=$1 pid kids
    [[ -s $SD/$name.pid ]] || return 0
    pid=$(<"$SD/$name.pid")
    if is_ours "$pid" "$name"; then
        kill -STOP "$pid" 2>/dev/null || true
        kids=$(descendants "$pid")
        # shellcheck disable=SC2086
        kill -KILL "$pid" $kids 2>/dev/null || true
        for _ in $(seq 1 40); do [[ -r /proc/$pid/stat ]] && ! grep -q ') Z ' "/proc/$pid/stat" || break; sleep 0.05; done
    fi
    rm -f "$SD/$name.pid"
}
write_conf() {   # name port password-auth(yes|no) -> $SD/name.conf.new
    local name=$1 port=$2 pwauth=$3
    cat > "$SD/$name.conf.new" <<EOF
# runbook test sshd "$name" (written by tests/infra/setup.sh)
Port $port
ListenAddress 127.0.0.1
HostKey $WORK/hostkeys/$name
PidFile $SD/$name.pid
AuthorizedKeysFile $WORK/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication $pwauth
KbdInteractiveAuthentication no
PermitEmptyPasswords no
UsePAM no
StrictModes no
UseDNS no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
X11Forwarding no
PrintMotd no
PrintLastLog no
MaxStartups 200
MaxSessions 100
LoginGraceTime 30
LogLevel INFO
AcceptEnv LANG LC_* RUNBOOK_*
Subsystem sftp internal-sftp
SetEnv SHLVL=1
EOF
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start_sshd() {   # name port
    local name=$1 port=$2 rc=0
    "$SSHD" -t -f "$SD/$name.conf" || die "sshd config $SD/$name.conf is invalid"
    rm -f "$SD/$name.pid"
    # without -D sshd binds, then daemonizes and writes its PidFile
    "$SSHD" -f "$SD/$name.conf" -E "$SD/$name.log" </dev/null >/dev/null 2>&1 9>&- || rc=$?
    if (( rc != 0 )); then
        tail -n 5 "$SD/$name.log" >&2 || true
        die "sshd $name on 127.0.0.1:$port did not start (exit $rc; port in use?) log: $SD/$name.log"
    fi
    STARTED+=("$name")
}

declare -a NAMES=() PORTS=() STARTED=()
for i in $(seq 1 "$N"); do NAMES+=("$(printf 't%02d' "$i")"); PORTS+=($((BASE_PORT + i - 1))); done
NAMES+=(pwd); PORTS+=("$PWD_PORT")

# stop sshd we run that are no longer wanted (RUNBOOK_TEST_SSHD shrank)
for f in "$SD"/*.pid; do
    [[ -e $f ]] || continue
    name=$(basename "$f" .pid)
    want=0; for n in "${NAMES[@]}"; do [[ $n == "$name" ]] && want=1; done
    [[ $want == 1 ]] || { log "stopping unwanted sshd $name"; stop_sshd "$name"; }
done

for idx in "${!NAMES[@]}"; do
    name=${NAMES[$idx]} port=${PORTS[$idx]}
    pwauth=no; [[ $name == pwd ]] && pwauth=yes
    hk="$WORK/hostkeys/$name"
    [[ -s $hk ]] || ssh-keygen -q -t ed25519 -N '' -C "runbook-test-$name" -f "$hk"
    write_conf "$name" "$port" "$pwauth"
    running=0
    if [[ -s $SD/$name.pid ]] && is_ours "$(<"$SD/$name.pid")" "$name"; then running=1; fi
    if [[ $running == 1 ]] && cmp -s "$SD/$name.conf.new" "$SD/$name.conf" && port_open "$port"; then
        rm -f "$SD/$name.conf.new"
        continue
    fi
    [[ $running == 1 ]] && stop_sshd "$name"
    mv "$SD/$name.conf.new" "$SD/$name.conf"
    start_sshd "$name" "$port"
done

# wait for every pid file and port, then record fingerprints and known_hosts
KH_TMP="$WORK/known_hosts.tmp"
: > "$KH_TMP"
declare -A PIDS=() FPS=()
for idx in "${!NAMES[@]}"; do
    name=${NAMES[$idx]} port=${PORTS[$idx]} ok=0
    for _ in $(seq 1 100); do
        if [[ -s $SD/$name.pid ]] && port_open "$port"; then ok=1; break; fi
        sleep 0.05
    done
    [[ $ok == 1 ]] || die "sshd $name did not come up on 127.0.0.1:$port (log: $SD/$name.log)"
    PIDS[$name]=$(<"$SD/$name.pid")
    is_ours "${PIDS[$name]}" "$name" || die "pid ${PIDS[$name]} in $SD/$name.pid is not sshd $name"
    FPS[$name]=$(ssh-keygen -lf "$WORK/hostkeys/$name.pub" | awk '{print $2}')
    echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$WORK/hostkeys/$name.pub")" >> "$KH_TMP"
done
mv "$KH_TMP" "$WORK/known_hosts"
chmod 644 "$WORK/known_hosts"
phase_done sshd

# ---------------------------------------------------------------- infra.json
js() {   # JSON string
    local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"
}
tool_json() {
    local first=1 t p
    printf '{'
    for t in prometheus promtool prometheus-alertmanager amtool docker-compose busybox debootstrap sudo; do
        p=$(command -v "$t" 2>/dev/null || true)
        [[ -n $p ]] || continue
        [[ $first == 1 ]] || printf ', '
        first=0
        printf '%s: %s' "$(js "$t")" "$(js "$p")"
    done
    printf '}'
}
host_json() {   # name port
    local name=$1 port=$2
    printf '{"name": %s, "address": "127.0.0.1", "port": %d, "host_key_fingerprint": %s, "pid_file": %s, "config": %s, "log": %s' \
        "$(js "$name")" "$port" "$(js "${FPS[$name]}")" "$(js "$SD/$name.pid")" \
        "$(js "$SD/$name.conf")" "$(js "$SD/$name.log")"
}
{
    printf '{\n  "version": 1,\n  "work_dir": %s,\n  "created": %s,\n' "$(js "$WORK")" "$(js "$(date -u +%FT%TZ)")"
    printf '  "docker": {"host": %s, "api_version": %s, "started_by_setup": %s, "label": "runbook-test=1",\n' \
        "$(js "$DOCKER_HOST_URL")" "$(js "$DOCKER_API")" "$([[ -n $DOCKERD_PID ]] && echo true || echo false)"
    printf '             "images": {"busybox": %s, "debian": %s}},\n' "$(js "$BB_TAG")" "$(js "$DEB_TAG")"
    printf '  "ssh": {\n    "key_file": %s,\n    "public_key_file": %s,\n    "known_hosts": %s,\n    "user": "root",\n    "hosts": [\n' \
        "$(js "$KEY")" "$(js "$KEY.pub")" "$(js "$WORK/known_hosts")"
    last=$(( ${#NAMES[@]} - 2 ))
    for idx in $(seq 0 "$last"); do
        printf '      %s}%s\n' "$(host_json "${NAMES[$idx]}" "${PORTS[$idx]}")" "$([[ $idx == "$last" ]] && echo '' || echo ',')"
    done
    printf '    ],\n    "password_host": %s, "user": %s, "password_file": %s}\n  },\n' \
        "$(host_json pwd "$PWD_PORT")" "$(js "$TEST_USER")" "$(js "$PW_FILE")"
    printf '  "users": {"sudo_password": {"name": %s, "password_file": %s}, "sudo_nopasswd": {"name": %s}},\n' \
        "$(js "$TEST_USER")" "$(js "$PW_FILE")" "$(js "$NOPW_USER")"
    printf '  "tools": %s,\n' "$(tool_json)"
    printf '  "started_pids": {"dockerd": %s, "sshd": {' "${DOCKERD_PID:-null}"
    first=1
    for name in "${NAMES[@]}"; do
        [[ $first == 1 ]] || printf ', '
        first=0
        printf '%s: %d' "$(js "$name")" "${PIDS[$name]}"
    done
    printf '}}\n}\n'
} > "$WORK/infra.json.tmp"
mv "$WORK/infra.json.tmp" "$WORK/infra.json"
phase_done json

# ---------------------------------------------------------------- summary
{
    echo "setup: ready in $(elapsed "$T0") s  (work dir $WORK)"
    for t in "${TIMINGS[@]}"; do echo "  $t"; done
    echo "  docker    $DOCKER_HOST_URL api $DOCKER_API $([[ -n $DOCKERD_PID ]] && echo "(started by setup, pid $DOCKERD_PID)" || echo "(already running)")"
    echo "  images    $BB_TAG  $DEB_TAG"
    echo "  sshd      $N fleet on 127.0.0.1:$BASE_PORT-$((BASE_PORT + N - 1)) + password sshd :$PWD_PORT (${#STARTED[@]} (re)started)"
    echo "  users     $TEST_USER (sudo with password, $PW_FILE), $NOPW_USER (sudo NOPASSWD)"
    echo "  infra     $WORK/infra.json"
}
