//! Telegram Bot API `sendMessage` (HTML parse mode). Keeps to Telegram's limits itself (at
//! most one message per second per chat and 30 per second per bot, as sliding windows) and
//! honours a 429's `retry_after`. The base URL is configurable (a test server, a proxy). The
//! bot token is part of every request path, so it never reaches a log: errors drop the URL.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Telegram's limit, in characters after entity parsing.
pub const MAX_MESSAGE_CHARS: usize = 4096;
/// A wait for the rate limits shorter than this is slept; a longer one defers the message.
const MAX_INLINE_WAIT: Duration = Duration::from_millis(1500);

/// `[alerting.telegram]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    pub api_url: String,
    pub bot_token_file: Option<PathBuf>,
    pub bot_token_env: Option<String>,
    pub per_chat_per_sec: u32,
    pub global_per_sec: u32,
    pub timeout_secs: u64,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            api_url: "https://api.telegram.org".into(),
            bot_token_file: None,
            bot_token_env: None,
            per_chat_per_sec: 1,
            global_per_sec: 30,
            timeout_secs: 10,
        }
    }
}

/// The checked settings; `Debug` leaves the token out.
#[derive(Clone)]
pub struct TelegramSettings {
    pub api_url: String,
    token: String,
    pub per_chat_per_sec: u32,
    pub global_per_sec: u32,
    pub timeout: Duration,
}

impl std::fmt::Debug for TelegramSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramSettings")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

impl TelegramSettings {
    pub fn from_config(config_path: &Path, raw: &TelegramConfig) -> Result<Self, (String, String)> {
        let bad = |field: &str, message: String| (format!("alerting.telegram.{field}"), message);
        let url = reqwest::Url::parse(&raw.api_url)
            .map_err(|e| bad("api_url", format!("{:?}: {e}", raw.api_url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("api_url", "must be an http or https URL".into()));
        }
        let token = match (&raw.bot_token_file, &raw.bot_token_env) {
            (Some(file), None) => {
                let file = netwarden_shared::config::resolve(config_path, file);
                std::fs::read_to_string(&file)
                    .map_err(|e| bad("bot_token_file", format!("{}: {e}", file.display())))?
                    .trim()
                    .to_string()
            }
            (None, Some(var)) => std::env::var(var)
                .map_err(|_| bad("bot_token_env", format!("the variable {var} is not set")))?
                .trim()
                .to_string(),
            (Some(_), Some(_)) => {
                return Err(bad(
                    "bot_token_file",
                    "set bot_token_file or bot_token_env, not both".into(),
                ))
            }
            (None, None) => {
                return Err(bad(
                    "bot_token_file",
                    "set bot_token_file or bot_token_env".into(),
                ))
            }
        };
        let valid = token.split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !secret.is_empty()
        });
        if !valid {
            // Never echo the token itself.
            return Err(bad(
                "bot_token_file",
                "the bot token must look like <digits>:<secret>".into(),
            ));
        }
        if raw.per_chat_per_sec == 0 || raw.global_per_sec == 0 {
            return Err(bad("per_chat_per_sec", "rates must be at least 1".into()));
        }
        if !(1..=120).contains(&raw.timeout_secs) {
            return Err(bad("timeout_secs", "must be between 1 and 120".into()));
        }
        Ok(TelegramSettings {
            api_url: raw.api_url.trim_end_matches('/').to_string(),
            token,
            per_chat_per_sec: raw.per_chat_per_sec,
            global_per_sec: raw.global_per_sec,
            timeout: Duration::from_secs(raw.timeout_secs),
        })
    }
}

/// At most `max` events in any `window`.
#[derive(Debug)]
struct SlidingWindow {
    max: usize,
    window: Duration,
    times: VecDeque<Instant>,
}

impl SlidingWindow {
    fn new(max: u32, window: Duration) -> Self {
        SlidingWindow {
            max: max.max(1) as usize,
            window,
            times: VecDeque::new(),
        }
    }

