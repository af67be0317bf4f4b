#!/usr/bin/env bash
# Builds and runs the autoscaler benchmark. Usage: bench/autoscaler/run.sh <builddir> [flags]
# (flags go to autoscaler_bench: --sweep, --profile flat, --speed N, ...). Ends with the
# RESULT lines.
set -euo pipefail
BUILD="${1:-build}"
shift || true
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_build "$BUILD" autoscaler_bench
"$BUILD/bench/autoscaler/autoscaler_bench" "$@"
