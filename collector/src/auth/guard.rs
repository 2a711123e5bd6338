//! The middleware in front of every HTTP route: resolves the caller's token to a role (with a
//! short cache, so a busy ingest client does not cost a database read per request), checks the
//! route's policy, and applies the per-token rate limit.

use super::policy::{self, Access};
use super::{AuthConfig, Role, TokenDigest};
use crate::error::{ApiError, ErrorCode};
use crate::storage::Store;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A revoked token stops working within this long on every collector.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Past this many cached hashes (most would be junk tokens) the cache starts over.
const CACHE_LIMIT: usize = 10_000;
/// The rate-limit key of requests without a token.
const ANONYMOUS: i64 = -1;
/// The rate-limit key every unknown or revoked token shares: guessing tokens is slowed to
/// the configured rate however many are tried.
const UNKNOWN: i64 = -2;

/// Who made a request; handlers read it from the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name, or `anonymous` (shared with the cache: no copy per request).
    pub name: Arc<str>,
    pub role: Role,
    /// The token's hash (none when anonymous), so a long-lived stream can check it later.
    pub token_hash: Option<TokenDigest>,
}

#[derive(Debug, Clone)]
struct Known {
    id: i64,
    name: Arc<str>,
    role: Role,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Guard {
    store: Arc<dyn Store>,
    config: AuthConfig,
    cache: RwLock<HashMap<TokenDigest, (Option<Known>, Instant)>>,
    buckets: Mutex<HashMap<i64, Bucket>>,
}

impl Guard {
    pub fn new(store: Arc<dyn Store>, config: AuthConfig) -> Self {
        Guard {
            store,
            config,
            cache: RwLock::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// The unrevoked token with this hash, from the cache or the database.
    async fn lookup(&self, digest: TokenDigest) -> Result<Option<Known>, ApiError> {
        if let Some(known) = self.cached(&digest) {
            return Ok(known);
        }
        let known = self
            .store
            .token_by_hash(&digest.hex())
            .await?
            .map(|t| Known {
                id: t.id,
                name: t.name.into(),
                role: t.role,
            });
        self.remember(digest, known.clone());
        Ok(known)
    }

    // Lock guards stay in these two plain functions so none is held across an await.
    fn cached(&self, digest: &TokenDigest) -> Option<Option<Known>> {
        let cache = self.cache.read().ok()?;
        let (known, at) = cache.get(digest)?;
        (at.elapsed() < CACHE_TTL).then(|| known.clone())
    }

    fn remember(&self, digest: TokenDigest, known: Option<Known>) {
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(digest, (known, Instant::now()));
        }
    }

    /// Whether a stream opened by `caller` may go on: its token is still unrevoked (read
    /// through the cache, so within [`CACHE_TTL`] of a revocation on any collector).
    pub async fn still_valid(&self, caller: &Caller) -> bool {
        let Some(digest) = caller.token_hash else {
            return self.config.anonymous_role.is_some();
        };
        // A database hiccup does not cut live streams; the next check decides.
        self.lookup(digest)
            .await
            .map_or(true, |known| known.is_some())
    }

    /// Forgets cached tokens, so a revocation on this collector applies at once.
    pub fn forget(&self) {
        if let Ok(mut cache) = self.cache.write() {
            cache.clear();
        }
    }

    /// `Err(seconds to wait)` when the key is over its rate.
    fn take(&self, key: i64) -> Result<(), u64> {
        let rate = f64::from(self.config.rate_per_sec);
        if rate == 0.0 {
            return Ok(());
        }
        let burst = f64::from(self.config.burst.max(1));
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64)
        }
    }

    /// What the request needs, and the token it presented (read before any await: a request's
    /// body is not `Sync`, so the request cannot be borrowed across one).
    fn requirement(
        &self,
        request: &Request,
    ) -> Option<(Role, Option<Result<String, &'static str>>)> {
        let need = match policy::required(
            request.method(),
            request.uri().path(),
            self.config.open_health,
            self.config.open_metrics,
        ) {
            Access::Open => return None,
            Access::Needs(role) => role,
        };
        let presented = bearer(request.headers()).or_else(|| {
            // Browsers cannot set headers on a WebSocket; the dashboard passes it in the query.
            (request.uri().path() == "/ws")
                .then(|| query_token(request.uri().query()))
                .flatten()
        });
        Some((need, presented))
    }

