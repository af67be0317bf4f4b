#!/usr/bin/env bash
# Builds and runs the scheduler benchmark. Ends with the RESULT lines.
# Usage: bench/scheduler/run.sh <builddir> [--quick] [--packing-nodes N]
#          synthetic throughput and packing runs, then the example trace in
#          bench/scheduler/examples/ (the trace_* RESULT lines);
#        bench/scheduler/run.sh <builddir> --nodes NODES.csv --pods PODS.csv [--samples OUT.csv]
#          only the given trace (format: docs/performance.md).
set -euo pipefail
BUILD="${1:-build}"
shift || true
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_build "$BUILD" scheduler_bench
BIN="$BUILD/bench/scheduler/scheduler_bench"
for a in "$@"; do
  if [[ "$a" == "--nodes" || "$a" == "--pods" ]]; then
    exec "$BIN" "$@"
  fi
done
"$BIN" "$@"
EX="$ROOT/bench/scheduler/examples"
"$BIN" --nodes "$EX/nodes.csv" --pods "$EX/pods.csv"
