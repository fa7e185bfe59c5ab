{{/* Names. */}}
{{- define "slaprobe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "slaprobe.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "slaprobe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "slaprobe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "slaprobe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "slaprobe.labels" -}}
helm.sh/chart: {{ include "slaprobe.chart" . }}
{{ include "slaprobe.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: slaprobe
{{- with (include "slaprobe.location" .) }}
slaprobe.io/location: {{ . | quote }}
{{- end }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of the prometheus-operator resources: ours, the `release` label, the resource's own. */}}
{{- define "slaprobe.monitoringLabels" -}}
{{- $root := index . 0 }}
{{- $extra := index . 1 }}
{{ include "slaprobe.labels" $root }}
{{- with $root.Values.releaseLabel }}
release: {{ . | quote }}
{{- end }}
{{- with $extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "slaprobe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "slaprobe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "slaprobe.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The config as a mapping: `config` given as YAML or as a string, with `location` applied. */}}
{{- define "slaprobe.configObject" -}}
{{- $config := .Values.config | default dict }}
{{- if kindIs "string" $config }}
{{- $config = fromYaml $config }}
{{- if hasKey $config "Error" }}
{{- fail (printf "config: not YAML: %s" $config.Error) }}
{{- end }}
{{- else }}
{{- $config = deepCopy $config }}
{{- end }}
{{- if .Values.location }}
{{- $global := get $config "global" | default dict }}
{{- $_ := set $global "location" .Values.location }}
{{- $_ := set $config "global" $global }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* The config file's text as mounted, ending in one newline; a string given without `location` is kept verbatim. */}}
{{- define "slaprobe.configText" -}}
{{- $text := "" }}
{{- if and (kindIs "string" .Values.config) (not .Values.location) }}
{{- $text = .Values.config }}
{{- else }}
{{- $text = include "slaprobe.configObject" . }}
{{- end }}
{{- printf "%s\n" (regexReplaceAll "\\s+$" $text "") }}
{{- end }}

{{/* The location label: `location`, else global.location of a config from values. */}}
{{- define "slaprobe.location" -}}
{{- if .Values.location }}
{{- .Values.location }}
{{- else if not .Values.existingConfig.name }}
{{- dig "global" "location" "" (include "slaprobe.configObject" . | fromYaml) }}
{{- end }}
{{- end }}

{{/* Whether the chart renders the config file itself (not an existing ConfigMap/Secret). */}}
{{- define "slaprobe.ownsConfig" -}}
{{- if not .Values.existingConfig.name }}true{{ end }}
{{- end }}

{{/* "true" when an ICMP probe is configured (or icmp.enabled forces it). */}}
{{- define "slaprobe.icmp" -}}
{{- if kindIs "bool" .Values.icmp.enabled }}
{{- if .Values.icmp.enabled }}true{{ end }}
{{- else }}
{{- $found := false }}
{{- if include "slaprobe.ownsConfig" . }}
{{- $config := include "slaprobe.configObject" . | fromYaml }}
{{- range $_, $service := ($config.services | default dict) }}
{{- range $probe := ($service.probes | default list) }}
{{- if hasKey $probe "icmp" }}{{ $found = true }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- range $_, $module := .Values.blackboxModules }}
{{- if eq (toString $module.prober) "icmp" }}{{ $found = true }}{{ end }}
{{- end }}
{{- if $found }}true{{ end }}
{{- end }}
{{- end }}

{{/* The modules file's text. */}}
{{- define "slaprobe.modulesText" -}}
{{- if .Values.blackboxModules }}
{{- printf "%s\n" (toYaml (dict "modules" .Values.blackboxModules)) }}
{{- end }}
{{- end }}

{{/* Checksum of what the pods read: config and modules; an existing ConfigMap/Secret is looked up when a cluster is reachable. */}}
{{- define "slaprobe.configChecksum" -}}
{{- $parts := list (include "slaprobe.modulesText" .) }}
{{- if include "slaprobe.ownsConfig" . }}
{{- $parts = append $parts (include "slaprobe.configText" .) }}
{{- else }}
{{- $existing := lookup "v1" .Values.existingConfig.kind .Release.Namespace .Values.existingConfig.name }}
{{- $parts = append $parts (toJson (dig "data" dict ($existing | default dict))) }}
{{- end }}
{{- join "\n---\n" $parts | sha256sum }}
{{- end }}

{{/* Fail unless `generated` was made from the config this release renders. */}}
{{- define "slaprobe.checkGenerated" -}}
{{- $want := .Values.generated.configChecksum }}
{{- if not $want }}
{{- fail "generated: empty: prometheusRule, alertmanagerConfig and dashboards ship what `slaprobe generate` makes from this config; run scripts/helm-generate with the same values files and pass its output with -f" }}
{{- end }}
{{- if include "slaprobe.ownsConfig" . }}
{{- $have := include "slaprobe.configText" . | sha256sum }}
{{- if ne $want $have }}
{{- fail (printf "generated: made from another config (checksum %s, config now %s): rerun scripts/helm-generate with the same values files" $want $have) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "slaprobe.scheme" -}}
{{- .Values.webConfig.scheme | default "HTTP" }}
{{- end }}

{{- define "slaprobe.namespace" -}}
{{- $root := index . 0 }}
{{- default $root.Release.Namespace (index . 1) }}
{{- end }}
