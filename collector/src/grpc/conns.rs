//! Connection budgets for the gRPC listeners, and the live connections by identity.
//!
//! Every accepted TCP connection takes a slot of `max_connections` (none left: closed at once,
//! counted), waits for one of `max_handshakes` to shake hands, and once serving is closed
//! when it has had no gRPC stream for `idle_timeout` (an idle TLS connection costs a file
//! descriptor and memory and gives nothing). The registry also closes, within a second, every
//! open connection whose certificate has been revoked.

use crate::metrics::Metrics;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// The budgets of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub max_handshakes: usize,
    /// `None`: connections may stay open without a stream.
    pub idle_timeout: Option<Duration>,
}

/// What a client certificate says of its holder, for revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    pub agent: String,
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
}

/// One open connection.
pub struct Conn {
    id: u64,
    identity: OnceLock<CertIdentity>,
    streams: AtomicUsize,
    /// Milliseconds after `Registry::epoch` when the last stream ended (or the connection
    /// opened).
    idle_since_ms: AtomicU64,
    close: CancellationToken,
    registry: Weak<RegistryInner>,
    _slot: OwnedSemaphorePermit,
}

impl Conn {
    /// Counts a gRPC stream (or unary call) on this connection until the guard is dropped.
    pub fn stream(self: &Arc<Self>) -> StreamGuard {
        self.streams.fetch_add(1, Ordering::SeqCst);
        StreamGuard(self.clone())
    }

    pub fn set_identity(&self, identity: CertIdentity) {
        let _ = self.identity.set(identity);
    }

    pub fn identity(&self) -> Option<&CertIdentity> {
        self.identity.get()
    }

    /// Resolves when the connection must close (idle, revoked, or the collector stopping).
    pub fn closed(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.close.clone().cancelled_owned()
    }

    fn idle_for(&self, now_ms: u64) -> Option<Duration> {
        (self.streams.load(Ordering::SeqCst) == 0).then(|| {
            Duration::from_millis(now_ms.saturating_sub(self.idle_since_ms.load(Ordering::SeqCst)))
        })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            if let Ok(mut live) = registry.live.lock() {
                live.remove(&self.id);
            }
        }
    }
}

