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

has_postgres_driver() {
  "$VENV/bin/python" -c 'import psycopg2' 2>/dev/null
}

if [ -x "$VENV/bin/python" ] && [ "$(installed_version)" = "$SYNAPSE_VERSION" ] && has_postgres_driver; then
  echo "matrix-synapse $SYNAPSE_VERSION already installed in $VENV"
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# psycopg2 (the binary wheel: nothing to build) for the relay bench's homeserver on PostgreSQL.
"$VENV/bin/pip" install --quiet --disable-pip-version-check "matrix-synapse==$SYNAPSE_VERSION" psycopg2-binary
echo "installed matrix-synapse $(installed_version) in $VENV"
