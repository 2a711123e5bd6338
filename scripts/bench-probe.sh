#!/usr/bin/env bash
# Agent probing benchmarks against fping and nmap, on the same netlab lab in the same run
# (root; ../shared/netlab; apt-get install fping nmap). Prints the figures for docs/benchmarks.md.
#
#   scripts/bench-probe.sh [discovery|routed|all] [RUNS]
#
# discovery: a /24 of 250 hosts (h3 ICMP-silent, h5 down): time and hosts found.
# routed:    10,000 routed targets x 20 pings at 10,000 probes/s: losses, CPU per probe, RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
runs=${2:-5}
netlab=${NETLAB:-$PWD/../shared/netlab/netlab}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/netwarden-target}
target_dir=$CARGO_TARGET_DIR
cargo build --release --locked -p netwarden-agent >&2
agent=$target_dir/release/netwarden-agent
lab=nwbench$$
trap '"$netlab" --name "$lab" -q teardown >/dev/null 2>&1 || true' EXIT
in_lab() { ip netns exec "$lab-agent" "$@"; }
now() { date +%s.%N; }

discovery() {
    "$netlab" --name "$lab" -q up --hosts 250 --no-icmp h3 --down h5 --replace
    local agent_ip=10.77.0.1
    echo "### /24 discovery: 250 hosts, h3 ICMP-silent, h5 down (249 linked), $runs runs"
    echo
    echo "| tool | median s | runs (s) | linked hosts found (of 249) | missed |"
    echo "|---|---|---|---|---|"
    run_tool() { # name, command producing one IP per line on stdout
        local name=$1; shift
        local times=() found=""
        for _ in $(seq "$runs"); do
            in_lab ip neigh flush all >/dev/null 2>&1 || true
            local t0 t1 out
            t0=$(now); out=$(in_lab "$@" 2>/dev/null || true); t1=$(now)
            times+=("$(echo "$t1 - $t0" | bc -l)")
            found=$(echo "$out" | grep -v "^$agent_ip\$" | grep -c . || true)
        done
        local sorted median
        sorted=$(printf '%s\n' "${times[@]}" | sort -n)
        median=$(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p")
        printf '| %s | %.3f | %s | %s | %s |\n' "$name" "$median" \
            "$(echo "$sorted" | xargs printf '%.3f ' )" "$found" "$((249 - found))"
    }
    run_tool "netwarden-agent discover --rate 10000" sh -c \
        "$agent discover 10.77.0.0/24 --rate 10000 --no-dns --ports '' | awk 'NR>1{print \$1}'"
    run_tool "nmap -sn -PE --send-ip (ICMP)" sh -c \
        "nmap -sn -PE --send-ip -n -oG - 10.77.0.0/24 | awk '/Status: Up/{print \$2}'"
    run_tool "nmap -sn (ARP)" sh -c \
        "nmap -sn -n -oG - 10.77.0.0/24 | awk '/Status: Up/{print \$2}'"
    run_tool "fping -g -r 1 -t 100 -i 1" sh -c \
        "fping -a -q -g 10.77.0.0/24 -r 1 -t 100 -i 1"
    echo
    "$netlab" --name "$lab" -q teardown
}

routed() {
    "$netlab" --name "$lab" -q up --hosts 1 --replace
    "$netlab" --name "$lab" -q route h1 --prefix 10.99.0.0/18
    local targets
    targets=$(python3 -c 'import ipaddress; n=ipaddress.ip_network("10.99.0.0/18"); print(" ".join(str(h) for h in list(n.hosts())[:10000]))')
    echo "### 10,000 routed targets x 20 pings (200,000 probes), 1 s between a target's pings"
    echo
    echo "| tool | probes/s asked | wall s | sent | lost | CPU s (user+sys) | CPU µs/probe | max RSS MiB |"
    echo "|---|---|---|---|---|---|---|---|"
    measure() { # label, rate, command...
        local label=$1 rate=$2; shift 2
        local stats out
        out=$(mktemp)
        # /usr/bin/time: elapsed, user, sys, max RSS KiB
        in_lab /usr/bin/time -f '%e %U %S %M' -o "$out.time" "$@" >"$out" 2>"$out.err" || true
        read -r wall user sys rss <"$out.time"
        echo "$out"
        echo "$wall $user $sys $rss" >"$out.stats"
    }
    for rate in 10000; do
        local out
        # --quiet: only the summary line, so RSS is the engine's and not a 10,000-row JSON's.
        out=$(measure agent "$rate" "$agent" probe $targets --count 20 --interval-ms 1000 --timeout-ms 1000 --rate "$rate" --quiet)
        read -r wall user sys rss <"$out.stats"
        python3 - "$out.err" "$wall" "$user" "$sys" "$rss" "$rate" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"(\d+) hosts, (\d+) pings, (\d+) replies, (\d+) lost", text)
if not m:
    sys.exit("no summary from the agent: " + text[-2000:])
hosts, sent, replies, lost = map(int, m.groups())
wall, user, sys_, rss, rate = map(float, sys.argv[2:7])
cpu = user + sys_
print(f"| netwarden-agent probe --rate {int(rate)} | {int(rate)} | {wall:.1f} | {sent} | {lost} | {cpu:.2f} | {cpu / max(sent, 1) * 1e6:.1f} | {rss / 1024:.1f} |")
PY
    done
    for rate in 4500 10000; do
        local interval out
        interval=$(python3 -c "print(round(1000 / $rate, 3))")
        out=$(measure fping "$rate" fping -C 20 -p 1000 -t 1000 -i "$interval" -q $targets)
        read -r wall user sys rss <"$out.stats"
        python3 - "$out.err" "$wall" "$user" "$sys" "$rss" "$rate" <<'PY'
import sys
lines = [l for l in open(sys.argv[1]) if " : " in l]
wall, user, sys_, rss, rate = map(float, sys.argv[2:7])
sent = sum(len(l.split(" : ")[1].split()) for l in lines)
lost = sum(l.split(" : ")[1].split().count("-") for l in lines)
cpu = user + sys_
note = "" if len(lines) == 10000 else f" (fping reported {len(lines)} of 10000 targets)"
print(f"| fping -C 20 -p 1000 -i {1000/rate:.3f}{note} | {int(rate)} | {wall:.1f} | {sent} | {lost} | {cpu:.2f} | {cpu / max(sent, 1) * 1e6:.1f} | {rss / 1024:.1f} |")
PY
    done
    echo
    "$netlab" --name "$lab" -q teardown
}

case $what in
    discovery) discovery ;;
    routed) routed ;;
    all) discovery; routed ;;
    *) echo "usage: $0 [discovery|routed|all] [RUNS]" >&2; exit 2 ;;
esac
