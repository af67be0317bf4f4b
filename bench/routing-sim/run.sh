#!/usr/bin/env bash
# Builds and runs the routing simulation. Usage: bench/routing-sim/run.sh <builddir> [routing_sim flags]
# Inputs: $WATERLINE_DATA_DIR (default ../shared/data next to the repository): the Mooncake trace and the
# Splitwise performance model. Simulated time only; ends with the RESULT lines.
set -euo pipefail
BUILD="${1:-build}"
shift || true
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_build "$BUILD" routing_sim
"$BUILD/bench/routing-sim/routing_sim" --data-dir="${WATERLINE_DATA_DIR:-$ROOT/../shared/data}" "$@"
