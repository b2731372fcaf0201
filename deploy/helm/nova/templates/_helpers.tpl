{{/* The name of every object: the release's name. */}}
{{- define "nova.fullname" -}}
{{ .Release.Name }}
{{- end }}

{{/* Labels that select the pods; they never change over a release's life. */}}
{{- define "nova.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Every object's labels. */}}
{{- define "nova.labels" -}}
{{ include "nova.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: server
app.kubernetes.io/part-of: nova
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}
