#!/usr/bin/env bash
# Builds and runs the response-cache benchmark. Usage: bench/cache/run.sh <builddir> [flags]
# Flags (passed through): --entries N (default 1000000), --lookups N, --misses N,
# --replay N, --tenants N, --seed N, --ef-search N, --ef-construction N, --m N. At the default size it needs about 2.5 GiB of memory
# and several minutes of one core (the hnswlib index is built serially). Ends with the
# RESULT lines.
set -euo pipefail
BUILD="${1:-build}"
shift || true
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_build "$BUILD" cache_bench
"$BUILD/bench/cache/cache_bench" "$@"
