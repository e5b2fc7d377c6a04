{{/* Chart name, truncated to 63 characters. */}}
{{- define "s3-sentinel.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "s3-sentinel.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Selector labels of the operator pods. */}}
{{- define "s3-sentinel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "s3-sentinel.name" . }}-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object in the chart. */}}
{{- define "s3-sentinel.labels" -}}
{{ include "s3-sentinel.selectorLabels" . }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: s3-sentinel
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of the operator's ServiceAccount. */}}
{{- define "s3-sentinel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "s3-sentinel.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Operator image reference. */}}
{{- define "s3-sentinel.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Default worker image reference. */}}
{{- define "s3-sentinel.workerImage" -}}
{{- $repo := default .Values.image.repository .Values.workerImage.repository }}
{{- if and (not .Values.workerImage.repository) (not .Values.workerImage.tag) .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default (default .Chart.AppVersion .Values.image.tag) .Values.workerImage.tag) }}
{{- end }}
{{- end }}
