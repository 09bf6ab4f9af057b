#!/usr/bin/env bash
# The real-server suite in one command: install what is missing (into the cache directory),
# start the servers, run `cargo test -p vllm-client-suite --test real_servers` (a missing server fails it), and
# stop every server this script started, even on failure. Servers that were already running
# (started by an earlier start.sh) are left running.
#   scripts/real/run-tests.sh [extra cargo test args, e.g. -- --nocapture]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
cd "$here/../.."

# What runs before we start: those we do not stop.
before=" "
for f in "$RUN_DIR"/pids/*.pid; do
  [ -e "$f" ] || continue
  name="$(basename "$f" .pid)"
  if running_pid "$name" >/dev/null; then before="$before$name "; fi
done

cleanup() {
  local f name
  for f in "$RUN_DIR"/pids/*.pid; do
    [ -e "$f" ] || continue
    name="$(basename "$f" .pid)"
    case "$before" in *" $name "*) continue ;; esac
    stop_service "$name"
  done
  if [ "$before" = " " ]; then rm -f "$RUN_DIR/env"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM # exit through the EXIT trap: the servers are stopped on a signal too

"$here/start.sh" --fleet
VLLM_REAL_SERVERS_REQUIRED=1 VLLM_REAL_ENV_FILE="$RUN_DIR/env" \
  cargo test -p vllm-client-suite --test real_servers "$@"

# The user's main job, unchanged: the quickstart against llama-server, and through LiteLLM.
env_value() { grep "^$1=" "$RUN_DIR/env" | cut -d= -f2-; }
log "quickstart against llama-server"
VLLM_BASE_URL="$(env_value VLLM_REAL_LLAMA_URL)" cargo run --quiet --example quickstart
log "quickstart through the LiteLLM proxy"
VLLM_BASE_URL="$(env_value VLLM_REAL_LITELLM_URL)" VLLM_API_KEY="$(env_value VLLM_REAL_LITELLM_KEY)" \
  VLLM_MODEL=tiny-llama cargo run --quiet --example quickstart
