#!/usr/bin/env bash
# The local demo: a control plane with simulated GPU nodes in three regions and two data
# zones, the CRDs and samples, and the operator reconciling them.
#
#   hack/demo.sh run    bring everything up, show the result, tear it down (make demo)
#   hack/demo.sh up     bring everything up and leave it running   (make demo-up)
#   hack/demo.sh down   stop the operator and the control plane    (make demo-down)
#
# State lives in $WATERLINE_CACHE_DIR/demo (default ~/.cache/waterline/demo).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "$ROOT/hack/lib.sh"
BUILD="${BUILD:-$ROOT/build}"
DEMO_DIR="${WL_DEMO_DIR:-$WATERLINE_CACHE_DIR/demo}"
CP_DIR="$DEMO_DIR/controlplane"
OPERATOR="$BUILD/operator/main/waterline-operator"
export KUBECONFIG="$CP_DIR/kubeconfig"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

operator_pid() { [[ -f "$DEMO_DIR/operator.pid" ]] && kill -0 "$(cat "$DEMO_DIR/operator.pid")" 2>/dev/null && cat "$DEMO_DIR/operator.pid"; }

up() {
  [[ -x "$OPERATOR" ]] || wl_die "$OPERATOR missing: run make build"
  mkdir -p "$DEMO_DIR"
  say "Control plane (etcd + kube-apiserver + kwok) on loopback"
  bash "$ROOT/hack/controlplane.sh" up --dir "$CP_DIR"
  say "CRDs"
  kubectl apply --server-side -f "$ROOT/crds/"
  kubectl wait --for condition=Established --timeout=60s -f "$ROOT/crds/" >/dev/null
  kubectl create namespace waterline-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  say "Simulated GPU nodes (kwok): eu-west, eu-north (EU), us-east (US)"
  bash "$ROOT/hack/fixtures/gpu-nodes.sh" --profile demo
  # The sample H100 pools in eu-west select nodes labelled for them.
  for n in $(kubectl get nodes -l topology.kubernetes.io/region=eu-west,waterline.dev/shape=h100 -o name); do
    kubectl label --overwrite "$n" waterline.dev/pool=h100-eu-west >/dev/null
  done
  kubectl get nodes -L topology.kubernetes.io/region,nvidia.com/gpu.product,nvidia.com/gpu.count
  say "Operator (leader election on, metrics on 127.0.0.1:18080)"
  if ! operator_pid >/dev/null; then
    "$OPERATOR" --kubeconfig "$KUBECONFIG" --bind-address 127.0.0.1:18080 --identity demo \
      >"$DEMO_DIR/operator.log" 2>&1 &
    echo $! >"$DEMO_DIR/operator.pid"
  fi
  for _ in $(seq 1 60); do
    curl -fs http://127.0.0.1:18080/readyz >/dev/null 2>&1 && break
    sleep 0.5
  done
  curl -fs http://127.0.0.1:18080/readyz >/dev/null || { tail -20 "$DEMO_DIR/operator.log"; wl_die "operator not ready"; }
  echo "operator ready (pid $(operator_pid), log $DEMO_DIR/operator.log)"
  say "Samples: pools, model deployments, reservations"
  kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply -n demo -k "$ROOT/deploy/samples"
  say "Waiting for the operator to observe every pool"
  for _ in $(seq 1 60); do
    pending=$(kubectl get cpool -o json | jq '[.items[] | select(.status.observedGeneration != .metadata.generation)] | length')
    [[ "$pending" == 0 ]] && break
    sleep 0.5
  done
  say "kubectl get waterline -A"
  kubectl get waterline -A
  say "Pool conditions"
  kubectl get cpool -o json | jq -r '.items[] | .metadata.name as $n | .status.conditions[]? | "\($n)\t\(.type)=\(.status)\t\(.reason)\t\(.message)"' | column -t -s $'\t'
  say "Events"
  kubectl get events -A --sort-by=.lastTimestamp | tail -15
  say "Leader lease and operator metrics"
  kubectl -n waterline-system get lease waterline-operator -o jsonpath='{.spec.holderIdentity}{"\n"}'
  curl -s http://127.0.0.1:18080/metrics | grep -E '^waterline_(leader_is_leader|controller_reconcile_total)' || true
  echo
  echo "KUBECONFIG=$KUBECONFIG"
}

down() {
  if pid=$(operator_pid); then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$DEMO_DIR/operator.pid"
  [[ -d "$CP_DIR" ]] && bash "$ROOT/hack/controlplane.sh" down --dir "$CP_DIR" --purge
  echo "demo stopped"
}

case "${1:-run}" in
  up) up ;;
  down) down ;;
  run)
    trap down EXIT
    up
    ;;
  *) echo "usage: $0 run|up|down" >&2; exit 2 ;;
esac
