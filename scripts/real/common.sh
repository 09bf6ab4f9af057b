# Shared settings of the scripts/real/ scripts: pinned versions, cache and run directories.
# Sourced, not run. Everything lives OUTSIDE the repository, in the cache directory.

# Pinned versions (bump deliberately: the cache is keyed on them).
LLAMA_CPP_PYTHON_VERSION=0.3.36 # PyPI sdist that vendors llama.cpp's source
GGUF_VERSION=0.19.0             # PyPI `gguf`, writes the tiny model
NUMPY_VERSION=2.3.5
CMAKE_VERSION=4.4.5             # PyPI `cmake`, used only when no system cmake
LITELLM_VERSION=1.108.5          # PyPI `litellm[proxy]` (newer ones pin proxy extras PyPI lacks)
TINY_MODEL_REV=1                # bump when make_tiny_gguf.py changes its output
LLAMA_BUILD_REV=1               # bump when install.sh changes how llama-server is built

CACHE_DIR="${VLLM_CLIENT_CACHE:-$HOME/.cache/vllm-client-ci}"
RUN_DIR="${VLLM_REAL_RUN_DIR:-$CACHE_DIR/run}"

LLAMA_DIR="$CACHE_DIR/llama.cpp-$LLAMA_CPP_PYTHON_VERSION-b$LLAMA_BUILD_REV"
LLAMA_SERVER="$LLAMA_DIR/bin/llama-server"
TOOLS_VENV="$CACHE_DIR/venv-tools-gguf$GGUF_VERSION"
LITELLM_VENV="$CACHE_DIR/venv-litellm-$LITELLM_VERSION"
TINY_MODEL="$CACHE_DIR/models/tiny-llama-rev$TINY_MODEL_REV.gguf"

# Ports (127.0.0.1 only). 8000 is the seed page's `http://localhost:8000/v1`.
LLAMA_PORT="${VLLM_REAL_LLAMA_PORT:-8000}"
REPLICA_PORTS="${VLLM_REAL_REPLICA_PORTS:-8011 8012 8013}"
# Replicas start.sh does not start: a test starts one (replica.sh start 4) to add it at run time.
SPARE_REPLICA_PORTS="${VLLM_REAL_SPARE_REPLICA_PORTS:-8014}"
LITELLM_PORT="${VLLM_REAL_LITELLM_PORT:-4000}"

# Test-only keys: they guard servers on loopback that the scripts start, nothing else.
LLAMA_API_KEY_FILE="$RUN_DIR/llama-api-key"
LITELLM_MASTER_KEY_FILE="$RUN_DIR/litellm-master-key"

PYTHON="${PYTHON:-python3}"

log() { printf '[real] %s\n' "$*" >&2; }
die() { printf '[real] error: %s\n' "$*" >&2; exit 1; }

# ---- processes: started detached, tracked by PID file, stopped by that PID only ----

pid_file() { echo "$RUN_DIR/pids/$1.pid"; }

# Prints the PID of service $1 when its PID file names a live process that is still ours
# (its command line contains the marker we started it with); cleans up a stale PID file.
running_pid() {
  local f pid
  f="$(pid_file "$1")"
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] \
    && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(cat "$f.marker" 2>/dev/null || echo '#none#') "; then
    echo "$pid"
    return 0
  fi
  rm -f "$f" "$f.marker"
  return 1
}

port_in_use() { # port: is something listening on 127.0.0.1:port?
  "$PYTHON" - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

http_ok() { # url: does GET url answer 200?
  "$PYTHON" - "$1" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

# start_service NAME PORT MARKER CMD... — idempotent: a running NAME is kept. MARKER is a
# piece of the command line that identifies the process (a recycled PID does not match it).
start_service() {
  local name="$1" port="$2" marker="$3"
  shift 3
  mkdir -p "$RUN_DIR/pids" "$RUN_DIR/logs"
  local pid
  if pid="$(running_pid "$name")"; then
    log "$name: already running (pid $pid)"
    return 0
  fi
  if port_in_use "$port"; then
    die "$name: 127.0.0.1:$port is taken by a process these scripts did not start"
  fi
  local logf="$RUN_DIR/logs/$name.log"
  setsid "$@" >"$logf" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$(pid_file "$name")"
  echo "$marker" >"$(pid_file "$name").marker"
  log "$name: started (pid $pid, log $logf)"
}

# wait_healthy NAME HEALTH_URL TIMEOUT_SECS
wait_healthy() {
  local name="$1" url="$2" timeout="$3" waited=0
  while ! http_ok "$url"; do
    if ! running_pid "$name" >/dev/null; then
      tail -30 "$RUN_DIR/logs/$name.log" >&2 || true
      die "$name exited before it was healthy (log: $RUN_DIR/logs/$name.log)"
    fi
    if [ "$waited" -ge "$timeout" ]; then
      tail -30 "$RUN_DIR/logs/$name.log" >&2 || true
      die "$name: not healthy after ${timeout}s ($url)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "$name: healthy ($url)"
}

# stop_service NAME — SIGTERM the recorded PID, SIGKILL after 15 s; nothing else is touched.
stop_service() {
  local name="$1" pid i
  if ! pid="$(running_pid "$name")"; then
    rm -f "$(pid_file "$name")" "$(pid_file "$name").marker"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 150); do
    [ -e "/proc/$pid" ] || break
    sleep 0.1
  done
  if [ -e "/proc/$pid" ]; then
    log "$name: still alive after 15 s, SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$(pid_file "$name")" "$(pid_file "$name").marker"
  log "$name: stopped (pid $pid)"
}

secret() { # file: a random test key, created once (mode 0600)
  if [ ! -s "$1" ]; then
    mkdir -p "$(dirname "$1")"
    (umask 077 && "$PYTHON" -c 'import secrets; print("sk-test-" + secrets.token_hex(16))' >"$1")
  fi
  cat "$1"
}

# ---- llama-server instances ----

# -n bounds a request that sets no max_tokens (the tiny model never emits an end token).
llama_args=(-m "$TINY_MODEL" --host 127.0.0.1 --ctx-size 4096 --n-predict 48 --threads 1
  --alias tiny-llama --no-webui)

start_llama() { # name port extra-args...
  local name="$1" port="$2"
  shift 2
  start_service "$name" "$port" "--port $port" "$LLAMA_SERVER" "${llama_args[@]}" --port "$port" "$@"
}

replica_port() { # n (1-based; the spare ones after the fleet's) -> port
  local i=0 port
  for port in $REPLICA_PORTS $SPARE_REPLICA_PORTS; do
    i=$((i + 1))
    if [ "$i" = "$1" ]; then
      echo "$port"
      return 0
    fi
  done
  die "no replica $1 (ports: $REPLICA_PORTS, spare: $SPARE_REPLICA_PORTS)"
}

# A fleet replica: 2 slots and Prometheus metrics at /metrics.
start_replica() { # n
  start_llama "replica-$1" "$(replica_port "$1")" --parallel 2 --metrics
}
