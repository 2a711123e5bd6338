//! [`CustomerStore`] on PostgreSQL.

use super::PostgresStore;
use crate::storage::customers::{Account, CustomerStore, Employee, NotificationRecord};
use crate::storage::sql;
use crate::storage::{failed, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

fn account_row(r: &PgRow) -> sqlx::Result<Account> {
    Ok(Account {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        contact_name: r.try_get("contact_name")?,
        contact_email: r.try_get("contact_email")?,
        account_manager: r.try_get("account_manager")?,
        cx_manager: r.try_get("cx_manager")?,
    })
}

fn employee_row(r: &PgRow) -> sqlx::Result<Employee> {
    Ok(Employee {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        email: r.try_get("email")?,
        phone: r.try_get("phone")?,
    })
}

#[async_trait]
impl CustomerStore for PostgresStore {
    async fn save_employee(&self, e: &Employee, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(sql::customers::SAVE_EMPLOYEE.postgres)
            .bind(&e.id)
            .bind(&e.name)
            .bind(&e.email)
            .bind(&e.phone)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(failed("saving an employee"))?;
        Ok(())
    }

    async fn employee(&self, id: &str) -> Result<Option<Employee>> {
        let row = sqlx::query(sql::customers::EMPLOYEE.postgres)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("reading an employee"))?;
        row.as_ref()
            .map(employee_row)
            .transpose()
            .map_err(failed("reading an employee"))
    }

    async fn employees(&self) -> Result<Vec<Employee>> {
        let rows = sqlx::query(sql::customers::EMPLOYEES.postgres)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing employees"))?;
        rows.iter()
            .map(employee_row)
            .collect::<sqlx::Result<_>>()
            .map_err(failed("listing employees"))
    }

    async fn save_account(&self, a: &Account, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(sql::customers::SAVE_ACCOUNT.postgres)
            .bind(&a.id)
            .bind(&a.name)
            .bind(&a.contact_name)
            .bind(&a.contact_email)
            .bind(&a.account_manager)
            .bind(&a.cx_manager)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(failed("saving an account"))?;
        Ok(())
    }

    async fn account(&self, id: &str) -> Result<Option<Account>> {
        sqlx::query(sql::customers::ACCOUNT.postgres)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("reading an account"))?
            .map(|r| account_row(&r))
            .transpose()
            .map_err(failed("reading an account"))
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        let rows = sqlx::query(sql::customers::ACCOUNTS.postgres)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing accounts"))?;
        rows.iter()
            .map(account_row)
            .collect::<sqlx::Result<_>>()
            .map_err(failed("listing accounts"))
    }

    async fn save_notification(&self, n: &NotificationRecord) -> Result<()> {
        sqlx::query(sql::customers::SAVE_NOTIFICATION.postgres)
            .bind(&n.event_kind)
            .bind(n.event_id)
            .bind(&n.channel)
            .bind(&n.recipients)
            .bind(&n.subject)
            .bind(&n.status)
            .bind(&n.error)
            .bind(n.attempts)
            .bind(n.created_at)
            .execute(&self.pool)
            .await
            .map_err(failed("recording a notification"))?;
        Ok(())
    }

    async fn notifications(
        &self,
        kind: &str,
        event_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<NotificationRecord>> {
        let rows = sqlx::query(
            "SELECT event_kind, event_id, channel, recipients, subject, status, error, attempts,
                 created_at FROM (
                 SELECT * FROM notifications
                 WHERE event_kind = $1 AND ($2::int8 IS NULL OR event_id = $2)
                 ORDER BY id DESC LIMIT $3) latest
             ORDER BY id",
        )
        .bind(kind)
        .bind(event_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("listing notifications"))?;
        rows.iter()
            .map(|r| {
                Ok(NotificationRecord {
                    event_kind: r.try_get("event_kind")?,
                    event_id: r.try_get("event_id")?,
                    channel: r.try_get("channel")?,
                    recipients: r.try_get("recipients")?,
                    subject: r.try_get("subject")?,
                    status: r.try_get("status")?,
                    error: r.try_get("error")?,
                    attempts: r.try_get("attempts")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(failed("listing notifications"))
    }
}
