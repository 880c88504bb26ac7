{{/*
Render a file of grafana/ (copied into files/ by scripts/sync-chart-files) with this release's
monitoring settings. The files are generated with the defaults of grafana/mixin.py, which
files/mixin-defaults.json lists; each default is replaced by its value here:
- mixin.jobSelector, default the job prometheus-operator gives the ServiceMonitor's targets
  (the Service's name), so the rules select this release's exporters;
- mixin.runbookUrl and mixin.grafanaUrl, default the generated ones.
Usage: include "sbe.mixin" (dict "ctx" $ "file" "files/softlayer-billing.rules.yml")
*/}}
{{- define "sbe.mixin" -}}
{{- $defaults := .ctx.Files.Get "files/mixin-defaults.json" | fromJson -}}
{{- $values := .ctx.Values.mixin -}}
{{- $job := $values.jobSelector | default (printf "job=%q" (include "sbe.fullname" .ctx)) -}}
{{- $runbook := $values.runbookUrl | default $defaults.runbook_url -}}
{{- $grafana := $values.grafanaUrl | default $defaults.grafana_url -}}
{{- .ctx.Files.Get .file | replace $defaults.job_selector $job | replace $defaults.runbook_url $runbook | replace $defaults.grafana_url $grafana -}}
{{- end -}}
