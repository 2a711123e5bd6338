//! Alerting channels. So far: customer email for circuit maxouts (`customer`) over SMTP
//! (`email`) with operator-editable templates (`templates`). The alert engine (routing,
//! dedup, escalation, Telegram) comes with issue 7.

pub mod customer;
pub mod email;
pub mod templates;
