#!/usr/bin/env bash
# The demo, end to end, on a fresh Debian bookworm machine (as root) or a warm one:
#
#   1. .venv/ with runbook installed (python3 -m venv; pip install -e .), skipped when it
#      is there and setup.cfg/pyproject.toml have not changed since
#   2. the demo stack (bash demo/stack.sh up): builds the images (and, the first time,
#      installs and starts dockerd through tests/infra/setup.sh), starts the cache, the
#      app at version 1 and a worker, and waits until they are healthy
#   3. a real deploy from version 1 to 2 with runbooks/deploy.yml, recorded in the
#      default journal (~/.local/state/runbook/state.db)
#   4. checks that the app answers version 2, and says what to try next
#
# Idempotent: run again, it deploys 2 again (no change). Exit 0 only when the deploy
# succeeded and the app answers version 2.
#
# Environment: PYTHON (default python3), RUNBOOK_VENV (default .venv), DEMO_VERSION
# (default 2: the version deployed).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
VENV=${RUNBOOK_VENV:-$ROOT/.venv}
VERSION=${DEMO_VERSION:-2}
INVENTORY=inventory/local.yml
T0=$SECONDS

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
info() { printf '   %s\n' "$*"; }
die() { printf '\ndemo: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- 1. python environment
step "1/4 python environment ($VENV)"
command -v "$PY" >/dev/null || die "$PY not found (set PYTHON to a Python 3.10+ interpreter)"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$("$PY" --version 2>&1) is too old: runbook needs Python 3.10+"
if [[ ! -x $VENV/bin/python ]]; then
    info "creating $VENV"
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        # Debian's own python3 needs python3-venv for this
        rm -rf "$VENV"
        if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
            info "installing python3-venv"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        fi
        "$PY" -m venv "$VENV" || die "cannot create a virtualenv with $PY"
    fi
fi
stamp=$VENV/.runbook-installed
want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $VENV/bin/runbook ]] \
        && "$VENV/bin/python" -c 'import engine' 2>/dev/null; then
    info "runbook already installed (setup.cfg unchanged)"
else
    info "installing runbook (pip install -e .)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e . \
        || die "pip install -e . failed"
    echo "$want" > "$stamp"
fi
info "$("$VENV/bin/runbook" --version 2>/dev/null || echo runbook) at $VENV/bin/runbook"

# ---------------------------------------------------------------- 2. demo stack
step "2/4 demo stack (bash demo/stack.sh up: images, dockerd if needed, containers)"
bash demo/stack.sh up || die "the demo stack did not come up (see above; bash demo/stack.sh status)"

# ---------------------------------------------------------------- 3. deploy
step "3/4 deploy version $VERSION (runbook run runbooks/deploy.yml -i $INVENTORY -e version=$VERSION)"
deploy_rc=0
RUNBOOK_PLAIN=1 "$VENV/bin/runbook" run runbooks/deploy.yml -i "$INVENTORY" -e "version=$VERSION" \
    || deploy_rc=$?
[[ $deploy_rc == 0 ]] || die "the deploy failed (exit $deploy_rc): $VENV/bin/runbook history; runbook show <run-id>"

# ---------------------------------------------------------------- 4. check
step "4/4 check: the app answers version $VERSION"
url=$("$VENV/bin/python" - "$INVENTORY" <<'EOF'
import sys, yaml
print(yaml.safe_load(open(sys.argv[1]))["all"]["vars"]["app_url"])
EOF
)
answer=$("$VENV/bin/python" - "$url" <<'EOF'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/", timeout=5) as r:
    print(json.load(r).get("version"))
EOF
) || die "$url/ does not answer"
[[ $answer == "$VERSION" ]] || die "$url/ answers version $answer, not $VERSION"
info "$url/ answers version $answer"

cat <<EOF

Done in $((SECONDS - T0)) s: the demo app runs version $VERSION, deployed by runbooks/deploy.yml.

Try next (source .venv/bin/activate, or prefix with .venv/bin/):
  runbook run runbooks/deploy.yml -i $INVENTORY -e version=broken
        # app:broken fails its health gate; the deploy rolls back to version $VERSION (exit 1)
  runbook run runbooks/deploy.yml -i $INVENTORY -e version=broken -e canary=true
        # the same, but the broken build is caught beside the running one: no downtime
  runbook history                     # every run, who ran it, how it ended
  runbook show <run-id>               # one run's timeline, with the rollback
  runbook run runbooks/health-check.yml -i $INVENTORY
  runbook run runbooks/backup.yml -i $INVENTORY      # then: runbooks/restore.yml --yes
  runbook run runbooks/scale.yml -i $INVENTORY -e replicas=3
  docker stop demo-app; runbook run playbooks/api-down.yml -i $INVENTORY --yes
        # an incident playbook (one per alert in .metrics/alert_rules.yml)
  bash demo/stack.sh status           # the containers; bash demo/stack.sh down to remove them
EOF
