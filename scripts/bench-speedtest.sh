#!/usr/bin/env bash
# Speed-test accuracy and cost against curl, on the same netlab link in the same run (root;
# ../shared/netlab; python3, curl). Prints the figures for docs/benchmarks.md.
#
#   scripts/bench-speedtest.sh [RUNS] [RATES_MBIT...]
#
# h1 serves files with Python's http.server and takes POSTs with a plain sink; the
# kernel's tbf shapes its link to each rate in turn, both ways. Each run, `netwarden-agent
# speedtest --download-url --upload-url` and curl (-o /dev/null, --data-binary) move the same
# bytes (4 s worth at the rate). Reported per rate: each tool's median Mbit/s, its error
# against the rate set, and its CPU (user + system, the measuring process only).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
shift || true
rates=("${@:-20 100 400}")
read -r -a rates <<< "${rates[*]}"
netlab=${NETLAB:-$PWD/../shared/netlab/netlab}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/netwarden-target}
cargo build --release --locked -p netwarden-agent >&2
agent=$CARGO_TARGET_DIR/release/netwarden-agent
lab=nwspeed$$
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    "$netlab" --name "$lab" -q teardown >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

"$netlab" --name "$lab" -q up --hosts 1 --replace
ip netns exec "$lab-h1" python3 -m http.server 8000 --bind 0.0.0.0 --directory "$work" \
    > /dev/null 2>&1 &
pids+=($!)
ip netns exec "$lab-h1" python3 -c '
import http.server
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        left = int(self.headers["Content-Length"])
        while left > 0:
            chunk = self.rfile.read(min(65536, left))
            if not chunk:
                break
            left -= len(chunk)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8001), Sink).serve_forever()
' &
pids+=($!)
sleep 1
up=http://10.77.0.2:8001/sink

median() { sort -n | sed -n "$(( (runs + 1) / 2 ))p"; }
error_pct() { echo "100 * ($1 - $2) / $2" | bc -l; }

echo "### Speed tests against a tbf-shaped link: median of $runs runs per tool and rate"
echo
echo "| rate set (Mbit/s) | direction | netwarden-agent Mbit/s | error | CPU s | curl Mbit/s | error | CPU s |"
echo "|---|---|---|---|---|---|---|---|"
for rate in "${rates[@]}"; do
    tc -n "$lab-h1" qdisc replace dev eth0 root tbf rate "${rate}mbit" burst 64kb latency 100ms
    tc -n "$lab-br" qdisc replace dev h1 root tbf rate "${rate}mbit" burst 64kb latency 100ms
    bytes=$((rate * 1000000 / 8 * 4))
    # A file of exactly the bytes (http.server ignores ranges), and as much to upload.
    head -c "$bytes" /dev/zero > "$work/blob-$rate.bin"
    head -c "$bytes" /dev/zero > "$work/up.part"
    down=http://10.77.0.2:8000/blob-$rate.bin
    for direction in download upload; do
        ours="" ours_cpu="" theirs="" theirs_cpu=""
        for _ in $(seq "$runs"); do
            if [ "$direction" = download ]; then
                args=(--download-url "$down" --download-bytes "$bytes" --upload-bytes 0)
            else
                args=(--upload-url "$up" --upload-bytes "$bytes" --download-bytes 0)
            fi
            /usr/bin/time -f "%U %S" -o "$work/time" ip netns exec "$lab-agent" \
                "$agent" speedtest "${args[@]}" --json > "$work/nw.json"
            ours+=" $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mbps"])' "$work/nw.json")"
            ours_cpu+=" $(awk '{print $1 + $2}' "$work/time")"
            if [ "$direction" = download ]; then
                /usr/bin/time -f "%U %S" -o "$work/time" ip netns exec "$lab-agent" \
                    curl -s -o /dev/null -w '%{speed_download}' "$down" > "$work/curl.txt"
            else
                /usr/bin/time -f "%U %S" -o "$work/time" ip netns exec "$lab-agent" \
                    curl -s -o /dev/null -H 'Expect:' -H 'Content-Type: application/octet-stream' \
                    --data-binary @"$work/up.part" -w '%{speed_upload}' "$up" > "$work/curl.txt"
            fi
            theirs+=" $(awk '{print $1 * 8 / 1e6}' "$work/curl.txt")"
            theirs_cpu+=" $(awk '{print $1 + $2}' "$work/time")"
        done
        o=$(printf '%s\n' $ours | median)
        t=$(printf '%s\n' $theirs | median)
        printf '| %s | %s | %.2f | %+.1f %% | %.2f | %.2f | %+.1f %% | %.2f |\n' "$rate" "$direction" \
            "$o" "$(error_pct "$o" "$rate")" "$(printf '%s\n' $ours_cpu | median)" \
            "$t" "$(error_pct "$t" "$rate")" "$(printf '%s\n' $theirs_cpu | median)"
    done
done
