//! [`OverviewStore`] on SQLite.

use super::{from_ms, ms, SqliteStore};
use crate::storage::overview::{
    parse_ports, AnomalyCount, OverviewStore, PortStatus, StatusCount, Uptime,
};
use crate::storage::sql;
use crate::storage::{failed, status_name, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

#[async_trait]
impl OverviewStore for SqliteStore {
    async fn status_counts(&self) -> Result<Vec<StatusCount>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT agent_id, status, COUNT(*) FROM devices GROUP BY agent_id, status
                     ORDER BY agent_id, status",
                )
                .map_err(failed("counting devices"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(StatusCount {
                        agent_id: r.get(0)?,
                        status: r.get::<_, Option<i64>>(1)?.and_then(status_name),
                        count: r.get(2)?,
                    })
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(failed("counting devices"))?;
            Ok(rows)
        })
        .await
    }

    async fn unresolved_anomaly_counts(&self) -> Result<Vec<AnomalyCount>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT group_key, severity, state, COUNT(*) FROM anomalies
                     WHERE state <> 'resolved' GROUP BY group_key, severity, state",
                )
                .map_err(failed("counting anomalies"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(AnomalyCount {
                        group_key: r.get(0)?,
                        severity: r.get(1)?,
                        state: r.get(2)?,
                        count: r.get(3)?,
                    })
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(failed("counting anomalies"))?;
            Ok(rows)
        })
        .await
    }

    async fn unacknowledged_alerts(&self) -> Result<i64> {
        self.read(|conn| {
            conn.query_row(sql::overview::UNACKNOWLEDGED_ALERTS.sqlite, [], |r| {
                r.get(0)
            })
            .map_err(failed("counting alerts"))
        })
        .await
    }

    async fn device_uptime(&self, id: i64, since: DateTime<Utc>) -> Result<Uptime> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(sent), 0), COALESCE(SUM(received), 0)
                 FROM probe_results
                 WHERE device_id = ?1 AND ts >= ?2",
                params![id, ms(since)],
                |r| {
                    Ok(Uptime {
                        rounds: r.get(0)?,
                        sent: r.get(1)?,
                        received: r.get(2)?,
                    })
                },
            )
            .map_err(failed("reading uptime"))
        })
        .await
    }

    async fn device_ports(&self, id: i64) -> Result<Option<Vec<u16>>> {
        self.read(move |conn| {
            conn.query_row(sql::overview::DEVICE_PORTS.sqlite, [id], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map(|ports| ports.map(|p| parse_ports(&p)))
            .map_err(failed("reading ports"))
        })
        .await
    }

    async fn device_port_checks(&self, id: i64, since: DateTime<Utc>) -> Result<Vec<PortStatus>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(sql::overview::DEVICE_PORT_CHECKS.sqlite)
                .map_err(failed("reading port checks"))?;
            let rows = stmt
                .query_map(params![id, ms(since)], |r| {
                    Ok(PortStatus {
                        port: r.get(0)?,
                        state: r.get(1)?,
                        checked_at: from_ms(r.get(2)?),
                        connect_ms: r.get(3)?,
                        state_since: from_ms(r.get(4)?),
                        checks_24h: r.get(5)?,
                        open_24h: r.get(6)?,
                    })
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(failed("reading port checks"))?;
            Ok(rows)
        })
        .await
    }
}
