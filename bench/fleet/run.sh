#!/usr/bin/env bash
# Builds the operator and runs the fleet-scale benchmark.
#   bench/fleet/run.sh <builddir> [--5k] [--no-peer]     (make bench-fleet [ARGS=--5k])
# Starts its own local control planes (hack/controlplane.sh; needs the tools from
# `make tools`): 100 then 1000 kwok GPU nodes, two operator replicas each, then the peer
# (kube-scheduler + kube-controller-manager, built here on first use with
# hack/build-tools.sh kube-scheduler kube-controller-manager) twice on the 1000 nodes.
# --5k: 5000 nodes only (Waterline, then the peer). Everything it starts is stopped on
# exit. About 10 minutes on 2 cores (--5k: much longer). Ends with the RESULT lines.
# bench/fleet/fleet.sh describes what is measured; it runs alone on a prebuilt build dir.
set -euo pipefail
BUILD="${1:-build}"
shift || true
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_build "$BUILD" waterline-operator
peer=1
[[ "${FLEET_PEER:-1}" == 0 ]] && peer=0
for a in "$@"; do
  case "$a" in --no-peer) peer=0 ;; --peer) peer=1 ;; esac
done
((peer == 0)) || bash "$ROOT/hack/build-tools.sh" kube-scheduler kube-controller-manager
bash "$ROOT/bench/fleet/fleet.sh" "$BUILD" "$@"
