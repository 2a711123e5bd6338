//! The operators' gRPC query port (server TLS, tokens), with reflection.

use super::shared::{bind, Shared};
use super::{Stage, StartError, Tasks};
use crate::config::Settings;
use crate::grpc::conns::{CountStreams, Registry};
use crate::grpc::query::OperatorConnInfo;
use netwarden_proto::v1::query_service_server::QueryServiceServer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;

pub struct Query {
    pub addr: SocketAddr,
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handshake_timeout: Duration,
    conns: Registry,
    /// The query service and reflection.
    routes: tonic::service::Routes,
}

impl Query {
    /// The port, when `query_listen` is set.
    pub async fn build(settings: &Settings, shared: &Shared) -> Result<Option<Self>, StartError> {
        let Some(listen) = settings.query_listen else {
            return Ok(None);
        };
        let (listener, addr) = bind("gRPC query", listen).await?;
        let tls = netwarden_shared::tls::server_config_without_client_auth(&settings.tls)?;
        let query = QueryServiceServer::new(crate::grpc::query::Query::new(
            shared.store.clone(),
            shared.engine.clone(),
            shared.guard.clone(),
        ));
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(netwarden_proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| StartError::Reflection(e.to_string()))?;
        Ok(Some(Query {
            addr,
            listener,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
            handshake_timeout: settings.handshake_timeout,
            conns: Registry::new("grpc-query", settings.grpc_limits, shared.metrics.clone()),
            routes: tonic::service::Routes::new(query).add_service(reflection),
        }))
    }

    pub fn spawn(self, tasks: &mut Tasks) {
        let (incoming, accept) = crate::grpc::query::accept_loop(
            self.listener,
            self.acceptor,
            self.handshake_timeout,
            self.conns,
            tasks.stop_of(Stage::Accept).child_token(),
        );
        tasks.spawn_infallible(Stage::Accept, "grpc-query-accept", |_| accept);
        let routes = self.routes;
        tasks.spawn(Stage::Accept, "grpc-query", |stop| async move {
            tonic::transport::Server::builder()
                .layer(CountStreams::<OperatorConnInfo>::new())
                .add_routes(routes)
                .serve_with_incoming_shutdown(ReceiverStream::new(incoming), stop.cancelled_owned())
                .await
                .map_err(|e| netwarden_shared::tls::error_chain(&e))
        });
    }
}
