#!/usr/bin/env bash
# Builds and runs the response-cache benchmarks. Usage: bench/cache/run.sh <builddir> [flags]
#   1. cache_router_bench: the cache's added latency on a miss through the real router
#      (Exact and Semantic, beside the same deployment without a cache; the Semantic
#      figure less each request's embedding call, read from Server-Timing;
#      WL_CACHE_ROUTER_REQUESTS requests each, default 20000; about a minute).
#   2. cache_bench: the cache at 1M entries in one partition (lookup latency, bytes per
#      entry, the cache's own work on a miss) and a replayed multi-tenant request stream
#      (hit rate against the known repeat share, tokens saved, cross-tenant hits).
#      Flags (passed through): --entries N (default 1000000), --lookups N, --misses N,
#      --replay N, --tenants N, --seed N, --ef-search N, --ef-construction N, --m N. At the
#      default size it needs about 2.5 GiB of memory and 17 to 21 minutes on a 2-core
#      machine (the cache's one indexer thread builds the index, ~1 ms per entry).
# Ends with the RESULT lines of both.
set -euo pipefail
BUILD="${1:-build}"
shift || true
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_build "$BUILD" cache_router_bench cache_bench
"$BUILD/bench/cache/cache_router_bench"
"$BUILD/bench/cache/cache_bench" "$@"
