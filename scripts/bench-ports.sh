#!/usr/bin/env bash
# TCP port checks (a plan's `kind: tcp`) against blackbox_exporter's tcp prober and nmap's
# connect scan, on the same netlab targets in the same run (root; ../shared/netlab;
# apt-get install prometheus-blackbox-exporter nmap). Prints the figures for docs/benchmarks.md.
#
#   scripts/bench-ports.sh [RUNS]
#
# A /21 routed behind h1 (2,046 addresses) with a listener on 8080 and nothing on 8081:
# 4,092 checks a round, half open, half refused, each tool 256 connections at once.
# netwarden-agent: `ports` (the agent's port loop, one process). blackbox_exporter: one
# /probe?module=tcp request per check, 256 at once from one curl (its CPU is not counted: it
# stands in for Prometheus). Reported: wall time of the round, the prober's CPU, checks right.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
netlab=${NETLAB:-$PWD/../shared/netlab/netlab}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/netwarden-target}
cargo build --release --locked -p netwarden-agent >&2
agent=$CARGO_TARGET_DIR/release/netwarden-agent
lab=nwports$$
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    "$netlab" --name "$lab" -q teardown >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
in_lab() { ip netns exec "$lab-agent" "$@"; }
now() { date +%s.%N; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

"$netlab" --name "$lab" -q up --hosts 1 --replace
"$netlab" --name "$lab" -q route h1 --prefix 10.80.0.0/21
ip -n "$lab-agent" link set lo up
ip netns exec "$lab-h1" python3 -c '
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080))
s.listen(4096)
while True:
    s.accept()[0].close()
' &
pids+=($!)
sleep 1
python3 - "$work/targets" <<'EOF'
import ipaddress, sys
with open(sys.argv[1], "w") as out:
    for ip in ipaddress.ip_network("10.80.0.0/21").hosts():
        for port in (8080, 8081):
            out.write(f"{ip}:{port}\n")
EOF
cut -d: -f1 "$work/targets" | uniq > "$work/hosts"
checks=$(wc -l < "$work/targets")
expected_open=$((checks / 2))

median() { sort -n | sed -n "$(( (runs + 1) / 2 ))p"; }
row() { # name, walls, cpus, right
    printf '| %s | %.3f | %s | %.3f | %s of %s |\n' "$1" \
        "$(printf '%s\n' $2 | median)" "$(printf '%s\n' $2 | sort -n | xargs printf '%.2f ')" \
        "$(printf '%s\n' $3 | median)" "$4" "$checks"
}

echo "### TCP port checks: $checks checks (2,046 routed addresses x 2 ports, half open), $runs runs"
echo
echo "| tool | median wall s | runs (s) | median CPU s (prober) | checks right |"
echo "|---|---|---|---|---|"

walls="" cpus="" right=""
for _ in $(seq "$runs"); do
    t0=$(now)
    /usr/bin/time -f "%U %S" -o "$work/time" \
        ip netns exec "$lab-agent" "$agent" ports 10.80.0.0/21 --ports 8080,8081 --timeout-ms 1000 \
        --json > "$work/nw.json" 2>/dev/null
    t1=$(now)
    walls+=" $(echo "$t1 - $t0" | bc -l)"
    cpus+=" $(awk '{print $1 + $2}' "$work/time")"
    open=$(grep -c '"state": "open"' "$work/nw.json" || true)
    refused=$(grep -c '"state": "refused"' "$work/nw.json" || true)
    right=$((open + refused))
    [ "$open" -eq "$expected_open" ] || echo "warning: netwarden saw $open open of $expected_open" >&2
done
row "netwarden-agent ports (256 at once)" "$walls" "$cpus" "$right"

cat > "$work/blackbox.yml" <<'EOF'
modules:
  tcp:
    prober: tcp
    timeout: 1s
EOF
in_lab prometheus-blackbox-exporter --config.file="$work/blackbox.yml" \
    --web.listen-address=127.0.0.1:9115 --log.level=error > /dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    in_lab curl -sf http://127.0.0.1:9115/metrics > /dev/null 2>&1 && break
    sleep 0.2
done
exporter=$(pgrep -f "prometheus-blackbox-exporter --config.file=$work/blackbox.yml" | head -1)
mkdir -p "$work/bb"
awk -v dir="$work/bb" '{ printf "url = \"http://127.0.0.1:9115/probe?module=tcp&target=%s\"\noutput = \"%s/%d\"\n", $1, dir, NR }' \
    "$work/targets" > "$work/curl.cfg"
walls="" cpus="" right=""
for _ in $(seq "$runs"); do
    rm -f "$work"/bb/*
    c0=$(cpu_ticks "$exporter")
    t0=$(now)
    in_lab curl -s --no-progress-meter -Z --parallel-max 256 --config "$work/curl.cfg" 2>/dev/null
    t1=$(now)
    c1=$(cpu_ticks "$exporter")
    walls+=" $(echo "$t1 - $t0" | bc -l)"
    cpus+=" $(echo "($c1 - $c0) / $hz" | bc -l)"
    open=$(grep -l '^probe_success 1' "$work"/bb/* | wc -l)
    failed=$(grep -l '^probe_success 0' "$work"/bb/* | wc -l)
    right=$((open + failed))
    [ "$open" -eq "$expected_open" ] || echo "warning: blackbox_exporter saw $open open of $expected_open" >&2
done
row "blackbox_exporter tcp prober (256 requests at once)" "$walls" "$cpus" "$right"

if command -v nmap > /dev/null; then
    walls="" cpus="" right=""
    for _ in $(seq "$runs"); do
        t0=$(now)
        /usr/bin/time -f "%U %S" -o "$work/time" \
            ip netns exec "$lab-agent" nmap -sT -n -Pn -p 8080,8081 --min-parallelism 256 \
            --max-parallelism 256 -oG "$work/nmap.txt" -iL "$work/hosts" > /dev/null 2>&1
        t1=$(now)
        walls+=" $(echo "$t1 - $t0" | bc -l)"
        cpus+=" $(awk '{print $1 + $2}' "$work/time")"
        open=$(grep -o '8080/open' "$work/nmap.txt" | wc -l)
        closed=$(grep -o '8081/closed' "$work/nmap.txt" | wc -l)
        right=$((open + closed))
    done
    row "nmap -sT (connect scan, parallelism 256)" "$walls" "$cpus" "$right"
fi
