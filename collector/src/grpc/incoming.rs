//! Accepts TCP connections, completes the TLS handshake ourselves and hands tonic only
//! authenticated streams. Doing the handshake here (instead of inside tonic) lets every refusal
//! be logged with the peer address and a reason an operator can act on, and lets us read the
//! agent identity from the client certificate once per connection.

use super::conns::{CertIdentity, Conn, HasConn, Registry};
use crate::metrics::Metrics;
use netwarden_shared::tls::cert_info;
use netwarden_shared::AgentId;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Who is at the other end of an ingest connection; tonic puts it in each request's extensions.
#[derive(Clone)]
pub struct AgentConnInfo {
    pub remote: SocketAddr,
    pub agent: AgentId,
    pub conn: Arc<Conn>,
}

impl HasConn for AgentConnInfo {
    fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }
}

/// A TLS stream from an authenticated agent.
pub type AgentStream = TlsConnection<AgentConnInfo>;

/// A server-side TLS stream and what is known of its peer, which tonic puts in each request's
/// extensions (the agents' port and the operators' query port both serve these).
/// It ends (reads and writes fail) when its `Conn` is closed: idle, revoked, or stopping.
pub struct TlsConnection<I> {
    inner: TlsStream<TcpStream>,
    info: I,
    closed: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl<I: HasConn> TlsConnection<I> {
    pub fn new(inner: TlsStream<TcpStream>, info: I) -> Self {
        let closed = Box::pin(info.conn().closed());
        TlsConnection {
            inner,
            info,
            closed,
        }
    }
}

impl<I> TlsConnection<I> {
    fn check_open(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.closed.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed by the collector (idle, revoked or stopping)",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl<I: Clone + Send + Sync + 'static> tonic::transport::server::Connected for TlsConnection<I> {
    type ConnectInfo = I;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl<I: Unpin> AsyncRead for TlsConnection<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(err) = self.check_open(cx) {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: Unpin> AsyncWrite for TlsConnection<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(err) = self.check_open(cx) {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Err(err) = self.check_open(cx) {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Why a connection was refused, as a metric label and a sentence.
fn classify(err: &io::Error) -> (&'static str, String) {
    if let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        use rustls::{CertificateError, Error};
        return match tls {
            Error::InvalidCertificate(CertificateError::Expired)
            | Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => (
                "expired",
                "the client certificate has expired; issue a new one with `netwarden-collector pki issue-agent`".into(),
            ),
            Error::InvalidCertificate(CertificateError::NotValidYet)
            | Error::InvalidCertificate(CertificateError::NotValidYetContext { .. }) => (
                "not_yet_valid",
                "the client certificate is not valid yet (check the clocks)".into(),
            ),
            // BadSignature: an issuer with our CA's name but another key (another install).
            Error::InvalidCertificate(CertificateError::UnknownIssuer)
            | Error::InvalidCertificate(CertificateError::BadSignature) => (
                "unknown_ca",
                "the client certificate was not issued by this collector's CA".into(),
            ),
            Error::InvalidCertificate(CertificateError::Revoked) => {
                ("revoked", "the client certificate is revoked".into())
            }
            Error::NoCertificatesPresented => (
                "no_client_certificate",
                "the client presented no certificate (mutual TLS is required)".into(),
            ),
            other => ("tls", format!("TLS error: {other}")),
        };
    }
    if err.kind() == io::ErrorKind::TimedOut {
        return ("timeout", "the TLS handshake did not finish in time".into());
    }
    ("tls", format!("TLS handshake failed: {err}"))
}

/// Runs the accept loop until `cancel`; authenticated streams come out of the receiver.
pub fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    metrics: Arc<Metrics>,
    registry: Registry,
    revoked: super::revoke::Revocations,
    cancel: CancellationToken,
) -> (mpsc::Receiver<io::Result<AgentStream>>, AcceptTask) {
    accept_with(
        listener,
        "gRPC",
        registry,
        cancel,
        move |tcp, remote, conn| {
            let (acceptor, metrics, revoked) = (acceptor.clone(), metrics.clone(), revoked.clone());
            async move {
                handshake(
                    tcp,
                    remote,
                    conn,
                    acceptor,
                    handshake_timeout,
                    &metrics,
                    &revoked,
                )
                .await
            }
        },
    )
}

/// The loop that accepts TCP connections until `cancel`, runs `handshake` on each in its own
/// task, and sends the streams it yields (`None`: refused, already logged) to the receiver. Shared by the
/// agents' port and the operators' query port.
/// Each connection first takes a slot of the listener's `registry` (none left: closed at
/// once) and waits its turn among the handshakes in progress.
pub fn accept_with<S, H, F>(
    listener: TcpListener,
    what: &'static str,
    registry: Registry,
    cancel: CancellationToken,
    handshake: H,
) -> (mpsc::Receiver<io::Result<S>>, AcceptTask)
where
    S: Send + 'static,
    H: Fn(TcpStream, SocketAddr, Arc<Conn>) -> F + Send + 'static,
    F: std::future::Future<Output = Option<S>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    let task = Box::pin(async move {
        loop {
            let (tcp, remote) = tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // Usually EMFILE: back off instead of spinning.
                        tracing::warn!(error = %err, "{what} accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Some(slot) = registry.try_slot() else {
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let conn = slot.into_conn(&cancel);
            let (stream, tx, registry) =
                (handshake(tcp, remote, conn), tx.clone(), registry.clone());
            tokio::spawn(async move {
                let Some(turn) = registry.handshake_turn().await else {
                    return;
                };
                let stream = stream.await;
                drop(turn);
                if let Some(stream) = stream {
                    let _ = tx.send(Ok(stream)).await;
                }
            });
        }
    });
    (rx, task)
}

/// A listener's accept loop, not started yet: it ends on its `cancel`.
pub type AcceptTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

async fn handshake(
    tcp: TcpStream,
    remote: SocketAddr,
    conn: Arc<Conn>,
    acceptor: TlsAcceptor,
    timeout: Duration,
    metrics: &Metrics,
    revoked: &super::revoke::Revocations,
) -> Option<AgentStream> {
    let refuse = |reason: &'static str, why: String| {
        metrics
            .tls_refused
            .get_or_create(&Metrics::label("reason", reason))
            .inc();
        tracing::warn!(peer = %remote, reason, "refused gRPC connection: {why}");
    };
    // A TLS client speaks first with a handshake record (0x16); anything else is plaintext.
    let mut first = [0u8; 1];
    match tokio::time::timeout(timeout, tcp.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == 0x16 => {}
        Ok(Ok(1)) => {
            refuse(
                "plaintext",
                "the client is not speaking TLS; agents must connect with https:// and a client certificate".into(),
            );
            return None;
        }
        Ok(_) => return None, // closed before sending anything
        Err(_) => {
            refuse("timeout", "the client sent nothing".into());
            return None;
        }
    }
    let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => {
            let (reason, why) = classify(&err);
            refuse(reason, why);
            return None;
        }
        Err(_) => {
            refuse("timeout", "the TLS handshake did not finish in time".into());
            return None;
        }
    };
    let identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or_else(|| "no client certificate".to_string())
        .and_then(|cert| cert_info(cert))
        .and_then(|info| {
            let agent = AgentId::new(&info.common_name).map_err(|e| e.to_string())?;
            Ok((agent, info))
        });
    match identity {
        Ok((agent, info)) => {
            let identity = CertIdentity {
                agent: info.common_name,
                serial: info.serial,
                not_before: info.not_before,
            };
            if revoked.is_revoked(&identity) {
                refuse(
                    "revoked",
                    format!(
                        "the certificate of agent {agent:?} (serial {}) is revoked",
                        identity.serial
                    ),
                );
                return None;
            }
            conn.set_identity(identity);
            tracing::debug!(peer = %remote, %agent, "agent connected");
            Some(TlsConnection::new(
                tls,
                AgentConnInfo {
                    remote,
                    agent,
                    conn,
                },
            ))
        }
        Err(why) => {
            refuse(
                "identity",
                format!("the client certificate names no usable agent: {why}"),
            );
            None
        }
    }
}
