#!/usr/bin/env bash
# Restores a backup made by backup.sh and verifies every table's row count against it.
# Usage: scripts/restore.sh BACKUP.tar.gz [--config FILE] [--database-url URL] [--force]
#                           [--with-config] [--with-pki]
# Stop the collector first; on PostgreSQL the restore is one transaction.
exec python3 "$(dirname "$0")/backup.py" restore "$@"
