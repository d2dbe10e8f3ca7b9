{{/* Names, labels, images and the shared pieces of every pod. */}}

{{- define "chainlab.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chainlab.fullname" -}}
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

{{- define "chainlab.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "chainlab.labels" -}}
helm.sh/chart: {{ include "chainlab.chart" . }}
{{ include "chainlab.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: chainlab
{{- end }}

{{/* The labels that pick this release's pods (every NetworkPolicy starts from them). */}}
{{- define "chainlab.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chainlab.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "miner"). */}}
{{- define "chainlab.componentSelector" -}}
{{ include "chainlab.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The container contract (files/containers.yaml, generated from chainlab/live/containers.py). */}}
{{- define "chainlab.contract" -}}
{{- .Files.Get "files/containers.yaml" -}}
{{- end }}

{{/* The experiment config as YAML text: `experiment` is a mapping (values.yaml) or the text of a config file
     (`--set-file experiment=experiments/dfl_demo.yaml`, which replaces the default whole instead of merging). */}}
{{- define "chainlab.experimentText" -}}
{{- if kindIs "string" .Values.experiment }}
{{- .Values.experiment }}
{{- else }}
{{- toYaml .Values.experiment }}
{{- end }}
{{- end }}

{{/* The plan ConfigMap's name, one per experiment: a new config on upgrade names a plan that does not exist yet,
     so the rolled node pods wait for the loader to write it rather than start on the old one. */}}
{{- define "chainlab.planName" -}}
{{- printf "%s-plan-%s" (include "chainlab.fullname" .) (include "chainlab.experimentText" . | sha256sum | trunc 10) }}
{{- end }}

{{- define "chainlab.experiment" -}}
{{- $exp := include "chainlab.experimentText" . | fromYaml }}
{{- if hasKey $exp "Error" }}
{{- fail (printf "experiment is not a YAML mapping: %s" $exp.Error) }}
{{- end }}
{{- toYaml $exp }}
{{- end }}

{{/* Which protocol the experiment runs (BagChain when protocol.name is absent, as chainlab's config says). */}}
{{- define "chainlab.protocol" -}}
{{- $exp := include "chainlab.experiment" . | fromYaml }}
{{- $section := $exp.protocol | default dict }}
{{- $section.name | default "bagchain" }}
{{- end }}

{{/* How many miners the experiment builds: BagChain's `miners` (chainlab default 10); DFL's and BFLC's
     protocol.nodes (defaults 10 and 20); any other protocol must state protocol.nodes. */}}
{{- define "chainlab.miners" -}}
{{- $exp := include "chainlab.experiment" . | fromYaml }}
{{- $protocol := include "chainlab.protocol" . }}
{{- $section := $exp.protocol | default dict }}
{{- if eq $protocol "bagchain" }}
{{- if hasKey $exp "miners" }}{{ $exp.miners }}{{ else }}10{{ end }}
{{- else if hasKey $section "nodes" }}
{{- $section.nodes }}
{{- else if eq $protocol "dfl" }}10
{{- else if eq $protocol "bflc" }}20
{{- else }}
{{- required (printf "experiment.protocol.nodes is required for protocol %q" $protocol) $section.nodes }}
{{- end }}
{{- end }}

{{/* BagChain's validators (chainlab default 0); other protocols have none. */}}
{{- define "chainlab.validators" -}}
{{- $exp := include "chainlab.experiment" . | fromYaml }}
{{- if and (eq (include "chainlab.protocol" .) "bagchain") (hasKey $exp "validators") }}
{{- $exp.validators }}
{{- else }}0{{ end }}
{{- end }}

{{/* "true" when the protocol has a requester (BagChain). */}}
{{- define "chainlab.hasRequester" -}}
{{- if eq (include "chainlab.protocol" .) "bagchain" }}true{{ end }}
{{- end }}

{{/* An image reference from its kind in the contract: node, nodeGpu or slim. (dict "root" $ "kind" "node") */}}
{{- define "chainlab.image" -}}
{{- $images := .root.Values.images }}
{{- $name := index $images .kind }}
{{- $tag := $images.tag | default .root.Chart.AppVersion }}
{{- if $images.registry }}
{{- printf "%s/%s:%s" (trimSuffix "/" $images.registry) $name $tag }}
{{- else }}
{{- printf "%s:%s" $name $tag }}
{{- end }}
{{- end }}

{{/* The in-cluster DNS name of a node, as the loader writes it into the plan. */}}
{{- define "chainlab.hostTemplate" -}}
{{- $full := include "chainlab.fullname" . }}
{{- printf "%s-{role}-{index}.%s-{role}.%s.svc.cluster.local" $full $full .Release.Namespace }}
{{- end }}

{{/* The requester's gRPC address. */}}
{{- define "chainlab.requesterAddress" -}}
{{- $full := include "chainlab.fullname" . }}
{{- $ports := (include "chainlab.contract" . | fromYaml).ports }}
{{- printf "%s-requester-0.%s-requester.%s.svc.cluster.local:%v" $full $full .Release.Namespace $ports.grpc }}
{{- end }}

{{/* Whether the monitoring CRD objects render: the API is served, or monitoring.force. */}}
{{- define "chainlab.monitoringCRDs" -}}
{{- if and .Values.monitoring.enabled (or .Values.monitoring.force (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) }}true{{ end }}
{{- end }}

{{/* Restricted container security context (readOnlyRootFilesystem, no escalation, drop ALL). */}}
{{- define "chainlab.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Pod-level settings every chainlab pod shares. */}}
{{- define "chainlab.podCommon" -}}
serviceAccountName: {{ include "chainlab.fullname" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.images.pullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Native gRPC probes on a port. (dict "root" $ "port" 7000) */}}
{{- define "chainlab.grpcProbes" -}}
{{- $p := .root.Values.probes }}
startupProbe:
  grpc: {port: {{ .port }}}
  periodSeconds: {{ $p.startup.periodSeconds }}
  failureThreshold: {{ $p.startup.failureThreshold }}
readinessProbe:
  grpc: {port: {{ .port }}}
  periodSeconds: {{ $p.readiness.periodSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
livenessProbe:
  grpc: {port: {{ .port }}}
  periodSeconds: {{ $p.liveness.periodSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
{{- end }}

{{/* prometheus.io/* annotations for a pod's first metrics port, when no monitoring CRDs render. */}}
{{- define "chainlab.scrapeAnnotations" -}}
{{- if and .root.Values.monitoring.enabled (not (include "chainlab.monitoringCRDs" .root)) }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}
