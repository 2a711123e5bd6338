//! Cacti graph titles into POI facts. Titles are typed by people and follow no standard: the
//! same CVC is `POI 2PAR Parramatta / CVC 3000 Mbps`, `NBN_3CBG_Coburg_CVC_1Gbps` or
//! `cvc 750mbps - nbn poi 4IPS ipswich`. So the built-in reader does not match a title whole;
//! it finds each part wherever it sits, in any order, case and separators:
//!
//! - the POI code: a state's postcode digit (0, 2-7) and three letters, as a word of its own;
//! - a CVC/NNI/AVC id: the kind and 12 digits (`CVC000077700011`, `nni-000011112222`);
//! - the capacity: a number, an optional space, a prefix k/M/G/T and nothing, `b`, `bps`,
//!   `bit/s`, `b/s` or `bits` (`1.2G`, `600 Mb/s`, `5 Gbit/s`, `CVC1000M`, `cap=10G`);
//! - direction words (upload/download, UL/DL, TX/RX, in/out, ...) and the traffic class (`TC-4`);
//! - the name: the words next to the code (after it, else before it), up to a keyword, a
//!   number or a strong separator (`/ | : , ( ) [ ] { }` or a spaced dash).
//!
//! Operator patterns (`[[cacti.titles]]`, anchored regexes with named groups) are tried first;
//! a title that names neither a POI code nor a CVC id is not a POI title.

use regex::{Regex, RegexBuilder};
use std::sync::OnceLock;

/// What a title said.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedTitle {
    /// The operator pattern that matched, or [`BUILT_IN`].
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

/// The name recorded for titles the built-in reader understood.
pub const BUILT_IN: &str = "built-in";

/// Titles longer than this are not titles (Cacti's own limit is 255 characters).
pub const MAX_TITLE_BYTES: usize = 512;

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

impl TitleParser {
    /// The operator's `(name, regex)` patterns, tried before the built-in reader. Each must
    /// compile and use at least the `poi` group or an `id`; errors name the pattern.
    pub fn new(operator: &[(String, String)]) -> Result<Self, TitleError> {
        let mut patterns = Vec::new();
        for (name, source) in operator {
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

    /// The first operator pattern that matches, else what the built-in reader finds; `None`
    /// when the title names neither a POI code nor a circuit id (not a POI title).
    pub fn parse(&self, title: &str) -> Option<ParsedTitle> {
        if title.len() > MAX_TITLE_BYTES {
            return None;
        }
        self.patterns
            .iter()
            .find_map(|(name, regex)| from_pattern(name, regex, title))
            .or_else(|| understand(title))
    }
}

fn from_pattern(name: &str, regex: &Regex, title: &str) -> Option<ParsedTitle> {
    let caps = regex.captures(title)?;
    let text = |g: &str| caps.name(g).map(|m| m.as_str().trim().to_string());
    let capacity_bps = match (text("cap_value"), text("cap_unit")) {
        (Some(value), Some(unit)) => Some(capacity(&value, &unit)?),
        _ => None,
    };
    let poi_code = text("poi").map(|p| p.to_ascii_uppercase());
    let circuit_id = text("id").map(|id| {
        let kind = text("id_kind").unwrap_or_default().to_ascii_uppercase();
        format!("{kind}{id}")
    });
    if poi_code.is_none() && circuit_id.is_none() {
        return None;
    }
    Some(ParsedTitle {
        pattern: name.to_string(),
        poi_code,
        poi_name: text("name")
            .map(|n| tidy_name(&n))
            .filter(|n| !n.is_empty()),
        circuit_id,
        capacity_bps,
        traffic_class: text("tc").map(|t| format!("TC-{}", t.to_ascii_uppercase())),
        direction: text("dir").and_then(|d| direction(&d)),
    })
}

/// A piece of a title: a run of word characters and the separator text before it.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    start: usize,
    end: usize,
    text: &'a str,
    /// The separator before this token splits a phrase (`/ | : , ( ) [ ] { } = ;`, a spaced
    /// dash, or the title's start).
    strong_before: bool,
}

/// What a token turned out to be.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Free,
    Taken,
}

