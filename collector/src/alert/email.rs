//! Email over SMTP (lettre): plain, STARTTLS or implicit TLS, optional AUTH, an extra trusted
//! CA for a private SMTP server. One attempt per call, telling a transient failure from a
//! permanent one: the dispatcher's outbox keeps the retries. The password never reaches a log
//! or an error.

use super::templates::Rendered;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    None,
    #[default]
    Starttls,
    Tls,
}

/// `[email]` in `collector.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// The SMTP server; unset turns email off.
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// With `tls = "none"`, a username and password are refused (they would cross the
    /// network in the clear) unless this says the link is trusted (a local relay).
    pub allow_plaintext_auth: bool,
    /// A PEM CA to trust besides the public roots (a private SMTP server).
    pub ca_file: Option<PathBuf>,
    /// `Name <address>` the messages come from.
    pub from: String,
    /// A directory of templates overriding the shipped ones (`circuit_maxout.subject`,
    /// `.txt`, `.html`).
    pub templates: Option<PathBuf>,
    /// At most one customer email per circuit in this time.
    pub cooldown_secs: u64,
    pub retries: u32,
    pub backoff_ms: u64,
    pub timeout_secs: u64,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            smtp_host: None,
            smtp_port: 587,
            tls: TlsMode::Starttls,
            username: None,
            password_file: None,
            password_env: None,
            allow_plaintext_auth: false,
            ca_file: None,
            from: "Netwarden NOC <noc@localhost>".into(),
            templates: None,
            cooldown_secs: 3600,
            retries: 3,
            backoff_ms: 1000,
            timeout_secs: 20,
        }
    }
}

/// The checked settings.
#[derive(Clone)]
pub struct EmailSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub credentials: Option<(String, String)>,
    pub ca_pem: Option<Vec<u8>>,
    pub from: Mailbox,
    pub templates: Option<PathBuf>,
    pub cooldown: Duration,
    pub retries: u32,
    pub backoff: Duration,
    pub timeout: Duration,
}

impl std::fmt::Debug for EmailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl EmailSettings {
    /// `None` when no SMTP host is set; errors name the field.
    pub fn from_config(
        path: &Path,
        raw: &EmailConfig,
    ) -> Result<Option<EmailSettings>, netwarden_shared::config::ConfigError> {
        use netwarden_shared::config::{resolve, ConfigError};
        let Some(host) = raw.smtp_host.clone().filter(|h| !h.trim().is_empty()) else {
            return Ok(None);
        };
        let bad = |field: &str, message: String| ConfigError::invalid(path, field, message);
        let from: Mailbox = raw.from.parse().map_err(|e| {
            bad(
                "email.from",
                format!("{:?} is not an address: {e}", raw.from),
            )
        })?;
        let password = match (&raw.password_file, &raw.password_env) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "email.password_file",
                    "set password_file or password_env, not both".into(),
                ))
            }
            (Some(file), None) => Some(
                std::fs::read_to_string(resolve(path, file))
                    .map_err(|e| bad("email.password_file", format!("{}: {e}", file.display())))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            (None, Some(var)) => Some(std::env::var(var).map_err(|_| {
                bad(
                    "email.password_env",
                    format!("the variable {var} is not set"),
                )
            })?),
            (None, None) => None,
        };
        let credentials =
            match (&raw.username, password) {
                (Some(user), Some(pass)) => Some((user.clone(), pass)),
                (None, None) => None,
                _ => return Err(bad(
                    "email.username",
                    "set both username and a password (password_file or password_env), or neither"
                        .into(),
                )),
            };
        if credentials.is_some() && raw.tls == TlsMode::None && !raw.allow_plaintext_auth {
            return Err(bad(
                "email.tls",
                "\"none\" would send the SMTP password in the clear: use \"starttls\" or \"tls\", or set allow_plaintext_auth = true for a trusted local relay".into(),
            ));
        }
        let ca_pem = raw
            .ca_file
            .as_ref()
            .map(|f| {
                std::fs::read(resolve(path, f))
                    .map_err(|e| bad("email.ca_file", format!("{}: {e}", f.display())))
            })
            .transpose()?;
        if raw.retries > 10 {
            return Err(bad("email.retries", "must be at most 10".into()));
        }
        if !(1..=300).contains(&raw.timeout_secs) {
            return Err(bad(
                "email.timeout_secs",
                "must be between 1 and 300".into(),
            ));
        }
        let templates = raw.templates.as_ref().map(|d| resolve(path, d));
        let settings = EmailSettings {
            host,
            port: raw.smtp_port,
            tls: raw.tls,
            credentials,
            ca_pem,
            from,
            templates,
            cooldown: Duration::from_secs(raw.cooldown_secs),
            retries: raw.retries,
            backoff: Duration::from_millis(raw.backoff_ms.clamp(1, 60_000)),
            timeout: Duration::from_secs(raw.timeout_secs),
        };
        Mailer::new(&settings).map_err(|e| bad("email", e))?;
        super::templates::Template::load(
            "circuit_maxout",
            settings.templates.as_deref(),
            super::templates::CIRCUIT_MAXOUT_FIELDS,
        )
        .map_err(|e| bad("email.templates", e.to_string()))?;
        Ok(Some(settings))
    }
}

