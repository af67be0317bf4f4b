#!/usr/bin/env bash
# The chart's RBAC against what the code really calls, from the real apiserver's audit log
# (CTest: helm.rbac_audit; the `controlplane` fixture, whose hack/controlplane.sh logs every
# ServiceAccount request at Metadata level to DIR/logs/audit.log).
#
# 1. Renders the chart (release wl in a fresh namespace; router with membership on,
#    metrics.secure on) and applies its ServiceAccounts, ClusterRoles, Roles, bindings,
#    namespaces and the node-patch ValidatingAdmissionPolicy.
# 2. Runs the real waterline-operator and waterline-router as the chart's ServiceAccounts
#    (a token from `kubectl create token`, a kubeconfig with it), with a fake Prometheus
#    (fake_prometheus.py: one fatal XID, one autoscaler metric), and drives a scenario that
#    takes every path needing a right: leader Lease, heartbeat Lease, CapacityPool status,
#    ModelDeployment workers on kwok nodes (create, AlreadyExists + get, drain patch,
#    delete), autoscaler spec patch, PTUReservation finalizer + status + reclaim eviction,
#    RoutingTable apply/get/delete, XID node annotation, Events (create, count patch),
#    router membership Lease (get, create, update, list, delete on a clean stop).
# 3. Reads the audit log of the two ServiceAccounts:
#      missing: any request answered 403;
#      unused:  any (role, verb, group, resource[/subresource]) the chart grants that no
#               request used, except the short ALLOW list below (each with its reason).
#    A server-side apply answered 201 created the object: it also used `create`.
# 4. The node-patch policy as the operator's account: the XID annotation may change, a
#    label or a taint may not. The router's account cannot touch the operator's Leases.
# shellcheck disable=SC2016,SC2015
# shellcheck source=tests/integration/helm/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
if [[ -z "${WATERLINE_TEST_KUBECONFIG:-}" ]]; then
  echo "SKIP: WATERLINE_TEST_KUBECONFIG is not set (run through ctest, or hack/controlplane.sh up)"
  rm -rf "$TMP"
  exit 77
fi
export KUBECONFIG="$WATERLINE_TEST_KUBECONFIG"
OPERATOR_BIN="${WATERLINE_OPERATOR_BIN:-$ROOT/build/operator/main/waterline-operator}"
ROUTER_BIN="${WATERLINE_ROUTER_BIN:-$ROOT/build/operator/router/waterline-router}"
AUDIT_DIR="${WL_AUDIT_DIR:-$(dirname "$WATERLINE_TEST_KUBECONFIG")/logs}"
[[ -x "$OPERATOR_BIN" && -x "$ROUTER_BIN" ]] || wl_die "waterline-operator / waterline-router not built ($OPERATOR_BIN, $ROUTER_BIN)"
command -v python3 >/dev/null || wl_die "python3 missing (the fake Prometheus)"
if [[ ! -f "$AUDIT_DIR/audit.log" ]]; then
  echo "SKIP: no audit log in $AUDIT_DIR: the control plane runs without it (WL_CP_AUDIT=false, or started before" \
    "hack/controlplane.sh had audit logging: restart it)"
  rm -rf "$TMP"
  exit 77
fi

# Verbs the chart grants that this scenario cannot reach, each with why it stays.
# Key: "<role kind>/<role name without the release prefix> <verb> <group>/<resource>".
declare -A ALLOW=(
  # metrics.secure (rendered on here): the authenticated /metrics endpoint reviews the
  # scraper's token and its right to /metrics; no scraper calls it in this scenario.
  ["ClusterRole/* create authentication.k8s.io/tokenreviews"]="metrics.secure: TokenReview of a scraper's bearer token"
  ["ClusterRole/* create authorization.k8s.io/subjectaccessreviews"]="metrics.secure: SubjectAccessReview of a scraper's right to /metrics"
)

