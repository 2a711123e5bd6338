//! HTTP throughput tests against a speed-test server (the collector serves one): download
//! `bytes` from `/speedtest/download`, upload `bytes` to `/speedtest/upload`. Both stream, so
//! a 25 MB test costs the agent 64 KiB of memory, not 25 MB.

use crate::config::SpeedTestPlan;
use bytes::Bytes;
use netwarden_shared::tls::error_chain;
use netwarden_shared::{SpeedDirection, SpeedTest};
use std::time::{Duration, Instant};

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
    if plan.download_bytes > 0 {
        results.push(download(client, &plan.url, plan.download_bytes).await);
    }
    if plan.upload_bytes > 0 {
        results.push(upload(client, &plan.url, plan.upload_bytes).await);
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

pub async fn download(client: &reqwest::Client, base: &str, bytes: u64) -> SpeedTest {
    let url = format!("{base}/speedtest/download?bytes={bytes}");
    let started = Instant::now();
    let mut got: u64 = 0;
    let outcome: Result<(), String> = async {
        let mut response = client
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| error_chain(&e))?;
        while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
            got += chunk.len() as u64;
        }
        if got != bytes {
            return Err(format!("the server sent {got} bytes, not {bytes}"));
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

pub async fn upload(client: &reqwest::Client, base: &str, bytes: u64) -> SpeedTest {
    let url = format!("{base}/speedtest/upload");
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
        let response = client
            .post(&url)
            .header(reqwest::header::CONTENT_LENGTH, bytes)
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| error_chain(&e))?;
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
