#!/usr/bin/env bash
# Renders the plain manifests deploy/kubernetes/lockbox.yaml from the Helm chart
# deploy/helm/lockbox with deploy/kubernetes/values.yaml, as `helm template` does:
#   helm template lockbox deploy/helm/lockbox --namespace lockbox -f deploy/kubernetes/values.yaml
# Uses the real helm when HELM=helm is set, else scripts/helm-render (Go, Helm's template pieces;
# needs Debian's golang-go, golang-github-masterminds-sprig-dev, golang-gopkg-yaml.v2-dev).
# test/deploy/helm-chart.test.ts renders the same and fails when the file differs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=deploy/kubernetes/lockbox.yaml
args=(--namespace lockbox -f deploy/kubernetes/values.yaml lockbox deploy/helm/lockbox)
if [ "${HELM:-}" != "" ]; then
  "$HELM" template "${args[@]}" > "$out"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd scripts/helm-render && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="${GOCACHE:-${TMPDIR:-/tmp}/lockbox-go-build-cache}" go build -o "$tmp/helm-render" .)
  "$tmp/helm-render" "${args[@]}" > "$out"
fi
echo "wrote $out"
