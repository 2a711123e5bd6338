#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy with warnings as errors, and all tests.
# Needs PostgreSQL (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test) and
# root or CAP_NET_RAW for the ICMP end-to-end tests, and python3 with venv (schemathesis is
# installed from PyPI into ~/.cache on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/netwarden-target}
export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# The SMTP peer (../shared/tools/smtp-sink) runs on `python3` from PATH and needs aiosmtpd,
# which Debian's python3-aiosmtpd gives /usr/bin/python3; a pyenv python3 first in PATH lacks it.
if ! python3 -c 'import aiosmtpd' 2>/dev/null && /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
  export PATH="/usr/bin:$PATH"
fi

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo build --bins (the end-to-end tests run the real binaries)"
cargo build --workspace --bins --locked
echo "==> cargo test"
cargo test --workspace --locked
echo "==> schemathesis against the live collector's /api/openapi.json (SQLite, then PostgreSQL)"
scripts/api-conformance.sh
scripts/api-conformance.sh --postgres
