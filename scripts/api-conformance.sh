#!/usr/bin/env bash
# Runs schemathesis (PyPI) against a live collector's own /api/openapi.json: every documented
# operation is called with generated valid and invalid input, and every answer is checked
# against the document (status codes, content types, schemas, auth, no 5xx).
#
#   scripts/api-conformance.sh              # on embedded SQLite
#   scripts/api-conformance.sh --postgres   # on a database of its own, made (and dropped) on
#                                           # the server of TEST_DATABASE_URL
#
# Before the run a real agent probes loopback and a circuit, account and telemetry are
# posted, so list endpoints answer real rows, not only empty lists. Reproducible: the seed is
# fixed (NETWARDEN_ST_SEED to change it); NETWARDEN_ST_EXAMPLES sets examples per operation.
# Rules an OpenAPI schema cannot state are listed, narrowly, in scripts/schemathesis.toml. One
# applies to every string: no NUL characters (the document says so once; the API tests check
# the 400), so schemathesis is told not to generate them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/netwarden-target}
postgres=false
while (($#)); do
  case $1 in
    --postgres) postgres=true; shift ;;
    *) echo "usage: $0 [--postgres]" >&2; exit 2 ;;
  esac
done
server=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
server=${server%/*}
pg_database=nwtest_conformance_$$

venv=${NETWARDEN_ST_VENV:-$HOME/.cache/netwarden-schemathesis}
schemathesis_version=4.32.5
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$schemathesis_version"; then
  echo "==> installing schemathesis $schemathesis_version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$schemathesis_version"
fi

cargo build -q --bins --locked
bin=$CARGO_TARGET_DIR/debug
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
  if $postgres; then
    psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $pg_database WITH (FORCE)" || true
  fi
}
trap cleanup EXIT

database=sqlite://collector.db
if $postgres; then
  psql "$server/postgres" -qc "CREATE DATABASE $pg_database"
  database=$server/$pg_database
fi
# Two distinct free ports, chosen while both are held.
read -r http_port grpc_port < <(python3 -c '
import socket
held = [socket.socket() for _ in range(2)]
for s in held: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in held])')
"$bin/netwarden-collector" pki init --dir "$work/pki" --host 127.0.0.1 >/dev/null
"$bin/netwarden-collector" pki issue-agent --dir "$work/pki" --name conformance-agent >/dev/null
cat > "$work/collector.toml" <<CONF
[grpc]
listen = "127.0.0.1:$grpc_port"
query_listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:$http_port"
[tls]
ca = "pki/ca.pem"
cert = "pki/server.pem"
key = "pki/server.key"
[database]
url = "$database"
[auth]
# schemathesis sends thousands of requests; the limit itself is covered by the API tests.
rate_per_sec = 0
CONF
cat > "$work/agent.toml" <<CONF
[collector]
url = "https://127.0.0.1:$grpc_port"
[tls]
ca = "pki/ca.pem"
cert = "pki/agents/conformance-agent.pem"
key = "pki/agents/conformance-agent.key"
[buffer]
path = "agent-buffer.db"
[probe]
targets = ["127.0.0.1", "127.0.0.2"]
count = 3
interval_secs = 2
ping_interval_ms = 100
timeout_ms = 500
CONF
token=$("$bin/netwarden-collector" token create --role admin --name conformance \
  --config "$work/collector.toml")
"$bin/netwarden-collector" serve --config "$work/collector.toml" 2>"$work/collector.log" &
pids+=($!)
base=http://127.0.0.1:$http_port
for _ in $(seq 1 100); do curl -fs "$base/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$base/health" >/dev/null || { cat "$work/collector.log" >&2; exit 1; }

echo "==> seeding: a probing agent, an account, a circuit and its telemetry"
"$bin/netwarden-agent" run --config "$work/agent.toml" 2>"$work/agent.log" &
pids+=($!)
api() { curl -fsS -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
api -X PUT "$base/api/employees/am-1" -d '{"name":"Ann Manager","email":"am@example.net"}' >/dev/null
api -X PUT "$base/api/accounts/acme" -d '{"name":"Acme","contact_email":"noc@acme.example","account_manager":"am-1"}' >/dev/null
api -X PUT "$base/api/circuits/ACME-1" -d '{"account":"acme","provisioned_mbps":100}' >/dev/null
api -X POST "$base/api/v1/telemetry/batch" \
  -d '[{"circuit_id":"ACME-1","utilization_mbps":40},{"circuit_id":"ACME-9","utilization_mbps":5}]' >/dev/null
devices=0
for _ in $(seq 1 150); do
  devices=$(api "$base/api/devices" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  [ "$devices" -ge 2 ] && break
  sleep 0.2
done
if [ "$devices" -lt 2 ]; then
  echo "api-conformance: the agent reported $devices devices in 30 s (ICMP needs root or CAP_NET_RAW); its log:" >&2
  tail -n 30 "$work/agent.log" >&2
  exit 1
fi

echo "==> schemathesis against $base/api/openapi.json (${database%%:*})"
reports=${NETWARDEN_ARTIFACTS:-$work}/schemathesis
status=0
# One worker: under threads, CPython 3.11's ast module can raise a spurious "AST constructor
# recursion depth mismatch" inside hypothesis (python/cpython#106905), a crash of the tool that
# says nothing about the API.
"$venv/bin/st" --config-file scripts/schemathesis.toml run "$base/api/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --generation-allow-x00 false \
  --generation-database none \
  --seed "${NETWARDEN_ST_SEED:-20261121}" \
  --max-examples "${NETWARDEN_ST_EXAMPLES:-100}" \
  --workers 1 \
  --report junit --report-dir "$reports" \
  --no-color || status=$?
if ((status != 0)); then
  echo "==> schemathesis found failures; the collector's log:" >&2
  tail -n 50 "$work/collector.log" >&2
fi
exit $status
