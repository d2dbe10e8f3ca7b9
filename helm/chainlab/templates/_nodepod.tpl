{{/* The pod template of a node (miner, validator, requester): its service container and the netem sidecar, both
     taking command, args and env from files/containers.yaml. (dict "root" $ "role" "miner") */}}
{{- define "chainlab.nodePod" -}}
{{- $root := .root }}
{{- $role := .role }}
{{- $full := include "chainlab.fullname" $root }}
{{- $c := include "chainlab.contract" $root | fromYaml }}
{{- $pod := index $c.pods $role }}
{{- $cfg := index $root.Values $role }}
{{- $gpu := and (eq $role "miner") $root.Values.gpu.enabled }}
{{- $imageKind := ternary "nodeGpu" $pod.node.image $gpu }}
{{- $nodeSelector := $cfg.nodeSelector | default dict }}
{{- $tolerations := $cfg.tolerations | default list }}
{{- if $gpu }}
{{- $nodeSelector = merge (deepCopy $nodeSelector) $root.Values.gpu.nodeSelector }}
{{- $tolerations = concat $tolerations $root.Values.gpu.tolerations }}
{{- end }}
metadata:
  labels:
    {{- include "chainlab.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $role }}
    chainlab.dev/node-pod: "true"
    chainlab.dev/role: {{ $role }}
    {{- if eq $role "requester" }}
    # StatefulSet pods are named by their pod-index label; the requester (a Deployment) says its name here.
    chainlab.dev/node: requester-0
    {{- end }}
  annotations:
    # A new experiment config means a new plan: roll the pods so they read it.
    checksum/experiment: {{ include "chainlab.experimentText" $root | sha256sum }}
    {{- with include "chainlab.scrapeAnnotations" (dict "root" $root "port" $c.ports.metrics) | trim }}
    {{- . | nindent 4 }}
    {{- end }}
spec:
  {{- include "chainlab.podCommon" $root | nindent 2 }}
  enableServiceLinks: false
  {{- if eq $role "requester" }}
  hostname: {{ $full }}-requester-0
  subdomain: {{ $full }}-requester
  {{- end }}
  {{- if and $gpu $root.Values.gpu.runtimeClassName }}
  runtimeClassName: {{ $root.Values.gpu.runtimeClassName }}
  {{- end }}
  containers:
    - name: node
      image: {{ include "chainlab.image" (dict "root" $root "kind" $imageKind) }}
      imagePullPolicy: {{ $root.Values.images.pullPolicy }}
      command: {{ toJson $pod.node.command }}
      args: {{ toJson ($pod.node.args | default list) }}
      env:
        {{- toYaml $pod.node.env | nindent 8 }}
      ports:
        - {name: grpc, containerPort: {{ $c.ports.grpc }}, protocol: TCP}
        - {name: metrics, containerPort: {{ $c.ports.metrics }}, protocol: TCP}
      {{- include "chainlab.grpcProbes" (dict "root" $root "port" $c.ports.grpc) | trim | nindent 6 }}
      resources:
        {{- $resources := deepCopy $cfg.resources }}
        {{- if $gpu }}
        {{- $_ := set $resources "limits" (merge (dict "nvidia.com/gpu" $root.Values.gpu.count) ($resources.limits | default dict)) }}
        {{- end }}
        {{- toYaml $resources | nindent 8 }}
      securityContext:
        {{- include "chainlab.containerSecurity" $root | nindent 8 }}
      volumeMounts:
        - {name: plan, mountPath: {{ $c.paths.plan_dir }}, readOnly: true}
        - {name: tmp, mountPath: {{ $c.paths.tmp }}}
        - {name: state, mountPath: {{ $c.paths.state | default "/var/lib/chainlab" }}}
    - name: netem
      image: {{ include "chainlab.image" (dict "root" $root "kind" $pod.netem.image) }}
      imagePullPolicy: {{ $root.Values.images.pullPolicy }}
      command: {{ toJson $pod.netem.command }}
      args: {{ toJson ($pod.netem.args | default list) }}
      env:
        {{- toYaml $pod.netem.env | nindent 8 }}
        {{- if $root.Values.netem.kernelShaping }}
        # Bandwidth with htb, loss and partitions with iptables in the pod's network namespace (NET_ADMIN below).
        - {name: CHAINLAB_NETEM_KERNEL, value: "1"}
        {{- end }}
      ports:
        - {name: netem, containerPort: {{ $c.ports.netem }}, protocol: TCP}
        - {name: netem-metrics, containerPort: {{ $c.ports.netem_metrics }}, protocol: TCP}
      {{- include "chainlab.grpcProbes" (dict "root" $root "port" $c.ports.netem) | trim | nindent 6 }}
      resources:
        {{- toYaml $root.Values.netem.resources | nindent 8 }}
      securityContext:
        {{- if $root.Values.netem.kernelShaping }}
        # Kernel shaping (tc on the pod's interface) needs NET_ADMIN, effective only for root: NOT restricted.
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        runAsNonRoot: false
        runAsUser: 0
        capabilities:
          drop: [ALL]
          add: [NET_ADMIN]
        seccompProfile:
          type: RuntimeDefault
        {{- else }}
        {{- include "chainlab.containerSecurity" $root | nindent 8 }}
        {{- end }}
      volumeMounts:
        - {name: plan, mountPath: {{ $c.paths.plan_dir }}, readOnly: true}
        - {name: netem-tmp, mountPath: {{ $c.paths.tmp }}}
  volumes:
    # Written by the loader Job; not optional, so the kubelet holds the pod until the plan exists.
    - name: plan
      configMap:
        name: {{ include "chainlab.planName" $root }}
        optional: false
    - name: tmp
      emptyDir: {sizeLimit: 1Gi}
    - name: netem-tmp
      emptyDir: {sizeLimit: 64Mi}
    {{- if eq $role "requester" }}
    - name: state
      {{- if $cfg.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ $full }}-requester-state
      {{- else }}
      emptyDir: {sizeLimit: {{ $cfg.persistence.size }}}
      {{- end }}
    {{- end }}
  {{- with $nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $cfg.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
