//! Cacti graph titles into POI facts. Titles are typed by people and follow no standard, so
//! this is an ordered list of named, anchored regexes: the operator's own (from config, tried
//! first) and the shipped defaults. A pattern "fully parses" a title when it matches all of it;
//! a title no pattern fully parses is kept raw for the operator to see, never dropped.
//!
//! Named groups a pattern may use: `poi` (state digit + 3 letters, e.g. 2ABT), `name`,
//! `id_kind` + `id` (CVC/NNI/AVC + 12 digits), `cap_value` + `cap_unit` (1000Mbps, 1 G,
//! 2.5G, 500M), `tc` (traffic class), `dir` (in, out, inbound, outbound, rx, tx, up, down).

use regex::{Regex, RegexBuilder};

/// What a title said.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedTitle {
    /// The pattern that matched.
    pub pattern: String,
    pub poi_code: Option<String>,
    pub poi_name: Option<String>,
    /// `CVC000000123456`, normalised to upper case without separators.
    pub circuit_id: Option<String>,
    pub capacity_bps: Option<u64>,
    pub traffic_class: Option<String>,
    /// `in`, `out`, `up` or `down`.
    pub direction: Option<&'static str>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TitleError {
    #[error("title pattern {name:?}: {message}")]
    Pattern { name: String, message: String },
}

pub struct TitleParser {
    patterns: Vec<(String, Regex)>,
}

const GROUPS: &[&str] = &[
    "poi",
    "name",
    "id_kind",
    "id",
    "cap_value",
    "cap_unit",
    "tc",
    "dir",
];

// Building blocks of the shipped patterns.
const LEAD: &str = r"[\s\[(|\-]*";
const PREFIX: &str = r"(?:(?:traffic|poi|graph|cvc\s+utili[sz]ation|utili[sz]ation)\s*[-:|]?\s*)?";
const SEP: &str = r"[\s_\-|:,/()\[\]]+";
const POI: &str = r"(?P<poi>[1-7][a-z]{3})";
const NAME: &str = r"(?P<name>[a-z][a-z.'&]*(?:[\s_\-]+[a-z][a-z.'&]*)*?)";
const ID: &str = r"(?P<id_kind>cvc|nni|avc)[\s_-]?(?P<id>\d{12})";
const CAP: &str = r"(?P<cap_value>\d+(?:\.\d+)?)\s*(?P<cap_unit>[kmgt])(?:bps|b/s|bit/s|bits|b)?";
const TC: &str = r"tc[\s_-]?(?P<tc>[0-9a-z]{1,3})";
const DIR: &str = r"(?P<dir>inbound|outbound|upstream|downstream|in|out|rx|tx|up|down)";

fn tail() -> String {
    format!(r"(?:{SEP}(?:{CAP}|{TC}|{DIR}))*[\s_\-|)\]]*")
}

/// The shipped patterns, most specific first.
pub fn default_patterns() -> Vec<(String, String)> {
    let t = tail();
    vec![
        (
            "poi-name-id".into(),
            format!(r"^{LEAD}{PREFIX}{POI}{SEP}{NAME}{SEP}{ID}{t}$"),
        ),
        (
            "id-poi-name".into(),
            format!(r"^{LEAD}{PREFIX}{ID}{SEP}{POI}{SEP}{NAME}{t}$"),
        ),
        (
            "name-poi-id".into(),
            format!(r"^{LEAD}{PREFIX}{NAME}{SEP}{POI}{SEP}{ID}{t}$"),
        ),
        (
            "poi-id".into(),
            format!(r"^{LEAD}{PREFIX}{POI}{SEP}{ID}{t}$"),
        ),
        (
            "poi-name".into(),
            format!(r"^{LEAD}{PREFIX}{POI}{SEP}{NAME}{t}$"),
        ),
    ]
}

