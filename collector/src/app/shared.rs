//! What every part uses: the store (opened and migrated), the metrics, the alert engine, the
//! token guard, the certificate revocations, the customer email channel and every notification
//! channel (one mailer between them).

use super::StartError;
use crate::alert::customer::CustomerEmail;
use crate::alert::dispatch::{Channel, EmailChannel};
use crate::alert::email::Mailer;
use crate::alert::engine::Engine;
use crate::alert::webhook::{Format, WebhookChannel};
use crate::auth::Guard;
use crate::config::Settings;
use crate::grpc::revoke::Revocations;
use crate::metrics::Metrics;
use crate::storage::{self, Store};
use std::sync::Arc;
use std::time::Duration;

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub engine: Arc<Engine>,
    pub guard: Arc<Guard>,
    pub revocations: Revocations,
    /// The customer maxout email: telemetry detection queues, the dispatcher delivers; none
    /// without `[email]`.
    pub customer_email: Option<Arc<CustomerEmail>>,
    /// Rung when this collector saves a plan version, so its agents hear of it at once rather
    /// than at the plan feed's next look (other collectors' saves are seen by that look).
    pub plan_saved: Arc<tokio::sync::Notify>,
    /// The notification channels (none configured: empty, and no dispatcher runs).
    pub channels: Vec<Arc<dyn Channel>>,
}

impl Shared {
    pub async fn build(settings: &Settings) -> Result<Self, StartError> {
        let store = storage::open(
            &settings.database,
            settings.max_connections,
            settings.sqlite_sync,
        )
        .await?;
        let applied = store.migrate().await?;
        tracing::info!(
            database = %settings.database.describe(),
            migrations_applied = applied.len(),
            "database ready"
        );
        // Revocations are read before the first connection is taken (then every second, by
        // the agents' part); the handshake refuses a revoked certificate.
        let revocations = Revocations::default();
        revocations.load(store.as_ref()).await?;
        let metrics = Arc::new(Metrics::new());
        metrics.network.set_limit(settings.network_metrics_series);
        let engine = Arc::new(Engine::new(
            store.clone(),
            settings.alerting.clone(),
            metrics.clone(),
        ));
        let guard = Arc::new(Guard::new(store.clone(), settings.auth.clone()));
        let mailer = match &settings.email {
            Some(email) => Some(Arc::new(Mailer::new(email).map_err(StartError::Email)?)),
            None => None,
        };
        let customer_email = match (&settings.email, &mailer) {
            (Some(email), Some(mailer)) => Some(Arc::new(
                CustomerEmail::new(
                    email,
                    mailer.clone(),
                    store.clone(),
                    metrics.clone(),
                    Some(engine.clone()),
                    Some(engine.wake.clone()),
                )
                .map_err(StartError::Email)?,
            )),
            _ => None,
        };
        let channels = notification_channels(settings, &mailer, &customer_email)?;
        Ok(Shared {
            channels,
            store,
            metrics,
            engine,
            guard,
            revocations,
            customer_email,
            plan_saved: Arc::new(tokio::sync::Notify::new()),
        })
    }
}

/// Binds `addr` and reads back the address bound (the port, when 0 was asked for).
pub async fn bind(
    what: &'static str,
    addr: std::net::SocketAddr,
) -> Result<(tokio::net::TcpListener, std::net::SocketAddr), StartError> {
    let error = |source| StartError::Bind { what, addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(error)?;
    let bound = listener.local_addr().map_err(error)?;
    Ok((listener, bound))
}

/// Every notification channel configured: built once, shared by the dispatcher and the API's
/// test notifications (one Telegram rate limit, one SMTP pool).
fn notification_channels(
    settings: &Settings,
    mailer: &Option<Arc<Mailer>>,
    customer_email: &Option<Arc<CustomerEmail>>,
) -> Result<Vec<Arc<dyn Channel>>, StartError> {
    let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
    if let (Some(email), Some(mailer)) = (&settings.email, mailer) {
        channels.push(Arc::new(EmailChannel {
            mailer: mailer.clone(),
            template: crate::alert::templates::Template::load(
                "anomaly",
                email.templates.as_deref(),
                crate::alert::templates::ANOMALY_FIELDS,
            )
            .map_err(|e| StartError::Email(e.to_string()))?,
        }));
    }
    if let Some(customer) = customer_email {
        channels.push(customer.clone());
    }
    if let Some(t) = &settings.telegram {
        channels.push(Arc::new(
            crate::alert::telegram::Telegram::new(t).map_err(StartError::Email)?,
        ));
    }
    let a = &settings.alerting;
    for (format, endpoints) in [
        (Format::Webhook, &settings.webhooks),
        (Format::Alertmanager, &settings.alertmanagers),
    ] {
        if !endpoints.is_empty() {
            channels.push(Arc::new(
                WebhookChannel::new(
                    format,
                    endpoints.clone(),
                    a.external_url.as_deref().unwrap_or_default(),
                    Duration::from_secs(a.repeat_secs),
                )
                .map_err(StartError::Email)?,
            ));
        }
    }
    Ok(channels)
}
