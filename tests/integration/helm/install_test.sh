#!/usr/bin/env bash
# The chart against a real kube-apiserver (the CTest `controlplane` fixture; its kubeconfig
# in WATERLINE_TEST_KUBECONFIG): helm install into a fresh namespace, the objects and the
# CRDs served, what the operator's ServiceAccount may and may not do (kubectl auth can-i
# --as), server-side dry-run of the plain manifests, helm upgrade (values changed, a
# component switched on and off, a bad value refused), helm uninstall leaving nothing with
# the release's labels but the CRDs. The control plane has no kube-controller-manager and
# no scheduler: no pod ever runs, so the assertions are on objects. CTest: helm.install.
# jq programs are single-quoted on purpose ($vars are jq variables); ok never fails.
# shellcheck disable=SC2016,SC2015
# shellcheck source=tests/integration/helm/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
if [[ -z "${WATERLINE_TEST_KUBECONFIG:-}" ]]; then
  echo "SKIP: WATERLINE_TEST_KUBECONFIG is not set (run through ctest, or hack/controlplane.sh up)"
  rm -rf "$TMP"
  exit 77
fi
export KUBECONFIG="$WATERLINE_TEST_KUBECONFIG"
export KUBECACHEDIR="$TMP/kube-cache"   # fresh discovery: we add API groups below

NS="wl-helm-$(date +%s)-$RANDOM"
REL=wlhelm
FULL="$REL-waterline"
SA="system:serviceaccount:$NS:$FULL"
SEL="app.kubernetes.io/instance=$REL"
MNS="$NS-leases"   # the router's membership Leases (created here, not by the chart)
created_monitoring=false
installed=false

cleanup() {
  set +e
  $installed && helm uninstall "$REL" --namespace "$NS" >/dev/null 2>&1
  $created_monitoring && kc delete -f "$WL_TEST_DIR/testdata/monitoring-crds.yaml" --wait=false >/dev/null 2>&1
  # No namespace controller here: the namespace stays Terminating until the fixture stops.
  kc delete namespace "$NS" "$MNS" "$NS-rm" --wait=false >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT

step() { echo "[$((SECONDS - T0))s] $*"; }

# can <yes|no> <kubectl auth can-i args...> as the operator's ServiceAccount.
can() {
  local want="$1"; shift
  local got
  got="$(kc auth can-i "$@" --as "$SA" 2>/dev/null | tail -n1)" || true
  if [[ "$got" == "$want" ]]; then ok; else bad "auth can-i $* as $SA: got '${got:-error}', want '$want'"; fi
}

# sar <yes|no> <verb> <group> <resource> [namespace]: a SubjectAccessReview for the
# ServiceAccount, for resources the server does not serve yet (kubectl auth can-i cannot
# resolve their group and would ask about the core group).
sar() {
  local want="$1" verb="$2" group="$3" resource="$4" ns="${5:-}" got
  got="$(jq -n --arg u "$SA" --arg ns "$NS" --arg v "$verb" --arg g "$group" --arg r "$resource" --arg n "$ns" '{
      apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview",
      spec: {user: $u, groups: ["system:serviceaccounts", "system:serviceaccounts:" + $ns, "system:authenticated"],
             resourceAttributes: {verb: $v, group: $g, resource: $r, namespace: $n}}}' |
    kc create -f - -o json | jq -r 'if .status.allowed then "yes" else "no" end')" || true
  if [[ "$got" == "$want" ]]; then ok; else bad "SubjectAccessReview $verb $resource.$group: got '${got:-error}', want '$want'"; fi
}

# objects [kubectl get args]: the release's objects as a JSON array.
objects() {
  kc get "$@" -l "$SEL" -o json | jq '.items'
}

# ---------------------------------------------------------------- prometheus-operator API
if ! kc get crd servicemonitors.monitoring.coreos.com >/dev/null 2>&1; then
  kc create -f "$WL_TEST_DIR/testdata/monitoring-crds.yaml" >/dev/null
  created_monitoring=true
  kc wait --for condition=Established --timeout=60s -f "$WL_TEST_DIR/testdata/monitoring-crds.yaml" >/dev/null
fi

