//! Alerting. The engine (`engine`) turns detector signals into anomalies and queued
//! notifications by the routes in `[alerting]` (`routing`); the dispatcher (`dispatch`)
//! delivers them by email (`email`, templates in `templates`), Telegram (`telegram`), and to
//! webhook receivers and Alertmanagers (`webhook`), and `watch` feeds the detectors from ingest. Customer email for circuit maxouts (`customer`)
//! is separate: it goes to the customer, not the NOC. All of it reads the time from `clock`.

pub mod clock;
pub mod customer;
pub mod dispatch;
pub mod email;
pub mod engine;
pub mod render;
pub mod routing;
pub mod telegram;
pub mod templates;
pub mod watch;
pub mod webhook;
