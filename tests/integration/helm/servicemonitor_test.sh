#!/usr/bin/env bash
# The chart's operator ServiceMonitor, scraped by a real Prometheus (Debian's prometheus
# package): the fleet gauges keep the namespace of the ModelDeployment they describe.
#
# prometheus-operator gives every target the `namespace` label of the Service it found
# (the operator's namespace). The gauges waterline_deployment_* carry their own
# `namespace` (the ModelDeployment's); without honorLabels Prometheus renames that one to
# exported_namespace and every deployment appears to live in the operator's namespace.
#
# Steps: the waterline-operator binary runs here against the `controlplane` fixture as a
# standby (a Lease that someone else holds: it reconciles nothing and writes nothing, but
# exports the fleet gauges from its caches), with a ModelDeployment in a namespace other
# than its own; the chart's ServiceMonitor is rendered (helm template, with a relabeling
# value set); a Prometheus scrape config is written from it the way prometheus-operator
# does (honor_labels from honorLabels, relabelings -> relabel_configs, metricRelabelings
# -> metric_relabel_configs, the target carrying namespace/service/endpoint labels), but
# every second instead of the ServiceMonitor's interval; Prometheus scrapes the operator;
# the series are queried over its HTTP API.
#
# A second scrape job of the same target with honor_labels: false is the control: there
# the deployment's namespace must appear as exported_namespace, which shows that the
# assertions on the first job can fail (they do when honorLabels is removed from
# templates/servicemonitor.yaml).
#
# Needs WATERLINE_TEST_KUBECONFIG and WATERLINE_OPERATOR_BIN (CTest sets both); skipped
# (77) without prometheus on PATH. CTest: helm.servicemonitor (RUN_SERIAL: the operator
# watches the whole fixture).
# jq programs are single-quoted on purpose ($vars are jq variables); ok never fails.
# shellcheck disable=SC2016,SC2015
# shellcheck source=tests/integration/helm/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
skip() { echo "SKIP: $*"; rm -rf "$TMP"; exit 77; }
[[ -n "${WATERLINE_TEST_KUBECONFIG:-}" ]] || skip "WATERLINE_TEST_KUBECONFIG is not set (run through ctest)"
PROMETHEUS="${PROMETHEUS:-prometheus}"
command -v "$PROMETHEUS" >/dev/null || skip "prometheus not found (Debian: apt-get install prometheus)"
OP_BIN="${WATERLINE_OPERATOR_BIN:-}"
[[ -x "$OP_BIN" ]] || { rm -rf "$TMP"; wl_die "WATERLINE_OPERATOR_BIN ('$OP_BIN') is not an executable: build the target waterline-operator"; }
command -v curl >/dev/null || { rm -rf "$TMP"; wl_die "curl missing"; }
export KUBECONFIG="$WATERLINE_TEST_KUBECONFIG"

suffix="$(date +%s)-$RANDOM"
OPNS="wl-sm-op-$suffix"   # the operator's (release) namespace
MDNS="wl-sm-md-$suffix"   # the ModelDeployment's namespace
MD="wl-sm-phi-$RANDOM"   # unique: other tests' ModelDeployments may be in the fixture
LEASE=wl-sm-test
op_pid="" prom_pid=""