/// Why a send did not go; a permanent one is not worth retrying.
#[derive(Debug, Clone, PartialEq)]
pub struct SendFailure {
    pub permanent: bool,
    pub message: String,
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The password, blanked out of any error the server writes.
    secrets: Vec<String>,
}

impl Mailer {
    pub fn new(s: &EmailSettings) -> Result<Mailer, String> {
        let tls = if s.tls == TlsMode::None {
            Tls::None
        } else {
            let mut params = TlsParameters::builder(s.host.clone());
            if let Some(pem) = &s.ca_pem {
                let cert = Certificate::from_pem(pem).map_err(|e| format!("ca_file: {e}"))?;
                params = params.add_root_certificate(cert);
            }
            let params = params.build_rustls().map_err(|e| format!("TLS: {e}"))?;
            match s.tls {
                TlsMode::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .tls(tls)
            .timeout(Some(s.timeout));
        if let Some((user, pass)) = &s.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from: s.from.clone(),
            secrets: s.credentials.iter().map(|(_, pass)| pass.clone()).collect(),
        })
    }

    /// An SMTP error as text, without the password should the server have echoed it.
    fn redacted(&self, err: &lettre::transport::smtp::Error) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        netwarden_shared::redact(&err.to_string(), &secrets)
    }

    fn build(
        &self,
        to: &[Mailbox],
        cc: &[Mailbox],
        message: &Rendered,
        message_id: Option<String>,
    ) -> Result<Message, String> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(message.subject.clone())
            .message_id(message_id);
        for m in to {
            builder = builder.to(m.clone());
        }
        for m in cc {
            builder = builder.cc(m.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                message.html.clone(),
            ))
            .map_err(|e| format!("cannot build the message: {e}"))
    }

    /// One attempt: the dispatcher keeps the retry schedule (the outbox). A resend of the same
    /// notification carries the same `message_id`, so mail clients show it once.
    pub async fn send_once(
        &self,
        to: &[Mailbox],
        cc: &[Mailbox],
        message: &Rendered,
        message_id: String,
    ) -> Result<(), SendFailure> {
        let email = self
            .build(to, cc, message, Some(message_id))
            .map_err(|message| SendFailure {
                permanent: true,
                message,
            })?;
        self.transport
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| SendFailure {
                permanent: e.is_permanent(),
                message: self.redacted(&e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_not_sent_in_the_clear_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "secret\n").unwrap();
        let mut raw = EmailConfig {
            smtp_host: Some("smtp.example.net".into()),
            tls: TlsMode::None,
            username: Some("noc".into()),
            password_file: Some("pw".into()),
            ..EmailConfig::default()
        };
        let path = dir.path().join("collector.toml");
        let err = EmailSettings::from_config(&path, &raw).expect_err("refused");
        assert!(err.to_string().contains("email.tls"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
        raw.allow_plaintext_auth = true;
        assert!(EmailSettings::from_config(&path, &raw).unwrap().is_some());
        raw.allow_plaintext_auth = false;
        raw.tls = TlsMode::Starttls;
        assert!(EmailSettings::from_config(&path, &raw).unwrap().is_some());
    }
}
