#!/usr/bin/env bash
# The C benchmark, by hand (not in CI; the test command only builds it):
#   bash benches/c/run.sh               build, run, print the ratios
#   bash benches/c/run.sh --build-only  build only
# Measures, in one run: evq_push from C against the Rust push of the same
# event (the FFI overhead; goal <= 1.2x), and evq_push_raw / evq_try_pop
# against Concurrency Kit's ck_ring SPMC on the same 48-byte payload (push
# cost, and one producer to one consumer); ck's MPMC push is printed beside
# it. Needs libck-dev. About 40 s: five alternating rounds of both programs
# (EVQ_BENCH_ROUNDS=N for another count). Run it with nothing else busy (on
# a shared machine, under whatever lock keeps other timed runs out). On 2 cores expect
# noise of 10-20 %, more for one producer to one consumer (both cores busy).
set -euo pipefail
# A bench that fails inside `$(...)` below must stop the script, not leave a
# round out of the medians.
shopt -s inherit_errexit
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
# The C and the Rust side are two processes. On a shared VM the machine can
# change between one and the next, so they run in alternation, ROUNDS times
# (order flipped each round): each figure below is the median over the
# rounds, and each FFI ratio the median of the per-round ratios.
rounds=${EVQ_BENCH_ROUNDS:-5}
case "$rounds" in '' | *[!0-9]* | 0) echo "EVQ_BENCH_ROUNDS must be a positive integer" >&2; exit 2 ;; esac
runs=$(for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then
    "$out/bench" | sed "s/^/$r /"
    target/release/examples/push_bench | sed "s/^/$r /"
  else
    target/release/examples/push_bench | sed "s/^/$r /"
    "$out/bench" | sed "s/^/$r /"
  fi
done)
printf '%s\n' "$runs" | awk '
  function median(list,    n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function range(list,    n, a, i, lo, hi) {
    n = split(list, a, " "); lo = hi = a[1]
    for (i = 2; i <= n; i++) { if (a[i] + 0 < lo + 0) lo = a[i]; if (a[i] + 0 > hi + 0) hi = a[i] }
    return sprintf("%.2f %.2f", lo, hi)
  }
  NF == 4 { v[$2] = v[$2] " " $3; unit[$2] = $4; at[$1, $2] = $3; if (!($2 in seen)) { seen[$2]; order[++names] = $2 } }
  END {
    for (i = 1; i <= names; i++) printf "%s %.2f %s\n", order[i], median(v[order[i]]), unit[order[i]]
    for (r = 1; (r, "c_push_event") in at; r++) {
      ev = ev " " at[r, "c_push_event"] / at[r, "rust_push_event"]
      raw = raw " " at[r, "c_push_raw"] / at[r, "rust_push_raw"]
    }
    printf "rounds %d count\n", r - 1
    printf "ffi_event_ratio %.2f x\nffi_event_ratio_range %s x\n", median(ev), range(ev)
    printf "ffi_raw_ratio %.2f x\nffi_raw_ratio_range %s x\n", median(raw), range(raw)
    m["ce"] = median(v["c_push_event"]); m["re"] = median(v["rust_push_event"])
    printf "\nFFI overhead, event push:  C %.2f ns / Rust %.2f ns (medians of %d rounds); per-round ratio median %.2fx, range %s (goal <= 1.2x)\n", m["ce"], m["re"], r - 1, median(ev), range(ev)
    printf "FFI overhead, raw push:    per-round ratio median %.2fx, range %s\n", median(raw), range(raw)
    cr = median(v["c_push_raw"]); ck = median(v["ck_push"]); cj = median(v["c_push_raw_reject"])
    km = median(v["ck_push_mpmc"]); e1 = median(v["evq_1p1c"]); k1 = median(v["ck_1p1c"])
    printf "push vs ck_ring SPMC:      evq_push_raw %.2f ns / ck %.2f ns = %.2fx (<= 1 is faster)\n", cr, ck, cr / ck
    printf "                           evq_push_raw, reject %.2f ns / ck %.2f ns = %.2fx\n", cj, ck, cj / ck
    printf "push vs ck_ring MPMC:      evq_push_raw, reject %.2f ns / ck %.2f ns = %.2fx\n", cj, km, cj / km
    printf "1 producer -> 1 consumer:  evq %.2f / ck %.2f Mevents/s = %.2fx (>= 1 is faster)\n", e1, k1, e1 / k1
  }'