NS="wl-rbac-$(date +%s)-$RANDOM"
REL=wl
FULL="$REL-waterline"
ROUTER="$FULL-router"
MNS="$NS-router-membership"
OPU="system:serviceaccount:$NS:$FULL"
RTU="system:serviceaccount:$NS:$ROUTER"
PREFIX="rb$RANDOM"
XID_NODE="$PREFIX-use-h100-0" # outside the pool: the reservation keeps its GPUs
FIXTURE=(bash "$ROOT/hack/fixtures/gpu-nodes.sh" --kubeconfig "$KUBECONFIG" --profile small --prefix "$PREFIX")
PIDS=()

cleanup() {
  set +e
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  kc delete -f "$TMP/apply.json" --wait=false --ignore-not-found >/dev/null 2>&1
  for r in $(kc get ptureservations.waterline.dev -n "$NS" -o name 2>/dev/null); do
    kc patch "$r" -n "$NS" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  done
  kc delete modeldeployments.waterline.dev,ptureservations.waterline.dev --all -n "$NS" --wait=false >/dev/null 2>&1
  kc delete pods --all -n "$NS" --grace-period=0 --force --wait=false >/dev/null 2>&1
  kc delete capacitypools.waterline.dev "$PREFIX-pool" "$PREFIX-dra" --wait=false >/dev/null 2>&1
  kc delete resourceclaims.resource.k8s.io --all -n "$NS" --wait=false >/dev/null 2>&1
  bash "$ROOT/hack/fixtures/dra-slices.sh" --kubeconfig "$KUBECONFIG" --delete \
    --selector "waterline.dev/fixture-prefix=$PREFIX,waterline.dev/shape=h100" >/dev/null 2>&1
  kc delete routingtables.waterline.dev -l "waterline.dev/deployment-namespace=$NS" --wait=false >/dev/null 2>&1
  "${FIXTURE[@]}" --delete >/dev/null 2>&1
  # No namespace controller here: the namespaces stay Terminating until the fixture stops.
  kc delete namespace "$NS" "$MNS" --wait=false >/dev/null 2>&1
  if ((FAILS)); then
    for f in operator router; do
      [[ -f "$TMP/$f.log" ]] && { echo "--- $f log (tail)"; tail -n 40 "$TMP/$f.log"; }
    done >&2
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
step() { echo "[$((SECONDS - T0))s] $*"; }
# eventually <seconds> <description> <command...>. A step that does not happen is a
# failure, but the scenario goes on (later steps wait 5 s at most), so that the audit log
# still tells which right was missing.
LATE=0
eventually() {
  local t="$1" what="$2" deadline
  shift 2
  ((LATE)) && t=5
  deadline=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then bad "not within ${t}s: $what"; LATE=1; return 0; fi
    sleep 0.5
  done
  ok
}
# audited <user> <verb> <requestURI regex>: the audit log holds such a request, allowed.
# The scenario waits on these where a path is taken only some time after its cause.
audited() {
  jq -e --arg u "$1" --arg v "$2" --arg re "$3" -n '
    any(inputs; .user.username == $u and .verb == $v and (.requestURI | test($re)) and
                .annotations["authorization.k8s.io/decision"] == "allow")' "$AUDIT_DIR"/audit*.log >/dev/null
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- the chart's RBAC
step "render the chart (router membership, metrics.secure) and apply its accounts and RBAC in $NS"
f="$(render rbac --namespace "$NS" --set router.enabled=true --set router.membership.enabled=true \
  --set router.membership.leaseDuration=3 --set metrics.secure=true)"
# render() passes --namespace wl-sys first; the later --namespace wins.
jq --arg ns "$NS" '{apiVersion: "v1", kind: "List", items: [.[] |
    select(.kind | IN("Namespace","ServiceAccount","ClusterRole","ClusterRoleBinding","Role","RoleBinding",
                      "ValidatingAdmissionPolicy","ValidatingAdmissionPolicyBinding")) |
    del(.metadata.annotations["wl-test/rendered"])]}' "$f" >"$TMP/apply.json"
jqcheck "rendered for $NS, membership Leases in $MNS" "$f" --arg ns "$NS" --arg m "$MNS" \
  'one("Role"; "wl-waterline-router-membership").metadata.namespace == $m and one("Role"; "wl-waterline-leader-election").metadata.namespace == $ns'
