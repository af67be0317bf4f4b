#!/usr/bin/env bash
# Builds and runs the scheduler benchmark. Usage: bench/scheduler/run.sh <builddir> [--quick]
# Ends with the RESULT lines.
set -euo pipefail
BUILD="${1:-build}"
shift || true
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_build "$BUILD" scheduler_bench
"$BUILD/bench/scheduler/scheduler_bench" "$@"
