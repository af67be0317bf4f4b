#!/usr/bin/env bash
# The integration-test environment, started once per `ctest` run by the CTest fixture
# `controlplane` (tests/CMakeLists.txt):
#   tests/integration/env.sh up DIR    control plane (etcd, kube-apiserver, kwok) in DIR,
#                                      our CRDs (Established), the operator namespace and
#                                      the small kwok GPU-node fixture
#   tests/integration/env.sh down DIR  stop everything
# Tests read DIR/kubeconfig from $WATERLINE_TEST_KUBECONFIG.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cmd="${1:?up|down}"
DIR="${2:?directory}"

case "$cmd" in
  up)
    bash "$ROOT/hack/controlplane.sh" up --dir "$DIR"
    export KUBECONFIG="$DIR/kubeconfig"
    kubectl apply --server-side -f "$ROOT/crds/" >/dev/null
    kubectl wait --for condition=Established --timeout=60s -f "$ROOT/crds/" >/dev/null
    kubectl create namespace waterline-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
    bash "$ROOT/hack/fixtures/gpu-nodes.sh" --kubeconfig "$KUBECONFIG" --profile small >/dev/null
    echo "integration environment up: KUBECONFIG=$KUBECONFIG"
    ;;
  down)
    bash "$ROOT/hack/controlplane.sh" down --dir "$DIR" --purge
    ;;
  *)
    echo "usage: $0 up|down DIR" >&2
    exit 2
    ;;
esac
