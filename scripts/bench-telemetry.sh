#!/usr/bin/env bash
# Telemetry ingest throughput with wrk (apt-get install wrk): single POSTs at 64 connections,
# the same refused before storage (the ceiling without it), and batches of 1,000 samples, into a real collector process on SQLite and on PostgreSQL.
# Prints requests/s and the latency percentiles for docs/benchmarks.md.
#
#   scripts/bench-telemetry.sh [sqlite|postgres|peer|all] [SECONDS]
#
# The peer is scripts/bench-peer/telemetry_fastapi.py: the same endpoint in the seed's stack
# (FastAPI, uvicorn), one durable SQLite commit per request, run on uvicorn's asyncio and uvloop
# stacks with the same wrk script. Its virtualenv is made once under ~/.cache (PyPI). The last
# lines print each collector's single-POST rate as a ratio to the faster peer run.
#
# PostgreSQL: TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test); a database
# nwbench_telemetry is made and dropped.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
secs=${2:-20}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/netwarden-target}
target_dir=$CARGO_TARGET_DIR
pg_url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release --locked -p netwarden-collector >&2
collector=$target_dir/release/netwarden-collector
work=$(mktemp -d)
pid=""
ppid=""
cleanup() {
    for p in $pid $ppid; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The requests are formatted once per wrk thread, not per request: wrk runs on the same two
# cores as the collector, and a Lua request() that formats each request spends them on the
# load generator. 6,000 requests cover every circuit/utilisation pair the counter makes.
cat > "$work/single.lua" <<'LUA'
-- One sample per request, over 1,000 circuits.
local requests = {}
local counter = 0
init = function(args)
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("NETWARDEN_TOKEN")}
  for i = 0, 5999 do
    local body = string.format('{"circuit_id":"CIR-%d","utilization_mbps":%d.5}', i % 1000, i % 1200)
    requests[i] = wrk.format("POST", "/api/v1/telemetry", headers, body)
  end
end
request = function()
  counter = (counter + 1) % 6000
  return requests[counter]
end
LUA
cat > "$work/refused.lua" <<'LUA'
-- No utilization_mbps: answered 422 before storage. What is left is HTTP, the token check and
-- the JSON parse: the ceiling the storage path is measured against.
init = function(args)
  wrk.method = "POST"
  wrk.path = "/api/v1/telemetry"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("NETWARDEN_TOKEN")
  wrk.body = '{"circuit_id":"CIR-1"}'
end
LUA
python3 - "$work/batch.json" <<'PY'
import json, sys
json.dump([{"circuit_id": "CIR-%d" % (i % 1000), "utilization_mbps": i % 1200 + 0.5} for i in range(1000)], open(sys.argv[1], "w"))
PY
cat > "$work/batch.lua" <<LUA
init = function(args)
  local f = io.open("$work/batch.json", "r")
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.path = "/api/v1/telemetry/batch"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("NETWARDEN_TOKEN")
end
LUA

declare -A rates=()
single_posts() { # label port: wrk's single POSTs, printed and their rate kept in rates[label]
    local out
    out=$(wrk -t2 -c64 -d"${secs}s" --latency -s "$work/single.lua" "http://127.0.0.1:$2")
    echo "$out" | grep -E "Requests/sec|Latency|50%|90%|99%|requests in|Non-2xx"
    rates[$1]=$(echo "$out" | awk '/Requests\/sec/{print $2}')
}

peer() { # the FastAPI peer on uvicorn's asyncio and uvloop stacks
    local venv=$HOME/.cache/netwarden-bench-venv port loop
    if ! "$venv/bin/python" -c 'import fastapi, uvicorn, uvloop, httptools' 2>/dev/null; then
        python3 -m venv "$venv" && "$venv/bin/pip" install -q fastapi 'uvicorn[standard]' >&2
    fi
    for loop in asyncio uvloop; do
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        rm -f "$work/peer.db"*
        "$venv/bin/python" scripts/bench-peer/telemetry_fastapi.py "$work/peer.db" "$port" "$loop" & ppid=$!
        for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/docs" && break; sleep 0.1; done
        if ! curl -s -o /dev/null "http://127.0.0.1:$port/docs"; then
            echo "the FastAPI peer ($loop) did not start on port $port" >&2
            exit 1
        fi
        echo "### peer (FastAPI, uvicorn $loop): single POSTs, 64 connections, ${secs}s"
        NETWARDEN_TOKEN=${NETWARDEN_TOKEN:-none} single_posts "peer-$loop" "$port"
        kill "$ppid"; wait "$ppid" 2>/dev/null || true; ppid=""
    done
}

run() { # backend url
    local backend=$1 url=$2 port
    "$collector" pki init --dir "$work/pki" --force >/dev/null
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat > "$work/collector.toml" <<TOML
[grpc]
listen = "127.0.0.1:0"
query_listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:$port"
[tls]
ca = "pki/ca.pem"
cert = "pki/server.pem"
key = "pki/server.key"
[database]
url = "$url"
max_connections = 16
[log]
level = "warn"
[auth]
rate_per_sec = 0
TOML
    NETWARDEN_TOKEN=$("$collector" token create --role admin --name bench --config "$work/collector.toml" 2>/dev/null)
    export NETWARDEN_TOKEN
    "$collector" serve --config "$work/collector.toml" & pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    # The 1,000 circuits the samples name are registered (unknown ids are the rare path).
    for i in $(seq 0 999); do
        curl -sf -X PUT -H 'Content-Type: application/json' -H "Authorization: Bearer $NETWARDEN_TOKEN" -d '{"provisioned_mbps": 1000}' \
            "http://127.0.0.1:$port/api/circuits/CIR-$i" >/dev/null
    done
    echo "### $backend: single POSTs, 64 connections, ${secs}s"
    single_posts "$backend" "$port"
    echo "### $backend: refused POSTs (422, nothing stored), 64 connections, ${secs}s"
    wrk -t2 -c64 -d"${secs}s" --latency -s "$work/refused.lua" "http://127.0.0.1:$port" | grep -E "Requests/sec|50%|99%|requests in"
    echo "### $backend: batches of 1,000 samples, 8 connections, ${secs}s"
    wrk -t2 -c8 -d"${secs}s" --latency -s "$work/batch.lua" "http://127.0.0.1:$port" | grep -E "Requests/sec|50%|99%|requests in|Non-2xx"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

if [ "$what" = peer ] || [ "$what" = all ]; then
    peer
fi
if [ "$what" = sqlite ] || [ "$what" = all ]; then
    run sqlite "sqlite://$work/bench.db"
fi
if [ "$what" = postgres ] || [ "$what" = all ]; then
    base=${pg_url%/*}
    psql "$pg_url" -qc "DROP DATABASE IF EXISTS nwbench_telemetry" -qc "CREATE DATABASE nwbench_telemetry"
    run postgres "$base/nwbench_telemetry"
    psql "$pg_url" -qc "DROP DATABASE IF EXISTS nwbench_telemetry WITH (FORCE)"
fi
if [ -n "${rates[peer-uvloop]:-}" ]; then
    best=$(printf '%s\n' "${rates[peer-uvloop]}" "${rates[peer-asyncio]:-0}" | sort -g | tail -1)
    for backend in sqlite postgres; do
        if [ -n "${rates[$backend]:-}" ]; then
            awk -v a="${rates[$backend]}" -v b="$best" -v n="$backend" \
                'BEGIN { if (b > 0) printf "### ratio: %s single POSTs / the faster FastAPI peer run = %.1f\n", n, a / b }'
        fi
    done
fi
