#!/usr/bin/env bash
# Starts (idempotently) the real OpenAI-compatible servers of the real-server suite, all on
# 127.0.0.1, installing what is missing first (install.sh):
#
#   llama        llama-server, tiny model, no key       http://127.0.0.1:8000/v1 (the seed page's)
#   llama-auth   llama-server, tiny model, --api-key    http://127.0.0.1:8001/v1
#   llama-embed  llama-server, tiny model, --embeddings (mean pooling)  http://127.0.0.1:8002/v1
#   llama-rerank llama-server, tiny model, --reranking  http://127.0.0.1:8003/v1
#   litellm      LiteLLM proxy, master key              http://127.0.0.1:4000/v1
#                models: mock-gpt (mock_response), tiny-llama (-> llama), mock-rpm1 (rpm: 1)
#   litellm-keys LiteLLM proxy, one key limited to 1 request per 2 s window (custom auth)
#                                                        http://127.0.0.1:4001/v1
#   with --fleet: replica-1..3, llama-server --parallel 2 --metrics on 8011..8013 (replica.sh)
#
# Writes PID files, logs and an env file ($RUN_DIR/env, mode 0600, with the base URLs and the
# test keys) and waits until each server is healthy. Running it again keeps what runs.
# Stop everything with stop.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"

fleet=0
for arg in "$@"; do
  case "$arg" in
    --fleet) fleet=1 ;;
    *) die "usage: start.sh [--fleet]" ;;
  esac
done

"$here/install.sh" llama model litellm
mkdir -p "$RUN_DIR" && chmod 700 "$RUN_DIR"

llama_key="$(secret "$LLAMA_API_KEY_FILE")"
master_key="$(secret "$LITELLM_MASTER_KEY_FILE")"
limited_key="$(secret "$RUN_DIR/litellm-limited-key")"
LLAMA_AUTH_PORT="${VLLM_REAL_LLAMA_AUTH_PORT:-8001}"
LLAMA_EMBED_PORT="${VLLM_REAL_LLAMA_EMBED_PORT:-8002}"
LLAMA_RERANK_PORT="${VLLM_REAL_LLAMA_RERANK_PORT:-8003}"
LITELLM_KEYS_PORT="${VLLM_REAL_LITELLM_KEYS_PORT:-4001}"

start_llama llama "$LLAMA_PORT" --parallel 4 --metrics
start_llama llama-auth "$LLAMA_AUTH_PORT" --parallel 2 --api-key-file "$LLAMA_API_KEY_FILE"
# The tiny model as an embedding model (mean pooling) and as a reranker (rank pooling: the
# score is read from its hidden state; a random model gives arbitrary but real scores).
start_llama llama-embed "$LLAMA_EMBED_PORT" --parallel 2 --embeddings --pooling mean
start_llama llama-rerank "$LLAMA_RERANK_PORT" --parallel 2 --reranking
if [ "$fleet" = 1 ]; then
  i=0
  for port in $REPLICA_PORTS; do
    i=$((i + 1))
    start_replica "$i"
  done
fi

# LiteLLM: configs written here (the keys come from the environment, never from the file).
cat >"$RUN_DIR/litellm.yaml" <<YAML
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: openai/mock-gpt
      api_key: not-used
      mock_response: "Hello from the LiteLLM mock."
  - model_name: tiny-llama
    litellm_params:
      model: openai/tiny-llama
      api_base: http://127.0.0.1:$LLAMA_PORT/v1
      api_key: not-needed
  - model_name: mock-rpm1
    litellm_params:
      model: openai/mock-rpm1
      api_key: not-used
      mock_response: "rate limited mock"
      rpm: 1
router_settings:
  optional_pre_call_checks: ["enforce_model_rate_limits"]
litellm_settings:
  telemetry: false
  drop_params: true
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
YAML
cat >"$RUN_DIR/litellm-keys.yaml" <<YAML
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: openai/mock-gpt
      api_key: not-used
      mock_response: "Hello from the rate-limited LiteLLM mock."
