#!/bin/sh
# Runs once, on the first start of the postgres volume.
set -e
psql -v ON_ERROR_STOP=1 -v grafana_password="$GRAFANA_DB_PASSWORD" \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f /docker-entrypoint-initdb.d/grafana-reader.sql.in
