#!/usr/bin/env bash
# Runs every test of evqueue on a fresh machine: installs what it needs
# (rustup components and targets, nightly Miri; further down apt packages,
# cbindgen and a Python venv), then lint, unit and doc tests, proptests,
# no_std builds, loom models, Miri, the release stress test, the shared-memory
# ring across processes, the benches in test mode (and the Go side of the Nakama comparison), the C ABI (Linux,
# and Windows under Wine), the Redis bridge and the Python package. Prints
# each stage with its time, then "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
failures=()

stage() {
  local name=$1
  shift
  printf '\n=== %s\n' "$name"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    printf '=== %s: ok (%ss)\n' "$name" $((SECONDS - start))
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf '=== %s: FAILED (%ss)\n' "$name" $((SECONDS - start))
  fi
}

install_toolchains() {
  rustup component add rustfmt clippy &&
    rustup target add thumbv7em-none-eabihf x86_64-unknown-none &&
    if rustup run nightly rustc --version >/dev/null 2>&1; then
      rustup component add --toolchain nightly miri rust-src
    else
      rustup toolchain install nightly --profile minimal --component miri,rust-src
    fi
}

# A failed install fails everything after it; stop early with a clear message.
stage "install toolchains" install_toolchains || true
if [ "$failed" -ne 0 ]; then
  echo "0 passed, 1 failed"
  exit 1
fi

stage "rustfmt" cargo fmt --all -- --check
stage "clippy" cargo clippy --workspace --all-targets --all-features -- -D warnings
stage "clippy (no_std core)" cargo clippy -p evqueue --no-default-features -- -D warnings
stage "unit, doc and model tests" cargo test --workspace
stage "rustdoc, all features, warnings denied (broken links)" \
  env RUSTDOCFLAGS="-D warnings" cargo doc -p evqueue --all-features --no-deps
stage "cargo publish --dry-run -p evqueue (packages and builds the crate alone)" \
  cargo publish --dry-run -p evqueue --allow-dirty
stage "JSON ingestion (feature json): hostile corpus and doctests" \
  cargo test -p evqueue --features json -- json
stage "no_std build: thumbv7em-none-eabihf (32-bit, no 64-bit atomics)" \
  cargo build -p evqueue --no-default-features --target thumbv7em-none-eabihf
stage "no_std build: x86_64-unknown-none" \
  cargo build -p evqueue --no-default-features --target x86_64-unknown-none
stage "no_std build with alloc: thumbv7em-none-eabihf" \
  cargo build -p evqueue --no-default-features --features alloc --target thumbv7em-none-eabihf
# About 2 to 4 minutes on 2 cores (8 models, LOOM_MAX_PREEMPTIONS=2).
stage "loom models" env RUSTFLAGS="--cfg evqueue_loom" LOOM_MAX_PREEMPTIONS=2 \
  CARGO_TARGET_DIR=target/loom cargo test -p evqueue --release --test loom
# About 1-2 minutes: 16 schedules per test. Isolation off: one test reads the wall clock.
stage "miri (core unit tests)" env MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-many-seeds=0..16" \
  cargo +nightly miri test -p evqueue --features async --lib
