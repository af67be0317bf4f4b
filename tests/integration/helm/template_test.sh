#!/usr/bin/env bash
# Offline chart tests (no API server): helm lint, helm template over a matrix of values
# with assertions on the rendered objects, values rejected by values.schema.json or the
# chart's own checks (with their message), the alert rules file (promtool), and the plain
# manifests in deploy/manifests (kustomize build). CTest: helm.template.
# jq programs are single-quoted on purpose ($vars are jq variables); ok never fails.
# shellcheck disable=SC2016,SC2015
# shellcheck source=tests/integration/helm/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
trap 'rm -rf "$TMP"' EXIT
D=wl-waterline   # the release's full name (release "wl", chart "waterline")

# ---------------------------------------------------------------- lint
check "helm lint --strict (defaults)" helm lint --strict "$CHART" --kube-version "$KUBE_VER"
check "helm lint --strict (router, monitoring, hub secret)" helm lint --strict "$CHART" \
  --kube-version "$KUBE_VER" --set router.enabled=true --set routing.hubKubeconfigSecret=hub \
  --set monitoring.serviceMonitor.enabled=true --set monitoring.prometheusRule.enabled=true

# ---------------------------------------------------------------- defaults
f="$(render defaults)"
jqcheck "default objects" "$f" \
  'kinds == ["ClusterRole","ClusterRoleBinding","Deployment","PodDisruptionBudget","Role","Role","RoleBinding","RoleBinding","Service","ServiceAccount","ValidatingAdmissionPolicy","ValidatingAdmissionPolicyBinding"]'
