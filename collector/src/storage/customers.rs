//! Accounts, their contacts and managers, and the notification record, behind
//! [`CustomerStore`] (both backends).

use super::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use crate::domain::customers::*;

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