# ---------------------------------------------------------------- install
step "helm install $REL into $NS"
# The fixture applied crds/ itself: CRDs no release owns, which Helm would refuse to
# overwrite (crds.enabled=false, as docs/install.md says for CRDs managed elsewhere). The
# CRD templates are tested below with a release of their own.
check "helm install" helm install "$REL" "$CHART" --namespace "$NS" --create-namespace --timeout 120s \
  --set crds.enabled=false --set monitoring.serviceMonitor.enabled=true --set monitoring.prometheusRule.enabled=true \
  --set prometheus.url=http://prometheus.monitoring:9090
installed=true
helm status "$REL" --namespace "$NS" -o json >"$TMP/status.json"
jqcheck "release deployed, revision 1" "$TMP/status.json" '.info.status == "deployed" and .version == 1'
jqcheck "NOTES rendered (crds.enabled=false said)" "$TMP/status.json" '.info.notes | contains("kubectl -n '"$NS"' rollout status deployment/'"$FULL"'") and contains("crds.enabled is false")'

for crd in capacitypools.waterline.dev modeldeployments.waterline.dev ptureservations.waterline.dev; do
  check "CRD $crd Established" kc wait --for condition=Established --timeout=30s "crd/$crd"
done
check "CRDs served (kubectl get capacitypools,modeldeployments,ptureservations -A)" \
  kc get capacitypools.waterline.dev,modeldeployments.waterline.dev,ptureservations.waterline.dev -A
kc get crd capacitypools.waterline.dev -o json >"$TMP/crd.json"
jqcheck "served CRD has the chart's version" "$TMP/crd.json" \
  --arg v "$(grep -m1 -E '^\s+- name: v' "$ROOT/crds/waterline.dev_capacitypools.yaml" | awk '{print $3}')" \
  '[.spec.versions[] | select(.served) | .name] | index($v) != null'

objects -n "$NS" deployments,serviceaccounts,services,poddisruptionbudgets,roles,rolebindings,servicemonitors,prometheusrules >"$TMP/ns.json"
objects clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings >"$TMP/cluster.json"
jqcheck "namespaced objects created" "$TMP/ns.json" \
  '[.[].kind] | sort == ["Deployment","PodDisruptionBudget","PrometheusRule","Role","Role","RoleBinding","RoleBinding","Service","ServiceAccount","ServiceMonitor"]'
jqcheck "ClusterRole, ClusterRoleBinding and the node patch policy created" "$TMP/cluster.json" \
  --arg n "$FULL-$NS" '[.[] | .kind + "/" + .metadata.name] | sort == ["ClusterRole/" + $n, "ClusterRoleBinding/" + $n,
    "ValidatingAdmissionPolicy/" + $n + "-node-patch", "ValidatingAdmissionPolicyBinding/" + $n + "-node-patch"]'
jqcheck "Deployment as stored: 2 replicas, leader election, prometheus env, restricted securityContext" "$TMP/ns.json" --arg f "$FULL" '
  .[] | select(.kind == "Deployment" and .metadata.name == $f) | .spec.replicas == 2 and
  (.spec.template.spec.containers[0] | (.args | index("--leader-elect=true")) and
    ([.env[] | select(.name == "WATERLINE_PROMETHEUS_URL") | .value] == ["http://prometheus.monitoring:9090"]) and
    .securityContext.readOnlyRootFilesystem and .securityContext.runAsUser == 65532)'
jqcheck "PrometheusRule stored with the alert rules" "$TMP/ns.json" \
  '[.[] | select(.kind == "PrometheusRule") | .spec.groups[].rules[].alert] | length >= 4'

