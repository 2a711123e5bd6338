#!/usr/bin/env bash
# Builds the release artifacts into dist/, versioned from the workspace:
#   dist/netwarden-agent_<version>-1_amd64.deb, dist/netwarden-collector_<version>-1_amd64.deb
# Usage: scripts/package.sh [deb]   (no argument: everything this machine can build)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/netwarden-target}
what=${1:-all}

version=$(cargo metadata --no-deps --format-version 1 --locked |
    python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "netwarden-agent"))')
mkdir -p dist

if ! command -v cargo-deb >/dev/null; then
    echo "==> installing cargo-deb (once)"
    cargo install cargo-deb --locked --quiet
fi

echo "==> .deb packages, version $version"
for crate in netwarden-agent netwarden-collector; do
    cargo deb --locked -p "$crate" --output dist/ >/dev/null
done
ls -l dist/netwarden-agent_"$version"-*.deb dist/netwarden-collector_"$version"-*.deb

if [ "$what" = deb ]; then
    exit 0
fi
echo "(the Windows .msi is not built yet)"