kc create namespace "$NS" >/dev/null
check "apply the chart's accounts, roles, bindings and policy" kc apply -f "$TMP/apply.json"

# Every (role, verb, group/resource, namespace, resourceNames, user) the chart grants.
jq '[ (map(select(.kind == "ClusterRoleBinding" or .kind == "RoleBinding"))) as $bs | .[] |
      select(.kind == "ClusterRole" or .kind == "Role") | . as $r |
      ($bs[] | select(.roleRef.kind == $r.kind and .roleRef.name == $r.metadata.name and
                      (.metadata.namespace // "") == ($r.metadata.namespace // "")) |
       .subjects[] | "system:serviceaccount:" + .namespace + ":" + .name) as $user |
      $r.rules | to_entries[] | .key as $i | .value as $rule |
      $rule.apiGroups[] as $g | $rule.resources[] as $res | $rule.verbs[] as $v |
      {role: ($r.kind + "/" + $r.metadata.name), rule: $i, ns: ($r.metadata.namespace // ""), user: $user,
       group: $g, resource: $res, verb: $v, names: ($rule.resourceNames // null)} ]' "$f" >"$TMP/granted.json"
jqcheck "the chart grants something to both accounts" "$TMP/granted.json" --arg o "$OPU" --arg r "$RTU" \
  '(map(select(.user == $o)) | length > 10) and (map(select(.user == $r)) | length > 3)'

kubeconfig_for() { # <service account> <file>
  local token server ca
  token="$(kc create token "$1" -n "$NS" --duration=2h)"
  server="$(kc config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')"
  ca="$(kc config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
  printf '%s' "$token" >"$2.token"
  printf '%s' "$server" >"$TMP/server"
  base64 -d <<<"$ca" >"$TMP/ca.crt"
  cat >"$2" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "$server", certificate-authority-data: "$ca"}}]
users: [{name: u, user: {token: "$token"}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: "$NS"}}]
current-context: c
EOF
  chmod 600 "$2"
}
kubeconfig_for "$FULL" "$TMP/operator.kubeconfig"
kubeconfig_for "$ROUTER" "$TMP/router.kubeconfig"
check "the operator's token authenticates as $OPU" \
  bash -c "KUBECONFIG='$TMP/operator.kubeconfig' '$KUBECTL' auth whoami -o jsonpath='{.status.userInfo.username}' | grep -qx '$OPU'"

# ---------------------------------------------------------------- the world
step "kwok GPU nodes ($PREFIX-*), a pool, a worker name taken in advance"
"${FIXTURE[@]}" >/dev/null
kc apply --server-side --field-manager wl-test -f - >/dev/null <<EOF
apiVersion: waterline.dev/v1alpha1
kind: CapacityPool
metadata: {name: $PREFIX-pool}
spec:
  region: eu-west
  dataZone: EU
  gpuProduct: NVIDIA-H100-80GB-HBM3
  reservableFraction: 0.5
  nodeSelector:
    matchLabels: {topology.kubernetes.io/region: eu-west, waterline.dev/fixture-prefix: $PREFIX}
EOF
# A pod named like the first worker of "taken", not labelled as a worker (so not in the
# operator's informer): its create answers AlreadyExists and the operator gets the pod.
kc apply -n "$NS" -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: taken-0}
spec:
  containers: [{name: c, image: busybox}]
EOF

md() { # <name> <replicas> <gpus> <priority> [extra spec JSON]
  jq -n --arg n "$1" --arg ns "$NS" --argjson r "$2" --argjson g "$3" --argjson p "$4" --argjson x "${5:-{\}}" '{
    apiVersion: "waterline.dev/v1alpha1", kind: "ModelDeployment", metadata: {name: $n, namespace: $ns},
    spec: ({model: {name: "meta-llama/Llama-3.1-8B-Instruct", version: "v1"}, region: "eu-west",
           template: {spec: {image: "vllm/vllm-openai:v0.6.3", ports: [{containerPort: 8000}]}},
           gpu: {count: $g}, replicas: $r, priority: $p, drainSeconds: 1, maxUnavailable: 3} + $x)}' |
    kc apply --server-side --field-manager wl-test -f - >/dev/null
}
running() { # <deployment>: Running workers
  kc get pods -n "$NS" -l "waterline.dev/deployment=$1" -o json |
    jq '[.items[] | select(.metadata.deletionTimestamp == null and .status.phase == "Running")] | length'
}
running_is() { [[ "$(running "$1")" == "$2" ]]; }

