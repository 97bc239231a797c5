#!/usr/bin/env bash
# Events per second through the evqueue Redis forwarder into a local
# redis-server, against redis-benchmark's own XADD figure on the same server
# (the ceiling). Run by hand (about a minute once built):
#
#   scripts/bench_redis.sh [events] [batch]
#
# Starts its own throwaway server (scripts/redis-test-server.sh), so it needs
# nothing running. Each figure is the best of ROUNDS (default 5) runs. The
# XADD entries redis-benchmark sends have the same shape as the forwarder's
# (name, ts, ext, one property). Numbers on a shared or busy machine are
# noisy: run it twice and compare.
set -euo pipefail
cd "$(dirname "$0")/.."

events=${1:-200000}
batch=${2:-256}
dir=$(mktemp -d)
trap 'scripts/redis-test-server.sh stop "$dir"; rm -rf "$dir"' EXIT
url=$(scripts/redis-test-server.sh start "$dir")
port=$(cat "$dir/redis.port")
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') at $url"

cargo build -q --release -p evqueue --features redis --example redis_bench

rounds=${ROUNDS:-5}
xadd=(XADD bench-stream '*' name tick ts 1700000000000000000 ext 0 p:i 12345)
best() { sort -g | tail -1; }
ceiling() { # clients pipeline label
  local rps
  rps=$(for _ in $(seq "$rounds"); do
    redis-benchmark -p "$port" -c "$1" -P "$2" -n "$events" -q "${xadd[@]}" |
      tr '\r' '\n' | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1
    redis-cli -p "$port" del bench-stream >/dev/null
  done | best)
  printf '%-48s %10.0f events/s\n' "$3" "$rps" >&2
  echo "$rps"
}
ours() { # VAR=value for the example's environment (EVQUEUE_BENCH_QUEUE is only a label)
  local rps
  rps=$(for _ in $(seq "$rounds"); do
    env "$@" target/release/examples/redis_bench "$url" "$events" "$batch" |
      sed -n 's/.* = \([0-9]*\) events\/s.*/\1/p'
  done | best)
  echo "$rps"
}

echo "best of $rounds rounds of $events events each"
one=$(ceiling 1 "$batch" "redis-benchmark XADD, 1 connection, -P $batch")
many=$(ceiling 50 "$batch" "redis-benchmark XADD, 50 connections, -P $batch")
queue=$(ours EVQUEUE_BENCH_QUEUE=1)
printf '%-48s %10.0f events/s\n' "evqueue queue + forwarder, batch $batch" "$queue"
direct=$(ours EVQUEUE_BENCH_DIRECT=1)
printf '%-48s %10.0f events/s\n' "evqueue forwarder alone (no queue), batch $batch" "$direct"
awk -v o="$queue" -v d="$direct" -v a="$one" -v b="$many" 'BEGIN {
  printf "ratio (queue + forwarder): %.2f of the 1-connection ceiling, %.2f of the 50-connection one\n", o / a, o / b
  printf "ratio (forwarder alone):   %.2f of the 1-connection ceiling, %.2f of the 50-connection one\n", d / a, d / b }'