/// Splits a title into word tokens. Word characters are letters and digits, and `.`, `'` or
/// `&` inside a word (`St. Marys`, `O'Connor`); everything else separates.
fn tokens(title: &str) -> Vec<Token<'_>> {
    let bytes = title.as_bytes();
    let is_word = |i: usize| -> bool {
        let c = bytes[i];
        if c.is_ascii_alphanumeric() || c >= 0x80 {
            return true;
        }
        // Joiners count inside a word: after a letter and before a letter or the end of a
        // run ("St." before a space).
        matches!(c, b'.' | b'\'' | b'&')
            && i > 0
            && bytes[i - 1].is_ascii_alphabetic()
            && bytes
                .get(i + 1)
                .is_none_or(|n| n.is_ascii_alphabetic() || *n == b' ')
    };
    let mut out = Vec::new();
    let mut i = 0;
    let mut sep_start = 0;
    while i < bytes.len() {
        if !is_word(i) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_word(i) {
            i += 1;
        }
        let sep = &title[sep_start..start];
        out.push(Token {
            start,
            end: i,
            text: &title[start..i],
            strong_before: start == 0 || out.is_empty() || is_strong(sep),
        });
        sep_start = i;
    }
    out
}

fn is_strong(sep: &str) -> bool {
    sep.bytes()
        .any(|b| !matches!(b, b' ' | b'\t' | b'_' | b'-'))
        || (sep.contains('-') && sep.contains(' '))
        || sep.matches('-').count() > 1
}

/// Words that are never part of a POI's name.
const KEYWORDS: &[&str] = &[
    "poi",
    "nbn",
    "nbnco",
    "cvc",
    "nni",
    "avc",
    "voc",
    "traffic",
    "graph",
    "capacity",
    "cap",
    "tbc",
    "tba",
    "utilisation",
    "utilization",
    "util",
    "usage",
    "bandwidth",
    "bw",
    "link",
    "interface",
    "total",
    "max",
    "avg",
    "average",
    "peak",
    "bits",
    "bps",
    "speed",
    "rate",
    "tc",
    "class",
    "aggregate",
    "agg",
    "backhaul",
    "uplink",
    "trunk",
    "lag",
    "bundle",
    "vlan",
    "svlan",
    "cvlan",
    "ppp",
    "bng",
    "bras",
    "carrier",
    "provider",
    "cvc/nni",
    "id",
    "new",
    "old",
    "test",
    "the",
    "of",
    "for",
    "to",
    "at",
    "via",
    "and",
    "per",
    "name",
    "site",
    "location",
    "loc",
    "suburb",
    "town",
    "code",
];

/// Words that introduce a name in `key=value` titles.
const LABELS: &[&str] = &["name", "site", "location", "loc", "suburb", "town"];

/// Letter triples after a digit that are units, not POI codes (`5GHz`, `2Mbs`).
const NOT_CODES: &[&str] = &[
    "ghz", "mhz", "khz", "thz", "gbs", "mbs", "kbs", "tbs", "gbe", "gig", "bps",
];

fn capacity_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        RegexBuilder::new(
            r"([0-9]{1,7}(?:[.,][0-9]{1,4})?)[ \t]{0,3}([kmgt])(?:bits/s|bit/s|bits|bit|bps|b/s|bs|b)?",
        )
        .case_insensitive(true)
        .build()
        .expect("the capacity regex compiles")
    })
}

fn id_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        RegexBuilder::new(r"(cvc|nni|avc)[ _\-:#]?([0-9]{12})")
            .case_insensitive(true)
            .build()
            .expect("the id regex compiles")
    })
}

fn tc_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        RegexBuilder::new(r"tc[ _\-]?([1-6c])")
            .case_insensitive(true)
            .build()
            .expect("the traffic class regex compiles")
    })
}

fn alnum_at(title: &str, i: usize) -> bool {
    title
        .as_bytes()
        .get(i)
        .is_some_and(u8::is_ascii_alphanumeric)
}

