{{- define "skiff.name" -}}{{ .Release.Name }}-skiff{{- end -}}
{{- define "skiff.labels" -}}
app.kubernetes.io/name: skiff
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "skiff.selector" -}}
app.kubernetes.io/name: skiff
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