# CRDs: templates (templates/crds, generated from crds/ by hack/chart-sync.sh) that render
# each file of crds/ unchanged but for the keep annotation.
for c in "$ROOT"/crds/*.yaml; do yaml_to_json <"$c"; done | jq -s 'add' >"$TMP/crds-src.json"
jqcheck "CRDs: those of crds/, unchanged, annotated helm.sh/resource-policy: keep" "$f" --slurpfile src "$TMP/crds-src.json" '
  def strip: del(.metadata.annotations) | del(.metadata.labels["app.kubernetes.io/managed-by"]);
  [.[] | select(.kind == "CustomResourceDefinition")] as $c | ($c | length) == ($src[0] | length) and
  ($c | map(strip) | sort_by(.metadata.name)) == ($src[0] | map(strip) | sort_by(.metadata.name)) and
  ($c | all(.metadata.annotations["helm.sh/resource-policy"] == "keep"))'
jqcheck "CRD braces survive templating ({{deployment}} in a default)" "$f" '
  one("CustomResourceDefinition"; "modeldeployments.waterline.dev") | tostring | contains("deployment=\\\"{{deployment}}\\\"")'
f2="$(render crds-nokeep --set crds.keep=false)"
jqcheck "crds.keep=false: CRDs without the keep annotation" "$f2" \
  '[.[] | select(.kind == "CustomResourceDefinition")] | length == 4 and all(.metadata.annotations["helm.sh/resource-policy"] == null)'
f2="$(render crds-off --set crds.enabled=false)"
jqcheck "crds.enabled=false: no CRD" "$f2" 'none("CustomResourceDefinition")'
jqcheck "every object carries the release labels" "$f" \
  'all(.[] | select(.kind != "CustomResourceDefinition"); .metadata.labels["app.kubernetes.io/instance"] == "wl" and .metadata.labels["app.kubernetes.io/name"] == "waterline" and .metadata.labels["app.kubernetes.io/managed-by"] == "Helm")'
jqcheck "namespaced objects are in the release namespace" "$f" \
  'all(.[] | select(.kind | IN("ClusterRole","ClusterRoleBinding","ValidatingAdmissionPolicy","ValidatingAdmissionPolicyBinding","CustomResourceDefinition") | not); .metadata.namespace == "wl-sys")'
jqcheck "cluster-scoped names include the namespace" "$f" \
  'one("ClusterRole"; "wl-waterline-wl-sys") and one("ClusterRoleBinding"; "wl-waterline-wl-sys")'
jqcheck "deployment: 2 replicas, image from appVersion" "$f" \
  --arg D "$D" 'one("Deployment"; $D).spec.replicas == 2 and container($D; "operator").image == "waterline:0.1.0" and container($D; "operator").imagePullPolicy == "IfNotPresent"'
jqcheck "deployment: leader election flags" "$f" --arg D "$D" \
  'args($D; "operator") as $a | ["--bind-address=:8080", "--leader-elect=true", "--leader-election-namespace=$(POD_NAMESPACE)", "--leader-election-id=wl-waterline", "--identity=$(POD_NAME)", "--lease-duration=15s", "--renew-deadline=10s", "--retry-period=2s", "--resync-period=600s", "--routing-heartbeat=10s", "--log-level=info", "--v=0", "--workers=4"] - $a == []'
jqcheck "deployment: every flag is one the operator knows" "$f" --arg D "$D" \
  'args($D; "operator") | all(test("^--(bind-address|leader-elect|leader-election-namespace|leader-election-id|identity|lease-duration|renew-deadline|retry-period|workers|kube-api-qps|kube-api-burst|resync-period|routing-heartbeat|routing-heartbeat-namespace|cluster-name|prometheus-url|log-level|v)=")) and (index("--active-health-probes=true") | not)'
jqcheck "deployment: POD_NAME/POD_NAMESPACE from the downward API, no optional env" "$f" --arg D "$D" \
  '[container($D; "operator").env[] | .name] == ["POD_NAME", "POD_NAMESPACE"] and (container($D; "operator").env[1].valueFrom.fieldRef.fieldPath == "metadata.namespace")'
jqcheck "deployment: probes on the metrics port" "$f" --arg D "$D" \
  'container($D; "operator") | .ports == [{"name":"metrics","containerPort":8080,"protocol":"TCP"}] and .livenessProbe.httpGet == {"path":"/healthz","port":"metrics"} and .readinessProbe.httpGet == {"path":"/readyz","port":"metrics"}'
jqcheck "deployment: resources set" "$f" --arg D "$D" \
  'container($D; "operator").resources | .requests.cpu == "100m" and .requests.memory == "128Mi" and .limits.memory == "512Mi"'
jqcheck "deployment: container securityContext (restricted)" "$f" --arg D "$D" \
  'container($D; "operator").securityContext | .runAsNonRoot == true and .runAsUser == 65532 and .readOnlyRootFilesystem == true and .allowPrivilegeEscalation == false and .capabilities.drop == ["ALL"] and (.capabilities.add == null) and .seccompProfile.type == "RuntimeDefault" and .privileged == false'
jqcheck "deployment: pod securityContext" "$f" --arg D "$D" \
  'one("Deployment"; $D).spec.template.spec.securityContext | .runAsNonRoot == true and .runAsUser == 65532 and .seccompProfile.type == "RuntimeDefault"'
jqcheck "deployment: runs as the chart's ServiceAccount" "$f" --arg D "$D" \
  'one("Deployment"; $D).spec.template.spec.serviceAccountName == $D and one("ServiceAccount"; $D)'
jqcheck "deployment: selector ⊆ pod labels" "$f" --arg D "$D" \
  'one("Deployment"; $D).spec as $s | subset($s.selector.matchLabels; $s.template.metadata.labels)'
jqcheck "deployment: only /tmp is writable, no hub mount" "$f" --arg D "$D" \
  '[one("Deployment"; $D).spec.template.spec.volumes[].name] == ["tmp"] and [container($D; "operator").volumeMounts[].mountPath] == ["/tmp"]'
jqcheck "PDB: minAvailable 1 over the operator pods" "$f" --arg D "$D" \
  'one("PodDisruptionBudget"; $D).spec.minAvailable == 1 and one("PodDisruptionBudget"; $D).spec.selector.matchLabels == one("Deployment"; $D).spec.selector.matchLabels'
jqcheck "metrics Service selects the operator pods on port metrics" "$f" --arg D "$D" \
  'one("Service"; "wl-waterline-metrics").spec as $s | subset($s.selector; one("Deployment"; $D).spec.template.metadata.labels) and $s.ports == [{"name":"metrics","port":8080,"targetPort":"metrics","protocol":"TCP"}]'

# RBAC: exactly the rules the controllers need (docs/install.md, templates/rbac.yaml).
jqcheck "ClusterRole rules are exactly the justified set (helm.rbac_audit: each is used)" "$f" '
  one("ClusterRole"; "wl-waterline-wl-sys").rules | map({g: .apiGroups, r: (.resources | sort), v: (.verbs | sort)}) == [
    {g: ["waterline.dev"], r: ["capacitypools","modeldeployments","ptureservations"], v: ["list","watch"]},
    {g: ["waterline.dev"], r: ["modeldeployments","ptureservations"], v: ["patch"]},
    {g: ["waterline.dev"], r: ["capacitypools/status","modeldeployments/status","ptureservations/status"], v: ["patch"]},
    {g: ["waterline.dev"], r: ["routingtables"], v: ["create","delete","get","list","patch","watch"]},
    {g: [""], r: ["pods"], v: ["create","delete","get","list","patch","watch"]},
    {g: ["resource.k8s.io"], r: ["resourceslices"], v: ["list","watch"]},
    {g: ["resource.k8s.io"], r: ["resourceclaims"], v: ["create","delete","list","patch","watch"]},
    {g: ["resource.k8s.io"], r: ["resourceclaims/status"], v: ["patch"]},
    {g: [""], r: ["pods/eviction"], v: ["create"]},
    {g: [""], r: ["nodes"], v: ["list","patch","watch"]},
    {g: [""], r: ["events"], v: ["create","patch"]}]'
jqcheck "metrics.secure=true: TokenReview and SubjectAccessReview create on top" "$(render secure --set metrics.secure=true)" '
  one("ClusterRole"; "wl-waterline-wl-sys").rules[-2:] == [
    {apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"]},
    {apiGroups: ["authorization.k8s.io"], resources: ["subjectaccessreviews"], verbs: ["create"]}]'
jqcheck "no update, no scale subresource, no events.k8s.io" "$f" '
  [.[] | select(.kind == "ClusterRole" or .kind == "Role") | .rules[] | select((.verbs | index("update")) and (.resources | index("leases") | not))] == [] and
  [.[] | select(.kind == "ClusterRole") | .rules[] | (.resources[] | select(test("/scale$"))), (.apiGroups[] | select(. == "events.k8s.io"))] == []'
jqcheck "node patch policy: the operator account only, UPDATE of nodes, denies" "$f" --arg D "$D" '
  one("ValidatingAdmissionPolicy"; "wl-waterline-wl-sys-node-patch").spec as $p |
  one("ValidatingAdmissionPolicyBinding"; "wl-waterline-wl-sys-node-patch").spec as $b |
  $p.failurePolicy == "Fail" and $p.matchConstraints.resourceRules == [{apiGroups: [""], apiVersions: ["v1"], operations: ["UPDATE"], resources: ["nodes"]}] and
  $p.matchConditions == [{name: "operator-service-account", expression: ("request.userInfo.username == '"'"'system:serviceaccount:wl-sys:" + $D + "'"'"'")}] and
  ($p.validations | length) == 5 and $b == {policyName: "wl-waterline-wl-sys-node-patch", validationActions: ["Deny"]}'
jqcheck "rbac.nodePatchPolicy=false: no policy" "$(render nopolicy --set rbac.nodePatchPolicy=false)" \
  'none("ValidatingAdmissionPolicy") and none("ValidatingAdmissionPolicyBinding") and one("ClusterRole"; "wl-waterline-wl-sys")'
if out="$(helm template wl "$CHART" --namespace wl-sys --kube-version 1.29.0 2>&1)"; then
  bad "Kubernetes 1.29 with the node patch policy rendered"
else
  [[ "$out" == *"rbac.nodePatchPolicy needs Kubernetes 1.30"* ]] && ok || bad "Kubernetes 1.29 refused without the policy's reason: $out"
fi
check "Kubernetes 1.29 with rbac.nodePatchPolicy=false renders" \
  helm template wl "$CHART" --namespace wl-sys --kube-version 1.29.0 --set rbac.nodePatchPolicy=false
jqcheck "no wildcard, secrets, configmaps or namespaces in any role" "$f" '
  [.[] | select(.kind == "ClusterRole" or .kind == "Role") | .rules[] | (.apiGroups + .resources + .verbs)[]] |
  all(. != "*" and . != "secrets" and . != "configmaps" and . != "namespaces" and . != "escalate" and . != "bind" and . != "impersonate")'
jqcheck "ClusterRoleBinding binds the ServiceAccount" "$f" --arg D "$D" \
  'one("ClusterRoleBinding"; "wl-waterline-wl-sys") | .roleRef.name == "wl-waterline-wl-sys" and .subjects == [{"kind":"ServiceAccount","name":$D,"namespace":"wl-sys"}]'
jqcheck "leader-election Role: get/update the one Lease, create in the namespace" "$f" '
  one("Role"; "wl-waterline-leader-election") | .metadata.namespace == "wl-sys" and .rules == [
    {apiGroups: ["coordination.k8s.io"], resources: ["leases"], resourceNames: ["wl-waterline"], verbs: ["get","update"]},
    {apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"]}]'
jqcheck "routing-heartbeat Role: patch its one Lease, create and list/watch in the namespace" "$f" '
  one("Role"; "wl-waterline-routing-heartbeat") | .metadata.namespace == "wl-sys" and .rules == [
    {apiGroups: ["coordination.k8s.io"], resources: ["leases"], resourceNames: ["waterline-routing-local"], verbs: ["patch"]},
    {apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create","list","watch"]}]'
jqcheck "deployment: the routing heartbeat Lease in the release namespace" "$f" --arg D "$D" \
  'args($D; "operator") | index("--routing-heartbeat-namespace=$(POD_NAMESPACE)")'
f2="$(render hb --set routing.clusterName=eu-1 --set routing.heartbeatNamespace=hub-ns)"
jqcheck "routing.heartbeatNamespace elsewhere: the flag, and no local heartbeat Role" "$f2" --arg D "$D" \
  '(args($D; "operator") | index("--routing-heartbeat-namespace=hub-ns") and index("--cluster-name=eu-1")) and ([.[] | select(.kind == "Role" and .metadata.name == "wl-waterline-routing-heartbeat")] | length == 0)'
f2="$(render hb2 --set routing.clusterName=eu-1)"
jqcheck "routing.clusterName names the heartbeat Lease in the Role" "$f2" \
  'one("Role"; "wl-waterline-routing-heartbeat").rules[0].resourceNames == ["waterline-routing-eu-1"]'
jqcheck "leader-election RoleBinding" "$f" --arg D "$D" \
  'one("RoleBinding"; "wl-waterline-leader-election") | .roleRef == {"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"wl-waterline-leader-election"} and .subjects[0].name == $D'

# ---------------------------------------------------------------- router enabled
f="$(render router --set router.enabled=true --set router.extraArgs[0]=--overload=best-effort)"
R=wl-waterline-router
jqcheck "router objects" "$f" \
  'kinds == ["ClusterRole","ClusterRoleBinding","Deployment","Deployment","PodDisruptionBudget","PodDisruptionBudget","Role","Role","RoleBinding","RoleBinding","Service","Service","ServiceAccount","ServiceAccount","ValidatingAdmissionPolicy","ValidatingAdmissionPolicyBinding"]'
jqcheck "router: command, listen, routes URL of the operator Service, replicas, extra args" "$f" --arg R "$R" '
  container($R; "router") | .command == ["/usr/local/bin/waterline-router"] and .image == "waterline:0.1.0" and
  .args == ["--listen=0.0.0.0:8080", "--routes-url=http://wl-waterline-metrics.wl-sys.svc:8080/v1/routes", "--replicas=2",
    "--shutdown-delay=5s", "--shutdown-grace=30s", "--log-level=info", "--overload=best-effort"]'
jqcheck "router: graceful shutdown (preStop sleep = delay, grace period = delay + grace + 10)" "$f" --arg R "$R" '
  one("Deployment"; $R).spec.template.spec as $p | $p.terminationGracePeriodSeconds == 45 and
  ($p.containers[0].lifecycle == {"preStop": {"sleep": {"seconds": 5}}})'
jqcheck "router: default topology spread over zones and nodes, ScheduleAnyway, no priorityClassName" "$f" --arg R "$R" '
  one("Deployment"; $R).spec.selector.matchLabels as $sel | one("Deployment"; $R).spec.template.spec as $p | ($p | has("priorityClassName") | not) and
  ([$p.topologySpreadConstraints[] | [.topologyKey, .whenUnsatisfiable, .maxSkew]] ==
    [["topology.kubernetes.io/zone", "ScheduleAnyway", 1], ["kubernetes.io/hostname", "ScheduleAnyway", 1]]) and
  ($p.topologySpreadConstraints | all(.labelSelector.matchLabels == $sel))'
jqcheck "router: no metrics port of its own by default" "$f" --arg R "$R" '
  (container($R; "router").ports | length) == 1 and (one("Service"; $R).spec.ports | length) == 1 and
  (args($R; "router") | all(startswith("--metrics-listen") | not))'
f2="$(render router-shutdown --set router.enabled=true --set router.shutdown.delay=10 --set router.shutdown.grace=120 \
  --set router.priorityClassName=inference-critical --set router.topologySpreadConstraints[0].maxSkew=2 \
  --set router.topologySpreadConstraints[0].topologyKey=zone --set router.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule \
  --set router.metrics.port=9090)"
jqcheck "router: shutdown values, priorityClassName, own topologySpreadConstraints, metrics port" "$f2" --arg R "$R" '
  one("Deployment"; $R).spec.template.spec as $p | $p.terminationGracePeriodSeconds == 140 and $p.priorityClassName == "inference-critical" and
  $p.topologySpreadConstraints == [{"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}] and
  $p.containers[0].lifecycle.preStop.sleep.seconds == 10 and
  (args($R; "router") | index("--shutdown-delay=10s") and index("--shutdown-grace=120s") and index("--metrics-listen=0.0.0.0:9090")) and
  (container($R; "router").ports | index({"name":"http-metrics","containerPort":9090,"protocol":"TCP"})) and
  (one("Service"; $R).spec.ports | index({"name":"http-metrics","port":9090,"targetPort":"http-metrics","protocol":"TCP"}))'
f2="$(render router-tgp --set router.enabled=true --set router.terminationGracePeriodSeconds=300 --set router.shutdown.delay=0)"
jqcheck "router: terminationGracePeriodSeconds set; delay 0: no preStop" "$f2" --arg R "$R" '
  one("Deployment"; $R).spec.template.spec as $p | $p.terminationGracePeriodSeconds == 300 and ($p.containers[0] | has("lifecycle") | not) and
  (args($R; "router") | index("--shutdown-delay=0s"))'
f2="$(render router-k129 --set router.enabled=true --kube-version 1.29.0 --set rbac.nodePatchPolicy=false)"
jqcheck "router: Kubernetes 1.29 (no sleep action): no preStop, the router's own delay" "$f2" --arg R "$R" '
  (container($R; "router") | has("lifecycle") | not) and (args($R; "router") | index("--shutdown-delay=5s"))'
jqcheck "router: probes, port, securityContext" "$f" --arg R "$R" '
  container($R; "router") | .ports[0] == {"name":"http","containerPort":8080,"protocol":"TCP"} and .readinessProbe.httpGet.path == "/readyz" and .livenessProbe.httpGet.path == "/healthz" and
  .securityContext.readOnlyRootFilesystem == true and .securityContext.runAsUser == 65532 and .securityContext.capabilities.drop == ["ALL"]'
jqcheck "router: own ServiceAccount without a token, no RBAC" "$f" --arg R "$R" '
  one("ServiceAccount"; $R).automountServiceAccountToken == false and one("Deployment"; $R).spec.template.spec.automountServiceAccountToken == false and
  one("Deployment"; $R).spec.template.spec.serviceAccountName == $R and ([.[] | select(.kind | test("RoleBinding$")) | .subjects[].name] | index($R) == null)'
jqcheck "router: Service port 80 -> http, selects only router pods" "$f" --arg R "$R" --arg D "$D" '
  one("Service"; $R).spec as $s | $s.ports == [{"name":"http","port":80,"targetPort":"http","protocol":"TCP"}] and
  subset($s.selector; one("Deployment"; $R).spec.template.metadata.labels) and (subset($s.selector; one("Deployment"; $D).spec.template.metadata.labels) | not)'
jqcheck "operator Service does not select router pods" "$f" --arg R "$R" \
  'subset(one("Service"; "wl-waterline-metrics").spec.selector; one("Deployment"; $R).spec.template.metadata.labels) | not'
f="$(render router2 --set router.enabled=true --set router.replicas=3 --set router.routesUrl=http://op.example:9000/v1/routes \
  --set router.image.repository=reg.example/router --set router.image.tag=dev --set router.port=9090 --set router.service.port=8000)"
jqcheck "router: overrides" "$f" --arg R "$R" '
  one("Deployment"; $R).spec.replicas == 3 and container($R; "router") as $c | $c.image == "reg.example/router:dev" and
  ($c.args | index("--routes-url=http://op.example:9000/v1/routes") and index("--replicas=3") and index("--listen=0.0.0.0:9090")) and
  $c.ports[0].containerPort == 9090 and one("Service"; $R).spec.ports[0].port == 8000'

# ---------------------------------------------------------------- monitoring
f="$(render mon --api-versions monitoring.coreos.com/v1 --set monitoring.serviceMonitor.enabled=true \
  --set monitoring.prometheusRule.enabled=true --set monitoring.serviceMonitor.labels.release=kps)"
jqcheck "monitoring API present + enabled: ServiceMonitor and PrometheusRule" "$f" --arg D "$D" \
  'one("ServiceMonitor"; $D) and one("PrometheusRule"; $D) and one("ServiceMonitor"; $D).metadata.labels.release == "kps"'
jqcheck "ServiceMonitor selects the metrics Service and its port" "$f" --arg D "$D" '
  one("ServiceMonitor"; $D).spec as $m | subset($m.selector.matchLabels; one("Service"; "wl-waterline-metrics").metadata.labels) and
  $m.endpoints == [{"port":"metrics","path":"/metrics","interval":"30s","scrapeTimeout":"10s","honorLabels":true}] and $m.namespaceSelector.matchNames == ["wl-sys"]'
jqcheck "PrometheusRule carries the alerts of deploy/prometheus/waterline-alerts.yaml" "$f" --arg D "$D" '
  one("PrometheusRule"; $D).spec.groups as $g |
  ([$g[].name] == ["waterline.operator","waterline.fleet","waterline.routing","waterline.router"]) and
  ([$g[].rules[].alert] == ["WaterlineNoLeader","WaterlineMultipleLeaders","WaterlineReconcileErrors",
    "WaterlineWorkqueueBacklog","WaterlineInformerNotSynced","WaterlineKubeApiErrors",
    "WaterlinePoolCapacityExhausted","WaterlinePoolNotReady","WaterlineGPUsUnhealthy",
    "WaterlineDeploymentUnavailable","WaterlineDeploymentUnschedulable","WaterlineReservationInsufficient",
    "WaterlineRoutingTableStale","WaterlineRouter5xxRate","WaterlineRouterNoRoutes","WaterlineRouterRoutingTableStale"]) and
  ([$g[].rules[] | .labels.severity] | all(IN("critical","warning"))) and
  ([$g[].rules[] | .annotations.runbook_url] | all(startswith("docs/operations.md#"))) and
  ([$g[].rules[] | .annotations | has("runbook")] | all(. == false)) and
  ([$g[].rules[].expr | scan("(?:sum|max|min) by \\(([^)]*)\\)") | .[0]] | length > 15 and all(startswith("cluster, ") or startswith("cluster)"))) and
  ($g[0].rules[2].annotations.summary | contains("{{ $labels.controller }}"))'
f2="$(render alerts --api-versions monitoring.coreos.com/v1 --set monitoring.prometheusRule.enabled=true \
  --set alerts.WaterlineNoLeader.enabled=false --set alerts.WaterlineRouter5xxRate.enabled=false \
  --set alerts.WaterlineRouterNoRoutes.enabled=false --set alerts.WaterlineRouterRoutingTableStale.enabled=false \
  --set alerts.labels.team=gpu-platform --set alerts.labels.severity=info \
  --set alerts.runbookBaseUrl=https://git.example.com/waterline/blob/v0.1.0/docs/operations.md/)"
jqcheck "alerts: switched-off alerts and emptied groups left out, extra labels (severity kept), runbook base URL" "$f2" --arg D "$D" '
  one("PrometheusRule"; $D).spec.groups as $g |
  ([$g[].name] == ["waterline.operator","waterline.fleet","waterline.routing"]) and
  ([$g[].rules[].alert] | index("WaterlineNoLeader") == null and index("WaterlineMultipleLeaders") != null and length == 12) and
  ([$g[].rules[] | .labels.team] | all(. == "gpu-platform")) and
  ([$g[].rules[] | .labels.severity] | all(IN("critical","warning"))) and
  ($g[0].rules[0].annotations.runbook_url == "https://git.example.com/waterline/blob/v0.1.0/docs/operations.md#waterlinemultipleleaders")'
jq '[.[] | select(.kind == "PrometheusRule")][0].spec' "$f2" >"$TMP/alerts-rules.json"
if command -v promtool >/dev/null; then
  check "promtool check rules (the PrometheusRule with switches, labels and runbook URLs)" promtool check rules "$TMP/alerts-rules.json"
fi
# values.yaml has one switch per alert of the rules file, all on, and the schema knows
# exactly those.
want="$(grep -oE '^ +- alert: \S+' "$CHART/files/prometheus-rules.yaml" | awk '{print $3}' | sort | paste -sd, -)"
got_schema="$(jq -r '.properties.alerts.properties | keys - ["labels","runbookBaseUrl"] | sort | join(",")' "$CHART/values.schema.json")"
{ printf 'apiVersion: wl.test/v1\nkind: Values\nmetadata: {name: values}\nspec:\n'; helm show values "$CHART" | sed 's/^/  /'; } |
  yaml_to_json >"$TMP/values.json"
got_values="$(jq -r '.[0].spec.alerts | with_entries(select(.value | type == "object" and .enabled == true)) | keys - ["labels"] | sort | join(",")' "$TMP/values.json")"
[[ "$got_schema" == "$want" ]] && ok || bad "values.schema.json alerts switches ($got_schema) differ from the rules' alerts ($want)"
[[ "$got_values" == "$want" ]] && ok || bad "values.yaml alerts switches ($got_values) differ from the rules' alerts ($want)"
yaml_to_json <"$ROOT/deploy/prometheus/waterline-prometheusrule.yaml" >"$TMP/plain-rule.json"
jqcheck "deploy/prometheus/waterline-prometheusrule.yaml has the chart's rules" "$f" --arg D "$D" --slurpfile p "$TMP/plain-rule.json" \
  '($p[0] | length) == 1 and one("PrometheusRule"; $D).spec == $p[0][0].spec and $p[0][0].metadata.namespace == "waterline-system"'
f="$(render mon-router --api-versions monitoring.coreos.com/v1 --set monitoring.serviceMonitor.enabled=true --set router.enabled=true)"
jqcheck "router ServiceMonitor on the router Service" "$f" \
  'one("ServiceMonitor"; "wl-waterline-router").spec as $m | subset($m.selector.matchLabels; one("Service"; "wl-waterline-router").metadata.labels) and $m.endpoints[0].port == "http" and none("PrometheusRule")'
jqcheck "no relabelings by default" "$f" \
  '[.[] | select(.kind == "ServiceMonitor") | .spec.endpoints[] | has("relabelings") or has("metricRelabelings")] | all(. == false)'
f="$(render mon-relabel --api-versions monitoring.coreos.com/v1 --set monitoring.serviceMonitor.enabled=true --set router.enabled=true \
  --set 'monitoring.serviceMonitor.relabelings[0].targetLabel=cluster' --set 'monitoring.serviceMonitor.relabelings[0].replacement=eu-1' \
  --set 'monitoring.serviceMonitor.metricRelabelings[0].action=drop' --set 'monitoring.serviceMonitor.metricRelabelings[0].sourceLabels[0]=__name__' \
  --set 'monitoring.serviceMonitor.metricRelabelings[0].regex=waterline_rest_.*' \
  --set 'monitoring.serviceMonitor.router.relabelings[0].targetLabel=cluster' --set 'monitoring.serviceMonitor.router.relabelings[0].replacement=eu-2' \
  --set 'monitoring.serviceMonitor.router.metricRelabelings[0].action=labeldrop' --set 'monitoring.serviceMonitor.router.metricRelabelings[0].regex=pool')"
jqcheck "relabelings / metricRelabelings on the operator's and the router's endpoints" "$f" --arg D "$D" '
  one("ServiceMonitor"; $D).spec.endpoints[0] as $o | one("ServiceMonitor"; "wl-waterline-router").spec.endpoints[0] as $r |
  $o.relabelings == [{"targetLabel":"cluster","replacement":"eu-1"}] and
  $o.metricRelabelings == [{"action":"drop","sourceLabels":["__name__"],"regex":"waterline_rest_.*"}] and $o.honorLabels == true and
  $r.relabelings == [{"targetLabel":"cluster","replacement":"eu-2"}] and $r.metricRelabelings == [{"action":"labeldrop","regex":"pool"}]'
f="$(render mon-noapi --set monitoring.serviceMonitor.enabled=true --set monitoring.prometheusRule.enabled=true)"
jqcheck "enabled but monitoring.coreos.com/v1 not served: nothing rendered" "$f" 'none("ServiceMonitor") and none("PrometheusRule")'
f="$(render mon-off --api-versions monitoring.coreos.com/v1)"
jqcheck "API served but not enabled: nothing rendered" "$f" 'none("ServiceMonitor") and none("PrometheusRule")'
# Grafana dashboard ConfigMap: off by default, needs no monitoring API, carries the
# sidecar's label and the same dashboard JSON as deploy/grafana.
jqcheck "no dashboard ConfigMap by default" "$TMP/defaults.json" 'none("ConfigMap")'
f="$(render dash --set monitoring.grafanaDashboard.enabled=true --set monitoring.grafanaDashboard.namespace=monitoring \
  --set monitoring.grafanaDashboard.annotations.grafana_folder=Waterline)"
jqcheck "dashboard ConfigMap: label, namespace, folder annotation, the dashboard JSON" "$f" --arg D "$D" \
  --slurpfile dash "$ROOT/deploy/grafana/waterline-fleet.json" '
  one("ConfigMap"; $D + "-dashboard") as $c | $c.metadata.labels.grafana_dashboard == "1" and
  $c.metadata.namespace == "monitoring" and $c.metadata.annotations.grafana_folder == "Waterline" and
  ($c.data | keys) == ["waterline-fleet.json"] and ($c.data["waterline-fleet.json"] | fromjson) == $dash[0] and
  $dash[0].uid == "waterline-fleet"'
f="$(render dash-default-ns --set monitoring.grafanaDashboard.enabled=true --set monitoring.grafanaDashboard.labels.grafana_dashboard=yes)"
jqcheck "dashboard ConfigMap: release namespace by default, label value overridable" "$f" --arg D "$D" '
  one("ConfigMap"; $D + "-dashboard").metadata as $m | $m.namespace == "wl-sys" and $m.labels.grafana_dashboard == "yes"'
KUBECONFIG=/dev/null kc kustomize "$ROOT/deploy/grafana" | yaml_to_json >"$TMP/grafana.json"
jqcheck "deploy/grafana: kustomize makes the labelled dashboard ConfigMap" "$TMP/grafana.json" \
  --slurpfile dash "$ROOT/deploy/grafana/waterline-fleet.json" '
  one("ConfigMap"; "waterline-dashboard") as $c | $c.metadata.labels.grafana_dashboard == "1" and
  ($c.data["waterline-fleet.json"] | fromjson) == $dash[0]'
if command -v promtool >/dev/null; then
  check "promtool check rules files/prometheus-rules.yaml" promtool check rules "$CHART/files/prometheus-rules.yaml"
else
  echo "note: promtool not found, rules file not checked" >&2
fi

# ---------------------------------------------------------------- hub secret, env
f="$(render hub --set routing.hubKubeconfigSecret=hub-kc --set prometheus.url=http://prom.monitoring:9090 \
  --set logLevel=debug --set verbosity=3 --set image.tag=1.2.3 --set image.pullPolicy=Always)"
jqcheck "hub kubeconfig Secret mounted read-only at /etc/waterline/hub/kubeconfig" "$f" --arg D "$D" '
  (one("Deployment"; $D).spec.template.spec.volumes[] | select(.name == "hub-kubeconfig") | .secret.secretName == "hub-kc" and .secret.items == [{"key":"kubeconfig","path":"kubeconfig"}]) and
  (container($D; "operator").volumeMounts[] | select(.name == "hub-kubeconfig") | .mountPath == "/etc/waterline/hub" and .readOnly == true)'
jqcheck "env: WATERLINE_PROMETHEUS_URL, WATERLINE_HUB_KUBECONFIG" "$f" --arg D "$D" '
  env($D; "operator") | .WATERLINE_PROMETHEUS_URL == "http://prom.monitoring:9090" and .WATERLINE_HUB_KUBECONFIG == "/etc/waterline/hub/kubeconfig" and has("WATERLINE_DEFAULT_STRATEGY") == false'
jqcheck "log level, verbosity, image tag and pull policy" "$f" --arg D "$D" '
  container($D; "operator") | (.args | index("--log-level=debug") and index("--v=3")) and .image == "waterline:1.2.3" and .imagePullPolicy == "Always"'
DG="sha256:$(printf 'ab%.0s' {1..32})"
f="$(render digest --set image.repository=reg.example/waterline --set image.tag=1.2.3 --set image.digest="$DG" --set router.enabled=true)"
jqcheck "image.digest: operator and router use repository@digest (tag ignored)" "$f" --arg D "$D" --arg R "$D-router" --arg I "reg.example/waterline@$DG" '
  container($D; "operator").image == $I and container($R; "router").image == $I'
f="$(render digest-router --set image.digest="$DG" --set router.enabled=true --set router.image.repository=reg.example/router --set router.image.tag=dev)"
jqcheck "image.digest with router.image set: the router keeps its own repository:tag" "$f" --arg D "$D" --arg R "$D-router" --arg DG "$DG" '
  container($D; "operator").image == "waterline@" + $DG and container($R; "router").image == "reg.example/router:dev"'
DG=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
f="$(render digest-b --set image.digest=$DG --set image.tag=1.2.3 --set router.enabled=true)"
jqcheck "image.digest: repository@digest instead of the tag, for the router too" "$f" --arg D "$D" --arg dg "$DG" '
  container($D; "operator").image == "waterline@" + $dg and container("wl-waterline-router"; "router").image == "waterline@" + $dg'
f="$(render digest-router-b --set image.digest=$DG --set router.enabled=true --set router.image.repository=reg.example/router)"
jqcheck "router.image.repository of its own: not the operator's digest" "$f" --arg dg "$DG" \
  'container("wl-waterline-router"; "router").image == "reg.example/router:0.1.0"'
f="$(render digest-router2 --set router.enabled=true --set router.image.digest=$DG)"
jqcheck "router.image.digest" "$f" --arg D "$D" --arg dg "$DG" \
  'container("wl-waterline-router"; "router").image == "waterline@" + $dg and container($D; "operator").image == "waterline:0.1.0"'
f="$(render probes --set health.activeProbes=true)"
jqcheck "health.activeProbes=true: --active-health-probes=true" "$f" --arg D "$D" \
  'args($D; "operator") | index("--active-health-probes=true")'

# ---------------------------------------------------------------- metrics port, auth
jqcheck "defaults: no --metrics-bind-address / --metrics-auth, no auth RBAC" "$TMP/defaults.json" --arg D "$D" '
  (args($D; "operator") | all(test("^--metrics-(bind-address|auth)") | not)) and
  ([.[] | select(.kind | test("^ClusterRole")) | .metadata.name] | sort == ["wl-waterline-wl-sys", "wl-waterline-wl-sys"])'
f="$(render metrics-sec --api-versions monitoring.coreos.com/v1 --set monitoring.serviceMonitor.enabled=true \
  --set metrics.dedicatedPort=8443 --set metrics.secure=true --set 'metrics.readers[0].namespace=monitoring' --set 'metrics.readers[0].name=prometheus-k8s')"
jqcheck "metrics.dedicatedPort + secure: flags, container and Service port http-metrics" "$f" --arg D "$D" '
  (args($D; "operator") | index("--bind-address=:8080") and index("--metrics-bind-address=:8443") and index("--metrics-auth=kubernetes")) and
  (container($D; "operator").ports == [{"name":"metrics","containerPort":8080,"protocol":"TCP"},{"name":"http-metrics","containerPort":8443,"protocol":"TCP"}]) and
  (container($D; "operator").readinessProbe.httpGet.port == "metrics") and
  (one("Service"; "wl-waterline-metrics").spec.ports | map(.name) == ["metrics", "http-metrics"])'
jqcheck "metrics.secure: ServiceMonitor scrapes http-metrics with the scraper's token" "$f" --arg D "$D" '
  one("ServiceMonitor"; $D).spec.endpoints[0] | .port == "http-metrics" and .bearerTokenFile == "/var/run/secrets/kubernetes.io/serviceaccount/token" and .honorLabels == true'
jqcheck "metrics.secure: the operator may create TokenReviews and SubjectAccessReviews (its own ClusterRole, not system:auth-delegator), a /metrics reader role bound to metrics.readers" "$f" --arg D "$D" '
  ([.[] | select(.kind == "ClusterRoleBinding" and .roleRef.name == "system:auth-delegator")] | length == 0) and
  ([.[] | select(.kind == "ClusterRole") | .rules[] | select(.verbs == ["create"]) | .resources[]] | index("tokenreviews") and index("subjectaccessreviews")) and
  one("ClusterRole"; "wl-waterline-wl-sys-metrics-reader").rules == [{"nonResourceURLs":["/metrics"],"verbs":["get"]}] and
  one("ClusterRoleBinding"; "wl-waterline-wl-sys-metrics-reader").subjects == [{"kind":"ServiceAccount","name":"prometheus-k8s","namespace":"monitoring"}]'
f="$(render metrics-sec-norbac --set metrics.secure=true --set rbac.create=false)"
jqcheck "metrics.secure with rbac.create=false: the flag, no RBAC" "$f" --arg D "$D" \
  '(args($D; "operator") | index("--metrics-auth=kubernetes")) and none("ClusterRoleBinding") and none("ClusterRole")'
f="$(render mon-router-metrics --api-versions monitoring.coreos.com/v1 --set monitoring.serviceMonitor.enabled=true --set router.enabled=true --set router.metrics.port=9090)"
jqcheck "router.metrics.port: the router ServiceMonitor scrapes http-metrics" "$f" \
  'one("ServiceMonitor"; "wl-waterline-router").spec.endpoints[0].port == "http-metrics" and (one("ServiceMonitor"; "wl-waterline-router").spec.endpoints[0] | has("bearerTokenFile") | not)'

# ---------------------------------------------------------------- NetworkPolicy
jqcheck "no NetworkPolicy by default" "$TMP/defaults.json" 'none("NetworkPolicy")'
MON='{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}'
TESTPODS='{"podSelector":{"matchLabels":{"app.kubernetes.io/name":"waterline","app.kubernetes.io/instance":"wl","app.kubernetes.io/component":"test"}}}'
f="$(render np --set networkPolicy.enabled=true --set router.enabled=true \
  --set 'networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.kubernetes\.io/metadata\.name=monitoring')"
jqcheck "networkPolicy: operator ingress only on port metrics, from routers, test pods, monitoring; egress open" "$f" --arg D "$D" \
  --argjson mon "$MON" --argjson tp "$TESTPODS" '
  one("NetworkPolicy"; $D).spec as $s | $s.policyTypes == ["Ingress"] and ($s | has("egress") | not) and
  $s.podSelector.matchLabels == one("Deployment"; $D).spec.selector.matchLabels and
  $s.ingress == [{"ports":[{"port":"metrics","protocol":"TCP"}],
                  "from":[{"podSelector":{"matchLabels":one("Deployment"; "wl-waterline-router").spec.selector.matchLabels}}, $tp, $mon]}]'
jqcheck "networkPolicy: router data port open to all (routerFrom empty)" "$f" '
  one("NetworkPolicy"; "wl-waterline-router").spec as $s | $s.policyTypes == ["Ingress"] and
  $s.podSelector.matchLabels == one("Deployment"; "wl-waterline-router").spec.selector.matchLabels and
  $s.ingress == [{"ports":[{"port":"http","protocol":"TCP"}]}]'
f="$(render np2 --set networkPolicy.enabled=true --set router.enabled=true --set metrics.dedicatedPort=8443 --set router.metrics.port=9090 \
  --set 'networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.kubernetes\.io/metadata\.name=monitoring' \
  --set 'networkPolicy.routerFrom[0].ipBlock.cidr=10.0.0.0/8' --set 'networkPolicy.operatorFrom[0].podSelector.matchLabels.app=other-router' \
  --set 'networkPolicy.egress[0].to[0].ipBlock.cidr=0.0.0.0/0')"
jqcheck "networkPolicy: dedicated metrics ports only from metricsFrom, routerFrom, operatorFrom, egress rules" "$f" --arg D "$D" \
  --argjson mon "$MON" --argjson tp "$TESTPODS" '
  one("NetworkPolicy"; $D).spec as $o | one("NetworkPolicy"; "wl-waterline-router").spec as $r |
  $o.policyTypes == ["Ingress","Egress"] and $o.egress == [{"to":[{"ipBlock":{"cidr":"0.0.0.0/0"}}]}] and
  ($o.ingress[0].from | index($mon) == null and index({"podSelector":{"matchLabels":{"app":"other-router"}}}) != null) and
  $o.ingress[1] == {"ports":[{"port":"http-metrics","protocol":"TCP"}],"from":[$mon]} and ($o.ingress | length) == 2 and
  $r.policyTypes == ["Ingress","Egress"] and
  $r.ingress == [{"ports":[{"port":"http","protocol":"TCP"}],"from":[{"ipBlock":{"cidr":"10.0.0.0/8"}}, $tp]},
                 {"ports":[{"port":"http-metrics","protocol":"TCP"}],"from":[$mon]}]'
f="$(render np3 --set networkPolicy.enabled=true)"
jqcheck "networkPolicy without router or monitoring peers: only the test pods reach the operator" "$f" --arg D "$D" --argjson tp "$TESTPODS" '
  one("NetworkPolicy"; $D).spec.ingress == [{"ports":[{"port":"metrics","protocol":"TCP"}],"from":[$tp]}] and ([.[] | select(.kind == "NetworkPolicy")] | length) == 1'

# ---------------------------------------------------------------- helm test
f="$(render tests --with-tests --set router.enabled=true)"
jqcheck "helm test Pods: operator /healthz and router /readyz through their Services, curl image" "$f" --arg D "$D" '
  [.[] | select(.kind == "Pod")] as $p | ($p | length) == 2 and
  ($p | all(.metadata.annotations["helm.sh/hook"] == "test" and .spec.restartPolicy == "Never" and
            .spec.automountServiceAccountToken == false and .spec.containers[0].image == "curlimages/curl:8.11.1" and
            .spec.containers[0].command == ["curl"] and .spec.containers[0].securityContext.readOnlyRootFilesystem == true and
            .spec.securityContext.runAsNonRoot == true and .metadata.labels["app.kubernetes.io/component"] == "test")) and
  (one("Pod"; $D + "-test-operator").spec.containers[0].args[-1] == "http://wl-waterline-metrics.wl-sys.svc:8080/healthz") and
  (one("Pod"; $D + "-test-router").spec.containers[0].args[-1] == "http://wl-waterline-router.wl-sys.svc:80/readyz") and
  (one("Pod"; $D + "-test-router").spec.containers[0].args | index("--fail") != null)'
f="$(render tests-norouter --with-tests --set test.image.digest=$DG --set test.image.repository=reg.example/curl)"
jqcheck "helm test: router off: operator only; test.image.digest" "$f" --arg D "$D" --arg dg "$DG" '
  [.[] | select(.kind == "Pod") | .metadata.name] == [$D + "-test-operator"] and one("Pod"; $D + "-test-operator").spec.containers[0].image == "reg.example/curl@" + $dg'
f="$(render tests-off --with-tests --set test.enabled=false)"
jqcheck "test.enabled=false: no test Pod" "$f" 'none("Pod")'

# ---------------------------------------------------------------- leader election off
f="$(render single --set leaderElection.enabled=false --set replicas=1)"
jqcheck "leader election off, 1 replica: no leader Lease Role, no PDB" "$f" --arg D "$D" '
  kinds == ["ClusterRole","ClusterRoleBinding","Deployment","Role","RoleBinding","Service","ServiceAccount","ValidatingAdmissionPolicy","ValidatingAdmissionPolicyBinding"] and one("Deployment"; $D).spec.replicas == 1 and
  ([.[] | select(.kind == "Role" and .metadata.name == "wl-waterline-leader-election")] | length == 0)'
jqcheck "leader election off: --leader-elect=false and no lease flags" "$f" --arg D "$D" \
  'args($D; "operator") | index("--leader-elect=false") and all(test("^--(leader-election-|lease-duration|renew-deadline|retry-period)") | not)'
f="$(render pdb-off --set podDisruptionBudget.enabled=false)"
jqcheck "podDisruptionBudget.enabled=false" "$f" 'none("PodDisruptionBudget")'
f="$(render sa --set serviceAccount.create=false --set serviceAccount.name=ops --set leaderElection.id=my-lease)"
jqcheck "existing ServiceAccount, custom lease id" "$f" --arg D "$D" '
  none("ServiceAccount") and one("Deployment"; $D).spec.template.spec.serviceAccountName == "ops" and
  one("ClusterRoleBinding"; "wl-waterline-wl-sys").subjects[0].name == "ops" and
  one("Role"; "wl-waterline-leader-election").rules[0].resourceNames == ["my-lease"] and (args($D; "operator") | index("--leader-election-id=my-lease"))'
f="$(render fullname --set fullnameOverride=wl-op --set affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=role \
  --set affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists \
  --set nodeSelector.pool=system --set tolerations[0].key=dedicated --set tolerations[0].operator=Exists)"
jqcheck "fullnameOverride, affinity, nodeSelector, tolerations" "$f" '
  one("Deployment"; "wl-op").spec.template.spec as $p | $p.nodeSelector == {"pool":"system"} and $p.tolerations[0].key == "dedicated" and
  ($p.affinity | has("nodeAffinity") and (has("podAntiAffinity") | not)) and one("Service"; "wl-op-metrics")'

# ---------------------------------------------------------------- bad values
# rejects <message substring> <helm args...>: helm template must fail and say why.
rejects() {
  local want="$1"; shift
  local out
  if out="$(helm template wl "$CHART" --namespace wl-sys --kube-version "$KUBE_VER" "$@" 2>&1 >/dev/null)"; then
    bad "accepted $*"
  elif [[ "$out" != *"$want"* ]]; then
    bad "rejected $* but without '$want': $out"
  else ok; fi
}
rejects "at '/replicas': minimum: got 0, want 1" --set replicas=0
rejects "at '/logLevel': value must be one of 'error', 'warn', 'info', 'debug'" --set logLevel=verbose
rejects "additional properties 'replica' not allowed" --set replica=2
rejects "at '/image/pullPolicy'" --set image.pullPolicy=Sometimes
rejects "at '/image/digest'" --set image.digest=sha256:abc
rejects "at '/image/digest'" --set image.digest=0.1.0
rejects "at '/metrics/port': maximum" --set metrics.port=70000
rejects "at '/verbosity'" --set verbosity=-1
rejects "at '/router/routesUrl'" --set router.enabled=true --set router.routesUrl=https://op/v1/routes
rejects "at '/router/replicas': minimum" --set router.replicas=0
rejects "additional properties 'scheduling' not allowed" --set scheduling.defaultStrategy=Spread
rejects "at '/image/digest'" --set image.digest=latest
rejects "at '/health/activeProbes'" --set health.activeProbes=yes
rejects "at '/leaderElection/leaseDuration'" --set leaderElection.leaseDuration=0
rejects "at '/extraArgs/0'" --set extraArgs[0]=verbose
rejects "at '/prometheus/url'" --set prometheus.url=prometheus:9090
rejects "leaderElection.leaseDuration (10) must be greater than leaderElection.renewDeadline (10)" --set leaderElection.leaseDuration=10
rejects "leaderElection.renewDeadline (2) must be greater than leaderElection.retryPeriod (2)" --set leaderElection.renewDeadline=2
rejects "more than one replica needs leader election" --set leaderElection.enabled=false
rejects "serviceAccount.name is required when serviceAccount.create is false" --set serviceAccount.create=false
rejects "controller.kubeApiBurst (10) must be at least controller.kubeApiQps (50)" --set controller.kubeApiQps=50 --set controller.kubeApiBurst=10
rejects "at '/monitoring/serviceMonitor/relabelings/0'" --set 'monitoring.serviceMonitor.relabelings[0].target_label=cluster'
rejects "router.shutdown.grace (3) must be at least router.shutdown.delay (5)" --set router.enabled=true --set router.shutdown.grace=3
rejects "at '/router/shutdown/delay'" --set router.shutdown.delay=-1
rejects "at '/router/terminationGracePeriodSeconds'" --set router.terminationGracePeriodSeconds=-1
rejects "metrics.dedicatedPort (8080) must differ from metrics.port" --set metrics.dedicatedPort=8080
rejects "router.metrics.port (8080) must differ from router.port" --set router.metrics.port=8080
rejects "at '/metrics/readers/0'" --set 'metrics.readers[0].name=prom'
rejects "at '/networkPolicy/metricsFrom/0'" --set 'networkPolicy.metricsFrom[0].namespace=monitoring'
rejects "at '/test/image/digest'" --set test.image.digest=abc
rejects "additional properties 'WaterlineNoSuchAlert' not allowed" --set alerts.WaterlineNoSuchAlert.enabled=false
rejects "at '/alerts/WaterlineNoLeader/enabled'" --set alerts.WaterlineNoLeader.enabled=maybe
rejects "at '/alerts/runbookBaseUrl'" --set alerts.runbookBaseUrl=docs
rejects "at '/monitoring/grafanaDashboard/namespace'" --set monitoring.grafanaDashboard.namespace=Bad_NS

# ---------------------------------------------------------------- plain manifests
KUBECONFIG=/dev/null kc kustomize "$ROOT/deploy/manifests" | yaml_to_json >"$TMP/manifests.json"
ncrds=$(find "$ROOT/crds" -maxdepth 1 -name '*.yaml' | wc -l)
jqcheck "deploy/manifests: namespace, the $ncrds CRDs of crds/ and the default chart objects" "$TMP/manifests.json" \
  --argjson n "$ncrds" --slurpfile chart "$TMP/defaults.json" '
  ([.[] | select(.kind == "CustomResourceDefinition")] | length) == $n and
  ([.[] | select(.kind | IN("CustomResourceDefinition","Namespace") | not) | .kind + "/" + .metadata.name] | sort) ==
    ($chart[0] | [.[] | select(.kind != "CustomResourceDefinition") | .kind + "/" + (.metadata.name | sub("^wl-waterline"; "waterline") | sub("-wl-sys"; "-waterline-system"))] | sort)'
jqcheck "deploy/manifests: namespace waterline-system, not labelled as Helm-managed" "$TMP/manifests.json" '
  all(.[] | select(.kind | IN("Namespace","ClusterRole","ClusterRoleBinding","CustomResourceDefinition","ValidatingAdmissionPolicy","ValidatingAdmissionPolicyBinding") | not); .metadata.namespace == "waterline-system") and
  all(.[]; .metadata.labels["app.kubernetes.io/managed-by"] != "Helm") and
  one("Namespace"; "waterline-system").metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"'

finish