# ---------------------------------------------------------------- operator + router
step "fake Prometheus, waterline-operator and waterline-router as the chart's accounts"
python3 "$WL_TEST_DIR/fake_prometheus.py" "$TMP/prom.port" "$XID_NODE" 7 wl_rbac_test_load 400 &
PIDS+=($!)
eventually 20 "fake Prometheus listening" test -s "$TMP/prom.port"
OP_PORT="$(free_port)"
RT_PORT="$(free_port)"
"$OPERATOR_BIN" --kubeconfig "$TMP/operator.kubeconfig" --bind-address "127.0.0.1:$OP_PORT" \
  --leader-elect=true --leader-election-namespace "$NS" --leader-election-id "$FULL" \
  --lease-duration 6s --renew-deadline 4s --retry-period 1s \
  --routing-heartbeat-namespace "$NS" --routing-heartbeat 2s \
  --prometheus-url "http://127.0.0.1:$(cat "$TMP/prom.port")" --xid-poll-period 1s --autoscaler-sync-period 1s \
  --log-level info >"$TMP/operator.log" 2>&1 &
OP_PID=$!
PIDS+=("$OP_PID")
KUBECONFIG="$TMP/router.kubeconfig" "$ROUTER_BIN" --listen "127.0.0.1:$RT_PORT" \
  --routes-url "http://127.0.0.1:$OP_PORT/v1/routes" --replicas 1 \
  --membership-group "$ROUTER" --membership-namespace "$MNS" --identity router-a \
  --membership-lease-duration 3s >"$TMP/router.log" 2>&1 &
RT_PID=$!
PIDS+=("$RT_PID")
eventually 60 "the operator leads (Lease $NS/$FULL held)" \
  bash -c "'$KUBECTL' get lease '$FULL' -n '$NS' -o jsonpath='{.spec.holderIdentity}' | grep -q ."
eventually 60 "the routing heartbeat Lease exists" kc get lease waterline-routing-local -n "$NS"
router_leases() { kc get leases.coordination.k8s.io -n "$MNS" -l "waterline.dev/router-group=$ROUTER" -o name; }
eventually 30 "the router's membership Lease exists" bash -c "[[ -n \$('$KUBECTL' get leases.coordination.k8s.io -n '$MNS' -l 'waterline.dev/router-group=$ROUTER' -o name) ]]"

step "deployments: placement, AlreadyExists, autoscaling, XID"
md taken 1 1 0
eventually 60 "create of taken-0 answered AlreadyExists, then get" audited "$OPU" get "^/api/v1/namespaces/$NS/pods/taken-0"
md low 8 1 -10
md high 8 1 10
md auto 1 1 0 '{"region": "as-nowhere", "minReplicas": 1, "maxReplicas": 4, "autoscaling": {"enabled": true, "query": "wl_rbac_test_load", "targetPerReplica": 100}}'
eventually 90 "8 low + 8 high workers Running" bash -c "[[ \$('$KUBECTL' get pods -n '$NS' -l 'waterline.dev/deployment in (low,high)' -o json | jq '[.items[] | select(.status.phase == \"Running\")] | length') -ge 14 ]]"
eventually 60 "the autoscaler raised auto to 4 replicas (spec patch)" \
  bash -c "[[ \$('$KUBECTL' get modeldeployments.waterline.dev auto -n '$NS' -o jsonpath='{.spec.replicas}') == 4 ]]"
eventually 60 "the XID watcher annotated $XID_NODE" \
  bash -c "[[ \$('$KUBECTL' get node '$XID_NODE' -o jsonpath='{.metadata.annotations.waterline\.dev/xid-unhealthy-gpus}') == 7 ]]"
