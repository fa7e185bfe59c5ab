{{/* The pod template shared by the Deployment (shards: 1) and the StatefulSet (shards > 1). */}}
{{/* "true" when the StatefulSet keeps the state on a volumeClaimTemplate. */}}
{{- define "slaprobe.stateClaim" -}}
{{- if and (gt (int .Values.shards) 1) .Values.stateDir.persistence.enabled }}true{{ end }}
{{- end }}

{{- define "slaprobe.podTemplate" -}}
{{- $icmp := include "slaprobe.icmp" . }}
{{- $podSecurityContext := deepCopy .Values.podSecurityContext }}
{{- if and $icmp .Values.icmp.pingGroupRange }}
{{- $sysctls := get $podSecurityContext "sysctls" | default list }}
{{- $sysctls = append $sysctls (dict "name" "net.ipv4.ping_group_range" "value" "0 2147483647") }}
{{- $_ := set $podSecurityContext "sysctls" $sysctls }}
{{- end }}
{{- $securityContext := deepCopy .Values.securityContext }}
{{- if $icmp }}
{{- $capabilities := get $securityContext "capabilities" | default dict }}
{{- $add := get $capabilities "add" | default list }}
{{- if not (has "NET_RAW" $add) }}
{{- $_ := set $capabilities "add" (append $add "NET_RAW") }}
{{- end }}
{{- $_ := set $securityContext "capabilities" $capabilities }}
{{- end }}
metadata:
  labels:
    {{- include "slaprobe.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "slaprobe.configChecksum" . }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "slaprobe.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- if .Values.configCheck.enabled }}
  initContainers:
    {{- include "slaprobe.configCheck" (list . $securityContext .Values.resources) | nindent 4 }}
  {{- end }}
  containers:
    - name: slaprobe
      image: {{ include "slaprobe.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
        - --config=/etc/slaprobe/config/slaprobe.yaml
        {{- if .Values.blackboxModules }}
        - --modules=/etc/slaprobe/modules/blackbox.yml
        {{- end }}
        - --listen=0.0.0.0:9799
        - --state-dir=/var/lib/slaprobe
        {{- with (include "slaprobe.probeAllow" .) }}
        - --probe-allow={{ . }}
        {{- end }}
        {{- if .Values.webConfig.secretName }}
        - --web-config=/etc/slaprobe/web/{{ .Values.webConfig.key }}
        {{- end }}
        {{- if gt (int .Values.shards) 1 }}
        - --shard=auto/{{ .Values.shards }}
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      ports:
        - name: http
          containerPort: 9799
          protocol: TCP
      {{- with (include "slaprobe.env" .) }}
      env:
        {{- . | nindent 8 }}
      {{- end }}
      livenessProbe:
        httpGet:
          path: /-/healthy
          port: http
          scheme: {{ include "slaprobe.scheme" . }}
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /-/ready
          port: http
          scheme: {{ include "slaprobe.scheme" . }}
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml $securityContext | nindent 8 }}
      volumeMounts:
        {{- include "slaprobe.configMounts" . | nindent 8 }}
        - name: state
          mountPath: /var/lib/slaprobe
        - name: tmp
          mountPath: /tmp
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      {{- if include "slaprobe.ownsConfig" . }}
      configMap:
        name: {{ include "slaprobe.fullname" . }}
        items:
          - key: slaprobe.yaml
            path: slaprobe.yaml
      {{- else if eq .Values.existingConfig.kind "Secret" }}
      secret:
        secretName: {{ .Values.existingConfig.name }}
        defaultMode: 0440
        items:
          - key: {{ .Values.existingConfig.key }}
            path: slaprobe.yaml
      {{- else }}
      configMap:
        name: {{ .Values.existingConfig.name }}
        items:
          - key: {{ .Values.existingConfig.key }}
            path: slaprobe.yaml
      {{- end }}
    {{- if .Values.blackboxModules }}
    - name: modules
      configMap:
        name: {{ include "slaprobe.fullname" . }}
        items:
          - key: blackbox.yml
            path: blackbox.yml
    {{- end }}
    {{- if .Values.webConfig.secretName }}
    - name: web-config
      secret:
        secretName: {{ .Values.webConfig.secretName }}
        defaultMode: 0440
    {{- end }}
    {{- range $i, $mount := .Values.secretMounts }}
    - name: secret-{{ $i }}
      secret:
        secretName: {{ $mount.secretName }}
        defaultMode: 0440
        {{- with $mount.items }}
        items:
          {{- toYaml . | nindent 10 }}
        {{- end }}
    {{- end }}
    {{- if not (include "slaprobe.stateClaim" .) }}
    - name: state
      emptyDir:
        {{- with .Values.stateDir.sizeLimit }}
        sizeLimit: {{ . }}
        {{- end }}
    {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