stage "stress (release, 10M events)" cargo test -p evqueue --release --test stress -- --nocapture
stage "ordered keys (release, 1M keyed events over 100k keys)" cargo test -p evqueue --release --test keyed -- --nocapture
# A few seconds once built: subscribers as streams, recv_async, flush_async
# and shutdown_async under tokio and futures::executor; then the doctests
# with the feature (the async examples exist only with it, ~20 s), and the
# dispatcher tests again with the feature on (its hooks in the worker loop).
stage "async: tokio and futures executor" cargo test -p evqueue --features async --test async
stage "async: doctests with the feature" cargo test -p evqueue --features async --doc
stage "dispatcher tests with the async feature" cargo test -p evqueue --features async --test dispatcher
# A few seconds: feature shm (Linux). Create/open, a second process (this
# test binary re-run) producing while this one consumes with exact
# accounting, every refused open, O_EXCL, futex wake across processes, and
# 100 each of multi-producer, single-producer (Overwrite and Reject) and
# consumer processes killed with SIGKILL (about 10 s).
stage "shm: shared ring across processes" cargo test -p evqueue --features shm --test shm
# A few seconds: EventQueue::drain_shared. Handlers run on events pushed into
# a shared ring by this process and by another (this test binary re-run),
# with exact accounting on both sides; back-pressure into the shared ring;
# malformed and oversized payloads skipped; stop, drop and queue shutdown.
stage "shm: event queue draining a shared ring" cargo test -p evqueue --features shm --test drain
# Seconds: the `evqueue` tool (cli/) end to end: create, push from the test
# process, stats (Prometheus text), tail (JSON lines), push, remove. (Its
# `forward` tests need Redis: they print SKIPPED here and run for real in
# the Redis section below.)
stage "cli: evqueue create, stats, tail, push, remove" cargo test -p evqueue-cli
# About 1 minute on 2 cores (3 models of lane ownership, LOOM_MAX_PREEMPTIONS=2).
stage "loom models: lane ownership" env RUSTFLAGS="--cfg evqueue_loom" LOOM_MAX_PREEMPTIONS=2 \
  CARGO_TARGET_DIR=target/loom cargo test -p evqueue --release --test loom_lanes
# Recovering a dead multi-producer's ticket (SharedRing::recover, the next lap's
# takeover) over a stand-in for the shared ring's writer table (~5 s).
stage "loom models: dead-writer recovery" env RUSTFLAGS="--cfg evqueue_loom" LOOM_MAX_PREEMPTIONS=2 \
  CARGO_TARGET_DIR=target/loom cargo test -p evqueue --release --lib -- recovery_models
# Seconds: the dispatcher's parking protocol (no lost wake-up) on the real
# sleeper list, as lib unit tests (the protocol is crate-private).
stage "loom models: parking" env RUSTFLAGS="--cfg evqueue_loom" LOOM_MAX_PREEMPTIONS=2 \
  CARGO_TARGET_DIR=target/loom cargo test -p evqueue --release --lib -- park::loom_models
# Seconds once built (4 models): the async waiters' waker list (no lost
# wake-up) with the real Wake::pushed, as lib unit tests with the feature.
stage "loom models: async waiters" env RUSTFLAGS="--cfg evqueue_loom" LOOM_MAX_PREEMPTIONS=2 \
  CARGO_TARGET_DIR=target/loom cargo test -p evqueue --release --features async --lib -- waiter::loom_models
# The Nakama comparison builds its Go side (Debian's golang-go, ~20 s to install).
install_go() {
  command -v go >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null; }
}
if [ -d benches ]; then
  stage "install Go (the Nakama side of benches/benches/nakama.rs)" install_go
  stage "benches compile and run once" cargo test -p benches --benches
fi

