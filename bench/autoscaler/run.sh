#!/usr/bin/env bash
# Builds and runs the autoscaler benchmark. Usage: bench/autoscaler/run.sh <builddir> [flags]
# (flags go to autoscaler_bench: --sweep, --profile flat, --speed N, ...). Ends with the
# RESULT lines.
set -euo pipefail
BUILD="${1:-build}"
shift || true
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ ! -f "$BUILD/build.ninja" && ! -f "$BUILD/Makefile" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$BUILD" --target autoscaler_bench -j "${JOBS:-2}"
"$BUILD/bench/autoscaler/autoscaler_bench" "$@"
