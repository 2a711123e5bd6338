#!/usr/bin/env bash
# Consistent online backup of the collector: database (SQLite backup API or pg_dump -Fc in a
# snapshot), config and PKI, with row counts, into one tar.gz; keeps the newest N.
# Usage: scripts/backup.sh [--config /etc/netwarden/collector.toml] [--dest /var/backups/netwarden] [--keep 7]
# Nightly: a cron line or systemd timer running this as root (it reads the PKI's keys).
exec python3 "$(dirname "$0")/backup.py" backup "$@"