litellm_settings:
  telemetry: false
general_settings:
  custom_auth: litellm_keys_auth.user_api_key_auth
YAML
cp "$here/litellm_keys_auth.py" "$RUN_DIR/litellm_keys_auth.py"

# No network at run time: the local model cost map, no telemetry. The keys reach LiteLLM
# through its environment only (never a command line that `ps` shows, nor a config file).
export LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False
export LITELLM_MASTER_KEY="$master_key" LITELLM_LIMITED_KEY="$limited_key" LITELLM_LIMITED_RPM=1
# The window of LiteLLM's rate limiter (default 60 s): 2 s, so that its 429 says
# `retry-after: 2` and a test can wait it out.
export LITELLM_RATE_LIMIT_WINDOW_SIZE=2
start_service litellm "$LITELLM_PORT" "--port $LITELLM_PORT" \
  "$LITELLM_VENV/bin/litellm" --config "$RUN_DIR/litellm.yaml" \
  --host 127.0.0.1 --port "$LITELLM_PORT" --telemetry False
start_service litellm-keys "$LITELLM_KEYS_PORT" "--port $LITELLM_KEYS_PORT" \
  "$LITELLM_VENV/bin/litellm" --config "$RUN_DIR/litellm-keys.yaml" \
  --host 127.0.0.1 --port "$LITELLM_KEYS_PORT" --telemetry False
unset LITELLM_MASTER_KEY LITELLM_LIMITED_KEY

wait_healthy llama "http://127.0.0.1:$LLAMA_PORT/health" 120
wait_healthy llama-auth "http://127.0.0.1:$LLAMA_AUTH_PORT/health" 120
wait_healthy llama-embed "http://127.0.0.1:$LLAMA_EMBED_PORT/health" 120
wait_healthy llama-rerank "http://127.0.0.1:$LLAMA_RERANK_PORT/health" 120
fleet_urls=""
if [ "$fleet" = 1 ]; then
  i=0
  for port in $REPLICA_PORTS; do
    i=$((i + 1))
    wait_healthy "replica-$i" "http://127.0.0.1:$port/health" 120
    fleet_urls="$fleet_urls${fleet_urls:+ }http://127.0.0.1:$port/v1"
  done
fi
wait_healthy litellm "http://127.0.0.1:$LITELLM_PORT/health/liveliness" 300
wait_healthy litellm-keys "http://127.0.0.1:$LITELLM_KEYS_PORT/health/liveliness" 300

(
  umask 077
  cat >"$RUN_DIR/env.tmp" <<ENV
# Written by scripts/real/start.sh; read by tests/real_servers.rs. Test-only keys.
VLLM_REAL_LLAMA_URL=http://127.0.0.1:$LLAMA_PORT/v1
VLLM_REAL_LLAMA_AUTH_URL=http://127.0.0.1:$LLAMA_AUTH_PORT/v1
VLLM_REAL_LLAMA_AUTH_KEY=$llama_key
VLLM_REAL_LLAMA_EMBED_URL=http://127.0.0.1:$LLAMA_EMBED_PORT/v1
VLLM_REAL_LLAMA_RERANK_URL=http://127.0.0.1:$LLAMA_RERANK_PORT/v1
VLLM_REAL_LITELLM_URL=http://127.0.0.1:$LITELLM_PORT/v1
VLLM_REAL_LITELLM_KEY=$master_key
VLLM_REAL_LITELLM_KEYS_URL=http://127.0.0.1:$LITELLM_KEYS_PORT/v1
VLLM_REAL_LITELLM_LIMITED_KEY=$limited_key
VLLM_REAL_FLEET_URLS=$fleet_urls
ENV
  mv "$RUN_DIR/env.tmp" "$RUN_DIR/env"
)
log "env file: $RUN_DIR/env"
grep '_URL' "$RUN_DIR/env" | grep -v '^#'
