//! The Cacti HTTP client: logs in (form POST with `action=login` and the page's
//! `__csrf_magic` token; the session lives in a cookie), downloads graph exports from
//! `graph_xport.php`, and logs in again when Cacti answers with its login page because the
//! session expired. An answer is told apart by its content, never its status: an export
//! starts with `"Title"` (after a BOM); Cacti 1.2's login page is 14 kB with its form past
//! the first 4 kB, and comes back as `200 text/html`. Retries with backoff on server errors
//! and timeouts; one failing graph never stops the others. The password is never logged or
//! put in an error.
//!
//! Rows come back stamped at the end of the interval they average: Cacti 1.2 labels the row
//! that averages `[T - 2 step, T - step]` with `T` (it numbers rows from 1 past rrdtool's
//! first timestamp), so by default each label moves back one step ([`RowLabels`]). Rows that
//! would end after the requested end (the interval still being written) are dropped.

use super::export::{ExportError, ExportHeader, ExportReader, Limits};
use chrono_tz::Tz;
use futures::stream::{self, StreamExt};
use netwarden_shared::tls::error_chain;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// An export is a few hundred rows; anything near this is not one.
pub const MAX_EXPORT_BYTES: usize = 32 << 20;

#[derive(Clone)]
pub struct CactiSource {
    pub name: String,
    /// e.g. `https://cacti.example.net/cacti` (no trailing slash needed).
    pub base_url: String,
    pub username: String,
    pub password: String,
    pub timezone: Tz,
    pub graphs: Vec<u64>,
    pub concurrency: usize,
    pub timeout: Duration,
    /// Further attempts after a server error or timeout.
    pub retries: u32,
    pub backoff: Duration,
    /// How far back each export reaches (Cacti's `graph_start`): 12 hours by default.
    pub window: Duration,
    /// How the server labels export rows.
    pub row_labels: RowLabels,
}

/// How a Cacti server dates the rows of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowLabels {
    /// Cacti 1.x (`graph_xport.php`): a row is labelled one step after the end of the
    /// interval it averages.
    #[default]
    Cacti,
    /// The label is the interval's end (a patched or other exporter).
    IntervalEnd,
}

impl RowLabels {
    /// Steps from a row's label back to the end of its interval.
    fn steps_late(self) -> i64 {
        match self {
            RowLabels::Cacti => 1,
            RowLabels::IntervalEnd => 0,
        }
    }
}

impl std::fmt::Debug for CactiSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CactiSource")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("graphs", &self.graphs)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CactiError {
    #[error("{source_name}: {message}")]
    Http {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: Cacti refused the login of user {user:?} (check the user name and password)")]
    Login { source_name: String, user: String },
    #[error("{source_name}: graph {graph}: {message}")]
    Graph {
        source_name: String,
        graph: u64,
        message: String,
    },
    #[error("{source_name}: graph {graph}: {error}")]
    Export {
        source_name: String,
        graph: u64,
        error: ExportError,
    },
}

/// One graph's export, parsed.
#[derive(Debug, Clone)]
pub struct GraphExport {
    pub graph: u64,
    pub header: ExportHeader,
    /// (the end of the interval the row averages, Unix seconds; one value or gap per column
    /// of `header.columns`), in the export's order.
    pub rows: Vec<(i64, Vec<Option<f64>>)>,
    /// Rows left out because their interval ends after the requested end (not yet complete).
    pub incomplete: u32,
}

/// What one scrape did.
#[derive(Debug, Default)]
pub struct ScrapeReport {
    pub fetched: Vec<GraphExport>,
    pub failed: Vec<(u64, String)>,
}

pub struct CactiClient {
    source: CactiSource,
    session: tokio::sync::Mutex<Session>,
    /// Logins posted, for the logs and tests.
    logins: AtomicU64,
}

/// A login's own HTTP client and cookie jar. Cacti answers a request on a dead session with
/// its login page *and a new anonymous session cookie*: with one jar for all, a request in
/// flight could overwrite a fresh login's cookie with such an answer. Each login gets a jar of
/// its own, and answers to requests sent under an older one never reach it.
struct Session {
    /// Bumped on every successful login, so concurrent requests that all find the session
    /// expired log in once, not once each.
    generation: u64,
    http: reqwest::Client,
}

enum Fetched {
    Export(bytes::Bytes),
    LoginPage,
}

/// What a body Cacti sent is, by its content.
#[derive(Debug, PartialEq)]
enum Body {
    Export,
    LoginPage,
    Other,
}

