#!/usr/bin/env bash
# Stops exactly what start.sh started: each PID recorded in $RUN_DIR/pids, nothing else.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
shopt -s nullglob
for f in "$RUN_DIR"/pids/*.pid; do
  stop_service "$(basename "$f" .pid)"
done
rm -f "$RUN_DIR/env"