    /// The earliest time at or after `now` an event may happen.
    fn ready_at(&mut self, now: Instant) -> Instant {
        while self.times.front().is_some_and(|t| *t + self.window <= now) {
            self.times.pop_front();
        }
        if self.times.len() < self.max {
            now
        } else {
            self.times[self.times.len() - self.max] + self.window
        }
    }

    fn record(&mut self, at: Instant) {
        let position = self.times.partition_point(|t| *t <= at);
        self.times.insert(position, at);
    }
}

struct Limits {
    global: SlidingWindow,
    chats: HashMap<String, SlidingWindow>,
    per_chat: u32,
}

/// How one send went.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Sent,
    /// Not sent: the rate limits (ours, or Telegram's 429) say wait this long. Not a failure.
    Defer(Duration),
    /// Worth retrying (network, 5xx).
    Transient(String),
    /// Not worth retrying (bad chat, bad token, bad markup).
    Permanent(String),
}

pub struct Telegram {
    client: reqwest::Client,
    send_url: String,
    /// Blanked out of what the server answers.
    token: String,
    limits: Mutex<Limits>,
}

#[derive(Deserialize)]
struct ApiAnswer {
    ok: bool,
    description: Option<String>,
    parameters: Option<ApiParameters>,
}

#[derive(Deserialize)]
struct ApiParameters {
    retry_after: Option<u64>,
}

impl Telegram {
    pub fn new(settings: &TelegramSettings) -> Result<Telegram, String> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Telegram {
            client,
            send_url: format!("{}/bot{}/sendMessage", settings.api_url, settings.token),
            token: settings.token.clone(),
            limits: Mutex::new(Limits {
                global: SlidingWindow::new(settings.global_per_sec, Duration::from_secs(1)),
                chats: HashMap::new(),
                per_chat: settings.per_chat_per_sec,
            }),
        })
    }

    /// Reserves a slot for `chat`: `Ok(wait)` to sleep before sending, `Err(wait)` when the
    /// wait is long enough that the message should step aside.
    fn reserve(&self, chat: &str) -> Result<Duration, Duration> {
        let now = Instant::now();
        let mut limits = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        let per_chat = limits.per_chat;
        let chat_ready = limits
            .chats
            .entry(chat.to_string())
            .or_insert_with(|| SlidingWindow::new(per_chat, Duration::from_secs(1)))
            .ready_at(now);
        let ready = chat_ready.max(limits.global.ready_at(now));
        let wait = ready - now;
        if wait > MAX_INLINE_WAIT {
            return Err(wait);
        }
        limits.global.record(ready);
        if let Some(window) = limits.chats.get_mut(chat) {
            window.record(ready);
        }
        Ok(wait)
    }

    /// Sends `parts` (each within Telegram's limit) to `chat`, in order.
    pub async fn send(&self, chat: &str, parts: &[String]) -> Delivery {
        for part in parts {
            match self.send_one(chat, part).await {
                Delivery::Sent => {}
                other => return other,
            }
        }
        Delivery::Sent
    }

    async fn send_one(&self, chat: &str, html: &str) -> Delivery {
        match self.reserve(chat) {
            Ok(wait) => tokio::time::sleep(wait).await,
            Err(wait) => return Delivery::Defer(wait),
        }
        let chat_id = match chat.parse::<i64>() {
            Ok(id) => serde_json::json!(id),
            Err(_) => serde_json::json!(chat),
        };
        let body = serde_json::json!({
            "chat_id": chat_id,
            "text": html,
            "parse_mode": "HTML",
            "link_preview_options": { "is_disabled": true },
        });
        let response = match self.client.post(&self.send_url).json(&body).send().await {
            Ok(r) => r,
            Err(e) => return Delivery::Transient(e.without_url().to_string()),
        };
        let status = response.status();
        let answer: Option<ApiAnswer> = response.json().await.ok();
        // The server's words, without the bot token should it have echoed it.
        let description = answer
            .as_ref()
            .and_then(|a| a.description.as_deref())
            .map(|d| netwarden_shared::redact(d, &[self.token.as_str()]))
            .unwrap_or_else(|| format!("HTTP {status}"));
        if status.is_success() && answer.as_ref().is_some_and(|a| a.ok) {
            return Delivery::Sent;
        }
        if status.as_u16() == 429 {
            let after = answer
                .and_then(|a| a.parameters)
                .and_then(|p| p.retry_after)
                .unwrap_or(1)
                .clamp(1, 3600);
            return Delivery::Defer(Duration::from_secs(after));
        }
        if status.is_server_error() {
            Delivery::Transient(description)
        } else {
            Delivery::Permanent(description)
        }
    }
}

