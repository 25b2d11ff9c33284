#!/usr/bin/env bash
# Starts a local Synapse for trying the bridge by hand (the tests start their own).
# Usage: scripts/synapse/start.sh [REGISTRATION]   (default: ./registration.yaml from `matrix-instagram init`)
# Env: SYNAPSE_VENV (<repo>/.venv)  DATA (<repo>/.test-work/synapse)  PORT (8008)
#      SERVER_NAME (localhost)  SHARED_SECRET (dev_shared_secret)  LOG_LEVEL (INFO)
#      FRESH=1 wipes the data dir first: Synapse keeps an "appservice is down" flag in its database.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${SYNAPSE_VENV:-$REPO/.venv}"
DATA="${DATA:-$REPO/.test-work/synapse}"
PORT="${PORT:-8008}"
SERVER_NAME="${SERVER_NAME:-localhost}"
SHARED_SECRET="${SHARED_SECRET:-dev_shared_secret}"
LOG_LEVEL="${LOG_LEVEL:-INFO}"
REGISTRATION="$(realpath "${1:-registration.yaml}")"

[ -f "$REGISTRATION" ] || { echo "no registration at $REGISTRATION: run 'matrix-instagram init' first" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || { echo "no Synapse venv at $VENV: run scripts/synapse/install.sh" >&2; exit 1; }
if [ -f "$DATA/synapse.pid" ] && kill -0 "$(cat "$DATA/synapse.pid")" 2>/dev/null; then
  echo "synapse already running, pid $(cat "$DATA/synapse.pid")"; exit 0
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "port $PORT is already in use; refusing to start" >&2; exit 1
fi
[ "${FRESH:-0}" = 1 ] && rm -rf "$DATA"
mkdir -p "$DATA"
DATA="$(cd "$DATA" && pwd)"
render() {
  sed -e "s|@DATA@|$DATA|g" -e "s|@PORT@|$PORT|g" -e "s|@SERVER_NAME@|$SERVER_NAME|g" \
      -e "s|@SHARED_SECRET@|$SHARED_SECRET|g" -e "s|@LOG_LEVEL@|$LOG_LEVEL|g" \
      -e "s|@APP_SERVICE_CONFIG_FILES@|[\"$REGISTRATION\"]|g" "$HERE/$1" > "$DATA/$2"
}
render homeserver.yaml.tmpl homeserver.yaml
render log.yaml.tmpl log.yaml
CFG=(-c "$DATA/homeserver.yaml")
[ -f "$DATA/$SERVER_NAME.signing.key" ] || "$VENV/bin/python" -m synapse.app.homeserver "${CFG[@]}" --generate-keys
"$VENV/bin/python" -m synapse.app.homeserver "${CFG[@]}" >"$DATA/synapse.stdout" 2>&1 &
echo $! > "$DATA/synapse.pid"
for _ in $(seq 1 600); do
  if ! kill -0 "$(cat "$DATA/synapse.pid")" 2>/dev/null; then
    echo "synapse exited during startup:" >&2; tail -30 "$DATA/synapse.stdout" "$DATA/homeserver.log" >&2; exit 1
  fi
  if "$VENV/bin/python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/_matrix/client/versions', timeout=1)" 2>/dev/null; then
    echo "synapse up on http://127.0.0.1:$PORT (pid $(cat "$DATA/synapse.pid"), logs in $DATA)"
    echo "create a user: $VENV/bin/register_new_matrix_user -u alice -p alicepass --no-admin -k $SHARED_SECRET http://127.0.0.1:$PORT"
    exit 0
  fi
  sleep 0.1
done
echo "synapse did not answer within 60 s; see $DATA/homeserver.log" >&2; exit 1
