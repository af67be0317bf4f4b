#!/usr/bin/env bash
# Builds and runs the router abuse benchmark. Usage: bench/router-abuse/run.sh <builddir> [router_abuse_bench flags]
# Loopback only; bounded (default 30 s of abuse, under a minute in all). Ends with the RESULT lines.
set -euo pipefail
BUILD="${1:-build}"
shift || true
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_build "$BUILD" router_abuse_bench waterline-router
# 1,000 slow connections (and as many router-side sockets, upstream connections and
# pipes) need more than the usual 1,024 descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 8192 2>/dev/null || true
echo "router abuse bench: $(nproc) cores, fd limit $(ulimit -n), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
timeout 120 "$BUILD/bench/router-abuse/router_abuse_bench" --router-bin="$BUILD/operator/router/waterline-router" \
  --work-dir="${TMPDIR:-/tmp}" "$@"