# ---------------------------------------------------------------- RBAC as the ServiceAccount
step "kubectl auth can-i as $SA"
# The rules of templates/rbac.yaml: what the code calls (helm.rbac_audit proves each is
# used), and "no" for what the chart granted before and no code uses.
can yes list nodes
can yes watch nodes
can no get nodes
can yes list pods --all-namespaces
can yes get pods -n default
can yes create pods -n default
can yes delete pods -n default
can yes patch pods -n "$NS"
can no update pods -n default
can yes create pods --subresource=eviction -n default
can yes list capacitypools.waterline.dev
can yes watch modeldeployments.waterline.dev --all-namespaces
can yes list ptureservations.waterline.dev --all-namespaces
can no get capacitypools.waterline.dev
can no get modeldeployments.waterline.dev -n default
can no get ptureservations.waterline.dev -n default
can no patch capacitypools.waterline.dev
can yes patch modeldeployments.waterline.dev -n default
can yes patch ptureservations.waterline.dev -n default
can no update capacitypools.waterline.dev
can no update modeldeployments.waterline.dev -n default
can no update ptureservations.waterline.dev -n default
can yes patch capacitypools.waterline.dev --subresource=status
can yes patch modeldeployments.waterline.dev --subresource=status -n default
can yes patch ptureservations.waterline.dev --subresource=status -n default
can no get capacitypools.waterline.dev --subresource=status
can no update modeldeployments.waterline.dev --subresource=status -n default
can no update ptureservations.waterline.dev --subresource=status -n default
can no get modeldeployments.waterline.dev --subresource=scale -n default
can no update modeldeployments.waterline.dev --subresource=scale -n default
can no patch modeldeployments.waterline.dev --subresource=scale -n default
sar yes create waterline.dev routingtables
sar yes patch waterline.dev routingtables
sar yes get waterline.dev routingtables
sar yes delete waterline.dev routingtables
sar yes watch waterline.dev routingtables
sar no update waterline.dev routingtables
sar no deletecollection waterline.dev routingtables
can yes create events -n default
can yes patch events -n default
can no update events -n default
can no create events.events.k8s.io -n "$NS"
can no patch events.events.k8s.io -n "$NS"
can no create tokenreviews.authentication.k8s.io
can no create subjectaccessreviews.authorization.k8s.io
can yes get "leases.coordination.k8s.io/$FULL" -n "$NS"
can yes update "leases.coordination.k8s.io/$FULL" -n "$NS"
can yes create leases.coordination.k8s.io -n "$NS"
can yes patch leases.coordination.k8s.io/waterline-routing-local -n "$NS"
can no get leases.coordination.k8s.io/waterline-routing-local -n "$NS"
can yes watch leases.coordination.k8s.io -n "$NS"
can no patch leases.coordination.k8s.io/waterline-routing-other -n "$NS"
can no watch leases.coordination.k8s.io -n default
can no delete nodes
can yes patch nodes
can no update nodes
can no update nodes --subresource=status
can no patch nodes --subresource=status
can no get secrets -n "$NS"
can no list secrets --all-namespaces
can no get configmaps -n "$NS"
can no list namespaces
can no delete namespaces
can no create leases.coordination.k8s.io -n default
can no update "leases.coordination.k8s.io/$FULL" -n default
can no update leases.coordination.k8s.io/someone-else -n "$NS"
can no delete "leases.coordination.k8s.io/$FULL" -n "$NS"
can no create capacitypools.waterline.dev
can no delete capacitypools.waterline.dev
can no create modeldeployments.waterline.dev -n default
can no delete ptureservations.waterline.dev -n default
can no create pods --subresource=exec -n default
can no create pods --subresource=binding -n default
can no create deployments.apps -n "$NS"
can no create serviceaccounts --subresource=token -n "$NS"
can no create clusterrolebindings
can no escalate clusterroles
can no impersonate users
can no delete customresourcedefinitions.apiextensions.k8s.io
can no create validatingadmissionpolicies.admissionregistration.k8s.io
can no delete validatingadmissionpolicybindings.admissionregistration.k8s.io

# ---------------------------------------------------------------- plain manifests
if kc get namespace waterline-system >/dev/null 2>&1; then
  check "deploy/manifests accepted by the apiserver (server-side apply, dry run)" \
    kc apply --server-side --force-conflicts --dry-run=server --field-manager wl-helm-test -k "$ROOT/deploy/manifests"
else
  echo "note: namespace waterline-system absent, plain manifests not dry-run applied" >&2
fi

