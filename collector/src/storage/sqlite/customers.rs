//! [`CustomerStore`] on SQLite.

use super::{from_ms, ms, SqliteStore};
use crate::storage::customers::{Account, CustomerStore, Employee, NotificationRecord};
use crate::storage::sql;
use crate::storage::{failed, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

fn account_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get(0)?,
        name: r.get(1)?,
        contact_name: r.get(2)?,
        contact_email: r.get(3)?,
        account_manager: r.get(4)?,
        cx_manager: r.get(5)?,
    })
}

fn employee_row(r: &Row<'_>) -> rusqlite::Result<Employee> {
    Ok(Employee {
        id: r.get(0)?,
        name: r.get(1)?,
        email: r.get(2)?,
        phone: r.get(3)?,
    })
}

#[async_trait]
impl CustomerStore for SqliteStore {
    async fn save_employee(&self, e: &Employee, now: DateTime<Utc>) -> Result<()> {
        let e = e.clone();
        self.write(move |w| {
            w.conn
                .execute(
                    sql::customers::SAVE_EMPLOYEE.sqlite,
                    params![e.id, e.name, e.email, e.phone, ms(now)],
                )
                .map_err(failed("saving an employee"))?;
            Ok(())
        })
        .await
    }

    async fn employee(&self, id: &str) -> Result<Option<Employee>> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.query_row(sql::customers::EMPLOYEE.sqlite, [id], employee_row)
                .optional()
                .map_err(failed("reading an employee"))
        })
        .await
    }

    async fn employees(&self) -> Result<Vec<Employee>> {
        self.read(|conn| {
            conn.prepare_cached(sql::customers::EMPLOYEES.sqlite)
                .and_then(|mut s| {
                    s.query_map([], employee_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(failed("listing employees"))
        })
        .await
    }

    async fn save_account(&self, a: &Account, now: DateTime<Utc>) -> Result<()> {
        let a = a.clone();
        self.write(move |w| {
            w.conn
                .execute(
                    sql::customers::SAVE_ACCOUNT.sqlite,
                    params![
                        a.id,
                        a.name,
                        a.contact_name,
                        a.contact_email,
                        a.account_manager,
                        a.cx_manager,
                        ms(now)
                    ],
                )
                .map_err(failed("saving an account"))?;
            Ok(())
        })
        .await
    }

    async fn account(&self, id: &str) -> Result<Option<Account>> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.query_row(sql::customers::ACCOUNT.sqlite, [id], account_row)
                .optional()
                .map_err(failed("reading an account"))
        })
        .await
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        self.read(|conn| {
            conn.prepare_cached(sql::customers::ACCOUNTS.sqlite)
                .and_then(|mut s| {
                    s.query_map([], account_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(failed("listing accounts"))
        })
        .await
    }

    async fn save_notification(&self, n: &NotificationRecord) -> Result<()> {
        let n = n.clone();
        self.write(move |w| {
            w.conn
                .execute(
                    sql::customers::SAVE_NOTIFICATION.sqlite,
                    params![
                        n.event_kind,
                        n.event_id,
                        n.channel,
                        n.recipients,
                        n.subject,
                        n.status,
                        n.error,
                        n.attempts,
                        ms(n.created_at)
                    ],
                )
                .map_err(failed("recording a notification"))?;
            Ok(())
        })
        .await
    }

    async fn notifications(
        &self,
        kind: &str,
        event_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<NotificationRecord>> {
        let kind = kind.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT event_kind, event_id, channel, recipients, subject, status, error, attempts,
                     created_at FROM (
                     SELECT * FROM notifications
                     WHERE event_kind = ?1 AND (?2 IS NULL OR event_id = ?2)
                     ORDER BY id DESC LIMIT ?3)
                 ORDER BY id",
            )
            .and_then(|mut s| {
                s.query_map(params![kind, event_id, limit], |r| {
                    Ok(NotificationRecord {
                        event_kind: r.get(0)?,
                        event_id: r.get(1)?,
                        channel: r.get(2)?,
                        recipients: r.get(3)?,
                        subject: r.get(4)?,
                        status: r.get(5)?,
                        error: r.get(6)?,
                        attempts: r.get(7)?,
                        created_at: from_ms(r.get(8)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(failed("listing notifications"))
        })
        .await
    }
}
