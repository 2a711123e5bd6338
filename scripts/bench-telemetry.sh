#!/usr/bin/env bash
# Telemetry ingest throughput with wrk (apt-get install wrk): single POSTs at 64 connections,
# the same refused before storage (the ceiling without it), and batches of 1,000 samples, into a real collector process on SQLite and on PostgreSQL.
# Prints requests/s and the latency percentiles for docs/benchmarks.md.
#
#   scripts/bench-telemetry.sh [sqlite|postgres|peer|all] [SECONDS]
#   BENCH_COLLECTOR_BIN=/path/to/netwarden-collector scripts/bench-telemetry.sh ...
#
# Two peers, the same endpoint in the seed's stack, driven by the same wrk script:
# - scripts/bench-peer/telemetry_fastapi.py (FastAPI, uvicorn): one durable SQLite commit per
#   request under a global lock, run on uvicorn's asyncio and uvloop stacks. A floor, not a match.
# - scripts/bench-peer/telemetry_sqlalchemy.py: the stack as the seed built it (FastAPI,
#   SQLAlchemy 2 async on asyncpg, PostgreSQL, uvicorn with one worker per core on uvloop and
#   httptools): a transaction per request, a connection pool, no lock. The fairer peer.
# Their virtualenvs are made once under ~/.cache (PyPI). The last lines print each collector's
# single-POST rate as a ratio to the faster FastAPI peer run and to the SQLAlchemy peer.
#
# PostgreSQL: TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test); databases
# nwbench_telemetry (the collector) and nwbench_peer (the SQLAlchemy peer) are made and dropped.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
secs=${2:-20}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/netwarden-target}
target_dir=$CARGO_TARGET_DIR
pg_url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
# BENCH_COLLECTOR_BIN runs another build (an older commit's, to compare) instead (not
# NETWARDEN_COLLECTOR_*: those are configuration overrides).
if [ -n "${BENCH_COLLECTOR_BIN:-}" ]; then
    collector=$BENCH_COLLECTOR_BIN
else
    cargo build --release --locked -p netwarden-collector >&2
    collector=$target_dir/release/netwarden-collector
fi
work=$(mktemp -d)
pid=""
ppid=""
peer_db=""
peer_workers=$(nproc) # the SQLAlchemy peer's uvicorn workers: one per core, as it is deployed
cleanup() {
    # uvicorn's supervisor stops its workers on SIGTERM; wait lets them close their connections
    # before the peer's database is dropped.
    for p in $pid $ppid; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$peer_db" ]; then psql "$pg_url" -qc "DROP DATABASE IF EXISTS $peer_db WITH (FORCE)" || true; fi
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

peer_fastapi() { # the FastAPI + SQLite peer on uvicorn's asyncio and uvloop stacks
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

peer_sqlalchemy() { # the FastAPI + SQLAlchemy peer on PostgreSQL, one uvicorn worker per core
    # A venv of its own: SQLAlchemy's asyncio extension needs greenlet, which only its
    # [asyncio] extra installs (since SQLAlchemy 2.1).
    local venv=$HOME/.cache/netwarden-bench-venv-sqlalchemy port code
    if ! "$venv/bin/python" -c 'import fastapi, uvicorn, uvloop, httptools, greenlet, asyncpg, sqlalchemy.ext.asyncio' 2>/dev/null; then
        python3 -m venv "$venv" && "$venv/bin/pip" install -q fastapi 'uvicorn[standard]' 'sqlalchemy[asyncio]>=2' asyncpg >&2
    fi
    command -v psql >/dev/null || { echo "psql is needed for the SQLAlchemy peer: apt-get install postgresql-client" >&2; exit 1; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    psql "$pg_url" -qc "DROP DATABASE IF EXISTS nwbench_peer WITH (FORCE)" -qc "CREATE DATABASE nwbench_peer"
    peer_db=nwbench_peer
    # TEST_DATABASE_URL's server and credentials, in SQLAlchemy's form for asyncpg. The module is
    # imported, not run: no bytecode, or scripts/bench-peer/ would be left a __pycache__.
    local base=${pg_url%/*}
    PYTHONDONTWRITEBYTECODE=1 PEER_DATABASE_URL="postgresql+asyncpg://${base#*://}/nwbench_peer" "$venv/bin/uvicorn" telemetry_sqlalchemy:app \
        --app-dir scripts/bench-peer --host 127.0.0.1 --port "$port" --workers "$peer_workers" \
        --loop uvloop --http httptools --log-level warning --no-access-log & ppid=$!
    # Up to 20 s (each worker is a fresh interpreter importing FastAPI and SQLAlchemy), less if
    # uvicorn exits (its error is above).
    for _ in $(seq 200); do
        curl -s -o /dev/null "http://127.0.0.1:$port/docs" && break
        kill -0 "$ppid" 2>/dev/null || break
        sleep 0.1
    done
    # One sample through the storage path: a peer that answers /docs but cannot store would
    # otherwise be measured on its 500s.
    code=$(curl -s -o "$work/peer-answer" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -d '{"circuit_id":"CIR-0","utilization_mbps":1.5}' "http://127.0.0.1:$port/api/v1/telemetry" || true)
    if [ "$code" != 201 ]; then
        if [ "$code" = 000 ]; then code="no answer"; else code="HTTP $code $(head -c 300 "$work/peer-answer" 2>/dev/null || true)"; fi
        echo "the FastAPI+SQLAlchemy peer did not start on port $port: a test POST got $code" >&2
        exit 1
    fi
    sleep 1 # the first worker answered; the others finish their startup before wrk starts
    echo "### peer (FastAPI, SQLAlchemy async, PostgreSQL, uvicorn uvloop, $peer_workers workers): single POSTs, 64 connections, ${secs}s"
    NETWARDEN_TOKEN=${NETWARDEN_TOKEN:-none} single_posts peer-sqlalchemy "$port"
    kill "$ppid"; wait "$ppid" 2>/dev/null || true; ppid=""
    # Dropped now rather than at exit: nothing reads it after wrk.
    psql "$pg_url" -qc "DROP DATABASE IF EXISTS nwbench_peer WITH (FORCE)"; peer_db=""
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
    NETWARDEN_TOKEN=$("$collector" token create --role admin --name bench --config "$work/collector.toml" 2>"$work/token.err") || { cat "$work/token.err" >&2; exit 1; }
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
    peer_fastapi
    peer_sqlalchemy
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
if [ -n "${rates[peer-sqlalchemy]:-}" ]; then
    awk -v s="${rates[sqlite]:-}" -v p="${rates[postgres]:-}" -v b="${rates[peer-sqlalchemy]}" -v w="$peer_workers" 'BEGIN {
        if (b <= 0) exit
        if (s != "") line = sprintf("SQLite %.1f×", s / b)
        if (p != "") line = line (line != "" ? ", " : "") sprintf("PostgreSQL %.1f×", p / b)
        if (line != "") printf "### ratio to the FastAPI+SQLAlchemy+PostgreSQL peer (%d workers): %s\n", w, line
    }'
fi
