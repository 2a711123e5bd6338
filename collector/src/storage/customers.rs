//! Accounts, their contacts and managers, and the notification record, behind
//! [`CustomerStore`] (both backends).

use super::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Employee {
    pub id: String,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    /// Employee ids.
    pub account_manager: Option<String>,
    pub cx_manager: Option<String>,
}

/// One notification sent (or tried).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NotificationRecord {
    pub event_kind: String,
    pub event_id: i64,
    pub channel: String,
    pub recipients: String,
    pub subject: String,
    /// `sent`, `failed` or `no_contact`.
    pub status: String,
    pub error: Option<String>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait CustomerStore: Send + Sync {
    async fn save_employee(&self, employee: &Employee, now: DateTime<Utc>) -> Result<()>;
    async fn employee(&self, id: &str) -> Result<Option<Employee>>;
    async fn employees(&self) -> Result<Vec<Employee>>;
    async fn save_account(&self, account: &Account, now: DateTime<Utc>) -> Result<()>;
    async fn account(&self, id: &str) -> Result<Option<Account>>;
    async fn accounts(&self) -> Result<Vec<Account>>;
    async fn save_notification(&self, record: &NotificationRecord) -> Result<()>;
    /// The latest `limit` notifications of an event kind (and id), oldest first.
    async fn notifications(
        &self,
        event_kind: &str,
        event_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<NotificationRecord>>;
}
