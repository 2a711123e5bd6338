//! Customer accounts, their people, and the notifications sent to them.

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