# ---------------------------------------------------------------- every switch on, server-side
# The objects that no release below creates (NetworkPolicies, router preStop sleep and
# topology spread, metrics auth RBAC, dedicated metrics ports, helm test Pods, the
# ServiceMonitor's honorLabels/relabelings/bearerTokenFile) validated by this apiserver.
step "every switch on: server-side dry run"
# The router's Lease namespace named (the chart creates it only when unnamed, and a dry
# run creates nothing for the Role inside it to land in).
kc create namespace "$NS-rm" >/dev/null
helm template wlall "$CHART" --namespace "$NS" --kube-version "$(kc version -o json | jq -r '.serverVersion.gitVersion' | sed 's/^v//')" \
  --api-versions monitoring.coreos.com/v1 --set crds.enabled=false --set router.enabled=true --set router.membership.enabled=true \
  --set router.membership.namespace="$NS-rm" --set networkPolicy.enabled=true --set metrics.dedicatedPort=8443 --set metrics.secure=true \
  --set 'metrics.readers[0].namespace=monitoring' --set 'metrics.readers[0].name=prometheus' --set router.metrics.port=9090 \
  --set router.priorityClassName=system-cluster-critical --set image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef \
  --set monitoring.serviceMonitor.enabled=true --set monitoring.prometheusRule.enabled=true \
  --set 'monitoring.serviceMonitor.relabelings[0].targetLabel=cluster' --set 'monitoring.serviceMonitor.relabelings[0].replacement=x' \
  --set 'networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.kubernetes\.io/metadata\.name=monitoring' \
  --set 'networkPolicy.egress[0].to[0].ipBlock.cidr=0.0.0.0/0' >"$TMP/all.yaml"
grep -q 'kind: NetworkPolicy' "$TMP/all.yaml" && grep -q 'sleep:' "$TMP/all.yaml" && grep -q 'helm.sh/hook: test' "$TMP/all.yaml" && ok ||
  bad "the all-switches render lacks NetworkPolicy, the preStop sleep or the test Pods"
check "every-switch render accepted by the apiserver (create --dry-run=server)" \
  kc create --dry-run=server -f "$TMP/all.yaml" -o name

# ---------------------------------------------------------------- upgrade
step "helm upgrade: replicas 3, debug logs, router on (membership Leases in $MNS)"
kc create namespace "$MNS" >/dev/null
check "helm upgrade (values changed, router enabled)" helm upgrade "$REL" "$CHART" --namespace "$NS" --reuse-values \
  --set replicas=3 --set logLevel=debug --set router.enabled=true --set router.membership.enabled=true \
  --set router.membership.namespace="$MNS" --timeout 120s
kc get deployment "$FULL" -n "$NS" -o json >"$TMP/dep.json"
jqcheck "upgrade applied: 3 replicas, --log-level=debug" "$TMP/dep.json" \
  '.spec.replicas == 3 and (.spec.template.spec.containers[0].args | index("--log-level=debug"))'
objects -n "$NS" deployments,serviceaccounts,services,poddisruptionbudgets,servicemonitors >"$TMP/router.json"
jqcheck "router Deployment, Service, ServiceAccount, PDB and ServiceMonitor created" "$TMP/router.json" --arg r "$FULL-router" \
  '[.[] | select(.metadata.name == $r) | .kind] | sort == ["Deployment","PodDisruptionBudget","Service","ServiceAccount","ServiceMonitor"]'
RSA="system:serviceaccount:$NS:$FULL-router"
# The router's Role: Leases in $MNS only; the operator's Leases (release namespace) are out
# of its reach.
for what in "get leases.coordination.k8s.io/$FULL -n $NS" "update leases.coordination.k8s.io/$FULL -n $NS" \
  "delete leases.coordination.k8s.io/$FULL -n $NS" "patch leases.coordination.k8s.io/waterline-routing-local -n $NS" \
  "create leases.coordination.k8s.io -n $NS" "list leases.coordination.k8s.io -n $NS" "watch leases.coordination.k8s.io -n $MNS" \
  "patch leases.coordination.k8s.io/x -n $MNS" \
  "list pods -A" "list nodes" "get secrets -n $NS" "list capacitypools.waterline.dev"; do
  # shellcheck disable=SC2086
  got="$(kc auth can-i $what --as "$RSA" 2>/dev/null | tail -n1)" || true
  [[ "$got" == no ]] && ok || bad "router ServiceAccount: auth can-i $what: got '$got', want 'no'"
