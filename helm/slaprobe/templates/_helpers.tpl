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

{{/* The config file's text, ending in one newline. A string is kept as written, so that the line of an
error is the line of the user's file: `location` is appended as a `global:` section of its own when the
text has none, or read from SLAPROBE_LOCATION (set in the pods) where the text's `global:` says so. */}}
{{- define "slaprobe.configText" -}}
{{- $text := "" }}
{{- if kindIs "string" .Values.config }}
{{- $text = regexReplaceAll "\\s+$" .Values.config "" }}
{{- if .Values.location }}
{{- if not (regexMatch "(?m)^global[ \t]*:" $text) }}
{{- $text = printf "%s\nglobal:\n  location: %s" $text (toJson .Values.location) }}
{{- else if not (contains "${env:SLAPROBE_LOCATION}" $text) }}
{{- fail "location: the config text has a global: section of its own; set `location: ${env:SLAPROBE_LOCATION}` in it (the chart sets SLAPROBE_LOCATION from `location`) so the text stays as written and its error lines stay yours" }}
{{- end }}
{{- end }}
{{- else }}
{{- $text = regexReplaceAll "\\s+$" (include "slaprobe.configObject" .) "" }}
{{- end }}
{{- printf "%s\n" $text }}
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

{{/* The config of the Deployment/StatefulSet when the DaemonSet runs the log sources: every service without its logs. */}}
{{- define "slaprobe.proberConfigText" -}}
{{- $config := include "slaprobe.configObject" . | fromYaml }}
{{- range $name, $service := ($config.services | default dict) }}
{{- $_ := unset $service "logs" }}
{{- end }}
{{- printf "%s\n" (toYaml $config) }}
{{- end }}

{{/* The config of the log DaemonSet: the services that have log sources, with those only (no probes, no feedback). */}}
{{- define "slaprobe.logsConfigText" -}}
{{- $config := include "slaprobe.configObject" . | fromYaml }}
{{- $services := dict }}
{{- range $name, $service := ($config.services | default dict) }}
{{- if $service.logs }}
{{- $_ := set $service "probes" (list) }}
{{- $_ := set $services $name $service }}
{{- end }}
{{- end }}
{{- $_ := set $config "services" $services }}
{{- $_ := unset $config "feedback" }}
{{- printf "%s\n" (toYaml $config) }}
{{- end }}

{{/* The config file the Deployment/StatefulSet mounts: the user's text, or its prober half in DaemonSet mode. */}}
{{- define "slaprobe.mountedConfigText" -}}
{{- if .Values.logs.daemonset.enabled }}
{{- include "slaprobe.proberConfigText" . }}
{{- else }}
{{- include "slaprobe.configText" . }}
{{- end }}
{{- end }}

{{- define "slaprobe.logsSelectorLabels" -}}
app.kubernetes.io/name: {{ include "slaprobe.name" . }}-logs
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The labels of the log DaemonSet's objects: ours, with its own name and component. */}}
{{- define "slaprobe.logsLabels" -}}
{{- $labels := include "slaprobe.labels" . | fromYaml }}
{{- $_ := set $labels "app.kubernetes.io/name" (printf "%s-logs" (include "slaprobe.name" .)) }}
{{- $_ := set $labels "app.kubernetes.io/component" "logs" }}
{{- toYaml $labels }}
{{- end }}

{{/* --probe-allow: probeAllow plus the host of every target of the Probe resources (they would get 403 otherwise). */}}
{{- define "slaprobe.probeAllow" -}}
{{- $entries := list }}
{{- range .Values.probeAllow }}
{{- $entries = append $entries . }}
{{- end }}
{{- if .Values.probe.enabled }}
{{- range $job := .Values.probe.jobs }}
{{- range $target := ($job.targets | default list) }}
{{- $host := toString $target }}
{{- if contains "://" $host }}
{{- $host = (urlParse $host).host }}
{{- end }}
{{- if hasPrefix "[" $host }}
{{- $host = regexFind "^\\[[^\\]]*\\]" $host | trimPrefix "[" | trimSuffix "]" }}
{{- else if eq (len (splitList ":" $host)) 2 }}
{{- $host = regexReplaceAll ":[^:]*$" $host "" }}
{{- end }}
{{- if $host }}
{{- $entries = append $entries $host }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- join "," (uniq $entries) }}
{{- end }}

{{/* The mounts slaprobe reads its config and secrets from (the config check mounts the same). */}}
{{- define "slaprobe.configMounts" -}}
- name: config
  mountPath: /etc/slaprobe/config
  readOnly: true
{{- if .Values.blackboxModules }}
- name: modules
  mountPath: /etc/slaprobe/modules
  readOnly: true
{{- end }}
{{- if .Values.webConfig.secretName }}
- name: web-config
  mountPath: /etc/slaprobe/web
  readOnly: true
{{- end }}
{{- range $i, $mount := .Values.secretMounts }}
- name: secret-{{ $i }}
  mountPath: {{ $mount.mountPath | default (printf "/etc/slaprobe/secrets/%s" $mount.secretName) }}
  readOnly: true
{{- end }}
{{- end }}

{{/* An initContainer that runs `slaprobe check` on the mounted config: a mistake fails the pod with its message and line. */}}
{{- define "slaprobe.configCheck" -}}
{{- $root := index . 0 }}
{{- $securityContext := index . 1 }}
{{- $resources := index . 2 }}
- name: config-check
  image: {{ include "slaprobe.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  args:
    - check
    - --config=/etc/slaprobe/config/slaprobe.yaml
    {{- if $root.Values.blackboxModules }}
    - --modules=/etc/slaprobe/modules/blackbox.yml
    {{- end }}
  {{- with (include "slaprobe.env" $root) }}
  env:
    {{- . | nindent 4 }}
  {{- end }}
  resources:
    {{- toYaml $resources | nindent 4 }}
  securityContext:
    {{- toYaml $securityContext | nindent 4 }}
  volumeMounts:
    {{- include "slaprobe.configMounts" $root | nindent 4 }}
    {{- with $root.Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The environment of slaprobe: SLAPROBE_LOCATION (for a config text that reads it) and extraEnv. */}}
{{- define "slaprobe.env" -}}
{{- with .Values.location }}
- name: SLAPROBE_LOCATION
  value: {{ . | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
