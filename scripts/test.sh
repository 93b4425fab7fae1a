#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine (root) to a verdict.
# Installs what the tests need when it is missing, then runs: formatting, clippy,
# every Rust test (unit, contract, conformance, process-level, fault and slow
# tests), the read API end to end with schemathesis, the deploy checks, the SDK's unit and browser tests, and a short
# fuzzing run of every cargo-fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# Free disk at each step: CI's disk is not ours to size, and a full disk shows
# up as a linker dying of SIGBUS, far from its cause.
step() {
  printf '\n==> %s (%ss, %s free)\n' "$*" "$(( $(date +%s) - start ))" \
    "$(df -h --output=avail . | tail -1 | tr -d ' ')"
}
# One build from scratch: incremental caches would only take disk (gigabytes).
export CARGO_INCREMENTAL=0

step "system packages"
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -e /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
[ -e /usr/include/sasl/sasl.h ] || need+=(libsasl2-dev)
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
# The SDK's 503 scenario locks a SQLite queue with the sqlite3 shell.
command -v sqlite3 >/dev/null || need+=(sqlite3)
# schemathesis (scripts/query_e2e.sh) installs into a venv: Debian ships ensurepip apart.
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

step "tansu (Kafka-protocol broker for the distributed-path tests)"
if ! command -v tansu >/dev/null && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
  echo "installing tansu from crates.io (about 8 minutes on 2 cores)"
  cargo install tansu --locked --features dynostore,libsql
fi
export PATH="$HOME/.cargo/bin:$PATH"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "build binaries"
cargo build --workspace --bins

step "cargo test (everything, slow tests included)"
cargo test --workspace

step "read API end to end: demo path, then schemathesis against query/openapi.yaml"
scripts/query_e2e.sh

step "deploy checks"
bash deploy/check.sh

step "SDK: unit tests and browser end-to-end test"
(cd sdk && npm ci --no-audit --no-fund && npm test && npm run e2e)

# After the SDK step: the recording tests load the SDK bundle it builds.
step "replay page: unit tests, committed bundle up to date, browser tests (recording to replay on the embedded backends and on Kafka, hostile recordings)"
(cd query/replay-ui && npm ci --no-audit --no-fund && npm test && npm run check && npm run e2e)

step "fuzzing: 15 s per target, unoptimised build (README \"Fuzzing\")"
LUCENT_FUZZ_PROFILE=dev scripts/fuzz.sh 15

step "all tests passed"
