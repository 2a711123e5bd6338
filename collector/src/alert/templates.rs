//! Message templates: `{{name}}` placeholders in files an operator may change (a directory
//! with `<kind>.subject`, `<kind>.txt`, `<kind>.html`), falling back to the shipped ones.
//! Values are HTML-escaped in the HTML part; an unknown placeholder is an error at load.

use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {file}: {message}")]
    Bad { file: String, message: String },
}

/// One kind of message: subject, text and HTML.
#[derive(Debug, Clone)]
pub struct Template {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

const SHIPPED: &[(&str, &str, &str, &str)] = &[
    (
        "circuit_maxout",
        include_str!("../../templates/circuit_maxout.subject"),
        include_str!("../../templates/circuit_maxout.txt"),
        include_str!("../../templates/circuit_maxout.html"),
    ),
    (
        "anomaly",
        include_str!("../../templates/anomaly.subject"),
        include_str!("../../templates/anomaly.txt"),
        include_str!("../../templates/anomaly.html"),
    ),
];

/// The placeholders an anomaly notification (NOC email) may use.
pub const ANOMALY_FIELDS: &[&str] = &[
    "event_title",
    "severity",
    "severity_upper",
    "kind",
    "subject",
    "group",
    "state",
    "summary",
    "opened_at",
    "resolution",
    "details",
    "anomaly_id",
];

/// The placeholders a circuit maxout message may use.
pub const CIRCUIT_MAXOUT_FIELDS: &[&str] = &[
    "circuit_id",
    "account_name",
    "contact_name",
    "peak_mbps",
    "peak_pct",
    "provisioned_mbps",
    "burst_mbps",
    "duration",
    "start",
    "severity",
    "am_name",
    "am_email",
    "cx_name",
    "cx_email",
];

impl Template {
    /// The template of `kind`, from `dir` where a file exists there, else the shipped one.
    pub fn load(
        kind: &str,
        dir: Option<&Path>,
        fields: &[&str],
    ) -> Result<Template, TemplateError> {
        let (_, subject, text, html) =
            SHIPPED
                .iter()
                .find(|t| t.0 == kind)
                .copied()
                .ok_or_else(|| TemplateError::Bad {
                    file: kind.into(),
                    message: "no such template".into(),
                })?;
        let read = |ext: &str, shipped: &str| -> Result<String, TemplateError> {
            let Some(dir) = dir else {
                return Ok(shipped.to_string());
            };
            let path = dir.join(format!("{kind}.{ext}"));
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    check(&text, fields).map_err(|message| TemplateError::Bad {
                        file: path.display().to_string(),
                        message,
                    })?;
                    Ok(text)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(shipped.to_string()),
                Err(e) => Err(TemplateError::Bad {
                    file: path.display().to_string(),
                    message: e.to_string(),
                }),
            }
        };
        Ok(Template {
            subject: read("subject", subject)?.trim().to_string(),
            text: read("txt", text)?,
            html: read("html", html)?,
        })
    }

    pub fn render(&self, values: &BTreeMap<&str, String>) -> Rendered {
        Rendered {
            subject: fill(&self.subject, values, false).replace(['\r', '\n'], " "),
            text: fill(&self.text, values, false),
            html: fill(&self.html, values, true),
        }
    }
}

/// Every `{{name}}` must be one of `fields`.
fn check(text: &str, fields: &[&str]) -> Result<(), String> {
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "a {{ is never closed".to_string())?;
        let name = after[..close].trim();
        if !fields.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{{{name}}}}}; use {}",
                fields.join(", ")
            ));
        }
        rest = &after[close + 2..];
    }
    Ok(())
}

fn fill(text: &str, values: &BTreeMap<&str, String>, html: bool) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let value = values
            .get(after[..close].trim())
            .map(String::as_str)
            .unwrap_or("");
        if html {
            out.push_str(&escape(value));
        } else {
            out.push_str(value);
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_templates_use_only_known_fields_and_escape_html() {
        for (kind, subject, text, html) in SHIPPED {
            let fields = if *kind == "anomaly" {
                ANOMALY_FIELDS
            } else {
                CIRCUIT_MAXOUT_FIELDS
            };
            for part in [subject, text, html] {
                check(part, fields).unwrap();
            }
        }
        let t = Template::load("circuit_maxout", None, CIRCUIT_MAXOUT_FIELDS).unwrap();
        let values = BTreeMap::from([
            ("circuit_id", "CIR-1".to_string()),
            ("account_name", "A <b>&</b> B".to_string()),
        ]);
        let r = t.render(&values);
        assert!(r.subject.starts_with("Circuit CIR-1 reached"));
        assert!(r.html.contains("A &lt;b&gt;&amp;&lt;/b&gt; B"));
        assert!(r.text.contains("A <b>&</b> B"));
    }

    #[test]
    fn an_operator_template_with_an_unknown_placeholder_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("circuit_maxout.subject"),
            "Full: {{circuit}}",
        )
        .unwrap();
        let err = Template::load("circuit_maxout", Some(dir.path()), CIRCUIT_MAXOUT_FIELDS)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("circuit_maxout.subject") && err.contains("{{circuit}}"),
            "{err}"
        );
        std::fs::write(
            dir.path().join("circuit_maxout.subject"),
            "Full: {{circuit_id}}",
        )
        .unwrap();
        let t = Template::load("circuit_maxout", Some(dir.path()), CIRCUIT_MAXOUT_FIELDS).unwrap();
        assert_eq!(t.subject, "Full: {{circuit_id}}");
        assert!(
            t.html.contains("<table"),
            "the shipped HTML where no file overrides it"
        );
    }
}
