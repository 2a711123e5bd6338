#!/usr/bin/env bash
# Builds both .debs, installs them on this machine with dpkg, checks the files, the user, the
# units and the conffiles, runs the installed binaries (a fresh example config must fail
# `validate` with a clear message; a configured one must pass, as the service user), checks
# an edited conffile survives reinstalling, then purges and checks nothing is left.
# Needs root. CI runs it after scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/netwarden-target}

fail() { echo "FAIL: $*" >&2; exit 1; }
check() { local what=$1; shift; "$@" >/dev/null 2>&1 || fail "$what"; echo "ok: $what"; }
[ "$(id -u)" = 0 ] || fail "installing packages needs root"

scripts/package.sh deb
agent_deb=$(ls -t dist/netwarden-agent_*_amd64.deb | head -1)
collector_deb=$(ls -t dist/netwarden-collector_*_amd64.deb | head -1)

# What a crashed earlier run may have left.
dpkg --purge netwarden-agent netwarden-collector >/dev/null 2>&1 || true
rm -rf /etc/netwarden/pki

echo "==> install"
dpkg -i "$agent_deb" "$collector_deb"

unit_dir=$(dirname "$(dpkg -L netwarden-agent | grep 'netwarden-agent.service$')")
for path in /usr/bin/netwarden-agent /usr/bin/netwarden-collector /usr/bin/netwarden \
    /etc/netwarden/agent.toml /etc/netwarden/collector.toml \
    "$unit_dir/netwarden-agent.service" "$unit_dir/netwarden-collector.service" \
    /usr/share/netwarden/templates/anomaly.html /usr/lib/netwarden/backup.sh \
    /usr/lib/netwarden/restore.sh /usr/lib/netwarden/backup.py; do
    check "installed $path" test -e "$path"
done
check "system user netwarden with no login shell" sh -c 'getent passwd netwarden | grep -q ":/usr/sbin/nologin$"'
check "/var/lib/netwarden owned by netwarden" test "$(stat -c %U:%G:%a /var/lib/netwarden)" = netwarden:netwarden:750
check "agent.toml readable by the service group only" test "$(stat -c %U:%G:%a /etc/netwarden/agent.toml)" = root:netwarden:640
check "collector.toml readable by the service group only" test "$(stat -c %U:%G:%a /etc/netwarden/collector.toml)" = root:netwarden:640
for pkg in agent collector; do
    check "conffile /etc/netwarden/$pkg.toml" sh -c "dpkg-query -W -f='\${Conffiles}' netwarden-$pkg | grep -q /etc/netwarden/$pkg.toml"
done
agent_unit="$unit_dir/netwarden-agent.service"
for line in "ExecStartPre=/usr/bin/netwarden-agent validate" "AmbientCapabilities=CAP_NET_RAW" \
    "NoNewPrivileges=yes" "ProtectSystem=strict" "ReadWritePaths=/var/lib/netwarden" "Restart=on-failure"; do
    check "agent unit has $line" grep -q "^$line" "$agent_unit"
done
check "collector unit validates first" grep -q "^ExecStartPre=/usr/bin/netwarden-collector validate" "$unit_dir/netwarden-collector.service"
if command -v systemd-analyze >/dev/null; then
    # Only our units' own problems count; this machine may not run systemd at all.
    out=$(systemd-analyze verify "$agent_unit" "$unit_dir/netwarden-collector.service" 2>&1 || true)
    if echo "$out" | grep -i "netwarden" | grep -iv "not running\|Failed to connect\|No such file or directory.*\/run"; then
        fail "systemd-analyze verify: $out"
    fi
    echo "ok: systemd-analyze verify"
fi

echo "==> run the installed binaries"
/usr/bin/netwarden-agent --version
/usr/bin/netwarden-collector --version
/usr/bin/netwarden --version
check "the operator CLI says its exit codes" sh -c '/usr/bin/netwarden --help | grep -q "Exit codes"'
if out=$(/usr/bin/netwarden-agent validate --config /etc/netwarden/agent.toml 2>&1); then
    fail "the example agent config passed validate: $out"
fi
echo "example agent config: $out"
echo "$out" | grep -q "agent.toml" || fail "the error does not name the file: $out"
if out=$(/usr/bin/netwarden-collector validate --config /etc/netwarden/collector.toml 2>&1); then
    fail "the example collector config passed validate before a PKI exists: $out"
fi
echo "example collector config: $out"
echo "$out" | grep -q "pki" || fail "the error does not name the certificate: $out"

# Configured as docs/operations.md says: a PKI readable by the service group, the address set.
/usr/bin/netwarden-collector pki init --dir /etc/netwarden/pki --host collector.example >/dev/null
/usr/bin/netwarden-collector pki issue-agent --dir /etc/netwarden/pki --name branch-7 >/dev/null
cp /etc/netwarden/pki/agents/branch-7.pem /etc/netwarden/pki/agent.pem
cp /etc/netwarden/pki/agents/branch-7.key /etc/netwarden/pki/agent.key
chgrp -R netwarden /etc/netwarden/pki
chmod -R g+rX /etc/netwarden/pki
check "configured collector validates as the service user" runuser -u netwarden -- /usr/bin/netwarden-collector validate --config /etc/netwarden/collector.toml
sed -i 's|^url = "https://collector.example:50051"|url = "https://127.0.0.1:50051"\nserver_name = "collector.example"|' /etc/netwarden/agent.toml
check "configured agent validates as the service user" runuser -u netwarden -- /usr/bin/netwarden-agent validate --config /etc/netwarden/agent.toml

echo "==> reinstall keeps the edited conffile"
dpkg -i "$agent_deb" >/dev/null
check "edited agent.toml kept" grep -q '^url = "https://127.0.0.1:50051"' /etc/netwarden/agent.toml

echo "==> remove keeps conffiles, purge removes everything"
dpkg -r netwarden-agent >/dev/null
check "conffile kept after remove" test -e /etc/netwarden/agent.toml
check "binary gone after remove" test ! -e /usr/bin/netwarden-agent
rm -rf /etc/netwarden/pki   # the operator's PKI is theirs to remove
dpkg --purge netwarden-agent netwarden-collector >/dev/null
for path in /etc/netwarden /var/lib/netwarden /usr/bin/netwarden-agent /usr/bin/netwarden-collector \
    /usr/bin/netwarden "$agent_unit" /usr/share/netwarden /usr/lib/netwarden; do
    check "gone after purge: $path" test ! -e "$path"
done
check "user gone after purge" sh -c '! getent passwd netwarden'
check "group gone after purge" sh -c '! getent group netwarden'

if command -v lintian >/dev/null; then
    echo "==> lintian (reviewed in docs/operations.md, not gating)"
    lintian --no-tag-display-limit "$agent_deb" "$collector_deb" || true
fi
echo "packages: all checks passed"
