#!/usr/bin/env bash
# Builds Lucent and runs the whole pipeline on the embedded backends (SQLite
# files under ./data): lucent-ingest on :8080 (admin :9464), lucent-consumer
# (admin :9465) and lucent-query on :8090 (admin :9466). Creates a demo public
# key and a demo secret key, and prints working curl examples for sending a
# batch and reading it back. Ctrl-C stops all three (SIGTERM: they drain and
# exit cleanly).
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
secret=$("$bin/lucent-query" secrets create --org demo --scope admin --name demo)
read_key=$("$bin/lucent-query" secrets create --org demo --scope read --name replay-page)
"$bin/lucent-consumer" run &
consumer=$!
"$bin/lucent-ingest" serve &
ingest=$!
"$bin/lucent-query" serve &
query=$!
trap 'kill -TERM $ingest $consumer $query 2>/dev/null; wait' INT TERM EXIT

for _ in $(seq 100); do
  curl -fs localhost:9464/readyz >/dev/null 2>&1 && curl -fs localhost:9465/readyz >/dev/null 2>&1 \
    && curl -fs localhost:9466/readyz >/dev/null 2>&1 && break
  sleep 0.1
done

now=$(( $(date +%s) * 1000 ))
cat <<MSG

Lucent is running: ingest http://localhost:8080, read API http://localhost:8090,
metrics on :9464 (ingest), :9465 (consumer) and :9466 (query).
Demo public key (org "demo"): $key
Demo secret key (org "demo", scope admin; shown only now): $secret

Send a batch:
  curl -i localhost:8080/api/sdk/replay -H 'X-Lucent-Api-Key: $key' \\
    -d '{"sessionId":"demo-session","seq":0,"events":[{"type":2,"timestamp":$now,"data":{}},{"type":3,"timestamp":$((now + 40)),"data":{"source":2}}],"metadata":{"url":"https://example.test/"}}'

Then read it back over HTTP:
  curl -s localhost:8090/api/v1/sessions -H 'Authorization: Bearer $secret'
  curl -s localhost:8090/api/v1/sessions/demo-session -H 'Authorization: Bearer $secret'
  curl -s localhost:8090/api/v1/sessions/demo-session/events -H 'Authorization: Bearer $secret'
or on this machine:
  $bin/lucent-consumer sessions list --org demo
  $bin/lucent-consumer sessions export --org demo --session demo-session

Watch sessions on the replay page: http://localhost:8090/
  Secret key to enter there (org "demo", scope read; shown only now): $read_key
  (The curl batch above has no real snapshot: it is listed but cannot be played.)
  To record a real page: cd sdk && npm ci && npm run build && cd .. &&
  python3 -m http.server 8000, then open
  http://localhost:8000/sdk/test-page/index.html?endpoint=http://localhost:8080&key=$key&flush=1000&mask=0
  type and click there, and the session shows on the replay page within seconds.

Ctrl-C stops all three processes.
MSG
wait
