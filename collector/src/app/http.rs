//! The HTTP port: REST, WebSocket, `/metrics` and the dashboard.

use super::shared::{bind, Shared};
use super::telemetry::Telemetry;
use super::{Stage, StartError, Tasks};
use crate::config::HttpLimits;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::rest::{router, AppState};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct Http {
    pub addr: SocketAddr,
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
}

impl Http {
    pub async fn build(
        settings: &Settings,
        shared: &Shared,
        telemetry: &Telemetry,
    ) -> Result<Self, StartError> {
        let (listener, addr) = bind("HTTP", settings.http_listen).await?;
        let app = router(AppState::new(crate::rest::Services {
            store: shared.store.clone(),
            metrics: shared.metrics.clone(),
            telemetry: telemetry.committer.clone(),
            engine: shared.engine.clone(),
            auth: shared.guard.clone(),
            retention: settings.retention.clone(),
            plan_saved: shared.plan_saved.clone(),
            speedtest_gate: Arc::new(crate::rest::speedtest_gate::SpeedTestGate::new(
                settings.speedtest,
            )),
            alerting: settings.alerting.clone(),
            channels: shared.channels.clone(),
            route_tests: Arc::default(),
        }));
        Ok(Http {
            addr,
            listener,
            app,
            limits: settings.http_limits,
            metrics: shared.metrics.clone(),
        })
    }

    pub fn spawn(self, tasks: &mut Tasks) {
        tasks.spawn(Stage::Accept, "http", |stop| {
            crate::rest::serve::serve(self.listener, self.app, self.limits, self.metrics, stop)
        });
    }
}
