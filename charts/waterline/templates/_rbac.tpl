{{/*
Namespace of the router's membership Leases. The router's Role there allows get, update
and delete of every Lease (names are per pod, so RBAC cannot limit them by name): it must
not be the release namespace, where the operator's leader-election and routing heartbeat
Leases live. Empty: <release namespace>-router-membership, created by the chart
(router-membership-namespace.yaml).
*/}}
{{- define "waterline.routerMembershipNamespace" -}}
{{- $m := .Values.router.membership -}}
{{- if $m.namespace -}}
{{- if eq $m.namespace .Release.Namespace -}}
{{- fail (printf "router.membership.namespace must not be the release namespace %s: the router's Role may update and delete every Lease in it, the operator's leader-election and heartbeat Leases included (leave it empty for a namespace of its own)" .Release.Namespace) -}}
{{- end -}}
{{- if eq $m.namespace (.Values.routing.heartbeatNamespace | default "") -}}
{{- fail "router.membership.namespace must not be routing.heartbeatNamespace: the router's Role may update and delete every Lease in it" -}}
{{- end -}}
{{- $m.namespace -}}
{{- else -}}
{{- printf "%s-router-membership" .Release.Namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
