#!/usr/bin/env bash
# Builds Lucent and runs the whole pipeline on the embedded backends (SQLite
# files under ./data): lucent-ingest on :8080 (admin :9464) and lucent-consumer
# (admin :9465). Creates a demo key and prints a working curl example.
# Ctrl-C stops both (SIGTERM: they drain and exit cleanly).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cmake >/dev/null || [ ! -e /usr/include/openssl/ssl.h ] || [ ! -e /usr/include/sasl/sasl.h ]; then
  echo "installing build dependencies (cmake, libssl-dev, libsasl2-dev, pkg-config)"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends cmake pkg-config libssl-dev libsasl2-dev >/dev/null
fi
cargo build --release --bins
bin=target/release
mkdir -p data

key=$("$bin/lucent-ingest" keys create --org demo)
"$bin/lucent-consumer" run &
consumer=$!
"$bin/lucent-ingest" serve &
ingest=$!
trap 'kill -TERM $ingest $consumer 2>/dev/null; wait' INT TERM EXIT

for _ in $(seq 100); do
  curl -fs localhost:9464/readyz >/dev/null 2>&1 && curl -fs localhost:9465/readyz >/dev/null 2>&1 && break
  sleep 0.1
done

now=$(( $(date +%s) * 1000 ))
cat <<MSG

Lucent is running: ingest http://localhost:8080, metrics http://localhost:9464/metrics
Demo key (org "demo"): $key

Send a batch:
  curl -i localhost:8080/api/sdk/replay -H 'X-Lucent-Api-Key: $key' \\
    -d '{"sessionId":"demo-session","seq":0,"events":[{"type":2,"timestamp":$now,"data":{}},{"type":3,"timestamp":$((now + 40)),"data":{"source":2}}],"metadata":{"url":"https://example.test/"}}'

Then read it back:
  $bin/lucent-consumer sessions list --org demo
  $bin/lucent-consumer sessions export --org demo --session demo-session

Ctrl-C stops both processes.
MSG
wait