eventually 60 "a RoutingTable published for high" kc get routingtables.waterline.dev "$NS.high"

step "a reservation reclaims GPUs (finalizer, status, eviction)"
md llama 0 4 0 '{"throughput": {"tokensPerMinutePerReplica": 1000}}'
kc apply --server-side --field-manager wl-test -f - >/dev/null <<EOF
apiVersion: waterline.dev/v1alpha1
kind: PTUReservation
metadata: {name: r1, namespace: $NS}
spec:
  deploymentRef: {name: llama}
  units: 2
  tokensPerMinutePerUnit: 1000
  scope: {type: Regional, region: eu-west}
EOF
eventually 90 "the reservation is Active" \
  bash -c "[[ \$('$KUBECTL' get ptureservations.waterline.dev r1 -n '$NS' -o jsonpath='{.status.phase}') == Active ]]"
eventually 120 "a worker of low evicted for the reserved deployment" audited "$OPU" create "^/api/v1/namespaces/$NS/pods/low-[0-9]+/eviction"

step "scale down (drain patch, delete), deletions (RoutingTable get + delete, finalizer)"
md high 5 1 10
eventually 60 "high's surplus workers marked draining" audited "$OPU" patch "^/api/v1/namespaces/$NS/pods/high-[0-9]+"
eventually 60 "high drained to 5" running_is high 5
kc delete modeldeployments.waterline.dev high auto taken -n "$NS" --wait=false >/dev/null
kc delete ptureservations.waterline.dev r1 -n "$NS" --wait=false >/dev/null
eventually 60 "the reservation's finalizer removed (deleted)" bash -c "! '$KUBECTL' get ptureservations.waterline.dev r1 -n '$NS'"
eventually 60 "the workers of the deleted deployments removed" \
  bash -c "[[ -z \$('$KUBECTL' get pods -n '$NS' -l 'waterline.dev/deployment in (high,auto)' -o name) ]]"
eventually 60 "the RoutingTable of high deleted" bash -c "! '$KUBECTL' get routingtables.waterline.dev '$NS.high'"
eventually 60 "a repeated Event's count bumped" audited "$OPU" patch "^/api/v1/namespaces/[^/]+/events/"
eventually 30 "the router renewed its Lease" audited "$RTU" update "^/apis/coordination.k8s.io/v1/namespaces/$MNS/leases/"

step "DRA mode: worker claims (create, allocation, owner and reservedFor, delete)"
bash "$ROOT/hack/fixtures/dra-slices.sh" --kubeconfig "$KUBECONFIG" \
  --selector "waterline.dev/fixture-prefix=$PREFIX,topology.kubernetes.io/region=us-east,waterline.dev/shape=h100" >/dev/null
kc apply --server-side --field-manager wl-test -f - >/dev/null <<EOF
apiVersion: waterline.dev/v1alpha1
kind: CapacityPool
metadata: {name: $PREFIX-dra}
spec:
  region: us-east
  dataZone: US
  gpuProduct: NVIDIA-H100-80GB-HBM3
  allocation: DRA
  nodeSelector:
    matchLabels: {topology.kubernetes.io/region: us-east, waterline.dev/fixture-prefix: $PREFIX}
