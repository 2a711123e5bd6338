//! HTTP throughput tests. Against a Netwarden server (the collector serves one): download
//! `bytes` from `/speedtest/download`, upload `bytes` to `/speedtest/upload`, each checked for
//! the exact count. Against any other HTTP(S) server: fetch a `download_url` (stopping at
//! `download_bytes`) and POST `upload_bytes` to an `upload_url`. Both stream, so a 25 MB test
//! costs the agent 64 KiB of memory, not 25 MB.

use crate::config::SpeedTestPlan;
use bytes::Bytes;
use netwarden_shared::tls::error_chain;
use netwarden_shared::{SpeedDirection, SpeedTest};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The token the agent shows the collector's speed-test endpoints, and the only hosts it is
/// ever shown to (the collector's): a plan's test against a third-party URL gets none.
#[derive(Clone, PartialEq)]
pub struct SpeedAuth {
    token: Arc<str>,
    hosts: Arc<[String]>,
}

impl std::fmt::Debug for SpeedAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeedAuth")
            .field("token", &"[redacted]")
            .field("hosts", &self.hosts)
            .finish()
    }
}

impl SpeedAuth {
    /// `Err` names what is wrong with the token (never the token itself).
    pub fn new(token: &str, hosts: Vec<String>) -> Result<Self, String> {
        if token.is_empty() || token.len() > 256 {
            return Err("the token must be 1 to 256 characters".into());
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the token has spaces or control characters inside it".into());
        }
        Ok(SpeedAuth {
            token: Arc::from(token),
            hosts: hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
        })
    }

    /// The token, if `url`'s host is one it may be sent to.
    pub(crate) fn for_url(&self, url: &str) -> Option<&str> {
        let host = reqwest::Url::parse(url)
            .ok()?
            .host_str()?
            .to_ascii_lowercase();
        self.hosts.contains(&host).then_some(&*self.token)
    }
}

/// Adds the bearer token when `url` is one of the collector's.
fn authorised(
    request: reqwest::RequestBuilder,
    auth: Option<&SpeedAuth>,
    url: &str,
) -> reqwest::RequestBuilder {
    match auth.and_then(|a| a.for_url(url)) {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

const CHUNK: usize = 64 * 1024;
static FILLER: [u8; CHUNK] = [0x4e; CHUNK];

pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .no_gzip()
        .build()
}

/// Runs the configured download and upload tests; a failure is a result with its error,
/// never a missing one.
pub async fn run(client: &reqwest::Client, plan: &SpeedTestPlan) -> Vec<SpeedTest> {
    let mut results = Vec::new();
    let auth = plan.auth.as_ref();
    if plan.download_bytes > 0 {
        results.push(match &plan.download_url {
            Some(url) => download_file(client, url, plan.download_bytes, auth).await,
            None => download(client, &plan.url, plan.download_bytes, auth).await,
        });
    }
    if plan.upload_bytes > 0 {
        results.push(match &plan.upload_url {
            Some(url) => post(client, url, plan.upload_bytes, auth, false).await,
            None => upload(client, &plan.url, plan.upload_bytes, auth).await,
        });
    }
    results
}

fn result(
    url: String,
    direction: SpeedDirection,
    bytes: u64,
    took: Duration,
    error: Option<String>,
) -> SpeedTest {
    let secs = took.as_secs_f64();
    SpeedTest {
        url,
        direction,
        bytes,
        duration_us: took.as_micros() as u64,
        mbps: if error.is_none() && secs > 0.0 {
            bytes as f64 * 8.0 / secs / 1e6
        } else {
            0.0
        },
        // A server's error text is echoed here: without control characters, within the
        // wire's 1,024 bytes.
        error: error.map(|e| netwarden_shared::clean_text(&e, 1024).into_owned()),
    }
}

/// A Netwarden server's download: exactly `bytes`, or an error.
pub async fn download(
    client: &reqwest::Client,
    base: &str,
    bytes: u64,
    auth: Option<&SpeedAuth>,
) -> SpeedTest {
    let url = format!("{base}/speedtest/download?bytes={bytes}");
    fetch(client, url, bytes, auth, true).await
}

/// Any server's file: up to `max_bytes` (a shorter file is measured as it is).
pub async fn download_file(
    client: &reqwest::Client,
    url: &str,
    max_bytes: u64,
    auth: Option<&SpeedAuth>,
) -> SpeedTest {
    fetch(client, url.to_string(), max_bytes, auth, false).await
}

async fn fetch(
    client: &reqwest::Client,
    url: String,
    bytes: u64,
    auth: Option<&SpeedAuth>,
    exact: bool,
) -> SpeedTest {
    let started = Instant::now();
    let mut got: u64 = 0;
    let outcome: Result<(), String> = async {
        let mut response = authorised(client.get(&url), auth, &url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| error_chain(&e))?;
        while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
            got += chunk.len() as u64;
            // Enough of a large file: stop (dropping the response closes the stream).
            if !exact && got >= bytes {
                break;
            }
        }
        if exact && got != bytes {
            return Err(format!("the server sent {got} bytes, not {bytes}"));
        }
        if got == 0 {
            return Err("the server sent no bytes".into());
        }
        Ok(())
    }
    .await;
    result(
        url,
        SpeedDirection::Download,
        got,
        started.elapsed(),
        outcome.err(),
    )
}