/// True when `[start, end)` is not glued to letters or digits on either side; a capacity may
/// also follow `CVC` directly (`CVC1000M`).
fn bounded(title: &str, start: usize, end: usize, after_cvc: bool) -> bool {
    let before_ok = start == 0
        || !(alnum_at(title, start - 1) || title.as_bytes()[start - 1] == b'.')
        || (after_cvc
            && start >= 3
            && title
                .get(start - 3..start)
                .is_some_and(|w| w.eq_ignore_ascii_case("cvc"))
            && (start == 3 || !alnum_at(title, start - 4)));
    // Not glued to a letter or digit after, nor to a decimal part (`1.5` is not `1`).
    let glued_decimal = title.as_bytes().get(end) == Some(&b'.') && alnum_at(title, end + 1);
    let after_ok = !(alnum_at(title, end) || glued_decimal);
    before_ok && after_ok
}

/// The matches of `regex` that `accept(start, end)` takes, leftmost first. A refused match is
/// searched again from its next character, so it never hides an acceptable one inside it
/// (`CVC000000123456,1000Mbps` first matches `3456,1000Mbps`).
fn matches_where<'t>(
    regex: &Regex,
    title: &'t str,
    accept: impl Fn(usize, usize) -> bool,
) -> Vec<regex::Captures<'t>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at <= title.len() {
        let Some(caps) = regex.captures_at(title, at) else {
            break;
        };
        let Some(m) = caps.get(0) else { break };
        if accept(m.start(), m.end()) {
            at = m.end().max(m.start() + 1);
            out.push(caps);
        } else {
            // The patterns start with an ASCII byte, so one on is a character boundary.
            at = m.start() + 1;
        }
    }
    out
}

/// The built-in reader (see the module comment).
fn understand(title: &str) -> Option<ParsedTitle> {
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let overlaps =
        |taken: &[(usize, usize)], s: usize, e: usize| taken.iter().any(|(a, b)| s < *b && *a < e);

    let mut circuit_id = None;
    for caps in matches_where(id_regex(), title, |s, e| bounded(title, s, e, false)) {
        let m = caps.get(0)?;
        circuit_id.get_or_insert_with(|| format!("{}{}", caps[1].to_ascii_uppercase(), &caps[2]));
        taken.push((m.start(), m.end()));
    }

    // Capacities: one after a CVC/capacity keyword wins over the first one seen.
    let mut capacities: Vec<(u64, bool)> = Vec::new();
    let found = matches_where(capacity_regex(), title, |s, e| {
        !overlaps(&taken, s, e) && bounded(title, s, e, true)
    });
    for caps in found {
        let m = caps.get(0)?;
        taken.push((m.start(), m.end()));
        let value = decimal(&caps[1]);
        if let Some(bps) = capacity(&value, &caps[2]) {
            let lead = title[..m.start()].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
            let keyed = ["cvc", "capacity", "cap", "bw", "bandwidth", "speed", "rate"]
                .iter()
                .any(|k| lead.to_ascii_lowercase().ends_with(k));
            capacities.push((bps, keyed));
        }
    }
    let capacity_bps = capacities
        .iter()
        .find(|(_, keyed)| *keyed)
        .or(capacities.first())
        .map(|(bps, _)| *bps);

    let mut traffic_class = None;
    let found = matches_where(tc_regex(), title, |s, e| {
        !overlaps(&taken, s, e) && bounded(title, s, e, false)
    });
    for caps in found {
        let m = caps.get(0)?;
        traffic_class.get_or_insert_with(|| format!("TC-{}", caps[1].to_ascii_uppercase()));
        taken.push((m.start(), m.end()));
    }

    let words = tokens(title);
    let mut roles: Vec<Role> = words
        .iter()
        .map(|w| {
            if overlaps(&taken, w.start, w.end) {
                Role::Taken
            } else {
                Role::Free
            }
        })
        .collect();

    // The POI code: prefer one right after the word "POI", else the first.
    let candidates: Vec<usize> = (0..words.len())
        .filter(|&i| roles[i] == Role::Free && is_poi_code(words[i].text))
        .collect();
    let code_at = candidates
        .iter()
        .copied()
        .find(|&i| i > 0 && words[i - 1].text.eq_ignore_ascii_case("poi"))
        .or(candidates.first().copied());

    let mut dir = None;
    for (i, w) in words.iter().enumerate() {
        if roles[i] != Role::Free || Some(i) == code_at {
            continue;
        }
        if let Some(d) = direction(w.text) {
            dir.get_or_insert(d);
            roles[i] = Role::Taken;
        }
    }

    let poi_name = code_at.and_then(|at| {
        roles[at] = Role::Taken;
        name_near(&words, &roles, at)
    });
    let poi_code = code_at.map(|i| words[i].text.to_ascii_uppercase());
    if poi_code.is_none() && circuit_id.is_none() {
        return None;
    }
    Some(ParsedTitle {
        pattern: BUILT_IN.to_string(),
        poi_code,
        poi_name,
        circuit_id,
        capacity_bps,
        traffic_class,
        direction: dir,
    })
}