EOF
md dra 2 2 0 '{"region": "us-east"}'
dra_settled() { # <workers>: that many Running DRA workers, each with an allocated claim reserved for it
  [[ "$(running dra)" == "$1" ]] &&
    [[ "$(kc get resourceclaims.resource.k8s.io -n "$NS" -o json |
      jq '[.items[] | select(.status.allocation != null and (.status.reservedFor // [] | length) == 1)] | length')" == "$1" ]]
}
eventually 90 "2 DRA workers with allocated claims reserved for them" dra_settled 2
md dra 1 2 0 '{"region": "us-east"}'
eventually 90 "the scaled-down worker's claim deleted" audited "$OPU" delete "^/apis/resource.k8s.io/v1/namespaces/$NS/resourceclaims/dra-"

step "clean stops: the router deletes its Lease, the operator releases its own"
kill -TERM "$RT_PID"
wait "$RT_PID" 2>/dev/null || true
kill -TERM "$OP_PID"
wait "$OP_PID" 2>/dev/null || true
[[ -z "$(router_leases)" ]] && ok || bad "router Lease not deleted on a clean stop: $(router_leases)"

# ---------------------------------------------------------------- the audit log
step "audit log: 403s and unused grants"
# Every request of the two accounts, once (a watch logs ResponseStarted and ResponseComplete).
jq -c --arg o "$OPU" --arg r "$RTU" '
  select(.user.username == $o or .user.username == $r) | select(.stage == "ResponseComplete" or .stage == "ResponseStarted")' \
  "$AUDIT_DIR"/audit*.log |
  jq -s 'group_by(.auditID) | map(.[-1] | {user: .user.username, verb, uri: .requestURI, code: .responseStatus.code,
    group: (.objectRef.apiGroup // ""), ns: (.objectRef.namespace // ""), name: (.objectRef.name // ""),
    resource: (if .objectRef == null then null elif .objectRef.subresource then .objectRef.resource + "/" + .objectRef.subresource else .objectRef.resource end),
    decision: (.annotations["authorization.k8s.io/decision"] // "")})' >"$TMP/requests.json"
jqcheck "audit log holds the scenario's requests of both accounts" "$TMP/requests.json" --arg o "$OPU" --arg r "$RTU" \
  '(map(select(.user == $o)) | length > 50) and (map(select(.user == $r)) | length > 3)'
missing="$(jq -r '.[] | select(.code == 403 or .decision == "forbid") | "\(.user | split(":") | last) \(.verb) \(.uri) -> \(.code)"' "$TMP/requests.json" | sort | uniq -c)"
if [[ -z "$missing" ]]; then ok; else bad "missing rights (requests answered 403):
$missing"; fi
# A grant is used by a request of its user that RBAC allowed (whatever came next: a get
# answered 404 used get) and that it covers: verb, group, resource, namespace (a Role's
# own), name (resourceNames). A server-side apply answered 201 also used create.
jq --slurpfile req "$TMP/requests.json" '
  def uses($g; $q): $g.user == $q.user and $g.group == $q.group and $g.resource == $q.resource and
    ($g.ns == "" or $g.ns == $q.ns) and ($g.names == null or ($g.names | index($q.name)) != null) and
    ($g.verb == $q.verb or ($g.verb == "create" and $q.verb == "patch" and $q.code == 201));
  map(. as $g | select(any($req[0][] | select(.decision == "allow" and .code != 403); uses($g; .)) | not))' \
  "$TMP/granted.json" >"$TMP/unused.json"
unused=""
allowed_used=""
while IFS=$'\t' read -r kind name verb gr; do
  key="$kind/${name#"$FULL"-} $verb $gr"
  [[ "$kind" == ClusterRole ]] && key="ClusterRole/* $verb $gr"
  if [[ -n "${ALLOW[$key]:-}" ]]; then
    echo "  allowed unused: $key (${ALLOW[$key]})"
    allowed_used+="$key"$'\n'
  else
    unused+="  $kind/$name: $verb $gr"$'\n'
  fi
done < <(jq -r '.[] | [(.role | split("/")[0]), (.role | split("/")[1]), .verb, (if .group == "" then "core" else .group end) + "/" + .resource] | @tsv' "$TMP/unused.json")
if [[ -z "$unused" ]]; then ok; else bad "granted but never used by the scenario (trim the rule, or add to ALLOW with the reason):
$unused"; fi
# An ALLOW entry that the scenario did use is stale.
for key in "${!ALLOW[@]}"; do
  [[ "$allowed_used" == *"$key"* ]] && ok || bad "ALLOW entry '$key' is used by the scenario or not granted: remove it"
done
echo "  $(jq length "$TMP/requests.json") requests, $(jq length "$TMP/granted.json") grants, $(jq length "$TMP/unused.json") unused"

# ---------------------------------------------------------------- node patch policy
step "node patch policy as $OPU"
# A PATCH alone, as the operator sends it (kubectl annotate, label, taint and patch would
# GET the node first, which the account may not): prints the HTTP code, then the body.
opk_patch() { # <merge patch>
  local code
  code="$(curl -sS --max-time 20 --cacert "$TMP/ca.crt" -H "Authorization: Bearer $(cat "$TMP/operator.kubeconfig.token")" \
    -X PATCH -H 'Content-Type: application/merge-patch+json' --data "$1" -o "$TMP/patch.out" -w '%{http_code}' \
    "$(cat "$TMP/server")/api/v1/nodes/$XID_NODE")" || true
  echo "$code"
  jq -r '.message // "(a \(.kind))"' "$TMP/patch.out" 2>/dev/null || cat "$TMP/patch.out"
}
opk_ok() { # <description> <merge patch>
  local out
  out="$(opk_patch "$2")"
  [[ "${out%%$'\n'*}" == 200 ]] && ok || bad "$1: $out"
}
xid_patch() { printf '{"metadata":{"annotations":{"waterline.dev/xid-unhealthy-gpus":%s}}}' "$1"; }
opk_ok "the operator's account may set the XID annotation" "$(xid_patch '"3,7"')"
[[ "$(kc get node "$XID_NODE" -o jsonpath='{.metadata.annotations.waterline\.dev/xid-unhealthy-gpus}')" == 3,7 ]] && ok || bad "XID annotation not set"
opk_ok "... and remove it" "$(xid_patch null)"
refused() { # <description> <expected message part> <merge patch>
  local what="$1" want="$2" out
  out="$(opk_patch "$3")"
  if [[ "${out%%$'\n'*}" == 200 ]]; then bad "$what: accepted"
  elif [[ "$out" == *"$want"* && "$out" == *"may change only the annotation waterline.dev/xid-unhealthy-gpus"* ]]; then ok
  else bad "$what: refused, but not by the policy ('$want'): $out"; fi
}
refused "adding a label" "its labels may not change" '{"metadata":{"labels":{"evil":"1"}}}'
refused "changing a label" "its labels may not change" '{"metadata":{"labels":{"topology.kubernetes.io/region":"eu-west"}}}'
refused "removing a label" "its labels may not change" '{"metadata":{"labels":{"waterline.dev/data-zone":null}}}'
refused "adding a taint" "its taints may not change" '{"spec":{"taints":[{"key":"evil","value":"1","effect":"NoSchedule"}]}}'
refused "cordoning" "its spec may not change" '{"spec":{"unschedulable":true}}'
refused "another annotation" "no other annotation may change" '{"metadata":{"annotations":{"evil":"1"}}}'
refused "removing kwok's annotation" "no other annotation may change" '{"metadata":{"annotations":{"kwok.x-k8s.io/node":null}}}'
refused "a finalizer" "finalizers and owner references" '{"metadata":{"finalizers":["evil.example/x"]}}'
refused "the XID annotation and a label together" "its labels may not change" \
  '{"metadata":{"labels":{"evil":"1"},"annotations":{"waterline.dev/xid-unhealthy-gpus":"1"}}}'
check "admin may still label the node (the policy binds only the operator's account)" \
  kc label node "$XID_NODE" wl-test/rbac=1
kc label node "$XID_NODE" wl-test/rbac- >/dev/null 2>&1 || true

# ---------------------------------------------------------------- router vs operator Leases
step "the router's account and the operator's Leases"
for verb in get update delete patch; do
  for lease in "$FULL" waterline-routing-local; do
    got="$(kc auth can-i "$verb" "leases.coordination.k8s.io/$lease" -n "$NS" --as "$RTU" 2>/dev/null | tail -n1)" || true
    [[ "$got" == no ]] && ok || bad "router: auth can-i $verb lease $NS/$lease: got '$got', want 'no'"
  done
done
got="$(kc auth can-i update leases.coordination.k8s.io/anything -n "$MNS" --as "$RTU" 2>/dev/null | tail -n1)" || true
[[ "$got" == yes ]] && ok || bad "router: auth can-i update leases in $MNS: got '$got', want 'yes'"

finish
