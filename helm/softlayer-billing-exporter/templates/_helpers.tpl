{{/* Name of the chart, shortened to the 63 characters Kubernetes names allow. */}}
{{- define "sbe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified name: the release name, plus the chart name unless it already contains it. */}}
{{- define "sbe.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sbe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sbe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sbe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sbe.labels" -}}
helm.sh/chart: {{ include "sbe.chart" . }}
{{ include "sbe.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: exporter
{{- end -}}

{{- define "sbe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sbe.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the accounts' API keys. */}}
{{- define "sbe.secretName" -}}
{{- default (printf "%s-credentials" (include "sbe.fullname" .)) .Values.existingSecret -}}
{{- end -}}

{{- define "sbe.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Where things are mounted in the container: sibling directories, never nested mounts. */}}
{{- define "sbe.configDir" -}}/etc/softlayer-billing-exporter/config{{- end -}}
{{- define "sbe.secretDir" -}}/etc/softlayer-billing-exporter/secrets{{- end -}}
{{- define "sbe.webDir" -}}/etc/softlayer-billing-exporter/web{{- end -}}
{{- define "sbe.tlsDir" -}}/etc/softlayer-billing-exporter/tls{{- end -}}

{{/* Whether --web.config.file is passed, and the scheme the exporter serves. */}}
{{- define "sbe.webConfigEnabled" -}}
{{- if or .Values.webConfig.tls.enabled .Values.webConfig.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "sbe.scheme" -}}
{{- if .Values.webConfig.tls.enabled -}}https
{{- else if .Values.webConfig.existingSecret -}}{{ .Values.webConfig.scheme }}
{{- else -}}http
{{- end -}}
{{- end -}}

{{- define "sbe.webConfigFile" -}}
{{- if .Values.webConfig.existingSecret -}}
{{- printf "%s/web-config.yml" (include "sbe.webDir" .) -}}
{{- else -}}
{{- printf "%s/web-config.yml" (include "sbe.configDir" .) -}}
{{- end -}}
{{- end -}}

{{/*
The exporter's config.yaml. Each account's API key is referenced by file path only
(api_key_file); the value lives in the Secret. Checks the values a JSON schema cannot.
*/}}
{{- define "sbe.exporterConfig" -}}
{{- $root := . -}}
{{- $names := dict -}}
{{- $accounts := list -}}
{{- if not .Values.accounts -}}
{{- fail "accounts: list at least one SoftLayer account to poll (see values.yaml and the chart README)" -}}
{{- end -}}
{{- if and .Values.webConfig.tls.enabled .Values.webConfig.existingSecret -}}
{{- fail "webConfig: set either tls.enabled or existingSecret, not both (put the TLS settings into the existing web-config.yml)" -}}
{{- end -}}
{{- if and .Values.webConfig.tls.enabled (not .Values.webConfig.tls.secretName) -}}
{{- fail "webConfig.tls.secretName: required when webConfig.tls.enabled is true (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- range $i, $account := .Values.accounts -}}
{{- if hasKey $names $account.name -}}
{{- fail (printf "accounts[%d].name: %q is used twice; account names must be unique" $i $account.name) -}}
{{- end -}}
{{- $_ := set $names $account.name true -}}
{{- $key := default $account.name $account.auth.secretKey -}}
{{- if and (not $root.Values.existingSecret) (not (hasKey $root.Values.secret.apiKeys $key)) -}}
{{- fail (printf "accounts[%d] (%s): no API key: set secret.apiKeys.%s or use existingSecret" $i $account.name $key) -}}
{{- end -}}
{{- $auth := dict "method" $account.auth.method "api_key_file" (printf "%s/%s" (include "sbe.secretDir" $root) $key) -}}
{{- if $account.auth.username -}}{{- $_ := set $auth "username" $account.auth.username -}}{{- end -}}
{{- if $account.auth.iam_token_url -}}{{- $_ := set $auth "iam_token_url" $account.auth.iam_token_url -}}{{- end -}}
{{- $entry := dict "name" $account.name "endpoint" (default "public" $account.endpoint) "auth" $auth -}}
{{- if hasKey $account "thresholds" -}}{{- $_ := set $entry "thresholds" $account.thresholds -}}{{- end -}}
{{- if hasKey $account "sources" -}}{{- $_ := set $entry "sources" $account.sources -}}{{- end -}}
{{- if hasKey $account "poll_interval" -}}{{- $_ := set $entry "poll_interval" $account.poll_interval -}}{{- end -}}
{{- $accounts = append $accounts $entry -}}
{{- end -}}
{{- $config := deepCopy .Values.config -}}
{{- $_ := set $config "accounts" $accounts -}}
{{- toYaml $config -}}
{{- end -}}

{{/* The web config rendered for webConfig.tls: file paths only, no key material. */}}
{{- define "sbe.webConfig" -}}
tls_server_config:
  cert_file: {{ include "sbe.tlsDir" . }}/tls.crt
  key_file: {{ include "sbe.tlsDir" . }}/tls.key
  min_version: {{ .Values.webConfig.tls.minVersion }}
{{- end -}}