cleanup() {
  set +e
  [[ -n "$op_pid" ]] && kill "$op_pid" 2>/dev/null && wait "$op_pid" 2>/dev/null
  [[ -n "$prom_pid" ]] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
  kc delete modeldeployment "$MD" -n "$MDNS" --ignore-not-found --wait=false >/dev/null 2>&1
  kc delete lease "$LEASE" -n "$OPNS" --ignore-not-found >/dev/null 2>&1
  # No namespace controller on the fixture: they stay Terminating until it stops.
  kc delete namespace "$OPNS" "$MDNS" --wait=false >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT
step() { echo "[$((SECONDS - T0))s] $*"; }

free_port() {
  local p
  for _ in $(seq 200); do
    p=$(((RANDOM * 32768 + RANDOM) % 20000 + 10000))
    wl_port_in_use "$p" || { echo "$p"; return 0; }
  done
  wl_die "no free port"
}

# ---------------------------------------------------------------- objects
step "namespaces $OPNS (operator) and $MDNS (ModelDeployment)"
kc create namespace "$OPNS" >/dev/null
kc create namespace "$MDNS" >/dev/null
now="$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)"
kc create -f - >/dev/null <<EOF
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: $LEASE
  namespace: $OPNS
spec:
  holderIdentity: someone-else
  leaseDurationSeconds: 3600
  acquireTime: "$now"
  renewTime: "$now"
EOF
sed "s/^  name: phi-3-mini\$/  name: $MD/" "$ROOT/deploy/samples/modeldeployment-phi-fractional.yaml" | kc create -n "$MDNS" -f - >/dev/null
[[ "$(kc get modeldeployment "$MD" -n "$MDNS" -o name)" == "modeldeployment.waterline.dev/$MD" ]] || wl_die "ModelDeployment $MD not created"

# ---------------------------------------------------------------- operator
op_port="$(free_port)"
step "waterline-operator on 127.0.0.1:$op_port (standby: $OPNS/$LEASE is held by someone else)"
"$OP_BIN" --kubeconfig "$KUBECONFIG" --bind-address="127.0.0.1:$op_port" \
  --leader-elect=true --leader-election-namespace="$OPNS" --leader-election-id="$LEASE" \
  --identity=wl-sm-test --lease-duration=3600s --renew-deadline=10s --retry-period=2s \
  --routing-heartbeat-namespace="$OPNS" >"$TMP/operator.log" 2>&1 &
op_pid=$!
ready=false
for _ in $(seq 120); do
  if curl -fsS "http://127.0.0.1:$op_port/readyz" >/dev/null 2>&1; then ready=true; break; fi
  kill -0 "$op_pid" 2>/dev/null || break
  sleep 0.5
done
if ! $ready; then
  bad "operator not ready within 60 s; log: $(tail -n 20 "$TMP/operator.log")"
  finish; exit 1
fi
ok

# ---------------------------------------------------------------- ServiceMonitor -> scrape config
helm template wl "$CHART" --namespace "$OPNS" --kube-version "$KUBE_VER" --api-versions monitoring.coreos.com/v1 \
  --set monitoring.serviceMonitor.enabled=true \
  --set 'monitoring.serviceMonitor.relabelings[0].targetLabel=cluster' \
  --set 'monitoring.serviceMonitor.relabelings[0].replacement=wl-sm-cluster' \
  --show-only templates/servicemonitor.yaml | yaml_to_json >"$TMP/sm.json"
jqcheck "one ServiceMonitor, one endpoint on port metrics" "$TMP/sm.json" \
  'length == 1 and .[0].kind == "ServiceMonitor" and (.[0].spec.endpoints | length) == 1 and .[0].spec.endpoints[0].port == "metrics"'
prom_port="$(free_port)"
# What prometheus-operator generates for endpoint 0 of the ServiceMonitor, with the
# kubernetes_sd discovery replaced by one static target whose labels are those its
# relabelings derive from the Endpoints (namespace, service, endpoint, container).
jq --arg target "127.0.0.1:$op_port" --arg ns "$OPNS" '
  def relabel: map(with_entries(
      .key |= ({sourceLabels: "source_labels", targetLabel: "target_label"}[.] // .) |
      if .key == "action" then .value |= ascii_downcase else . end));
  .[0] as $sm | $sm.spec.endpoints[0] as $ep |
  def job($name; $honor): {
      job_name: $name, honor_labels: $honor, metrics_path: $ep.path,
      scrape_interval: "1s", scrape_timeout: "1s",
      static_configs: [{targets: [$target], labels: {
        namespace: $ns, service: ($sm.metadata.name + "-metrics"), endpoint: $ep.port, container: "operator"}}],
      relabel_configs: (($ep.relabelings // []) | relabel),
      metric_relabel_configs: (($ep.metricRelabelings // []) | relabel)};
  {global: {scrape_interval: "1s", evaluation_interval: "1s"},
   scrape_configs: [job("servicemonitor"; $ep.honorLabels // false), job("control"; false)]}' \
  "$TMP/sm.json" >"$TMP/prometheus.yml"
check "promtool check config" promtool check config "$TMP/prometheus.yml"

step "prometheus on 127.0.0.1:$prom_port"
"$PROMETHEUS" --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$TMP/prometheus.log" 2>&1 &
prom_pid=$!

# q <PromQL>: the result vector of an instant query, as JSON.
q() { curl -fsS "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" | jq -c '.data.result'; }
# Wait for both jobs' first scrapes of the deployment's gauges.
have=false
for _ in $(seq 120); do
  if [[ "$(q 'count by (job) (waterline_deployment_info{deployment="'"$MD"'"})' 2>/dev/null | jq 'length' 2>/dev/null)" == 2 ]]; then
    have=true; break
  fi
  kill -0 "$prom_pid" 2>/dev/null || break
  sleep 0.5
done
if ! $have; then
  bad "no waterline_deployment_info for $MD from both jobs within 60 s; prometheus: $(tail -n 5 "$TMP/prometheus.log"); targets: $(curl -fsS "http://127.0.0.1:$prom_port/api/v1/targets" | jq -c '[.data.activeTargets[] | {job: .labels.job, health, lastError}]' 2>&1)"
  finish; exit 1
fi
ok

# qcheck <description> <PromQL> <jq boolean on the result vector>
qcheck() {
  local what="$1" query="$2" expr="$3" got
  got="$(q "$query")" || { bad "$what: query failed: $query"; return; }
  if jq -e "$expr" <<<"$got" >/dev/null; then ok; else bad "$what: $query gave $got"; fi
}
step "queries"
qcheck "waterline_deployment_* of $MD carry the deployment's namespace $MDNS" \
  'count by (__name__, namespace) ({__name__=~"waterline_deployment_.+", job="servicemonitor", deployment="'"$MD"'"})' \
  'length >= 2 and all(.metric.namespace == "'"$MDNS"'")'
qcheck "no waterline_deployment_* series in the operator's namespace" \
  'count({__name__=~"waterline_deployment_.+", job="servicemonitor", namespace="'"$OPNS"'"})' 'length == 0'
qcheck "no exported_namespace on any series of the ServiceMonitor's job" \
  'count({job="servicemonitor", exported_namespace!=""})' 'length == 0'
qcheck "series without a namespace of their own get the target's (operator's) namespace" \
  'waterline_leader_is_leader{job="servicemonitor"}' 'length == 1 and .[0].metric.namespace == "'"$OPNS"'" and .[0].value[1] == "0"'
qcheck "the ServiceMonitor's relabelings applied (cluster label)" \
  'count by (cluster) ({job="servicemonitor"})' 'length == 1 and .[0].metric.cluster == "wl-sm-cluster"'
qcheck "control (honor_labels: false): the namespace is overwritten, the deployment's moved to exported_namespace" \
  'waterline_deployment_info{job="control", deployment="'"$MD"'"}' \
  'length == 1 and .[0].metric.namespace == "'"$OPNS"'" and .[0].metric.exported_namespace == "'"$MDNS"'"'

finish
