#!/usr/bin/env bash
# Regenerates every benchmark figure in one command: runs all the criterion
# benches (`cargo bench -p benches`: core, dispatcher and peers, about 6
# minutes on 2 cores), records the machine and its load before and after,
# then rewrites the tables in BENCHMARKS.md and the two PNGs in
# benches/results/ (matplotlib in a venv under target/).
#
# Usage: bash scripts/bench_all.sh [criterion options...]
#   e.g. bash scripts/bench_all.sh --measurement-time 0.3 --warm-up-time 0.1   (a quick, noisy look)
# Run it on a quiet machine: the two-thread figures need both cores.
set -euo pipefail
cd "$(dirname "$0")/.."

extra=target/bench-extra
mkdir -p "$extra"
load() { cut -d' ' -f1-3 /proc/loadavg; }
model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
{
  echo "machine: ${model:-unknown CPU}, $(nproc) CPUs ($(uname -m), Linux $(uname -r))"
  echo "toolchain: $(rustc --version)"
  echo "started: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "load average (1, 5, 15 min) before: $(load)"
} >"$extra/machine.txt.new"

if [ "$#" -gt 0 ]; then
  cargo bench -p benches -- "$@"
else
  cargo bench -p benches
fi

echo "load average (1, 5, 15 min) after: $(load)" >>"$extra/machine.txt.new"
mv "$extra/machine.txt.new" "$extra/machine.txt"

if [ ! -x target/plotvenv/bin/python ] || ! target/plotvenv/bin/python -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv target/plotvenv
  target/plotvenv/bin/pip install --quiet matplotlib
fi
target/plotvenv/bin/python scripts/plot_benches.py

# The C and Python benches, into BENCHMARKS.md's lang-tables block.
bash scripts/bench_langs.sh
