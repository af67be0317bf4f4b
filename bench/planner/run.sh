#!/usr/bin/env bash
# Builds and runs the waterline planner benchmark. Usage: bench/planner/run.sh <builddir>
# [flags] (flags go to planner_bench: --days N, --units N, --repeats N). Ends with the
# RESULT lines.
set -euo pipefail
BUILD="${1:-build}"
shift || true
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_build "$BUILD" planner_bench
"$BUILD/bench/planner/planner_bench" "$@"
