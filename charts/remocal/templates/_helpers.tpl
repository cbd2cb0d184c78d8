{{/* The operator's object names. The APIService and the shipped ClusterRoles
have fixed names (users bind to remocal-user by name), so one release per
cluster. */}}
{{- define "remocal.name" -}}remocal-operator{{- end -}}

{{- define "remocal.labels" -}}
app.kubernetes.io/name: remocal-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: remocal
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "remocal.selectorLabels" -}}
app.kubernetes.io/name: remocal-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* image REF: registry/repository:tag, the tag defaulting to appVersion. */}}
{{- define "remocal.image" -}}
{{- $root := index . 0 -}}{{- $img := index . 1 -}}
{{- $repo := $img.repository -}}
{{- if $root.Values.registry -}}{{- $repo = printf "%s/%s" (trimSuffix "/" $root.Values.registry) $img.repository -}}{{- end -}}
{{- printf "%s:%s" $repo (default $root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{/* The Service's DNS names: the serving certificate's SANs. */}}
{{- define "remocal.serviceNames" -}}
{{- $svc := include "remocal.name" . -}}
{{- list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) | toJson -}}
{{- end -}}
