#!/usr/bin/env bash
# The Windows agent's MSI, built on Linux and checked: its tables (files, the ServiceInstall
# row, the firewall custom actions, the upgrade code, the config component that is never
# overwritten), then under wine: install, the installed exe's --version and validate, the
# service started and stopped through the service manager (it drains and reports stopped),
# a major upgrade that keeps the edited config, and an uninstall that removes the service and
# the program but keeps the config.
# Needs mingw-w64, msitools, wixl and wine64 (Debian); CI installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/netwarden-target}
fail() { echo "FAIL: $*" >&2; exit 1; }
check() { local what=$1; shift; "$@" >/dev/null 2>&1 || fail "$what"; echo "ok: $what"; }

# The Windows-only code (service, firewall) is linted too; the host clippy never sees it.
rustup target list --installed | grep -qx x86_64-pc-windows-gnu || rustup target add x86_64-pc-windows-gnu
cargo clippy --locked --release -p netwarden-agent --target x86_64-pc-windows-gnu -- -D warnings
scripts/package.sh msi
version=$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "netwarden-agent"))')
version=${version%%[-+]*}
msi=dist/netwarden-agent-$version-x64.msi
upgrade_code="{BC062659-598A-4F5E-988C-E151A8272790}"

echo "==> MSI tables"
tables=$(msiinfo tables "$msi")
for table in File Component ServiceInstall ServiceControl CustomAction Upgrade InstallExecuteSequence; do
    check "table $table" grep -qx "$table" <<<"$tables"
done
check "files: the agent and its config" sh -c "msiinfo export '$msi' File | grep -q 'netwarden-agent.exe' && msiinfo export '$msi' File | grep -q 'agent.toml'"
check "ServiceInstall: NetwardenAgent, auto start, LocalSystem, service --config" \
    sh -c "msiinfo export '$msi' ServiceInstall | grep -P 'NetwardenAgent\tNetwarden Agent\t16\t2\t1.*LocalSystem.*service --config'"
check "firewall custom actions (deferred, elevated)" \
    sh -c "msiinfo export '$msi' CustomAction | grep -P '^FirewallAdd\t3154\tAgentExe\tfirewall add' && msiinfo export '$msi' CustomAction | grep -P '^FirewallRemove\t3154\tAgentExe\tfirewall remove'"
check "firewall rule removed on uninstall only" sh -c "msiinfo export '$msi' InstallExecuteSequence | grep -q 'REMOVE=\"ALL\" AND NOT UPGRADINGPRODUCTCODE'"
check "upgrade code $upgrade_code" sh -c "msiinfo export '$msi' Upgrade | grep -qF '$upgrade_code'"
check "config component: 64-bit + Permanent + NeverOverwrite (400)" \
    sh -c "msiinfo export '$msi' Component | grep -P '^AgentConfig\t' | cut -f4 | grep -qx 400"

