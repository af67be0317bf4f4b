#!/usr/bin/env bash
# Builds and runs the PTU multi-replica accuracy simulation. Usage: bench/ptu-shares/run.sh <builddir> [flags]
# Input: $WATERLINE_DATA_DIR (default ../shared/data next to the repository): the Mooncake trace (request
# sizes); without it, synthetic sizes. Simulated time only (a few seconds of CPU); ends with the RESULT lines.
set -euo pipefail
BUILD="${1:-build}"
shift || true
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_build "$BUILD" ptu_shares_bench
"$BUILD/bench/ptu-shares/ptu_shares_bench" --data-dir="${WATERLINE_DATA_DIR:-$ROOT/../shared/data}" "$@"