done
for what in "get leases.coordination.k8s.io/x -n $MNS" "update leases.coordination.k8s.io/x -n $MNS" \
  "delete leases.coordination.k8s.io/x -n $MNS" "create leases.coordination.k8s.io -n $MNS" "list leases.coordination.k8s.io -n $MNS"; do
  # shellcheck disable=SC2086
  got="$(kc auth can-i $what --as "$RSA" 2>/dev/null | tail -n1)" || true
  [[ "$got" == yes ]] && ok || bad "router ServiceAccount: auth can-i $what: got '$got', want 'yes'"
done

step "helm upgrade with a bad value is refused"
if out="$(helm upgrade "$REL" "$CHART" --namespace "$NS" --reuse-values --set replicas=0 2>&1)"; then
  bad "helm upgrade --set replicas=0 succeeded"
else
  [[ "$out" == *"at '/replicas': minimum: got 0, want 1"* ]] && ok || bad "bad upgrade refused without the schema message: $out"
fi
helm status "$REL" --namespace "$NS" -o json >"$TMP/status.json"
jqcheck "release still deployed at revision 2" "$TMP/status.json" '.info.status == "deployed" and .version == 2'

step "helm upgrade: router and PrometheusRule off"
check "helm upgrade (router, PrometheusRule disabled)" helm upgrade "$REL" "$CHART" --namespace "$NS" --reuse-values \
  --set router.enabled=false --set monitoring.prometheusRule.enabled=false --timeout 120s
objects -n "$NS" deployments,serviceaccounts,services,poddisruptionbudgets,servicemonitors,prometheusrules >"$TMP/after.json"
jqcheck "disabled components deleted by the upgrade" "$TMP/after.json" --arg f "$FULL" \
  '[.[] | .kind + "/" + .metadata.name] | sort == ["Deployment/" + $f, "PodDisruptionBudget/" + $f, "Service/" + $f + "-metrics", "ServiceAccount/" + $f, "ServiceMonitor/" + $f]'

