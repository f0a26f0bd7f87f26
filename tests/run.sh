#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a warm one:
#   installs what it needs (Debian packages, a virtualenv with the project),
#   starts the real test infrastructure (dockerd, test images, sshd fleet),
#   runs every test.  Tests that need docker or sshd never skip here: a missing
#   piece fails the run.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CI="${CI:-1}"                  # integration tests must fail, not skip, without infra
export RUNBOOK_REQUIRE_INFRA=1
PY="${PYTHON:-python3}"
VENV="${RUNBOOK_VENV:-$ROOT/.venv}"

step() { printf '\n== %s\n' "$*"; }

step "python environment ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
stamp="$VENV/.runbook-test-installed"
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[test]"
    touch "$stamp"
fi
"$VENV/bin/python" --version

step "test infrastructure (dockerd, images, sshd fleet)"
bash tests/infra/setup.sh

step "tests"
export PATH="$VENV/bin:$PATH"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
