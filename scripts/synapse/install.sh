#!/usr/bin/env bash
# Installs the pinned Synapse into a Python virtualenv for the end-to-end tests.
# Idempotent: does nothing when the venv already holds the pinned version.
#   SYNAPSE_VENV   where the venv goes (default: <repo>/.venv, gitignored)
#   PYTHON         the interpreter used to create it (default: python3)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${SYNAPSE_VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3}"
# Pinned: the version the harness config (homeserver.yaml.tmpl) was checked against.
SYNAPSE_VERSION="1.163.2"

installed_version() {
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("matrix-synapse"))' 2>/dev/null || true
}

if [ -x "$VENV/bin/python" ] && [ "$(installed_version)" = "$SYNAPSE_VERSION" ]; then
  echo "matrix-synapse $SYNAPSE_VERSION already installed in $VENV"
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check "matrix-synapse==$SYNAPSE_VERSION"
echo "installed matrix-synapse $(installed_version) in $VENV"
