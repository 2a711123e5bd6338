#!/usr/bin/env bash
# Operator API latency with wrk (apt-get install wrk) over 10 million probe rounds in
# PostgreSQL: /api/devices pages and device history (raw, 1 hour; and 5-minute rollups, 24
# hours) held near 1,000 requests/s each (16 connections, 13 ms apart). Prints the latency percentiles for docs/benchmarks.md.
#
#   scripts/bench-api.sh [DEVICES] [ROUNDS_PER_DEVICE] [SECONDS]     (default 1000 10000 20)
#
# TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test); a database nwbench_api
# is made and dropped.
set -euo pipefail
cd "$(dirname "$0")/.."
devices=${1:-1000}
rounds=${2:-10000}
secs=${3:-20}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/netwarden-target}
pg_url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
db_url=${pg_url%/*}/nwbench_api
cargo build --release --locked -p netwarden-collector >&2
collector=$CARGO_TARGET_DIR/release/netwarden-collector
work=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    wait 2>/dev/null || true
    psql "$pg_url" -qc "DROP DATABASE IF EXISTS nwbench_api WITH (FORCE)" || true
    rm -rf "$work"
}
trap cleanup EXIT

psql "$pg_url" -qc "DROP DATABASE IF EXISTS nwbench_api WITH (FORCE)" -qc "CREATE DATABASE nwbench_api"
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
url = "$db_url"
max_connections = 16
[log]
level = "warn"
[alerting]
agent_silent_secs = 0
[auth]
rate_per_sec = 0
TOML
"$collector" migrate --config "$work/collector.toml" >/dev/null   # makes today's partitions
token=$("$collector" token create --role viewer --name bench --config "$work/collector.toml" 2>/dev/null)

# Rounds spread evenly from yesterday 00:00 UTC to now, so every row is in a daily partition.
total=$((devices * rounds))
echo "### loading $devices devices x $rounds rounds = $total rows" >&2
start=$(date +%s)
psql -q "$db_url" <<SQL
INSERT INTO agents (id, first_seen, last_seen) VALUES ('bench-agent', now(), now());
INSERT INTO devices (agent_id, address, first_seen, last_seen, status, last_probe_at, last_loss_pct, last_rtt_ms)
SELECT 'bench-agent', '10.' || (d / 65536) || '.' || (d / 256 % 256) || '.' || (d % 256),
       now(), now(), 1 + (d % 3), now(), 0, 10
FROM generate_series(1, $devices) AS d;
INSERT INTO probe_results (device_id, ts, agent_record_id, sent, received, rtt_min, rtt_median,
    rtt_mean, rtt_max, rtt_p95, rtt_stddev, jitter, rtts, status)
SELECT d.id,
       date_trunc('day', now() - interval '1 day') + (now() - date_trunc('day', now() - interval '1 day')) * r / $rounds,
       d.id * $rounds + r, 4, 4 - (r % 7 = 0)::INT, 9.5, 10.2, 10.4, 12.1, 12.0, 0.8, 0.6,
       '\\x00002041000022410000244100002641'::BYTEA, 1
FROM devices d CROSS JOIN generate_series(0, $rounds - 1) AS r;
ANALYZE;
SQL
echo "### loaded in $(( $(date +%s) - start )) s; $(psql -tAc 'SELECT COUNT(*) FROM probe_results' "$db_url") rows" >&2

"$collector" serve --config "$work/collector.toml" & pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
# Wait for the rollup job to catch up over the loaded rows (it starts at yesterday's midnight).
start=$(date +%s)
until [ "$(psql -tAc "SELECT COUNT(*) FROM rollup_watermarks WHERE (resolution = 300 AND done_at > now() - interval '10 minutes') OR (resolution = 3600 AND done_at > now() - interval '65 minutes')" "$db_url")" = 2 ]; do
    sleep 2
done
echo "### rollups caught up in $(( $(date +%s) - start )) s: $(psql -tAc 'SELECT COUNT(*) FROM probe_rollups' "$db_url") buckets" >&2

lua() { # path-expression
    cat <<LUA
math.randomseed(os.time())
local token = "$token"
request = function()
  local id = math.random(1, $devices)
  return wrk.format("GET", $1, {["Authorization"] = "Bearer " .. token})
end
-- 16 connections, each waiting 13 ms between requests: about 1,000 requests/s at 3 ms a request.
delay = function() return 13 end
LUA
}
now_iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)
hour_ago=$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%SZ)
day_ago=$(date -u -d '24 hours ago' +%Y-%m-%dT%H:%M:%SZ)
lua '"/api/devices?limit=100&offset=" .. (id % 900)' > "$work/devices.lua"
lua "\"/api/devices/\" .. id .. \"/history?from=$hour_ago&to=$now_iso&limit=1000\"" > "$work/raw.lua"
lua "\"/api/devices/\" .. id .. \"/history?resolution=5m&from=$day_ago&to=$now_iso&limit=1000\"" > "$work/rollup.lua"
for name in devices raw rollup; do
    echo "### $name: 16 connections, ~1,000 req/s target, ${secs}s"
    wrk -t2 -c16 -d"${secs}s" --latency -s "$work/$name.lua" "http://127.0.0.1:$port" \
        | grep -E "Requests/sec|Latency  |50%|90%|99%|requests in|Non-2xx|Transfer/sec"
done