/// A Netwarden server's upload: it must count exactly `bytes`.
pub async fn upload(
    client: &reqwest::Client,
    base: &str,
    bytes: u64,
    auth: Option<&SpeedAuth>,
) -> SpeedTest {
    post(
        client,
        &format!("{base}/speedtest/upload"),
        bytes,
        auth,
        true,
    )
    .await
}

/// POSTs `bytes` to `url`; a Netwarden server's (`counted`) reply must count them all, any
/// other server's 2xx is enough.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    bytes: u64,
    auth: Option<&SpeedAuth>,
    counted: bool,
) -> SpeedTest {
    let url = url.to_string();
    let chunks = futures::stream::unfold(bytes, |left| async move {
        if left == 0 {
            return None;
        }
        let n = left.min(CHUNK as u64) as usize;
        Some((
            Ok::<_, std::io::Error>(Bytes::from_static(&FILLER[..n])),
            left - n as u64,
        ))
    });
    let started = Instant::now();
    let outcome: Result<u64, String> = async {
        let response = authorised(client.post(&url), auth, &url)
            .header(reqwest::header::CONTENT_LENGTH, bytes)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        // A redirected POST is re-sent as a GET without the bytes (301, 302), or not at all
        // (307, 308, which a streamed body cannot repeat): neither measured an upload.
        if reqwest::Url::parse(&url).ok().as_ref() != Some(response.url()) {
            return Err(format!(
                "the upload was redirected to {}; give that URL",
                response.url()
            ));
        }
        if !response.status().is_success() {
            return Err(format!("the server answered {}", response.status()));
        }
        if !counted {
            // Read the reply (at most 64 KiB of it) so the time covers the server taking
            // the last byte.
            let mut response = response;
            let mut read = 0usize;
            while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
                read += chunk.len();
                if read >= CHUNK {
                    break;
                }
            }
            return Ok(bytes);
        }
        let body: serde_json::Value = response.json().await.map_err(|e| error_chain(&e))?;
        let counted = body
            .get("bytes")
            .and_then(|b| b.as_u64())
            .ok_or("the server's reply has no byte count")?;
        if counted != bytes {
            return Err(format!("the server counted {counted} bytes, not {bytes}"));
        }
        Ok(counted)
    }
    .await;
    let took = started.elapsed();
    match outcome {
        Ok(counted) => result(url, SpeedDirection::Upload, counted, took, None),
        Err(err) => result(url, SpeedDirection::Upload, 0, took, Some(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_to_the_collectors_hosts() {
        let auth = SpeedAuth::new(
            "nwt_secret",
            vec!["Collector.Example".into(), "10.0.0.5".into()],
        )
        .unwrap();
        assert_eq!(
            auth.for_url("http://collector.example:8080/speedtest/upload"),
            Some("nwt_secret")
        );
        assert_eq!(
            auth.for_url("https://10.0.0.5/x"),
            Some("nwt_secret"),
            "any port, any scheme of the same host"
        );
        assert_eq!(auth.for_url("http://mirror.example.net/file"), None);
        assert_eq!(auth.for_url("http://collector.example.evil.net/"), None);
        assert_eq!(auth.for_url("not a url"), None);
        assert!(
            !format!("{auth:?}").contains("nwt_secret"),
            "never in a log"
        );
        assert!(SpeedAuth::new("", vec![]).is_err());
        assert!(SpeedAuth::new("a b", vec![]).is_err());
    }
}
