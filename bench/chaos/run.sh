#!/usr/bin/env bash
# Chaos benchmark. Usage: bench/chaos/run.sh <builddir> [--quick] [--seed N]
# (`make bench-chaos` runs it on build/). Builds waterline-operator and waterline-router,
# then bench/chaos/chaos.py (Python 3 standard library only) does the rest on its own
# local control plane (hack/controlplane.sh: etcd + kube-apiserver + kwok on loopback,
# needs the tools from `make tools`) with a kwok GPU fleet:
#   1. kill -9 of the operator at random moments (seeded) while ModelDeployments scale up
#      and PTUReservations activate, restarted each time; then convergence and the checks
#      (GPUs double-booked, duplicate workers, unconverged deployments);
#   2. kill -9 of the router under load, restarted each time (every request answered?);
#   3. PTU over-admission: hostile requests against a 100,000 tokens/min reservation;
#   4. worst-manifest churn: pod creations per minute of hostile ModelDeployments.
# Everything it starts is stopped on exit. Ends with RESULT lines, and a "GOAL MISSED"
# line per goal not met (exit status 0 unless the harness itself failed).
# Environment: CHAOS_SEED, CHAOS_KILLS (default 22; --quick: 6), CHAOS_ROUTER_KILLS (4),
# CHAOS_PTU_S (75), CHAOS_CHURN_S (120), CHAOS_CONVERGE_TIMEOUT (180), CHAOS_KEEP=1
# (keep the work directory), CHAOS_WORK_DIR (default ${TMPDIR:-/tmp}/chaos-bench).
# bench/chaos/chaos.py --help lists its flags; it runs alone on a prebuilt build dir.
set -euo pipefail
BUILD="${1:-build}"
shift || true
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck source=hack/lib.sh
source "$ROOT/hack/lib.sh"
wl_require_bin "$KUBE_APISERVER_BIN" "$ETCD_BIN" "$KWOK_BIN"
bench_build "$BUILD" waterline-operator waterline-router
exec python3 "$ROOT/bench/chaos/chaos.py" --root "$ROOT" --build "$BUILD" "$@"