/// An export starts with `"Title"` (Cacti 0.8: `"Title:"`), after an optional BOM and
/// blank space; a login page carries the login form somewhere (where depends on the theme).
fn classify(body: &[u8]) -> Body {
    let text = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let head = &text[start..text.len().min(start + 8)];
    if head.len() >= 7 && head[..7].eq_ignore_ascii_case(b"\"title\"")
        || head.len() >= 8 && head[..8].eq_ignore_ascii_case(b"\"title:\"")
    {
        return Body::Export;
    }
    if memchr::memmem::find(body, b"login_password").is_some()
        || memchr::memmem::find(body, b"login_username").is_some()
    {
        return Body::LoginPage;
    }
    Body::Other
}

/// The first bytes of a body that is not an export, printable, for an error message.
fn preview(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(&body[..body.len().min(80)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.is_empty() {
        "an empty body".into()
    } else {
        format!("{:?}", text.trim())
    }
}

impl CactiClient {
    pub fn source(&self) -> &CactiSource {
        &self.source
    }

    pub fn new(source: CactiSource) -> Result<Self, CactiError> {
        let http = http_client(&source)?;
        Ok(CactiClient {
            source,
            session: tokio::sync::Mutex::new(Session {
                generation: 0,
                http,
            }),
            logins: AtomicU64::new(0),
        })
    }

    /// The current session's client and generation.
    async fn current(&self) -> (u64, reqwest::Client) {
        let session = self.session.lock().await;
        (session.generation, session.http.clone())
    }

    /// Logins this client has posted.
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.source.base_url.trim_end_matches('/'))
    }

    fn http_error(&self, message: impl std::fmt::Display) -> CactiError {
        CactiError::Http {
            source_name: self.source.name.clone(),
            message: message.to_string(),
        }
    }

    /// A page's HTML (any HTTP error status is an error).
    async fn get_page(
        &self,
        http: &reqwest::Client,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<String, CactiError> {
        http.get(self.url(path))
            .query(query)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| self.http_error(error_chain(&e)))?
            .text()
            .await
            .map_err(|e| self.http_error(error_chain(&e)))
    }

    /// Makes sure there is a logged-in session: the current one if Cacti still knows it,
    /// else a new login.
    pub async fn login(&self) -> Result<(), CactiError> {
        let mut session = self.session.lock().await;
        let page = self.get_page(&session.http, "index.php", &[]).await?;
        if !is_login_page(&page) {
            return Ok(()); // the cookie still holds a session
        }
        self.new_session(&mut session).await
    }

    /// Logs in afresh, with a new cookie jar: fetch the login page for its CSRF token and
    /// cookie, post the form, and check that Cacti did not show the login form again.
    async fn new_session(&self, session: &mut Session) -> Result<(), CactiError> {
        let http = http_client(&self.source)?;
        // csrf-magic answers 403 ("CSRF Timeout") to a token that went stale between the page
        // and the post; a fresh page carries a fresh one, so a 403 gets one more try.
        let mut tries_left = 2;
        loop {
            tries_left -= 1;
            let page = self.get_page(&http, "index.php", &[]).await?;
            if !is_login_page(&page) {
                break; // logged in (a single sign-on in front of Cacti, say)
            }
            let token = csrf_token(&page).unwrap_or_default();
            self.logins.fetch_add(1, Ordering::Relaxed);
            let form = [
                ("action", "login"),
                ("login_username", self.source.username.as_str()),
                ("login_password", self.source.password.as_str()),
                ("__csrf_magic", token.as_str()),
            ];
            let response = http
                .post(self.url("index.php"))
                .form(&form)
                .send()
                .await
                .map_err(|e| self.http_error(error_chain(&e)))?;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            if status.is_success() && !is_login_page(&body) {
                break;
            }
            // Cacti answers a refused password with its form and "Access Denied"; a refused
            // CSRF token with a redirect to a fresh, anonymous form: that one gets a retry.
            if status.is_success() && (body.contains("Access Denied") || tries_left == 0) {
                return Err(CactiError::Login {
                    source_name: self.source.name.clone(),
                    user: self.source.username.clone(),
                });
            }
            if status.is_success() {
                continue;
            }
            if status != reqwest::StatusCode::FORBIDDEN || tries_left == 0 {
                return Err(self.http_error(format!("login: HTTP {status}")));
            }
        }
        tracing::debug!(source = %self.source.name, "logged in to Cacti");
        session.http = http;
        session.generation += 1;
        Ok(())
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
        graph: u64,
        start: i64,
        end: i64,
    ) -> Result<Fetched, CactiError> {
        let fail = |message: String| CactiError::Graph {
            source_name: self.source.name.clone(),
            graph,
            message,
        };
        let mut response = http
            .get(self.url("graph_xport.php"))
            .query(&[
                ("local_graph_id", graph.to_string()),
                ("rra_id", "0".into()),
                ("graph_start", start.to_string()),
                ("graph_end", end.to_string()),
            ])
            .send()
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(format!("HTTP {status}")));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_EXPORT_BYTES as u64)
        {
            return Err(fail(format!("an export over {MAX_EXPORT_BYTES} bytes")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(error_chain(&e)))? {
            if body.len() + chunk.len() > MAX_EXPORT_BYTES {
                return Err(fail(format!("an export over {MAX_EXPORT_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        match classify(&body) {
            Body::Export => Ok(Fetched::Export(body.into())),
            Body::LoginPage => Ok(Fetched::LoginPage),
            Body::Other => Err(fail(format!(
                "Cacti sent {}, not an export (it starts with \"Title\")",
                preview(&body)
            ))),
        }
    }

    /// One graph's export for `[start, end]` (Unix seconds), logging in again once if the
    /// session has expired, and retrying server errors and timeouts with backoff.
    pub async fn export(
        &self,
        graph: u64,
        start: i64,
        end: i64,
    ) -> Result<GraphExport, CactiError> {
        let mut attempt = 0;
        // A session can expire again while this request waits its turn (other requests use
        // it up, or Cacti is slow): log in again a few times, never forever.
        let mut relogins = 0;
        loop {
            let (generation, http) = self.current().await;
            match self.fetch(&http, graph, start, end).await {
                Ok(Fetched::Export(body)) => return self.parse(graph, &body, end),
                Ok(Fetched::LoginPage) if relogins < MAX_RELOGINS => {
                    relogins += 1;
                    let mut session = self.session.lock().await;
                    if session.generation == generation {
                        self.new_session(&mut session).await?;
                    }
                }
                Ok(Fetched::LoginPage) => {
                    return Err(CactiError::Graph {
                        source_name: self.source.name.clone(),
                        graph,
                        message: format!(
                            "Cacti still asks to log in after {MAX_RELOGINS} fresh logins"
                        ),
                    })
                }
                Err(err) if attempt < self.source.retries => {
                    attempt += 1;
                    let wait = self.source.backoff * 2u32.saturating_pow(attempt - 1);
                    tracing::debug!(source = %self.source.name, graph, attempt, error = %err, "retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Parses an export, moving each row to the end of its interval and leaving out rows
    /// that end after `end`.
    fn parse(&self, graph: u64, body: &[u8], end: i64) -> Result<GraphExport, CactiError> {
        let wrap = |error| CactiError::Export {
            source_name: self.source.name.clone(),
            graph,
            error,
        };
        let mut reader =
            ExportReader::new(body, self.source.timezone, Limits::default()).map_err(wrap)?;
        let mut rows = Vec::new();
        while let Some(row) = reader.next_row().map_err(wrap)? {
            rows.push((row.at, row.values.to_vec()));
        }
        let header = reader.header().clone();
        let step = header
            .step_secs
            .map(i64::from)
            .or_else(|| rows.windows(2).map(|w| w[1].0 - w[0].0).find(|d| *d > 0))
            .unwrap_or(0);
        let late = step * self.source.row_labels.steps_late();
        let before = rows.len();
        rows.retain_mut(|(at, _)| {
            *at -= late;
            *at <= end
        });
        Ok(GraphExport {
            graph,
            header,
            incomplete: (before - rows.len()) as u32,
            rows,
        })
    }

    /// The graphs Cacti lists (`graph_view.php?action=list`, page by page, at most
    /// [`MAX_LIST_PAGES`]) whose title matches `pattern`: (id, title) in id order.
    pub async fn discover(&self, pattern: &regex::Regex) -> Result<Vec<(u64, String)>, CactiError> {
        self.login().await?;
        let (_, http) = self.current().await;
        let link = regex::Regex::new(r#"local_graph_id=(\d+)[^>]*>([^<]*)</a>"#)
            .map_err(|e| self.http_error(e))?;
        let mut found = std::collections::BTreeMap::new();
        for page in 1..=MAX_LIST_PAGES {
            let page = page.to_string();
            let body = self
                .get_page(
                    &http,
                    "graph_view.php",
                    &[("action", "list"), ("page", &page)],
                )
                .await?;
            if is_login_page(&body) {
                return Err(self.http_error("the graph list asks to log in"));
            }
            let before = found.len();
            for caps in link.captures_iter(&body) {
                if let Ok(id) = caps[1].parse::<u64>() {
                    found.entry(id).or_insert_with(|| unescape(caps[2].trim()));
                }
            }
            if found.len() == before {
                break; // a page with nothing new: past the last one
            }
        }
        Ok(found
            .into_iter()
            .filter(|(_, title)| pattern.is_match(title))
            .collect())
    }

    /// Logs in and fetches every configured graph's last `window`, `concurrency` at a time.
    pub async fn scrape(&self, now: i64) -> ScrapeReport {
        self.scrape_graphs(&self.source.graphs, now).await
    }

    /// Logs in and fetches these graphs' last `window`, `concurrency` at a time.
    pub async fn scrape_graphs(&self, graphs: &[u64], now: i64) -> ScrapeReport {
        let mut report = ScrapeReport::default();
        if let Err(err) = self.login().await {
            report.failed = graphs.iter().map(|g| (*g, err.to_string())).collect();
            return report;
        }
        let start = now - self.source.window.as_secs() as i64;
        let results: Vec<(u64, Result<GraphExport, CactiError>)> = stream::iter(graphs.to_vec())
            .map(|graph| async move { (graph, self.export(graph, start, now).await) })
            .buffer_unordered(self.source.concurrency.max(1))
            .collect()
            .await;
        for (graph, result) in results {
            match result {
                Ok(export) => report.fetched.push(export),
                Err(err) => report.failed.push((graph, err.to_string())),
            }
        }
        report.fetched.sort_by_key(|e| e.graph);
        report.failed.sort_by_key(|f| f.0);
        report
    }
}

/// A client with a cookie jar of its own (one per login: see [`Session`]).
fn http_client(source: &CactiSource) -> Result<reqwest::Client, CactiError> {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(source.timeout)
        .connect_timeout(source.timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| CactiError::Http {
            source_name: source.name.clone(),
            message: e.to_string(),
        })
}

/// Logins one export may ask for before it gives up (a session that keeps expiring).
pub const MAX_RELOGINS: u32 = 3;

/// Graph list pages read at most (at Cacti's default 30 a page, 3,000 graphs).
pub const MAX_LIST_PAGES: u32 = 100;

/// The HTML entities Cacti's pages use in titles.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#039;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

fn is_login_page(body: &str) -> bool {
    body.contains("login_password")
}

/// The value of the `__csrf_magic` hidden field.
fn csrf_token(page: &str) -> Option<String> {
    let at = page.find("__csrf_magic")?;
    let rest = &page[at..];
    let value = rest.find("value=")?;
    let rest = &rest[value + 6..];
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let rest = &rest[1..];
    let end = rest.find(quote)?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_read_from_either_quote_style() {
        let page = "<input type='hidden' name='__csrf_magic' value=\"sid:ab12,1700000000\" />";
        assert_eq!(csrf_token(page).as_deref(), Some("sid:ab12,1700000000"));
        let page = "<input name=\"__csrf_magic\" value='sid:cd34,1' type='hidden'>";
        assert_eq!(csrf_token(page).as_deref(), Some("sid:cd34,1"));
        assert_eq!(csrf_token("<form></form>"), None);
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let source = CactiSource {
            name: "nbn".into(),
            base_url: "http://cacti".into(),
            username: "noc".into(),
            password: "hunter2".into(),
            timezone: chrono_tz::UTC,
            graphs: vec![1],
            concurrency: 1,
            timeout: Duration::from_secs(1),
            retries: 0,
            backoff: Duration::from_millis(1),
            window: Duration::from_secs(43_200),
            row_labels: RowLabels::Cacti,
        };
        assert!(!format!("{source:?}").contains("hunter2"));
    }

    #[test]
    fn an_export_is_told_from_a_login_page_by_its_content() {
        assert_eq!(classify(b"\xef\xbb\xbf\"Title\",\"x\"\n"), Body::Export);
        assert_eq!(classify(b"\"Title:\",\"x\"\n"), Body::Export);
        assert_eq!(classify(b"\r\n\"title\",\"x\""), Body::Export);
        // Cacti 1.2's login page: its form sits past the first 4 kB.
        let mut page = b"<!DOCTYPE html><html><head>".to_vec();
        page.extend(std::iter::repeat_n(b' ', 9_000));
        page.extend_from_slice(b"<input type='password' name='login_password'>");
        assert_eq!(classify(&page), Body::LoginPage);
        assert_eq!(classify(b""), Body::Other);
        assert_eq!(classify(b"<html>GRAPH ACCESS DENIED</html>"), Body::Other);
        // An export whose title mentions the login field is still an export.
        assert_eq!(classify(b"\"Title\",\"login_password\""), Body::Export);
        assert_eq!(preview(b"<html>\n<body>"), "\"<html> <body>\"");
    }
}