/// Escapes text for Telegram's HTML parse mode.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Splits an HTML message at line ends into parts of at most `limit` characters. Tags never
/// span lines in our messages, so every part is balanced; a single longer line is cut at a
/// character boundary that is not inside an entity (`&amp;`).
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut current_len = 0;
    for line in text.split('\n') {
        let mut line = line.to_string();
        loop {
            let len = line.chars().count();
            let extra = len + usize::from(current_len > 0);
            if current_len + extra <= limit {
                if current_len > 0 {
                    current.push('\n');
                }
                current.push_str(&line);
                current_len += extra;
                break;
            }
            if current_len > 0 {
                parts.push(std::mem::take(&mut current));
                current_len = 0;
                continue;
            }
            // One line longer than a whole message: cut it.
            let mut cut: usize = line
                .char_indices()
                .nth(limit)
                .map(|(i, _)| i)
                .unwrap_or(line.len());
            if let Some(amp) = line[..cut].rfind('&') {
                if !line[amp..cut].contains(';') {
                    cut = amp;
                }
            }
            let rest = line.split_off(cut.max(1));
            parts.push(line);
            line = rest;
        }
    }
    if current_len > 0 || parts.is_empty() {
        parts.push(current);
    }
    parts.retain(|p| !p.trim().is_empty());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_messages_stay_whole() {
        assert_eq!(split("<b>a</b>\nb", 4096), vec!["<b>a</b>\nb"]);
    }

    #[test]
    fn long_messages_split_at_lines_within_the_limit() {
        let line = "x".repeat(1000);
        let text = [line.as_str(); 9].join("\n");
        let parts = split(&text, MAX_MESSAGE_CHARS);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_MESSAGE_CHARS));
        assert_eq!(parts.join("\n"), text);
    }

    #[test]
    fn an_overlong_line_is_cut_outside_entities() {
        let line = format!("{}&amp;{}", "y".repeat(4093), "z".repeat(10));
        let parts = split(&line, MAX_MESSAGE_CHARS);
        assert_eq!(parts[0], "y".repeat(4093));
        assert!(parts[1].starts_with("&amp;"));
        assert_eq!(parts.concat(), line);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape("a<b & c>"), "a&lt;b &amp; c&gt;");
    }

    #[tokio::test(start_paused = true)]
    async fn sliding_windows_space_messages() {
        let mut w = SlidingWindow::new(1, Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(w.ready_at(t0), t0);
        w.record(t0);
        assert_eq!(w.ready_at(t0), t0 + Duration::from_secs(1));
        let mut g = SlidingWindow::new(30, Duration::from_secs(1));
        for _ in 0..30 {
            let at = g.ready_at(t0);
            assert_eq!(at, t0);
            g.record(at);
        }
        assert_eq!(g.ready_at(t0), t0 + Duration::from_secs(1));
    }

    #[test]
    fn bad_settings_are_named_and_never_show_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "hunter2-without-id\n").unwrap();
        let raw = TelegramConfig {
            bot_token_file: Some(file.clone()),
            ..TelegramConfig::default()
        };
        let (field, message) =
            TelegramSettings::from_config(&dir.path().join("c.toml"), &raw).unwrap_err();
        assert_eq!(field, "alerting.telegram.bot_token_file");
        assert!(!message.contains("hunter2"), "{message}");
        std::fs::write(&file, "123456:ABCdef\n").unwrap();
        let settings = TelegramSettings::from_config(&dir.path().join("c.toml"), &raw).unwrap();
        assert!(!format!("{settings:?}").contains("ABCdef"));
    }
}
