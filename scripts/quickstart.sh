#!/usr/bin/env bash
# Runs Netwarden locally: builds, makes a dev PKI, starts the collector on embedded SQLite and
# an agent probing loopback addresses, and stops both cleanly on Ctrl-C.
# Everything lives under .quickstart/ in the checkout; delete it to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/netwarden-target}
work=$root/.quickstart
grpc_port=${NETWARDEN_GRPC_PORT:-50051}
http_port=${NETWARDEN_HTTP_PORT:-8080}
query_port=${NETWARDEN_QUERY_PORT:-50052}

if ! command -v cargo >/dev/null; then
  echo "quickstart: cargo is not installed; install Rust from https://rustup.rs first" >&2
  exit 1
fi
echo "==> building (first build takes a few minutes)"
cargo build --release --bins
bin=$CARGO_TARGET_DIR/release
collector=$bin/netwarden-collector
agent=$bin/netwarden-agent

mkdir -p "$work"
if [ ! -f "$work/pki/ca.pem" ]; then
  echo "==> creating a dev PKI in $work/pki"
  "$collector" pki init --dir "$work/pki" --host localhost --host 127.0.0.1
  "$collector" pki issue-agent --dir "$work/pki" --name quickstart-agent
fi

cat > "$work/collector.toml" <<CONF
[grpc]
listen = "127.0.0.1:$grpc_port"
query_listen = "127.0.0.1:$query_port"
[http]
listen = "127.0.0.1:$http_port"
[tls]
ca = "pki/ca.pem"
cert = "pki/server.pem"
key = "pki/server.key"
[database]
url = "sqlite://collector.db"
CONF

cat > "$work/agent.toml" <<CONF
[collector]
url = "https://127.0.0.1:$grpc_port"
[tls]
ca = "pki/ca.pem"
cert = "pki/agents/quickstart-agent.pem"
key = "pki/agents/quickstart-agent.key"
[buffer]
path = "agent-buffer.db"
[probe]
targets = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "::1"]
count = 5
interval_secs = 10
ping_interval_ms = 200
timeout_ms = 1000
[discovery]
interval_secs = 60
ports = ["ssh", "http-alt"]
[[discovery.sites]]
name = "loopback"
cidrs = ["127.0.0.0/29"]
[speedtest]
url = "http://127.0.0.1:$http_port"
interval_secs = 300
download_bytes = 10000000
upload_bytes = 5000000
token_file = "speedtest.token"
CONF

"$collector" validate --config "$work/collector.toml"

# The API needs a token; an admin one is made once and kept (mode 0600) beside the PKI. The
# agent has a viewer token of its own for the collector's /speedtest endpoints.
if [ ! -s "$work/admin.token" ]; then
  (umask 077; "$collector" token create --role admin --name quickstart-admin \
     --config "$work/collector.toml" > "$work/admin.token")
fi
if [ ! -s "$work/speedtest.token" ]; then
  (umask 077; "$collector" token create --role viewer --name quickstart-agent-speedtest \
     --config "$work/collector.toml" > "$work/speedtest.token")
fi
"$agent" validate --config "$work/agent.toml"
token=$(cat "$work/admin.token")

collector_pid=""
agent_pid=""
stop() {
  trap - INT TERM EXIT
  echo
  echo "==> stopping"
  # The agent first, so it can drain its buffer into a collector that is still running; then
  # the collector, which commits what it has received.
  for pid in "$agent_pid" "$collector_pid"; do
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  echo "==> stopped; data kept in $work"
}
trap stop INT TERM EXIT

"$collector" serve --config "$work/collector.toml" 2> >(sed 's/^/[collector] /' >&2) &
collector_pid=$!
# Wait for health, but give up the moment the collector exits (a port in use, a bad file):
# its error is already on stderr above, and "running" must not be printed.
healthy=""
for _ in $(seq 1 300); do
  if curl -fs "http://127.0.0.1:$http_port/health" >/dev/null 2>&1; then healthy=1; break; fi
  kill -0 "$collector_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$healthy" ]; then
  status=0
  if kill -0 "$collector_pid" 2>/dev/null; then
    echo "quickstart: the collector did not answer http://127.0.0.1:$http_port/health within 30 s" >&2
  else
    wait "$collector_pid" || status=$?
    echo "quickstart: the collector could not start (exit status $status); its error is above" >&2
  fi
  exit 1
fi
"$agent" run --config "$work/agent.toml" 2> >(sed 's/^/[agent] /' >&2) &
agent_pid=$!

cat <<MSG

Netwarden is running. The admin API token is in $work/admin.token.
  dashboard: http://127.0.0.1:$http_port/#token=$token
  gRPC:     grpcurl -cacert $work/pki/ca.pem -H "authorization: Bearer \$(cat $work/admin.token)" 127.0.0.1:$query_port list
  devices:  curl -s -H "Authorization: Bearer \$(cat $work/admin.token)" http://127.0.0.1:$http_port/api/devices
  agents:   curl -s -H "Authorization: Bearer \$(cat $work/admin.token)" http://127.0.0.1:$http_port/api/agents
  results:  curl -s -H "Authorization: Bearer \$(cat $work/admin.token)" http://127.0.0.1:$http_port/api/devices/1/history
  metrics:  http://127.0.0.1:$http_port/metrics (open, for Prometheus)
The agent probes 127.0.0.1-3 and ::1 every 10 s, sweeps 127.0.0.0/29 every minute and runs a
speed test against the collector every 5 minutes. Press Ctrl-C to stop both.

MSG
wait
