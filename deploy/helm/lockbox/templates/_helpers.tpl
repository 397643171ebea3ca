{{/*
Names, labels and the few settings more than one template uses, defined once.
*/}}

{{/* The name of lockboxd's objects: the release name, unless it already says lockbox. */}}
{{- define "lockbox.fullname" -}}
{{- if contains "lockbox" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-lockboxd" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object (beside the selector labels of what it belongs to). */}}
{{- define "lockbox.labels" -}}
app.kubernetes.io/part-of: lockbox
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* What selects lockboxd's pods (Services, the PDB, anti-affinity, the NetworkPolicy). */}}
{{- define "lockbox.selectorLabels" -}}
app.kubernetes.io/name: lockboxd
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
The root key's setting: the one place that names it. The key unlocks the keyring lockboxd keeps
in the database, so the file may be read-only and `lockbox key rotate` needs no write to it.
*/}}
{{- define "lockbox.rootKeyEnv" -}}LOCKBOX_ROOT_KEY_FILE{{- end -}}

{{/* Where the root key Secret is mounted, and the file lockboxd reads. */}}
{{- define "lockbox.rootKeyDir" -}}/var/run/lockbox/root-key{{- end -}}

{{/* Where the NATS creds Secret and NATS's CA are mounted. */}}
{{- define "lockbox.natsDir" -}}/var/run/lockbox/nats{{- end -}}
{{- define "lockbox.natsCaDir" -}}/var/run/lockbox/nats-ca{{- end -}}

{{/* Where the TLS Secret is mounted. */}}
{{- define "lockbox.tlsDir" -}}/var/run/lockbox/tls{{- end -}}

{{/* The address agents are given: the headless Service, which resolves to every replica. */}}
{{- define "lockbox.agentAddr" -}}
{{- printf "%s-headless.%s.svc:%v" (include "lockbox.fullname" .) .Release.Namespace .Values.lockboxd.grpcPort -}}
{{- end -}}

{{/* The image reference of one image value block. */}}
{{- define "lockbox.image" -}}
{{- if hasPrefix "sha256:" .tag -}}
{{- printf "%s@%s" .repository .tag -}}
{{- else -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}
{{- end -}}

{{/* The container security settings both programs run with. */}}
{{- define "lockbox.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The pod security settings both workloads run with. */}}
{{- define "lockbox.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The agent's settings, the same for the init container and the sidecar. */}}
{{- define "lockbox.agentEnv" -}}
{{- $m := .Values.modelServer -}}
- name: LOCKBOX_ADDR
  value: {{ include "lockbox.agentAddr" . }}
- name: LOCKBOX_TOKEN_FILE
  value: /var/run/lockbox/agent/token
{{- if .Values.tls.enabled }}
- name: LOCKBOX_TLS_CA
  value: /var/run/lockbox/ca/ca.crt
{{- end }}
- name: BENTOML_HOME
  value: {{ $m.bentomlHome }}
- name: LOCKBOX_FILE_MODE
  value: {{ $m.fileMode | quote }}
- name: LOCKBOX_DIR_MODE
  value: {{ $m.dirMode | quote }}
- name: LOCKBOX_GROUP
  value: {{ .Values.podSecurity.runAsGroup | quote }}
{{- end -}}

{{/* The agent's volumes: BENTOML_HOME, the secrets' memory volume over its mount path, the token, the CA. */}}
{{- define "lockbox.agentMounts" -}}
{{- $m := .Values.modelServer -}}
- name: bentoml-home
  mountPath: {{ $m.bentomlHome }}
- name: secrets
  mountPath: {{ printf "%s/%s" $m.bentomlHome $m.mountPath }}
- name: agent-token
  mountPath: /var/run/lockbox/agent
  readOnly: true
{{- if .Values.tls.enabled }}
- name: lockbox-ca
  mountPath: /var/run/lockbox/ca
  readOnly: true
{{- end }}
{{- end -}}