/// `1,000` is a thousand (three digits after the comma), `2,5` two and a half.
fn decimal(text: &str) -> String {
    match text.split_once(',') {
        Some((whole, part)) if part.len() == 3 => format!("{whole}{part}"),
        Some((whole, part)) => format!("{whole}.{part}"),
        None => text.to_string(),
    }
}

/// A state's postcode digit (0 NT, 2 NSW/ACT, 3 VIC, 4 QLD, 5 SA, 6 WA, 7 TAS) and three
/// letters that are not a unit.
pub fn is_poi_code(word: &str) -> bool {
    is_code_shape(word) && !NOT_CODES.iter().any(|n| word[1..].eq_ignore_ascii_case(n))
}

/// A state's postcode digit and three letters, in either case.
pub fn is_code_shape(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() == 4 && matches!(b[0], b'0' | b'2'..=b'7') && b[1..].iter().all(u8::is_ascii_alphabetic)
}

/// A name word: starts with a letter, has no digit, is not a keyword or a direction.
fn is_name_word(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    word.chars().next().is_some_and(char::is_alphabetic)
        && !word.chars().any(|c| c.is_ascii_digit())
        && !KEYWORDS.contains(&lower.as_str())
        && direction(word).is_none()
}

/// The words right after the code, else right before it: a run of name words inside one
/// phrase (no strong separator within it; one may stand between the code and the name, as in
/// `VOC/2CHS/Coffs Harbour`).
fn name_near(words: &[Token<'_>], roles: &[Role], at: usize) -> Option<String> {
    const MAX_WORDS: usize = 5;
    let usable = |i: usize| roles[i] == Role::Free && is_name_word(words[i].text);
    let mut name = Vec::new();
    let mut i = at + 1;
    // `poi=5WAY;name=Woodville`: a label between the code and its name is skipped.
    if words
        .get(i)
        .is_some_and(|w| LABELS.contains(&w.text.to_ascii_lowercase().as_str()))
    {
        i += 1;
    }
    while i < words.len() && name.len() < MAX_WORDS && usable(i) {
        if !name.is_empty() && words[i].strong_before {
            break;
        }
        name.push(words[i].text);
        i += 1;
    }
    if name.is_empty() {
        let mut j = at;
        while j > 0 && name.len() < MAX_WORDS && usable(j - 1) {
            if !name.is_empty() && words[j].strong_before {
                break;
            }
            j -= 1;
            name.push(words[j].text);
        }
        name.reverse();
    }
    let name = tidy_name(&name.join(" "));
    (!name.is_empty()).then_some(name)
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
    if !["", "bps", "b/s", "bit/s", "bits/s", "bits", "bit", "b"].contains(&suffix.as_str()) {
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
        "in" | "inbound" | "rx" | "ingress" => "in",
        "out" | "outbound" | "tx" | "egress" => "out",
        "up" | "upstream" | "upload" | "ul" => "up",
        "down" | "downstream" | "download" | "dl" => "down",
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
                let lower = w.to_lowercase();
                let mut chars = lower.chars();
                chars
                    .next()
                    .map(|c| c.to_uppercase().to_string() + chars.as_str())
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
