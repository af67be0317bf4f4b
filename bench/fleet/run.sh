#!/usr/bin/env bash
# Builds the operator and runs the fleet-scale benchmark. Usage: bench/fleet/run.sh <builddir>
# Starts its own local control planes (hack/controlplane.sh; needs the tools from
# `make tools`), 100 then 1000 kwok GPU nodes, two operator replicas each; everything it
# starts is stopped on exit. About 5 to 10 minutes on 2 cores. Ends with the RESULT lines.
# bench/fleet/fleet.sh describes what is measured; it runs alone on a prebuilt build dir.
set -euo pipefail
BUILD="${1:-build}"
shift || true
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_build "$BUILD" waterline-operator
bash "$ROOT/bench/fleet/fleet.sh" "$BUILD"