# --- C ABI: header check, C/C++ tests under ASan+UBSan, packaging
# About 1 minute on 2 cores once apt packages, cbindgen and the release build
# are there; a first run adds apt (~20 s), `cargo install cbindgen` (~2 min)
# and the release build of core + ffi (~1 min).
install_c_deps() {
  local need=()
  for bin in gcc g++ make pkg-config cmake; do command -v "$bin" >/dev/null || need+=("$bin"); done
  [ -f /usr/include/ck_ring.h ] || need+=(libck-dev)
  [ ${#need[@]} -eq 0 ] && return 0
  # gcc brings libasan and libubsan; the package names match the commands.
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}
stage "ffi: install C toolchain, libck-dev, cmake" install_c_deps
stage "ffi: include/evqueue.h matches a fresh cbindgen run" bash ffi/gen-header.sh --verify
stage "ffi: C11 + C++17 tests (ASan+UBSan, dynamic and static), packaging" bash tests/c/run.sh

# --- fuzz targets: built with stable cargo, no coverage instrumentation
# (fuzzing itself is by hand: CONTRIBUTING.md), and each seed run once, so
# the targets do not rot. libfuzzer-sys needs the C++ compiler installed
# above. About 1 minute on 2 cores the first time, seconds after.
fuzz_smoke() (
  cd fuzz &&
    cargo build --bins &&
    ./target/debug/json_event corpus/json_event/* &&
    ./target/debug/shm_open corpus/shm_open/*
)
stage "fuzz targets build and run their seeds (json_event, shm_open)" fuzz_smoke

# --- C ABI on Windows: cross-built with Debian's mingw-w64, run under Wine
# About 20 s on 2 cores once built; a first run adds the rustup target, apt
# (mingw-w64 ~30 s, wine64 ~1 min) and the cross build of the crates (~30 s).
# Without Wine (its install failed) the script builds and links and says
# that it ran nothing.
install_windows_deps() {
  rustup target add x86_64-pc-windows-gnu || return 1
  local need=()
  command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
  command -v x86_64-w64-mingw32-g++-posix >/dev/null || need+=(g++-mingw-w64-x86-64)
  [ ${#need[@]} -eq 0 ] || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  } || return 1
  if ! command -v wine64 >/dev/null && [ ! -x /usr/lib/wine/wine64 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wine64 >/dev/null ||
      echo "wine64 did not install: the Windows programs will be built, not run"
  fi
}
stage "ffi windows: install rustup target, mingw-w64, wine64" install_windows_deps
stage "ffi windows: evqueue.dll + import library, C/C++ tests linked, run under Wine" bash tests/c/windows.sh

# --- forwarding and Redis Streams
# About 2 minutes on 2 cores once crates are cached: builds the `redis`
# feature, starts a throwaway redis-server (apt-get installs it when missing)
# on a free loopback port with no persistence, runs the Redis tests against it
# (one starts, kills and restarts a server of its own), the fan-in example as a
# smoke test, `evqueue forward` from a shared ring into the stream (cli/tests/
# forward.rs: 1000 events field for field, SIGTERM, overwritten counted; a
# few seconds), and always stops the server.
redis_tests() (
  dir=$(mktemp -d)
  trap 'scripts/redis-test-server.sh stop "$dir"; rm -rf "$dir"' EXIT
  url=$(scripts/redis-test-server.sh start "$dir") || exit 1
  export EVQUEUE_REDIS_URL=$url
  echo "redis-server at $EVQUEUE_REDIS_URL"
  cargo test -p evqueue --features redis --test redis -- --nocapture &&
    cargo test -p evqueue --features redis --doc forward &&
    cargo run -p evqueue --features redis --example redis_fanin -- "$url" 5000 &&
    cargo test -p evqueue-cli --test forward -- --nocapture
)
# (clippy with the redis feature: the workspace clippy stage runs --all-features)
stage "redis streams bridge and evqueue forward (real redis-server)" redis_tests

# --- HTTP front door (gateway/): real requests over loopback to a server on
# port 0 (good, bad, oversized, concurrent, a full Reject queue, /metrics)
# and the example as a process stopped by SIGTERM. About 5 s once built; the
# first build of hyper and tokio adds about a minute on 2 cores.
stage "http gateway: loopback requests and SIGTERM drain" cargo test -p evqueue-gateway

# --- python bindings
# The wheel as users get it: a build venv in target/pyvenv (maturin, and
# ziglang for `--zig`: linked against glibc 2.17 symbols; linked by the
# host's toolchain on glibc 2.36 the module needs GLIBC_2.34 for pthread_join,
# gettid, stat64) builds one abi3 wheel for
# CPython 3.10+, checked by maturin as manylinux_2_17. A fresh venv in
# target/pyvenv-wheel, created and used with PATH=/usr/bin:/bin (no cargo, no
# rustc) and `pip --only-binary :all:` (nothing built from source), installs
# it; then pytest, mypy --strict on a typed example and on the tests, mypy
# on wrong code (which must be rejected with exactly 7 errors), and stubtest
# of the stubs against the installed module. About 3 minutes the first time
# (pip downloads ziglang, 2m20s for the release build on 2 cores with crates
# cached), about 25 s afterwards.
python_setup() {
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  fi &&
    { [ -x target/pyvenv/bin/python ] || python3 -m venv target/pyvenv; } &&
    target/pyvenv/bin/pip install -q maturin ziglang
}
python_wheel() {
  rm -f target/wheels/evqueue-*.whl &&
    PATH="$PWD/target/pyvenv/bin:$PATH" maturin build --release -m python/Cargo.toml \
      --compatibility manylinux_2_17 --zig -o target/wheels
}
# Runs a command with no Rust toolchain on PATH (pip's own settings, such
# as certificates, stay in the environment).
norust() {
  env -u CARGO -u CARGO_HOME -u RUSTUP_HOME -u RUSTUP_TOOLCHAIN -u RUSTC PATH=/usr/bin:/bin "$@"
}
pywheel=target/pyvenv-wheel/bin
python_install_wheel() {
  local wheels=(target/wheels/evqueue-*-abi3-manylinux*.whl)
  if [ ${#wheels[@]} -ne 1 ] || [ ! -f "${wheels[0]}" ]; then
    echo "expected exactly one abi3 manylinux wheel in target/wheels: ${wheels[*]}"
    return 1
  fi
  if norust sh -c 'command -v cargo || command -v rustc'; then
    echo "cargo or rustc is on PATH=/usr/bin:/bin: the install would not prove anything"
    return 1
  fi
  rm -rf target/pyvenv-wheel &&
    norust python3 -m venv target/pyvenv-wheel &&
    norust $pywheel/pip install -q --only-binary :all: pytest pytest-timeout mypy "${wheels[0]}" &&
    (cd target && norust pyvenv-wheel/bin/python -c \
      'import evqueue, sys; assert evqueue.__file__.startswith(sys.prefix), evqueue.__file__; print("evqueue", evqueue.__file__)')
}
python_typing() {
  local mypy=(norust $pywheel/mypy --strict --cache-dir target/mypy-cache) out
  "${mypy[@]}" python/tests/typing/typed_example.py python/tests/test_evqueue.py python/tests/test_redis.py \
    python/tests/test_shared.py python/tests/conftest.py || return 1
  norust $pywheel/python python/tests/typing/typed_example.py || return 1
  out=$("${mypy[@]}" python/tests/typing/typed_wrong.py 2>&1)
  if ! grep -q '^Found 7 errors in 1 file' <<<"$out"; then
    printf '%s\nexpected mypy to reject typed_wrong.py with exactly 7 errors\n' "$out"
    return 1
  fi
  (cd target && norust pyvenv-wheel/bin/python -m mypy.stubtest evqueue)
}
stage "python: build venv (maturin, ziglang)" python_setup
stage "python: abi3 wheel, manylinux_2_17 (maturin build --release --zig)" python_wheel
stage "python: install the wheel in a fresh venv, no Rust on PATH" python_install_wheel
# A test that hangs fails after 120 s with every thread's stack printed.
# python/tests/test_shared.py builds tests/c/shared_producer.c against
# target/release/libevqueue.so (built by the C stage above) and runs it as a
# producer process beside a Python consumer; EVQUEUE_REQUIRE_C_PRODUCER=1
# turns a missing compiler or library into a failure instead of a skip.
stage "python: pytest (installed wheel; a C producer process and a Python consumer)" \
  norust env EVQUEUE_REQUIRE_C_PRODUCER=1 $pywheel/pytest -q -p no:cacheprovider --timeout 120 python/tests
stage "python: mypy --strict and stubtest (installed wheel)" python_typing
# The Python side of the Redis bridge against a throwaway server (~5 s).
python_redis() (
  dir=$(mktemp -d)
  trap 'scripts/redis-test-server.sh stop "$dir"; rm -rf "$dir"' EXIT
  EVQUEUE_REDIS_URL=$(scripts/redis-test-server.sh start "$dir") || exit 1
  export EVQUEUE_REDIS_URL
  norust $pywheel/pytest -q -p no:cacheprovider --timeout 120 -rs python/tests/test_redis.py
)
stage "python: forward_to_redis (real redis-server)" python_redis

# --- benchmarks: the report scripts that turn a bench run into
# BENCHMARKS.md tables (criterion, then C and Python), checked on synthetic
# data (tables, ratios, goals, bad inputs). A few seconds; needs only python3
# (no matplotlib).
bench_report_selftest() {
  if ! command -v python3 >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3 || return 1
  fi
  python3 scripts/plot_benches.py --self-test &&
    python3 scripts/lang_tables.py --self-test
}
stage "bench report script self-test" bench_report_selftest

printf '\n'
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
