#!/usr/bin/env bash
# The C and Python benchmarks, run once each, their figures written into
# BENCHMARKS.md (the block between the lang-tables markers) by
# scripts/lang_tables.py:
#   - benches/c/run.sh: evq_push from C against the Rust emit (FFI overhead)
#     and against Concurrency Kit's ck_ring, one producer to one consumer;
#     needs libck-dev (the test command installs it);
#   - python/bench/bench.py --json: emit against queue.Queue.put_nowait and
#     deque.append, and a pipeline of 8 workers against queue.Queue + threads,
#     in the venv target/pyvenv (made and the package reinstalled from
#     ./python here, so the figures are of this checkout).
# About 2 minutes (most of it building the Python extension). By hand, on a
# quiet machine; bench_all.sh calls it after the criterion benches.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=target/bench-extra
mkdir -p "$extra"

bash benches/c/run.sh >"$extra/c_bench.txt"

{ [ -x target/pyvenv/bin/python ] || python3 -m venv target/pyvenv; }
target/pyvenv/bin/pip install -q maturin
target/pyvenv/bin/pip install -q --force-reinstall --no-deps ./python
target/pyvenv/bin/python python/bench/bench.py --json >"$extra/python_bench.json"

python3 scripts/lang_tables.py "$extra/c_bench.txt" "$extra/python_bench.json" BENCHMARKS.md
