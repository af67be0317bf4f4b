#!/usr/bin/env bash
# Builds and runs the router overhead benchmark. Usage: bench/router/run.sh <builddir> [router_bench flags]
# Loopback only; bounded (default: 3 rounds x 2 s per path at 10k req/s, then 3 s closed loop).
# Ends with the RESULT lines.
set -euo pipefail
BUILD="${1:-build}"
shift || true
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_build "$BUILD" router_bench waterline-router
PIN=()
CPUS=$(nproc)
if command -v taskset >/dev/null 2>&1 && [[ "$CPUS" -ge 2 ]]; then
  # Router alone on the last core; load generator and upstream on the one before.
  PIN=(--router-cpu=$((CPUS - 1)) --client-cpu=$((CPUS - 2)))
else
  echo "router bench: taskset unavailable or one core: not pinning"
fi
echo "router bench: $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/bench/router/router_bench" --router-bin="$BUILD/operator/router/waterline-router" \
  --work-dir="${TMPDIR:-/tmp}" "${PIN[@]}" "$@"