impl TitleParser {
    /// The operator's `(name, regex)` patterns first, then the defaults. Each must compile and
    /// use at least the `poi` group or an `id`; errors name the pattern.
    pub fn new(operator: &[(String, String)]) -> Result<Self, TitleError> {
        let mut patterns = Vec::new();
        for (name, source) in operator.iter().chain(default_patterns().iter()) {
            let fail = |message: String| TitleError::Pattern {
                name: name.clone(),
                message,
            };
            let regex = RegexBuilder::new(source)
                .case_insensitive(true)
                .size_limit(1 << 22)
                .build()
                .map_err(|e| fail(e.to_string()))?;
            let names: Vec<&str> = regex.capture_names().flatten().collect();
            if let Some(unknown) = names.iter().find(|n| !GROUPS.contains(n)) {
                return Err(fail(format!(
                    "unknown group {unknown:?}; use {}",
                    GROUPS.join(", ")
                )));
            }
            if !names.contains(&"poi") && !names.contains(&"id") {
                return Err(fail("needs a (?P<poi>...) or (?P<id>...) group".into()));
            }
            patterns.push((name.clone(), regex));
        }
        Ok(TitleParser { patterns })
    }

    /// The first pattern that matches the whole title, or `None` (keep the title raw).
    pub fn parse(&self, title: &str) -> Option<ParsedTitle> {
        // Titles are short; a huge one is not a title.
        if title.len() > 512 {
            return None;
        }
        self.patterns.iter().find_map(|(name, regex)| {
            let caps = regex.captures(title)?;
            let text = |g: &str| caps.name(g).map(|m| m.as_str().trim().to_string());
            let capacity_bps = match (text("cap_value"), text("cap_unit")) {
                (Some(value), Some(unit)) => Some(capacity(&value, &unit)?),
                _ => None,
            };
            Some(ParsedTitle {
                pattern: name.clone(),
                poi_code: text("poi").map(|p| p.to_ascii_uppercase()),
                poi_name: text("name")
                    .map(|n| tidy_name(&n))
                    .filter(|n| !n.is_empty()),
                circuit_id: text("id").map(|id| {
                    let kind = text("id_kind").unwrap_or_default().to_ascii_uppercase();
                    format!("{kind}{id}")
                }),
                capacity_bps,
                traffic_class: text("tc").map(|t| format!("TC-{}", t.to_ascii_uppercase())),
                direction: text("dir").and_then(|d| direction(&d)),
            })
        })
    }
}

/// A capacity as people write it (`10G`, `1000 Mbps`, `2.5 Gbit/s`, or a bare number of
/// bits/s) in bits/s.
pub fn parse_capacity(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, rest) = text.split_at(split);
    let rest = rest.trim();
    if rest.is_empty() {
        return capacity(number, "b");
    }
    let unit = rest.get(..1)?;
    let suffix = rest[1..].to_ascii_lowercase();
    if !["", "bps", "b/s", "bit/s", "bits", "b"].contains(&suffix.as_str()) {
        return None;
    }
    capacity(number, unit)
}

/// `1000` + `M` -> 1,000,000,000 bits/s. `None` for absurd values.
fn capacity(value: &str, unit: &str) -> Option<u64> {
    let value: f64 = value.parse().ok()?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "b" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        _ => return None,
    };
    let bps = (value * scale).round();
    (bps > 0.0 && bps <= 1e15).then_some(bps as u64)
}

fn direction(word: &str) -> Option<&'static str> {
    Some(match word.to_ascii_lowercase().as_str() {
        "in" | "inbound" | "rx" => "in",
        "out" | "outbound" | "tx" => "out",
        "up" | "upstream" => "up",
        "down" | "downstream" => "down",
        _ => return None,
    })
}

/// `albert_park` / `Albert   Park` -> `Albert Park` (words capitalised as given, or title
/// case when the title was all one case).
fn tidy_name(name: &str) -> String {
    let words: Vec<&str> = name
        .split(|c: char| c == '_' || c == '-' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    let one_case = name == name.to_ascii_lowercase() || name == name.to_ascii_uppercase();
    words
        .iter()
        .map(|w| {
            if one_case {
                let lower = w.to_ascii_lowercase();
                let mut chars = lower.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            } else {
                (*w).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