/// Keeps its connection counted as having a stream.
pub struct StreamGuard(Arc<Conn>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let conn = &self.0;
        if let Some(registry) = conn.registry.upgrade() {
            conn.idle_since_ms
                .store(registry.now_ms(), Ordering::SeqCst);
        }
        conn.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

struct RegistryInner {
    what: &'static str,
    limits: ConnLimits,
    epoch: Instant,
    next_id: AtomicU64,
    slots: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
    live: Mutex<HashMap<u64, Weak<Conn>>>,
    metrics: Arc<Metrics>,
    /// Unix seconds of the last "connection limit reached" warning, so a flood logs once a
    /// second, not once a connection.
    last_warned: AtomicU64,
}

impl RegistryInner {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// The budgets and live connections of one listener; cheap to clone.
#[derive(Clone)]
pub struct Registry(Arc<RegistryInner>);

/// A connection slot taken at accept, before the handshake.
pub struct Slot {
    permit: OwnedSemaphorePermit,
    registry: Registry,
}

impl Registry {
    pub fn new(what: &'static str, limits: ConnLimits, metrics: Arc<Metrics>) -> Self {
        Registry(Arc::new(RegistryInner {
            what,
            limits,
            epoch: Instant::now(),
            next_id: AtomicU64::new(1),
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            handshakes: Arc::new(Semaphore::new(limits.max_handshakes.max(1))),
            live: Mutex::new(HashMap::new()),
            metrics,
            last_warned: AtomicU64::new(0),
        }))
    }

    /// A slot for a new connection, or `None` when the listener is full (counted, and
    /// warned about at most once a second).
    pub fn try_slot(&self) -> Option<Slot> {
        match self.0.slots.clone().try_acquire_owned() {
            Ok(permit) => Some(Slot {
                permit,
                registry: self.clone(),
            }),
            Err(_) => {
                self.0
                    .metrics
                    .connections_refused
                    .get_or_create(&Metrics::label("listener", self.0.what))
                    .inc();
                let now = chrono::Utc::now().timestamp() as u64;
                if self.0.last_warned.swap(now, Ordering::Relaxed) != now {
                    tracing::warn!(
                        listener = self.0.what,
                        limit = self.0.limits.max_connections,
                        "connection limit reached; closing new connections until some end"
                    );
                }
                None
            }
        }
    }

    /// Waits for a handshake turn; the permit is held until the handshake ends.
    pub async fn handshake_turn(&self) -> Option<OwnedSemaphorePermit> {
        self.0.handshakes.clone().acquire_owned().await.ok()
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.0.limits.max_connections.max(1) - self.0.slots.available_permits()
    }

    /// Closes every open connection `revoked` says yes to; returns how many.
    pub fn close_where(&self, revoked: impl Fn(&CertIdentity) -> bool) -> usize {
        let live: Vec<Arc<Conn>> = match self.0.live.lock() {
            Ok(live) => live.values().filter_map(Weak::upgrade).collect(),
            Err(_) => return 0,
        };
        let mut closed = 0;
        for conn in live {
            if conn.identity().is_some_and(&revoked) && !conn.close.is_cancelled() {
                conn.close.cancel();
                closed += 1;
            }
        }
        closed
    }
}

impl Slot {
    /// Makes the connection, registered, and (with an idle timeout) watched.
    pub fn into_conn(self, stop: &CancellationToken) -> Arc<Conn> {
        let inner = &self.registry.0;
        let conn = Arc::new(Conn {
            id: inner.next_id.fetch_add(1, Ordering::Relaxed),
            identity: OnceLock::new(),
            streams: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(inner.now_ms()),
            close: stop.child_token(),
            registry: Arc::downgrade(inner),
            _slot: self.permit,
        });
        if let Ok(mut live) = inner.live.lock() {
            live.insert(conn.id, Arc::downgrade(&conn));
        }
        if let Some(idle) = inner.limits.idle_timeout {
            tokio::spawn(watch_idle(
                Arc::downgrade(&conn),
                conn.close.clone(),
                self.registry.clone(),
                idle,
            ));
        }
        conn
    }
}

/// Closes the connection once it has had no stream for `idle`.
async fn watch_idle(
    conn: Weak<Conn>,
    close: CancellationToken,
    registry: Registry,
    idle: Duration,
) {
    let tick = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = close.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        let Some(conn) = conn.upgrade() else { return };
        if conn
            .idle_for(registry.0.now_ms())
            .is_some_and(|d| d >= idle)
        {
            registry
                .0
                .metrics
                .connections_idle_closed
                .get_or_create(&Metrics::label("listener", registry.0.what))
                .inc();
            tracing::debug!(listener = registry.0.what, agent = ?conn.identity().map(|i| &i.agent), "closing a connection idle for {idle:?}");
            conn.close.cancel();
            return;
        }
    }
}

/// A tower layer counting each request as a stream of its connection for as long as its
/// response body lives (a server stream lives as long as the gRPC stream).
/// `I` is the connection info tonic puts in each request's extensions.
pub struct CountStreams<I>(std::marker::PhantomData<fn() -> I>);

impl<I> CountStreams<I> {
    pub fn new() -> Self {
        CountStreams(std::marker::PhantomData)
    }
}

impl<I> Default for CountStreams<I> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I> Clone for CountStreams<I> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<S, I> tower::Layer<S> for CountStreams<I> {
    type Service = CountStreamsService<S, I>;
    fn layer(&self, inner: S) -> Self::Service {
        CountStreamsService {
            inner,
            info: std::marker::PhantomData,
        }
    }
}

pub struct CountStreamsService<S, I> {
    inner: S,
    info: std::marker::PhantomData<fn() -> I>,
}

impl<S: Clone, I> Clone for CountStreamsService<S, I> {
    fn clone(&self) -> Self {
        CountStreamsService {
            inner: self.inner.clone(),
            info: std::marker::PhantomData,
        }
    }
}

/// Connection info that knows its connection.
pub trait HasConn {
    fn conn(&self) -> &Arc<Conn>;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, I, B> tower::Service<http::Request<B>> for CountStreamsService<S, I>
where
    I: HasConn + Send + Sync + 'static,
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let guard = request
            .extensions()
            .get::<I>()
            .map(|info| info.conn().stream());
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            Ok(match guard {
                None => response,
                Some(guard) => response.map(|body| {
                    use http_body_util::BodyExt;
                    tonic::body::Body::new(body.map_frame(move |frame| {
                        let _ = &guard;
                        frame
                    }))
                }),
            })
        })
    }
}