    /// Resolves and checks a presented token (or the anonymous role) against the role needed.
    /// REST, `/ws` and gRPC all come through here.
    pub async fn authorise(
        &self,
        need: Role,
        presented: Option<Result<String, &'static str>>,
    ) -> Result<Caller, Refusal> {
        let unauthenticated = |message: &str| Refusal {
            error: ApiError::new(ErrorCode::Unauthenticated, message),
            retry_after: None,
        };
        let (key, caller) = match presented {
            Some(Ok(token)) => {
                // Hashed once per request: the cache key and the caller's record of it.
                let digest = TokenDigest::of(&token);
                match self.lookup(digest).await.map_err(|error| Refusal {
                    error,
                    retry_after: None,
                })? {
                    Some(known) => (
                        known.id,
                        Caller {
                            name: known.name,
                            role: known.role,
                            token_hash: Some(digest),
                        },
                    ),
                    None => {
                        if let Err(wait) = self.take(UNKNOWN) {
                            return Err(Refusal {
                                error: ApiError::new(
                                    ErrorCode::ResourceExhausted,
                                    format!("too many unknown tokens; retry in {wait} s"),
                                ),
                                retry_after: Some(wait),
                            });
                        }
                        return Err(unauthenticated("the token is unknown or revoked"));
                    }
                }
            }
            Some(Err(message)) => return Err(unauthenticated(message)),
            None => match self.config.anonymous_role {
                Some(role) => (
                    ANONYMOUS,
                    Caller {
                        name: "anonymous".into(),
                        role,
                        token_hash: None,
                    },
                ),
                None => {
                    return Err(unauthenticated(
                        "a token is required: send Authorization: Bearer <token>",
                    ))
                }
            },
        };
        if caller.role < need {
            return Err(Refusal {
                error: ApiError::new(
                    ErrorCode::PermissionDenied,
                    format!("this needs the {need} role; the token has {}", caller.role),
                ),
                retry_after: None,
            });
        }
        if let Err(wait) = self.take(key) {
            return Err(Refusal {
                error: ApiError::new(
                    ErrorCode::ResourceExhausted,
                    format!(
                        "rate limit of {} requests/s exceeded; retry in {wait} s",
                        self.config.rate_per_sec
                    ),
                ),
                retry_after: Some(wait),
            });
        }
        Ok(caller)
    }
}

/// Why a request was refused.
#[derive(Debug)]
pub struct Refusal {
    pub error: ApiError,
    /// Seconds, when rate limited.
    pub retry_after: Option<u64>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let code = self.error.code;
        let mut response = self.error.into_response();
        let headers = response.headers_mut();
        if code == ErrorCode::Unauthenticated {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(value) = self
            .retry_after
            .and_then(|wait| HeaderValue::from_str(&wait.to_string()).ok())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Refusal {
            error,
            retry_after: None,
        }
    }
}

impl From<Refusal> for tonic::Status {
    fn from(refusal: Refusal) -> Self {
        let mut status = tonic::Status::from(refusal.error);
        if let Some(value) = refusal
            .retry_after
            .and_then(|wait| tonic::metadata::MetadataValue::try_from(wait.to_string()).ok())
        {
            status.metadata_mut().insert("retry-after", value);
        }
        status
    }
}

/// The bearer token in `Authorization`, if one was sent; `Err` when the header is malformed.
fn bearer(headers: &HeaderMap) -> Option<Result<String, &'static str>> {
    let value = headers.get(header::AUTHORIZATION)?;
    Some(bearer_token(value.to_str().ok()))
}

/// The token of an `Authorization` header or `authorization` metadata value (REST and gRPC).
pub(crate) fn bearer_token(value: Option<&str>) -> Result<String, &'static str> {
    value
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .map(str::to_string)
        .ok_or("authorization: expected \"Bearer <token>\"")
}

fn query_token(query: Option<&str>) -> Option<Result<String, &'static str>> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(|t| {
            Some(t.to_string())
                .filter(|t| !t.is_empty() && t.len() <= 256)
                .ok_or("token: must be 1 to 256 characters")
        })
}

/// Axum middleware: `from_fn_with_state(guard, enforce)`.
pub async fn enforce(
    State(guard): State<Arc<Guard>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some((need, presented)) = guard.requirement(&request) else {
        return next.run(request).await;
    };
    match guard.authorise(need, presented).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        let mut headers = HeaderMap::new();
        assert!(bearer(&headers).is_none());
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nwt_abc"),
        );
        assert_eq!(bearer(&headers), Some(Ok("nwt_abc".into())));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcg=="),
        );
        assert!(matches!(bearer(&headers), Some(Err(_))));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(matches!(bearer(&headers), Some(Err(_))));
    }

    #[test]
    fn the_query_token_is_found_among_other_parameters() {
        assert_eq!(
            query_token(Some("kinds=anomaly&token=nwt_x")),
            Some(Ok("nwt_x".into()))
        );
        assert_eq!(query_token(Some("kinds=anomaly")), None);
        assert!(matches!(query_token(Some("token=")), Some(Err(_))));
    }
}