echo "==> under wine"
work=$(mktemp -d)
export WINEPREFIX=$work/wine WINEDEBUG=-all
wine=/usr/lib/wine/wine64
cleanup() { /usr/lib/wine/wineserver64 -k >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
$wine wineboot --init >/dev/null 2>&1
# A new prefix keeps updating itself after wineboot returns; an msiexec run meanwhile fails.
/usr/lib/wine/wineserver64 -w
# From here one wine session (persistent): each new session would start the auto-start
# service again.
/usr/lib/wine/wineserver64 -p
# wine 8 lacks ProcessPrng, which Rust's std imports: a test-only stand-in (never shipped).
x86_64-w64-mingw32-gcc -shared -O2 -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
    packaging/wix/test/processprng.c packaging/wix/test/processprng.def
program="$WINEPREFIX/drive_c/Program Files/Netwarden"
data="$WINEPREFIX/drive_c/ProgramData/Netwarden"
sc() { $wine sc "$@" 2>/dev/null; }
state() { sc query NetwardenAgent | tr -d '\r' | awk '/STATE/ {print $4}'; }
wait_state() {
    for _ in $(seq 1 100); do [ "$(state)" = "$1" ] && return 0; sleep 0.2; done
    fail "the service never reached $1 (now $(state)); agent.log: $(tail -5 "$data/agent.log" 2>/dev/null)"
}

$wine msiexec /i "$msi" /qn
check "installed to Program Files" test -f "$program/netwarden-agent.exe"
check "config under ProgramData" test -f "$data/agent.toml"
check "service registered with its command line" sh -c "$wine reg query 'HKLM\\System\\CurrentControlSet\\Services\\NetwardenAgent' /v ImagePath 2>/dev/null | grep -q 'service --config'"
"$wine" "$program/netwarden-agent.exe" --version
if out=$($wine "$program/netwarden-agent.exe" validate --config 'C:\ProgramData\Netwarden\agent.toml' 2>&1); then
    fail "the example config passed validate: $out"
fi
echo "example config: $out"
grep -q "collector.url" <<<"$out" || fail "the error does not name the field: $out"
# Started at install without waiting, it stopped at once on the example config, and says why.
wait_state STOPPED
check "agent.log says why it did not start" grep -q "not started:.*collector.url" "$data/agent.log"

echo "==> configured: start and stop through the service manager"
collector=$CARGO_TARGET_DIR/debug/netwarden-collector
[ -x "$collector" ] || cargo build --locked -p netwarden-collector --bin netwarden-collector
"$collector" pki init --dir "$work/pki" --host collector.noc.test >/dev/null
"$collector" pki issue-agent --dir "$work/pki" --name win-7 >/dev/null
mkdir -p "$data/pki"
cp "$work/pki/ca.pem" "$data/pki/ca.pem"
cp "$work/pki/agents/win-7.pem" "$data/pki/agent.pem"
cp "$work/pki/agents/win-7.key" "$data/pki/agent.key"
sed -i 's|^url = "https://collector.example:50051"|url = "https://collector.noc.test:50051"|' "$data/agent.toml"
check "configured config validates" $wine "$program/netwarden-agent.exe" validate --config 'C:\ProgramData\Netwarden\agent.toml'
sc start NetwardenAgent >/dev/null
wait_state RUNNING
echo "ok: service RUNNING"
sc stop NetwardenAgent >/dev/null
wait_state STOPPED
check "stopped cleanly (exit code 0)" sh -c "$wine sc query NetwardenAgent 2>/dev/null | grep -q 'WIN32_EXIT_CODE *: 0 '"
check "the stop drained the buffer" grep -q "draining the buffer" "$data/agent.log"
check "the agent reported stopped" grep -q "agent stopped" "$data/agent.log"

echo "==> major upgrade keeps the edited config"
next=$(echo "$version" | awk -F. '{printf "%d.%d.%d", $1, $2, $3 + 1}')
MSI_VERSION=$next scripts/package.sh msi >/dev/null
$wine msiexec /i "dist/netwarden-agent-$next-x64.msi" /qn
check "edited config kept by the upgrade" grep -q 'collector.noc.test' "$data/agent.toml"
products=$($wine reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall' /s 2>/dev/null | grep -c "DisplayName.*Netwarden Agent" || true)
check "one Netwarden Agent installed after the upgrade ($products)" test "$products" = 1
check "the upgrade's version is installed" sh -c "$wine reg query 'HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall' /s 2>/dev/null | grep -q 'DisplayVersion.*$next'"

echo "==> uninstall"
$wine msiexec /x "dist/netwarden-agent-$next-x64.msi" /qn
rm -f "dist/netwarden-agent-$next-x64.msi"
check "program removed" test ! -e "$program/netwarden-agent.exe"
check "service removed" sh -c "! $wine reg query 'HKLM\\System\\CurrentControlSet\\Services\\NetwardenAgent' >/dev/null 2>&1"
check "config kept" test -f "$data/agent.toml"
echo "msi: all checks passed"
