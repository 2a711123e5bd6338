//! The `[cacti]` and `[poi]` sections of `collector.toml`, and their checks. Errors name the
//! field, as `cacti.sources[0].timezone`.

use super::client::{CactiSource, RowLabels};
use crate::domain::maxout::MaxoutRule;
use crate::poi::{ReferenceLayout, TitleParser};
use netwarden_shared::config::{self, ConfigError};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CactiConfig {
    /// How often every source is scraped.
    pub interval_secs: u64,
    pub sources: Vec<CactiSourceConfig>,
    /// Title patterns tried before the shipped ones: `[[cacti.titles]] name = "...",
    /// pattern = "..."` with named groups poi, name, id_kind, id, cap_value, cap_unit, tc, dir.
    pub titles: Vec<TitlePatternConfig>,
    pub maxout: MaxoutConfig,
}

impl Default for CactiConfig {
    fn default() -> Self {
        CactiConfig {
            interval_secs: 300,
            sources: Vec::new(),
            titles: Vec::new(),
            maxout: MaxoutConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TitlePatternConfig {
    pub name: String,
    pub pattern: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaxoutConfig {
    /// Utilisation (% of capacity) at which a sample counts as maxed out.
    pub threshold_pct: f64,
    /// Consecutive samples at or over the threshold that make a maxout.
    pub consecutive: u32,
}

impl Default for MaxoutConfig {
    fn default() -> Self {
        let rule = MaxoutRule::POI;
        MaxoutConfig {
            threshold_pct: rule.threshold_pct(),
            consecutive: rule.consecutive,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CactiSourceConfig {
    /// A short name: it keys the stored graphs, so keep it stable.
    pub name: String,
    /// The Cacti base URL, e.g. `https://cacti.example.net/cacti`.
    pub url: String,
    pub username: String,
    /// The password itself, or (better) `password_file` or `password_env`.
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// The Cacti server's time zone (IANA name): export dates are in it.
    pub timezone: String,
    /// Graph ids to fetch.
    pub graphs: Vec<u64>,
    /// A regex: also fetch every graph on Cacti's graph list whose title matches.
    pub discover: Option<String>,
    pub concurrency: usize,
    pub timeout_secs: u64,
    pub retries: u32,
    pub backoff_ms: u64,
    pub window_hours: u64,
    /// Legends of the inbound and outbound columns, tried in order (case ignored).
    pub in_columns: Vec<String>,
    pub out_columns: Vec<String>,
    /// How the server dates export rows: `cacti` (Cacti 1.x: one step after the interval's
    /// end) or `interval-end`.
    pub row_labels: RowLabels,
}

impl Default for CactiSourceConfig {
    fn default() -> Self {
        CactiSourceConfig {
            name: String::new(),
            url: String::new(),
            username: String::new(),
            password: None,
            password_file: None,
            password_env: None,
            timezone: "UTC".into(),
            graphs: Vec::new(),
            discover: None,
            concurrency: 4,
            timeout_secs: 30,
            retries: 2,
            backoff_ms: 1000,
            window_hours: 12,
            in_columns: vec!["Inbound".into(), "In".into(), "Traffic In".into()],
            out_columns: vec!["Outbound".into(), "Out".into(), "Traffic Out".into()],
            row_labels: RowLabels::Cacti,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoiConfig {
    /// The reference workbook (.xlsx), joined on POI code; reloaded when it changes.
    pub reference: Option<PathBuf>,
    /// Its sheet and header names.
    pub columns: ReferenceLayout,
}

/// One checked source.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub client: CactiSource,
    pub discover: Option<Regex>,
    pub in_columns: Vec<String>,
    pub out_columns: Vec<String>,
}

/// The checked scraper settings; `None` in [`crate::config::Settings`] when no source is set.
#[derive(Debug, Clone)]
pub struct ScrapeSettings {
    pub interval: Duration,
    pub sources: Vec<SourceSettings>,
    pub titles: Vec<(String, String)>,
    pub rule: MaxoutRule,
    pub reference: Option<(PathBuf, ReferenceLayout)>,
}

impl ScrapeSettings {
    pub fn from_config(
        path: &Path,
        cacti: &CactiConfig,
        poi: &PoiConfig,
    ) -> Result<Option<Self>, ConfigError> {
        if cacti.sources.is_empty() {
            return Ok(None);
        }
        if !(10..=86_400).contains(&cacti.interval_secs) {
            return Err(ConfigError::invalid(
                path,
                "cacti.interval_secs",
                "must be between 10 and 86400",
            ));
        }
        let titles: Vec<(String, String)> = cacti
            .titles
            .iter()
            .map(|t| (t.name.clone(), t.pattern.clone()))
            .collect();
        TitleParser::new(&titles).map_err(|e| ConfigError::invalid(path, "cacti.titles", e))?;
        let threshold_pct = cacti.maxout.threshold_pct;
        if !(threshold_pct > 0.0 && threshold_pct <= 1000.0) {
            return Err(ConfigError::invalid(
                path,
                "cacti.maxout.threshold_pct",
                "must be above 0 and at most 1000",
            ));
        }
        let rule = MaxoutRule::percent(threshold_pct, cacti.maxout.consecutive);
        if rule.consecutive == 0 {
            return Err(ConfigError::invalid(
                path,
                "cacti.maxout.consecutive",
                "must be 1 or more",
            ));
        }
        let mut sources = Vec::new();
        for (i, raw) in cacti.sources.iter().enumerate() {
            if raw.window_hours.saturating_mul(3600) < cacti.interval_secs {
                return Err(ConfigError::invalid(
                    path,
                    &format!("cacti.sources[{i}].window_hours"),
                    format!(
                        "{} h is shorter than cacti.interval_secs ({} s): data between scrapes would never be fetched",
                        raw.window_hours, cacti.interval_secs
                    ),
                ));
            }
            let source = source_settings(path, &format!("cacti.sources[{i}]"), raw)?;
            if sources
                .iter()
                .any(|s: &SourceSettings| s.client.name == source.client.name)
            {
                return Err(ConfigError::invalid(
                    path,
                    &format!("cacti.sources[{i}].name"),
                    format!("{:?} is used by another source", source.client.name),
                ));
            }
            sources.push(source);
        }
        let reference = poi
            .reference
            .as_ref()
            .map(|file| (config::resolve(path, file), poi.columns.clone()));
        Ok(Some(ScrapeSettings {
            interval: Duration::from_secs(cacti.interval_secs),
            sources,
            titles,
            rule,
            reference,
        }))
    }
}

fn source_settings(
    path: &Path,
    field: &str,
    raw: &CactiSourceConfig,
) -> Result<SourceSettings, ConfigError> {
    let bad =
        |key: &str, message: String| ConfigError::invalid(path, &format!("{field}.{key}"), message);
    if raw.name.is_empty()
        || !raw
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(bad(
            "name",
            "needs a name of letters, digits, '-', '_' or '.'".into(),
        ));
    }
    let url = reqwest::Url::parse(&raw.url)
        .map_err(|e| bad("url", format!("{:?} is not a URL: {e}", raw.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("url", "must be http:// or https://".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "url",
            "must not carry a user or password (they would show in errors); use username and password_file".into(),
        ));
    }
    if raw.username.is_empty() {
        return Err(bad("username", "is required".into()));
    }
    let password = match (&raw.password, &raw.password_file, &raw.password_env) {
        (Some(p), None, None) => p.clone(),
        (None, Some(file), None) => {
            let file = config::resolve(path, file);
            std::fs::read_to_string(&file)
                .map_err(|e| bad("password_file", format!("{}: {e}", file.display())))?
                .trim_end_matches(['\r', '\n'])
                .to_string()
        }
        (None, None, Some(var)) => std::env::var(var)
            .map_err(|_| bad("password_env", format!("the variable {var} is not set")))?,
        (None, None, None) => {
            return Err(bad(
                "password",
                "set one of password, password_file or password_env".into(),
            ))
        }
        _ => {
            return Err(bad(
                "password",
                "set only one of password, password_file or password_env".into(),
            ))
        }
    };
    let timezone = raw.timezone.parse::<chrono_tz::Tz>().map_err(|_| {
        bad(
            "timezone",
            format!(
                "{:?} is not a time zone like Australia/Sydney",
                raw.timezone
            ),
        )
    })?;
    let discover = raw
        .discover
        .as_ref()
        .map(|p| {
            RegexBuilder::new(p)
                .case_insensitive(true)
                .size_limit(1 << 22)
                .build()
                .map_err(|e| bad("discover", e.to_string()))
        })
        .transpose()?;
    if raw.graphs.is_empty() && discover.is_none() {
        return Err(bad(
            "graphs",
            "list graph ids, or set discover to a title pattern".into(),
        ));
    }
    if !(1..=64).contains(&raw.concurrency) {
        return Err(bad("concurrency", "must be between 1 and 64".into()));
    }
    if !(1..=600).contains(&raw.timeout_secs) {
        return Err(bad("timeout_secs", "must be between 1 and 600".into()));
    }
    if raw.retries > 10 {
        return Err(bad("retries", "must be at most 10".into()));
    }
    if !(1..=168).contains(&raw.window_hours) {
        return Err(bad("window_hours", "must be between 1 and 168".into()));
    }
    if !(1..=60_000).contains(&raw.backoff_ms) {
        return Err(bad("backoff_ms", "must be between 1 and 60000".into()));
    }
    if raw.in_columns.is_empty() || raw.out_columns.is_empty() {
        return Err(bad(
            "in_columns",
            "in_columns and out_columns need a legend each".into(),
        ));
    }
    Ok(SourceSettings {
        client: CactiSource {
            name: raw.name.clone(),
            base_url: raw.url.clone(),
            username: raw.username.clone(),
            password,
            timezone,
            graphs: raw.graphs.clone(),
            concurrency: raw.concurrency,
            timeout: Duration::from_secs(raw.timeout_secs),
            retries: raw.retries,
            backoff: Duration::from_millis(raw.backoff_ms),
            window: Duration::from_secs(raw.window_hours * 3600),
            row_labels: raw.row_labels,
        },
        discover,
        in_columns: raw.in_columns.clone(),
        out_columns: raw.out_columns.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> CactiSourceConfig {
        CactiSourceConfig {
            name: "nbn".into(),
            url: "https://cacti.example.net/cacti".into(),
            username: "noc".into(),
            password: Some("secret".into()),
            graphs: vec![1],
            ..CactiSourceConfig::default()
        }
    }

    fn check(cacti: CactiConfig) -> Result<Option<ScrapeSettings>, String> {
        ScrapeSettings::from_config(Path::new("/etc/c.toml"), &cacti, &PoiConfig::default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn no_source_means_no_scraper() {
        assert!(check(CactiConfig::default()).unwrap().is_none());
    }

    #[test]
    fn a_good_source_is_accepted_with_its_defaults() {
        let settings = check(CactiConfig {
            sources: vec![source()],
            ..CactiConfig::default()
        })
        .unwrap()
        .unwrap();
        assert_eq!(settings.interval, Duration::from_secs(300));
        assert_eq!(
            settings.sources[0].client.window,
            Duration::from_secs(43_200)
        );
        assert_eq!(settings.rule, MaxoutRule::POI);
    }

    #[test]
    fn errors_name_the_field() {
        let cases: Vec<(CactiSourceConfig, &str)> = vec![
            (
                CactiSourceConfig {
                    timezone: "Mars/Olympus".into(),
                    ..source()
                },
                "cacti.sources[0].timezone",
            ),
            (
                CactiSourceConfig {
                    password: None,
                    ..source()
                },
                "cacti.sources[0].password",
            ),
            (
                CactiSourceConfig {
                    password_env: Some("X".into()),
                    ..source()
                },
                "set only one",
            ),
            (
                CactiSourceConfig {
                    graphs: vec![],
                    ..source()
                },
                "cacti.sources[0].graphs",
            ),
            (
                CactiSourceConfig {
                    discover: Some("(".into()),
                    ..source()
                },
                "cacti.sources[0].discover",
            ),
            (
                CactiSourceConfig {
                    url: "ftp://x".into(),
                    ..source()
                },
                "cacti.sources[0].url",
            ),
            (
                CactiSourceConfig {
                    url: "https://noc:secret@cacti.example.net/".into(),
                    ..source()
                },
                "must not carry a user",
            ),
            (
                CactiSourceConfig {
                    backoff_ms: 0,
                    ..source()
                },
                "cacti.sources[0].backoff_ms",
            ),
        ];
        for (bad, expected) in cases {
            let err = check(CactiConfig {
                sources: vec![bad],
                ..CactiConfig::default()
            })
            .unwrap_err();
            assert!(err.contains(expected), "{err} should contain {expected}");
            assert!(!err.contains("secret"), "{err} leaks the password");
        }
        let err = check(CactiConfig {
            sources: vec![source()],
            titles: vec![TitlePatternConfig {
                name: "mine".into(),
                pattern: "^(?P<nope>x)$".into(),
            }],
            ..CactiConfig::default()
        })
        .unwrap_err();
        assert!(
            err.contains("cacti.titles") && err.contains("mine"),
            "{err}"
        );
        let err = check(CactiConfig {
            sources: vec![source(), source()],
            ..CactiConfig::default()
        })
        .unwrap_err();
        assert!(err.contains("cacti.sources[1].name"), "{err}");
    }
}