# ---------------------------------------------------------------- CRDs as templates
# The chart's CRDs under a group of their own (the fixture's waterline.dev CRDs stay
# untouched): a release installs them, an upgrade with a chart whose CapacityPool CRD has
# one more field updates the served CRD, uninstall with crds.keep leaves them, and a
# release with crds.keep=false adopts and then deletes them.
step "CRD templates: install, upgrade with an extra field, uninstall"
CREL=wlcrd
G="t${RANDOM}${RANDOM}.waterline.dev"
crd_chart() { # <dir>: a copy of the chart whose CRDs are in group $G
  cp -r "$CHART" "$1"
  sed -i -E -e "s/^(  group: )waterline\.dev\$/\1$G/" -e "s/^(  name: [a-z]+)\.waterline\.dev\$/\1.$G/" "$1"/templates/crds/*.yaml
}
crd_chart "$TMP/crd-v1"
crd_chart "$TMP/crd-v2"
# v2: a new top-level field in every version of the CapacityPool schema.
sed -i -E 's/^(          properties:)$/\1\n            helmUpgradeProbe:\n              type: string/' \
  "$TMP/crd-v2/templates/crds/waterline.dev_capacitypools.yaml"
CRDS=(capacitypools.$G modeldeployments.$G ptureservations.$G routingtables.$G)
crds_installed=true
cleanup_crds() { $crds_installed && kc delete crd "${CRDS[@]}" --ignore-not-found --wait=false >/dev/null 2>&1 || true; }
trap 'cleanup_crds; cleanup' EXIT
probe='[.spec.versions[].schema.openAPIV3Schema.properties | has("helmUpgradeProbe")]'
check "helm install (CRD templates)" helm install "$CREL" "$TMP/crd-v1" --namespace "$NS" --timeout 120s --set replicas=1 --set leaderElection.enabled=false
helm status "$CREL" --namespace "$NS" -o json >"$TMP/crd-status.json"
jqcheck "NOTES: the CRDs are part of the release and kept" "$TMP/crd-status.json" \
  '.info.notes | contains("helm upgrade` updates them") and contains("helm.sh/resource-policy: keep")'
for c in "${CRDS[@]}"; do check "CRD $c Established" kc wait --for condition=Established --timeout=30s "crd/$c"; done
kc get crd "capacitypools.$G" -o json >"$TMP/crd1.json"
jqcheck "installed CRD: keep annotation, owned by the release, no helmUpgradeProbe yet" "$TMP/crd1.json" --arg r "$CREL" "
  .metadata.annotations[\"helm.sh/resource-policy\"] == \"keep\" and .metadata.annotations[\"meta.helm.sh/release-name\"] == \$r and
  ($probe | all(. == false))"
check "helm upgrade (CapacityPool CRD gains a field)" helm upgrade "$CREL" "$TMP/crd-v2" --namespace "$NS" --reuse-values --timeout 120s
kc get crd "capacitypools.$G" -o json >"$TMP/crd2.json"
jqcheck "upgraded CRD serves the new field in every version" "$TMP/crd2.json" "$probe | length > 0 and all(. == true)"
{ sed "s|^apiVersion: waterline.dev/|apiVersion: $G/|" "$ROOT/deploy/samples/capacitypool-h100-eu-west.yaml"; echo "helmUpgradeProbe: x"; } >"$TMP/probe-pool.yaml"
check "a CapacityPool setting the new field is stored with it (server-side dry run)" bash -c \
  "'$KUBECTL' create --dry-run=server -o jsonpath='{.helmUpgradeProbe}' -f '$TMP/probe-pool.yaml' | grep -qx x"
check "helm uninstall (crds.keep=true)" helm uninstall "$CREL" --namespace "$NS" --wait --timeout 120s
check "CRDs kept after uninstall (helm.sh/resource-policy: keep)" kc get crd "${CRDS[@]}"
check "helm install (crds.keep=false) adopts the kept CRDs" helm install "$CREL" "$TMP/crd-v2" --namespace "$NS" --timeout 120s \
  --set replicas=1 --set leaderElection.enabled=false --set crds.keep=false
# (Adopting leaves the live keep annotation in place; Helm decides what to keep from the
# release's manifest, which has none.)
helm get manifest "$CREL" --namespace "$NS" >"$TMP/crd3.yaml"
if grep -q 'helm.sh/resource-policy' "$TMP/crd3.yaml"; then bad "crds.keep=false: the release's manifest still has helm.sh/resource-policy"
elif [[ "$(grep -c '^kind: CustomResourceDefinition' "$TMP/crd3.yaml")" != 4 ]]; then bad "crds.keep=false: the release's manifest lacks the 4 CRDs"
else ok; fi
check "helm uninstall (crds.keep=false)" helm uninstall "$CREL" --namespace "$NS" --wait --timeout 120s
gone=false
for _ in $(seq 60); do
  if [[ -z "$(kc get crd "${CRDS[@]}" -o name --ignore-not-found 2>/dev/null)" ]]; then gone=true; break; fi
  sleep 1
done
$gone && ok || bad "crds.keep=false: CRDs still there 60 s after uninstall: $(kc get crd "${CRDS[@]}" -o name --ignore-not-found 2>&1 | tr '\n' ' ')"
$gone && crds_installed=false

# ---------------------------------------------------------------- uninstall
step "helm uninstall"
check "helm uninstall" helm uninstall "$REL" --namespace "$NS" --wait --timeout 120s
installed=false
# Every listable resource type, namespaced and cluster-scoped, with the release's label.
types="$(kc api-resources --verbs=list -o name | paste -sd, -)"
left="$(kc get "$types" --all-namespaces -l "$SEL" -o name --ignore-not-found 2>"$TMP/get.err" || true)"
if [[ -z "$left" ]]; then ok; else bad "objects left after uninstall: $(echo "$left" | tr '\n' ' ')"; fi
grep -v -i -E "warning|deprecated" "$TMP/get.err" >&2 || true
left="$(kc get secrets -n "$NS" -l "owner=helm,name=$REL" -o name)"
[[ -z "$left" ]] && ok || bad "helm release records left: $left"
check "CRDs (the fixture's, crds.enabled=false) still there after uninstall" kc get crd capacitypools.waterline.dev modeldeployments.waterline.dev ptureservations.waterline.dev

finish
