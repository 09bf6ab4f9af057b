#!/usr/bin/env bash
# The fleet's replicas (start.sh --fleet: llama-server replica-1..3 on 8011..8013, 2 slots
# each, /metrics), one at a time, by PID — for tests of a fleet that loses a replica, or that
# grows: replica 4 (8014) is a spare that start.sh leaves stopped, for a test to start and add
# at run time (and stop again):
#
#   replica.sh kill N     SIGKILL replica N (a crash: no graceful shutdown)
#   replica.sh stop N     stop it gracefully (SIGTERM)
#   replica.sh start N    start it again (idempotent) and wait until it is healthy
#   replica.sh pid N      print its PID (exit 1 when it is not running)
#   replica.sh url N      print its base URL
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"

[ $# = 2 ] || die "usage: replica.sh kill|stop|start|pid|url N"
n="$2"
port="$(replica_port "$n")"
name="replica-$n"
case "$1" in
  kill)
    pid="$(running_pid "$name")" || die "$name is not running"
    kill -KILL "$pid"
    while [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do sleep 0.05; done
    log "$name: killed (pid $pid)"
    ;;
  stop) stop_service "$name" ;;
  start)
    [ -x "$LLAMA_SERVER" ] && [ -f "$TINY_MODEL" ] || die "not installed: run start.sh --fleet first"
    start_replica "$n"
    wait_healthy "$name" "http://127.0.0.1:$port/health" 120
    ;;
  pid) running_pid "$name" ;;
  url) echo "http://127.0.0.1:$port/v1" ;;
  *) die "usage: replica.sh kill|stop|start|pid|url N" ;;
esac
