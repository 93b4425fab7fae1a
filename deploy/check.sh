#!/usr/bin/env bash
# Validates everything under deploy/ offline: Prometheus config, alert rules and
# their unit tests, Kubernetes manifests, the docker-compose file, the Grafana
# dashboard, that the scrape jobs agree across them, that every store client
# (Kubernetes and compose) reaches ScyllaDB the same way after the schema step,
# and that every metric they use is one the binaries export.
#
#   deploy/check.sh            (from anywhere; exits non-zero on any failure)
#
# On a fresh Debian machine, run as root: it installs what is missing from
# Debian (promtool via `prometheus`, `docker-compose`) and PyPI
# (kubernetes-validate, which bundles the Kubernetes JSON schemas, in a venv
# under ~/.cache). Nothing is downloaded from anywhere else, and no Docker
# engine is needed: docker-compose only parses the file.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
VENV="${LUCENT_CHECK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/lucent-deploy-check/venv}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

step() { printf '\n== %s\n' "$*"; }
have() { command -v "$1" > /dev/null 2>&1; }

# ---- tools ------------------------------------------------------------------
step "tools"
# A Python that can import kubernetes_validate: the current one if it already
# can, else a venv of our own (Debian's system Python refuses `pip install`).
PY=python3
if ! { have python3 && python3 -c 'import kubernetes_validate, yaml' 2> /dev/null; }; then
  PY="$VENV/bin/python"
fi

apt_packages=()
have promtool || apt_packages+=(prometheus)
have docker-compose || docker compose version > /dev/null 2>&1 || apt_packages+=(docker-compose)
if [[ $PY != python3 && ! -x $PY ]]; then
  have python3 || apt_packages+=(python3)
  python3 -c 'import ensurepip, venv' 2> /dev/null || apt_packages+=(python3-venv)
fi
if ((${#apt_packages[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing: ${apt_packages[*]} (run as root to install, or install them yourself)" >&2
    exit 1
  fi
  echo "installing from Debian: ${apt_packages[*]}"
  apt-get update -qq
  # --no-install-recommends: docker-compose would otherwise pull in the Docker
  # engine and the prometheus package its node exporter; neither is needed.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" > /dev/null
fi
if [[ $PY != python3 && ! -x $PY ]]; then
  echo "installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION from PyPI into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

if have docker-compose; then
  compose=(docker-compose)
else
  compose=(docker compose)
fi
echo "promtool:            $(promtool --version 2>&1 | head -n1)"
echo "compose:             $("${compose[@]}" version 2>&1 | head -n1)"
echo "kubernetes-validate: $("$PY" -c 'from kubernetes_validate.version import __version__ as v; print(v)') ($PY)"

# Each check runs even if an earlier one failed, so one run reports everything.
failures=()
run() {
  local name=$1
  shift
  if "$@"; then
    echo "-> passed: $name"
  else
    echo "-> FAILED: $name"
    failures+=("$name")
  fi
}

# ---- Prometheus -------------------------------------------------------------
step "promtool check config deploy/prometheus/prometheus.yml"
run "prometheus config" promtool check config deploy/prometheus/prometheus.yml

step "promtool check rules deploy/prometheus/alerts.yml"
run "alert rules" promtool check rules deploy/prometheus/alerts.yml

step "promtool test rules deploy/prometheus/alerts_test.yml"
run "alert unit tests" promtool test rules deploy/prometheus/alerts_test.yml

step "alerts: runbook, summary and severity on each; each tested firing and not firing"
run "alert conventions" "$PY" deploy/checks.py alerts

# ---- Kubernetes -------------------------------------------------------------
step "Kubernetes manifests in deploy/k8s (offline schemas) and cross-file rules"
run "kubernetes manifests" "$PY" deploy/checks.py k8s

# ---- docker-compose ---------------------------------------------------------
step "${compose[*]} -f deploy/docker-compose.yml config -q"
run "docker-compose file" "${compose[@]}" -f deploy/docker-compose.yml config -q

step "docker-compose: the schema service runs before every store client, alone with the replication"
run "compose schema step" "$PY" deploy/checks.py compose

# ---- Grafana ----------------------------------------------------------------
step "python3 -m json.tool deploy/grafana/dashboards/lucent.json, and its PromQL through promtool"
run "dashboard JSON" python3 -m json.tool deploy/grafana/dashboards/lucent.json /dev/null
run "dashboard structure" "$PY" deploy/checks.py dashboard "$TMP/dashboard_queries.yml"
if [[ -f $TMP/dashboard_queries.yml ]]; then
  run "dashboard PromQL" promtool check rules "$TMP/dashboard_queries.yml"
fi
for f in deploy/grafana/provisioning/*/*.yml; do
  run "YAML $f" "$PY" -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' "$f"
done

# ---- scrape jobs ------------------------------------------------------------
step "scrape jobs agree: prometheus.yml, docker-compose, alerts, monitors, dashboard"
run "scrape jobs" "$PY" deploy/checks.py jobs

# ---- metric names -----------------------------------------------------------
step "metric names in alerts and dashboard exist in common/src/process/metric_names.rs"
run "metric names" "$PY" deploy/checks.py metrics

# ---- summary ----------------------------------------------------------------
step "summary"
if ((${#failures[@]})); then
  printf 'FAILED (%d): %s\n' "${#failures[@]}" "$(IFS=,; echo "${failures[*]}")"
  exit 1
fi
echo "all deploy checks passed (CRD-based manifests not schema-checked: see SKIP lines above)"
