//! Accepts TCP connections, completes the TLS handshake ourselves and hands tonic only
//! authenticated streams. Doing the handshake here (instead of inside tonic) lets every refusal
//! be logged with the peer address and a reason an operator can act on, and lets us read the
//! agent identity from the client certificate once per connection.

use crate::metrics::Metrics;
use netwarden_shared::tls::cert_info;
use netwarden_shared::AgentId;
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
#[derive(Debug, Clone)]
pub struct AgentConnInfo {
    pub remote: SocketAddr,
    pub agent: AgentId,
}

/// A TLS stream from an authenticated agent.
pub type AgentStream = TlsConnection<AgentConnInfo>;

/// A server-side TLS stream and what is known of its peer, which tonic puts in each request's
/// extensions (the agents' port and the operators' query port both serve these).
pub struct TlsConnection<I> {
    inner: TlsStream<TcpStream>,
    info: I,
}

impl<I> TlsConnection<I> {
    pub fn new(inner: TlsStream<TcpStream>, info: I) -> Self {
        TlsConnection { inner, info }
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
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: Unpin> AsyncWrite for TlsConnection<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
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
    cancel: CancellationToken,
) -> mpsc::Receiver<io::Result<AgentStream>> {
    accept_with(listener, "gRPC", cancel, move |tcp, remote| {
        let (acceptor, metrics) = (acceptor.clone(), metrics.clone());
        async move { handshake(tcp, remote, acceptor, handshake_timeout, &metrics).await }
    })
}

/// Accepts TCP connections until `cancel`, runs `handshake` on each in its own task, and sends
/// the streams it yields (`None`: refused, already logged) to the receiver. Shared by the
/// agents' port and the operators' query port.
pub fn accept_with<S, H, F>(
    listener: TcpListener,
    what: &'static str,
    cancel: CancellationToken,
    handshake: H,
) -> mpsc::Receiver<io::Result<S>>
where
    S: Send + 'static,
    H: Fn(TcpStream, SocketAddr) -> F + Send + 'static,
    F: std::future::Future<Output = Option<S>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
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
            let _ = tcp.set_nodelay(true);
            let (stream, tx) = (handshake(tcp, remote), tx.clone());
            tokio::spawn(async move {
                if let Some(stream) = stream.await {
                    let _ = tx.send(Ok(stream)).await;
                }
            });
        }
    });
    rx
}

async fn handshake(
    tcp: TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    timeout: Duration,
    metrics: &Metrics,
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
        .and_then(|info| AgentId::new(info.common_name).map_err(|e| e.to_string()));
    match identity {
        Ok(agent) => {
            tracing::debug!(peer = %remote, %agent, "agent connected");
            Some(TlsConnection::new(tls, AgentConnInfo { remote, agent }))
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
