#!/usr/bin/env bash
# Stops the Synapse started by start.sh, by its recorded pid only.
# Stop Synapse BEFORE the bridge: Synapse remembers an unreachable appservice as down.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
DATA="${DATA:-$REPO/.test-work/synapse}"
PIDF="$DATA/synapse.pid"
[ -f "$PIDF" ] || { echo "no pid file at $PIDF"; exit 0; }
PID="$(cat "$PIDF")"
if kill -0 "$PID" 2>/dev/null; then
  kill -TERM "$PID"
  for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$PID" 2>/dev/null && kill -KILL "$PID"
fi
rm -f "$PIDF"
echo "stopped synapse $PID"
