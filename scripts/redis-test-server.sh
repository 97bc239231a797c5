#!/usr/bin/env bash
# A throwaway redis-server for the tests and benchmarks: loopback only, a free
# port, no persistence, everything in one temp dir.
#
#   url=$(scripts/redis-test-server.sh start DIR)   # prints redis://127.0.0.1:PORT/
#   scripts/redis-test-server.sh stop DIR
#
# Installs redis-server with apt-get when it is not on PATH (sudo only when
# not root).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi

install_redis() {
  command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing redis-server with apt-get" >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools >&2
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

case "$cmd" in
start)
  install_redis
  mkdir -p "$dir"
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$dir" --logfile "$dir/redis.log" --daemonize no </dev/null >/dev/null 2>&1 &
    echo $! >"$dir/redis.pid"
    for _ in $(seq 100); do
      if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
        echo "$port" >"$dir/redis.port"
        echo "redis://127.0.0.1:$port/"
        exit 0
      fi
      kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null || break
      sleep 0.05
    done
    kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
  done
  echo "could not start redis-server (see $dir/redis.log)" >&2
  exit 1
  ;;
stop)
  if [ -f "$dir/redis.pid" ]; then
    pid=$(cat "$dir/redis.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/redis.pid"
  fi
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
