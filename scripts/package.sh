#!/usr/bin/env bash
# Builds the release artifacts into dist/, versioned from the workspace:
#   dist/netwarden-agent_<version>-1_amd64.deb, dist/netwarden-collector_<version>-1_amd64.deb,
#   dist/netwarden-agent-<version>-x64.msi (the Windows agent, cross-built with mingw-w64 and
#   packed with Debian's wixl)
# Usage: scripts/package.sh [deb|msi]   (no argument: all three)
#   MSI_VERSION=X.Y.Z overrides the MSI's version (the upgrade test builds a next one).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/netwarden-target}
what=${1:-all}

version=$(cargo metadata --no-deps --format-version 1 --locked |
    python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "netwarden-agent"))')
mkdir -p dist

build_debs() {
    if ! command -v cargo-deb >/dev/null; then
        echo "==> installing cargo-deb (once)"
        cargo install cargo-deb --locked --quiet
    fi
    echo "==> .deb packages, version $version"
    # The operator CLI (its own crate) ships in the collector's package.
    cargo build --locked --release -p netwarden-cli
    for crate in netwarden-agent netwarden-collector; do
        cargo deb --locked --strip -p "$crate" --output dist/ >/dev/null
    done
    ls -l dist/netwarden-agent_"$version"-*.deb dist/netwarden-collector_"$version"-*.deb
}

build_msi() {
    local target=x86_64-pc-windows-gnu
    # MSI versions are numbers only: 0.1.0-rc1 would be accepted and then refused by Windows.
    local msi_version=${MSI_VERSION:-${version%%[-+]*}}
    echo "==> Windows agent .msi, version $msi_version"
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
    cargo build --locked --release -p netwarden-agent --target "$target"
    local msi=$PWD/dist/netwarden-agent-$msi_version-x64.msi
    # wixl takes sources relative to where it runs: stage the stripped exe and the config.
    local stage
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' RETURN
    x86_64-w64-mingw32-strip -o "$stage/netwarden-agent.exe" \
        "$CARGO_TARGET_DIR/$target/release/netwarden-agent.exe"
    cp packaging/wix/agent.toml "$stage/"
    rm -f "$msi"
    if ! (cd "$stage" && wixl -a x64 -D Version="$msi_version" -D ExePath=netwarden-agent.exe \
        -D ConfigPath=agent.toml -o "$msi" "$OLDPWD/packaging/wix/agent.wxs" >"$stage/wixl.log" 2>&1); then
        cat "$stage/wixl.log" >&2
        exit 1
    fi
    # Its warnings, less the two the msibuild step below answers.
    grep -v "no property named 'NeverOverwrite'\|no property named 'Permanent'\|^$" "$stage/wixl.log" || true
    # wixl drops NeverOverwrite and Permanent: set the config component's attributes to
    # 64-bit (256) + Permanent (16) + NeverOverwrite (128).
    msibuild "$msi" -q "UPDATE \`Component\` SET \`Attributes\` = 400 WHERE \`Component\` = 'AgentConfig'"
    ls -l "$msi"
}

case "$what" in
    deb) build_debs ;;
    msi) build_msi ;;
    all) build_debs; build_msi ;;
    *) echo "usage: scripts/package.sh [deb|msi]" >&2; exit 2 ;;
esac
