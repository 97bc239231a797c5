#!/usr/bin/env bash
# The C benchmark, by hand (not in CI; the test command only builds it):
#   bash benches/c/run.sh               build, run, print the ratios
#   bash benches/c/run.sh --build-only  build only
# Measures, in one run: evq_push from C against the Rust push of the same
# event (the FFI overhead; goal <= 1.2x), and evq_push_raw / evq_try_pop
# against Concurrency Kit's ck_ring SPMC on the same 48-byte payload (push
# cost, and one producer to one consumer); ck's MPMC push is printed beside
# it. Needs libck-dev. About 6 s; run it with nothing else busy (on a shared
# machine, under whatever lock keeps other timed runs out). On 2 cores expect
# noise of 10-20 %, more for one producer to one consumer (both cores busy).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/c-bench
mkdir -p "$out"
# The library too: building the example alone does not refresh libevqueue.a.
cargo build --release -p evqueue-ffi --lib --example push_bench --quiet
# Statically linked: the call goes straight to evq_push (no PLT stub).
gcc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude benches/c/bench.c -o "$out/bench" \
  target/release/libevqueue.a -lck -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
if [ "${1:-}" = "--build-only" ]; then
  echo "benches/c built: $out/bench"
  exit 0
fi
c=$("$out/bench")
rust=$(target/release/examples/push_bench)
echo "$c"
echo "$rust"
val() { printf '%s\n%s\n' "$c" "$rust" | awk -v k="$1" '$1 == k { print $2 }'; }
awk -v ce="$(val c_push_event)" -v re="$(val rust_push_event)" \
  -v cr="$(val c_push_raw)" -v rr="$(val rust_push_raw)" -v ck="$(val ck_push)" \
  -v cj="$(val c_push_raw_reject)" -v km="$(val ck_push_mpmc)" \
  -v e1="$(val evq_1p1c)" -v k1="$(val ck_1p1c)" 'BEGIN {
  printf "\nFFI overhead, event push:  C %.2f ns / Rust %.2f ns = %.2fx (goal <= 1.2x)\n", ce, re, ce / re
  printf "FFI overhead, raw push:    C %.2f ns / Rust %.2f ns = %.2fx\n", cr, rr, cr / rr
  printf "push vs ck_ring SPMC:      evq_push_raw %.2f ns / ck %.2f ns = %.2fx (<= 1 is faster)\n", cr, ck, cr / ck
  printf "                           evq_push_raw, reject %.2f ns / ck %.2f ns = %.2fx\n", cj, ck, cj / ck
  printf "                           evq_push (event) %.2f ns / ck %.2f ns = %.2fx\n", ce, ck, ce / ck
  printf "push vs ck_ring MPMC:      evq_push_raw, reject %.2f ns / ck %.2f ns = %.2fx\n", cj, km, cj / km
  printf "1 producer -> 1 consumer:  evq %.2f / ck %.2f Mevents/s = %.2fx (>= 1 is faster)\n", e1, k1, e1 / k1
}'
