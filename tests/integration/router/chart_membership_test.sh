#!/usr/bin/env bash
# Offline checks of the Helm chart's router membership (router.membership.*): the flags
# of waterline-router, the pod name from the downward API, the token, and the Role on
# leases with exactly the verbs the router uses, in a namespace of the router's own (never
# the release namespace, where the operator's Leases are). Reuses the chart test helpers of
# tests/integration/helm (lib.sh). CTest: router.chart_membership (labels integration,
# helm).
# jq programs are single-quoted on purpose ($vars are jq variables).
# shellcheck disable=SC2016
# shellcheck source=tests/integration/helm/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../helm/lib.sh"
trap 'rm -rf "$TMP"' EXIT
R=wl-waterline-router

check "helm lint --strict (router membership on)" helm lint --strict "$CHART" --kube-version "$KUBE_VER" \
  --set router.enabled=true --set router.membership.enabled=true

# ---------------------------------------------------------------- membership on
f="$(render on --set router.enabled=true --set router.membership.enabled=true)"
jqcheck "objects: the router's namespace, Role and RoleBinding on top of the router's usual ones" "$f" \
  'kinds == ["ClusterRole","ClusterRoleBinding","Deployment","Deployment","Namespace","PodDisruptionBudget","PodDisruptionBudget","Role","Role","Role","RoleBinding","RoleBinding","RoleBinding","Service","Service","ServiceAccount","ServiceAccount","ValidatingAdmissionPolicy","ValidatingAdmissionPolicyBinding"]'
jqcheck "the Leases' own namespace, wl-sys-router-membership, created by the chart" "$f" '
  one("Namespace"; "wl-sys-router-membership").metadata.labels["app.kubernetes.io/instance"] == "wl"'
jqcheck "router args: --replicas stays (N until the first count), then the membership flags" "$f" --arg R "$R" '
  args($R; "router") == ["--listen=0.0.0.0:8080", "--routes-url=http://wl-waterline-metrics.wl-sys.svc:8080/v1/routes",
    "--replicas=2", "--membership-group=wl-waterline-router", "--membership-namespace=wl-sys-router-membership", "--identity=$(POD_NAME)",
    "--membership-lease-duration=15s", "--shutdown-delay=5s", "--shutdown-grace=30s", "--log-level=info"]'
jqcheck "router env: POD_NAME from metadata.name (downward API)" "$f" --arg R "$R" '
  container($R; "router").env == [{"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}]'
jqcheck "router pods get their ServiceAccount token" "$f" --arg R "$R" '
  one("Deployment"; $R).spec.template.spec.automountServiceAccountToken == true and
  one("ServiceAccount"; $R).automountServiceAccountToken == true and
  one("Deployment"; $R).spec.template.spec.serviceAccountName == $R'
jqcheck "membership Role: leases get/list/create/update/delete in their own namespace, nothing else" "$f" '
  one("Role"; "wl-waterline-router-membership") | .metadata.namespace == "wl-sys-router-membership" and .rules == [
    {apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get","list","create","update","delete"]}]'
jqcheck "membership RoleBinding: the router ServiceAccount only" "$f" --arg R "$R" '
  one("RoleBinding"; "wl-waterline-router-membership") | .metadata.namespace == "wl-sys-router-membership" and
  .roleRef == {"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"wl-waterline-router-membership"} and
  .subjects == [{"kind":"ServiceAccount","name":$R,"namespace":"wl-sys"}]'
jqcheck "the router is bound to nothing else, and nothing in the release namespace" "$f" --arg R "$R" '
  [.[] | select(.kind | test("RoleBinding$")) | select(any(.subjects[]; .name == $R)) | .metadata.name] == ["wl-waterline-router-membership"]'
jqcheck "the operator keeps its own RBAC unchanged" "$f" '
  one("Role"; "wl-waterline-leader-election").rules[0].resourceNames == ["wl-waterline"] and
  one("ClusterRoleBinding"; "wl-waterline-wl-sys").subjects[0].name == "wl-waterline"'
jqcheck "every router flag is one waterline-router knows" "$f" --arg R "$R" '
  args($R; "router") | all(test("^--(listen|routes-url|replicas|membership-group|membership-namespace|identity|membership-lease-duration|shutdown-delay|shutdown-grace|log-level)="))'

# ---------------------------------------------------------------- overrides
f="$(render ns --set router.enabled=true --set router.membership.enabled=true --set router.membership.namespace=routers \
  --set router.membership.leaseDuration=9 --set router.replicas=3 --set fullnameOverride=wl-op)"
jqcheck "a namespace set: not created by the chart" "$f" 'none("Namespace")'
jqcheck "own namespace and lease duration: Role and RoleBinding there, the ServiceAccount in the release namespace" "$f" '
  one("Role"; "wl-op-router-membership").metadata.namespace == "routers" and
  one("RoleBinding"; "wl-op-router-membership") as $b | $b.metadata.namespace == "routers" and
  $b.subjects == [{"kind":"ServiceAccount","name":"wl-op-router","namespace":"wl-sys"}] and
  (args("wl-op-router"; "router") | index("--membership-namespace=routers") and index("--membership-lease-duration=9s") and
   index("--membership-group=wl-op-router") and index("--replicas=3"))'
f="$(render norbac --set router.enabled=true --set router.membership.enabled=true --set rbac.create=false \
  --set serviceAccount.create=false --set serviceAccount.name=ops)"
jqcheck "rbac.create=false: no membership Role, flags still set" "$f" --arg R "$R" '
  none("Role") and none("RoleBinding") and (args($R; "router") | index("--identity=$(POD_NAME)"))'

# ---------------------------------------------------------------- membership off (default)
f="$(render off --set router.enabled=true)"
jqcheck "membership off: no token, no Role, no membership flags, no env" "$f" --arg R "$R" '
  one("Deployment"; $R).spec.template.spec.automountServiceAccountToken == false and
  one("ServiceAccount"; $R).automountServiceAccountToken == false and
  ([.[] | select(.kind == "Role") | .metadata.name] | sort == ["wl-waterline-leader-election","wl-waterline-routing-heartbeat"]) and
  (args($R; "router") | all(test("^--(membership-|identity)") | not)) and (container($R; "router").env == null)'
jqcheck "router.enabled=false renders no router RBAC even with membership on" "$(render nrouter --set router.membership.enabled=true)" \
  '[.[] | select(.metadata.name | test("router"))] == []'

# ---------------------------------------------------------------- bad values
rejects() {
  local want="$1"; shift
  local out
  if out="$(helm template wl "$CHART" --namespace wl-sys --kube-version "$KUBE_VER" "$@" 2>&1 >/dev/null)"; then
    bad "accepted $*"
  elif [[ "$out" != *"$want"* ]]; then
    bad "rejected $* but without '$want': $out"
  else ok; fi
}
rejects "at '/router/membership/leaseDuration': minimum" --set router.membership.leaseDuration=2
rejects "at '/router/membership/leaseDuration': maximum" --set router.membership.leaseDuration=7200
rejects "at '/router/membership/namespace'" --set router.membership.namespace=Bad_NS
rejects "router.membership.namespace must not be the release namespace wl-sys" \
  --set router.enabled=true --set router.membership.enabled=true --set router.membership.namespace=wl-sys
rejects "router.membership.namespace must not be routing.heartbeatNamespace" --set router.enabled=true \
  --set router.membership.enabled=true --set router.membership.namespace=hub --set routing.heartbeatNamespace=hub
rejects "at '/router/membership/enabled'" --set-string router.membership.enabled=yes
rejects "additional properties 'group' not allowed" --set router.membership.group=x

finish
