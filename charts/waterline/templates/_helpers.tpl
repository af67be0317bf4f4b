{{/*
Names. fullname is the prefix of every namespaced object and of the cluster-scoped RBAC
objects (which also carry the namespace, so two releases never collide).
*/}}
{{- define "waterline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "waterline.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects (ClusterRole, ClusterRoleBinding): fullname + namespace. */}}
{{- define "waterline.clusterName" -}}
{{- printf "%s-%s" (include "waterline.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "waterline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object; app.kubernetes.io/instance finds a release's objects. */}}
{{- define "waterline.labels" -}}
app.kubernetes.io/name: {{ include "waterline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "waterline.commonLabels" . }}
{{- end -}}

{{/* The labels besides name/instance (pod templates add them to their selector labels). */}}
{{- define "waterline.commonLabels" -}}
helm.sh/chart: {{ include "waterline.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: waterline
{{- end -}}

{{/* Operator pods: selector labels (immutable in a Deployment: never change them). */}}
{{- define "waterline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "waterline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "waterline.routerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "waterline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: router
{{- end -}}

{{/* helm test pods (templates/tests); the NetworkPolicies admit them. */}}
{{- define "waterline.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "waterline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end -}}

{{- define "waterline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "waterline.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "waterline.leaseName" -}}
{{- default (include "waterline.fullname" .) .Values.leaderElection.id -}}
{{- end -}}

{{/* repository@digest when image.digest is set, else repository:tag (tag: appVersion). */}}
{{- define "waterline.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The router's image: router.image.* where set, else the operator's. A router digest pins
it; a router repository or tag of its own drops the operator's digest (it names another
image).
*/}}
{{- define "waterline.routerImage" -}}
{{- $ri := .Values.router.image -}}
{{- $repo := default .Values.image.repository $ri.repository -}}
{{- if $ri.digest -}}
{{- printf "%s@%s" $repo $ri.digest -}}
{{- else if and .Values.image.digest (not $ri.repository) (not $ri.tag) -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) $ri.tag -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* router terminationGracePeriodSeconds: the value, else delay + grace + 10 s margin. */}}
{{- define "waterline.routerTerminationGrace" -}}
{{- $r := .Values.router -}}
{{- if kindIs "invalid" $r.terminationGracePeriodSeconds -}}
{{- add (int $r.shutdown.delay) (int $r.shutdown.grace) 10 -}}
{{- else -}}
{{- int $r.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{- define "waterline.metricsServiceName" -}}
{{- printf "%s-metrics" (include "waterline.fullname" .) -}}
{{- end -}}

{{- define "waterline.routerName" -}}
{{- printf "%s-router" (include "waterline.fullname" .) -}}
{{- end -}}

{{- define "waterline.routesUrl" -}}
{{- if .Values.router.routesUrl -}}
{{- .Values.router.routesUrl -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%d/v1/routes" (include "waterline.metricsServiceName" .) .Release.Namespace (int .Values.metrics.port) -}}
{{- end -}}
{{- end -}}

{{/*
Whether the prometheus-operator API is served (helm install/upgrade ask the cluster;
helm template needs --api-versions monitoring.coreos.com/v1).
*/}}
{{- define "waterline.monitoringApi" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" -}}true{{- end -}}
{{- end -}}

{{/* The securityContext of every container: non-root, read-only, no privileges. */}}
{{- define "waterline.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "waterline.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
Checks that a schema cannot express; every template includes this once so that a bad
combination fails `helm template/install/upgrade` with a clear message.
*/}}
{{- define "waterline.validate" -}}
{{- $le := .Values.leaderElection -}}
{{- if $le.enabled -}}
{{- if not (gt (int $le.leaseDuration) (int $le.renewDeadline)) -}}
{{- fail (printf "leaderElection.leaseDuration (%v) must be greater than leaderElection.renewDeadline (%v)" $le.leaseDuration $le.renewDeadline) -}}
{{- end -}}
{{- if not (gt (int $le.renewDeadline) (int $le.retryPeriod)) -}}
{{- fail (printf "leaderElection.renewDeadline (%v) must be greater than leaderElection.retryPeriod (%v)" $le.renewDeadline $le.retryPeriod) -}}
{{- end -}}
{{- end -}}
{{- if and (not $le.enabled) (gt (int .Values.replicas) 1) -}}
{{- fail (printf "replicas is %v but leaderElection.enabled is false: more than one replica needs leader election (two active operators would fight over the same objects); set replicas: 1 or enable leader election" .Values.replicas) -}}
{{- end -}}
{{- if and .Values.metrics.dedicatedPort (eq (int .Values.metrics.dedicatedPort) (int .Values.metrics.port)) -}}
{{- fail (printf "metrics.dedicatedPort (%v) must differ from metrics.port" .Values.metrics.dedicatedPort) -}}
{{- end -}}
{{- if and .Values.router.metrics.port (eq (int .Values.router.metrics.port) (int .Values.router.port)) -}}
{{- fail (printf "router.metrics.port (%v) must differ from router.port" .Values.router.metrics.port) -}}
{{- end -}}
{{- $sd := .Values.router.shutdown -}}
{{- if and .Values.router.enabled (lt (int $sd.grace) (int $sd.delay)) -}}
{{- fail (printf "router.shutdown.grace (%v) must be at least router.shutdown.delay (%v): the grace counts from SIGTERM and includes the delay" $sd.grace $sd.delay) -}}
{{- end -}}
{{- if and .Values.controller (gt (int .Values.controller.kubeApiQps) 0) (gt (int .Values.controller.kubeApiQps) (int .Values.controller.kubeApiBurst)) -}}
{{- fail (printf "controller.kubeApiBurst (%v) must be at least controller.kubeApiQps (%v)" .Values.controller.kubeApiBurst .Values.controller.kubeApiQps) -}}
{{- end -}}
{{- end -}}
