#!/usr/bin/env bash
# The read API end to end, as a new user meets it, then fuzzed by a client
# nobody here wrote. On the embedded backends in a temporary directory:
#   1. lucent-ingest, lucent-consumer and lucent-query start;
#   2. a public key sends two batches of a session over HTTP;
#   3. an admin secret key reads the session back over HTTP: listed, its row
#      complete, its events byte for byte as sent;
#   4. schemathesis (pinned, installed into target/ on first use) runs every
#      check of query/openapi.yaml against the running server with that key.
# Needs the debug binaries (`cargo build --bins`) and python3 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LUCENT_BIN_DIR:-target/debug}
for b in lucent-ingest lucent-consumer lucent-query; do
  [ -x "$bin/$b" ] || { echo "missing $bin/$b: run cargo build --bins first" >&2; exit 1; }
done

venv=target/schemathesis-venv
if [ ! -x "$venv/bin/st" ]; then
  echo "installing schemathesis into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==4.32.5"
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ingest=$(free_port); ingest_admin=$(free_port); consumer_admin=$(free_port)
query=$(free_port); query_admin=$(free_port)
export LUCENT_STORE="sqlite://$work/lucent.db" LUCENT_QUEUE="sqlite://$work/queue.db"

wait_ready() {
  for _ in $(seq 300); do
    curl -fs "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$2 never became ready on :$1" >&2
  exit 1
}

key=$("$bin/lucent-ingest" keys create --org e2e)
secret=$("$bin/lucent-query" secrets create --org e2e --scope admin --name e2e)
"$bin/lucent-ingest" serve --listen "127.0.0.1:$ingest" --admin-listen "127.0.0.1:$ingest_admin" \
  >"$work/ingest.log" 2>&1 & pids+=($!)
"$bin/lucent-consumer" run --admin-listen "127.0.0.1:$consumer_admin" \
  >"$work/consumer.log" 2>&1 & pids+=($!)
# A limit schemathesis's hundreds of requests a minute stay under; the limit
# itself is tested in query/tests.
"$bin/lucent-query" serve --listen "127.0.0.1:$query" --admin-listen "127.0.0.1:$query_admin" \
  --rate-limit-per-minute 100000 \
  >"$work/query.log" 2>&1 & pids+=($!)
wait_ready "$ingest_admin" lucent-ingest
wait_ready "$consumer_admin" lucent-consumer
wait_ready "$query_admin" lucent-query

now=$(( $(date +%s) * 1000 ))
e1="{\"type\":4,\"timestamp\":$now,\"data\":{\"href\":\"https://example.test/cart\",\"width\":1280}}"
e2="{\"type\":2,\"timestamp\":$((now + 1)),\"data\":{\"node\":{}}}"
e3="{\"type\":3,\"timestamp\":$((now + 40)),\"data\":{\"source\":2,  \"x\":1.50}}"
for body in "{\"sessionId\":\"e2e-session\",\"seq\":0,\"events\":[$e1,$e2]}" \
            "{\"sessionId\":\"e2e-session\",\"seq\":1,\"events\":[$e3]}"; do
  status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ingest/api/sdk/replay" \
    -H "X-Lucent-Api-Key: $key" -H 'Content-Type: application/json' -d "$body")
  [ "$status" = 202 ] || { echo "ingest answered $status" >&2; exit 1; }
done

api() { curl -fsS -H "Authorization: Bearer $secret" "http://127.0.0.1:$query$1"; }
for _ in $(seq 300); do
  row=$(api /api/v1/sessions/e2e-session 2>/dev/null || true)
  case "$row" in *'"eventCount":3'*) break ;; esac
  sleep 0.1
done
echo "row: $row"
case "$row" in *'"integrity":"complete"'*'"firstUrl":"https://example.test/cart"'*|*'"firstUrl":"https://example.test/cart"'*'"integrity":"complete"'*) ;;
  *) echo "the session row is not what was sent: $row" >&2; exit 1 ;; esac
api '/api/v1/sessions?limit=10' | grep -q '"sessionId":"e2e-session"' || { echo "not listed" >&2; exit 1; }
events=$(api /api/v1/sessions/e2e-session/events)
[ "$events" = "[$e1,$e2,$e3]" ] || { echo "events differ from what was sent:"; echo "$events"; exit 1; } >&2
echo "read back over HTTP: listed, complete, events byte for byte"


# From the temporary directory, where schemathesis leaves its own files.
repo=$(pwd)
(cd "$work" && "$repo/$venv/bin/st" --config-file "$repo/query/schemathesis.toml" \
  run "$repo/query/openapi.yaml" --url "http://127.0.0.1:$query" \
  -H "Authorization: Bearer $secret" \
  --checks all --max-examples "${LUCENT_SCHEMATHESIS_EXAMPLES:-30}" --seed 1 \
  --generation-database none --request-timeout 10 --workers 1 --no-color)
