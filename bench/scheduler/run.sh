#!/usr/bin/env bash
# Builds and runs the scheduler benchmark. Usage: bench/scheduler/run.sh <builddir> [--quick]
# Ends with the RESULT lines.
set -euo pipefail
BUILD="${1:-build}"
shift || true
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ ! -f "$BUILD/build.ninja" && ! -f "$BUILD/Makefile" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$BUILD" --target scheduler_bench -j "${JOBS:-2}"
"$BUILD/bench/scheduler/scheduler_bench" "$@"
