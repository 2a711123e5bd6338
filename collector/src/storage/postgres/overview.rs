//! [`OverviewStore`] on PostgreSQL.

use super::PostgresStore;
use crate::storage::overview::{
    parse_ports, AnomalyCount, OverviewStore, PortStatus, StatusCount, Uptime,
};
use crate::storage::sql;
use crate::storage::{failed, status_name, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

#[async_trait]
impl OverviewStore for PostgresStore {
    async fn status_counts(&self) -> Result<Vec<StatusCount>> {
        let rows = sqlx::query(
            "SELECT agent_id, status::BIGINT AS status, COUNT(*) AS n FROM devices
             GROUP BY agent_id, status ORDER BY agent_id, status",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(failed("counting devices"))?;
        rows.iter()
            .map(|r| -> sqlx::Result<StatusCount> {
                Ok(StatusCount {
                    agent_id: r.try_get("agent_id")?,
                    status: r.try_get::<Option<i64>, _>("status")?.and_then(status_name),
                    count: r.try_get("n")?,
                })
            })
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(failed("counting devices"))
    }

    async fn unresolved_anomaly_counts(&self) -> Result<Vec<AnomalyCount>> {
        let rows = sqlx::query(
            "SELECT group_key, severity, state, COUNT(*) AS n FROM anomalies
             WHERE state <> 'resolved' GROUP BY group_key, severity, state",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(failed("counting anomalies"))?;
        rows.iter()
            .map(|r| -> sqlx::Result<AnomalyCount> {
                Ok(AnomalyCount {
                    group_key: r.try_get("group_key")?,
                    severity: r.try_get("severity")?,
                    state: r.try_get("state")?,
                    count: r.try_get("n")?,
                })
            })
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(failed("counting anomalies"))
    }

    async fn unacknowledged_alerts(&self) -> Result<i64> {
        sqlx::query_scalar(sql::overview::UNACKNOWLEDGED_ALERTS.postgres)
            .fetch_one(&self.pool)
            .await
            .map_err(failed("counting alerts"))
    }

    async fn device_uptime(&self, id: i64, since: DateTime<Utc>) -> Result<Uptime> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS rounds, COALESCE(SUM(sent), 0)::BIGINT AS sent, COALESCE(SUM(received), 0)::BIGINT AS received
             FROM probe_results WHERE device_id = $1 AND ts >= $2",
        )
        .bind(id)
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(failed("reading uptime"))?;
        Ok(Uptime {
            rounds: row.try_get("rounds").map_err(failed("reading uptime"))?,
            sent: row.try_get("sent").map_err(failed("reading uptime"))?,
            received: row.try_get("received").map_err(failed("reading uptime"))?,
        })
    }

    async fn device_ports(&self, id: i64) -> Result<Option<Vec<u16>>> {
        let ports: Option<String> = sqlx::query_scalar(sql::overview::DEVICE_PORTS.postgres)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("reading ports"))?;
        Ok(ports.map(|p| parse_ports(&p)))
    }

    async fn device_port_checks(&self, id: i64, since: DateTime<Utc>) -> Result<Vec<PortStatus>> {
        let rows = sqlx::query(sql::overview::DEVICE_PORT_CHECKS.postgres)
            .bind(id)
            .bind(since)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("reading port checks"))?;
        rows.iter()
            .map(|r| {
                Ok(PortStatus {
                    port: u16::try_from(r.try_get::<i32, _>(0)?).unwrap_or_default(),
                    state: r.try_get(1)?,
                    checked_at: r.try_get(2)?,
                    connect_ms: r.try_get(3)?,
                    state_since: r.try_get(4)?,
                    checks_24h: r.try_get(5)?,
                    open_24h: r.try_get(6)?,
                })
            })
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
            .map_err(failed("reading port checks"))
    }
}
