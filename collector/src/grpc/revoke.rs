//! Revoked agent certificates, as the handshake and the open connections see them. The list
//! lives in the database (so every collector sharing it agrees) and is read again every
//! second; a change closes the open connections it revokes, so a stolen certificate stops
//! working within seconds, for new connections and for streams already open.

use super::conns::{CertIdentity, Registry};
use crate::metrics::Metrics;
use crate::storage::tokens::CertRevocation;
use crate::storage::Store;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How far agent certificates are backdated when issued (`pki issue-agent`): a certificate's
/// issue time is its `not_before` plus this.
pub const ISSUE_BACKDATE_SECS: i64 = 3600;

/// How often the list is read again.
const REFRESH: Duration = Duration::from_secs(1);

/// The current revocations; cheap to clone.
#[derive(Clone, Default)]
pub struct Revocations(Arc<RwLock<Vec<CertRevocation>>>);

impl Revocations {
    /// For the TLS handshake: whether a client certificate (DER) is revoked.
    pub fn is_revoked_der(&self, der: &[u8]) -> bool {
        netwarden_shared::tls::cert_info(der).is_ok_and(|info| {
            self.is_revoked(&CertIdentity {
                agent: info.common_name,
                serial: info.serial,
                not_before: info.not_before,
            })
        })
    }

    pub fn is_revoked(&self, cert: &CertIdentity) -> bool {
        self.0
            .read()
            .map(|list| list.iter().any(|r| revokes(r, cert)))
            .unwrap_or(false)
    }

    fn replace(&self, list: Vec<CertRevocation>) -> bool {
        match self.0.write() {
            Ok(mut current) if *current != list => {
                *current = list;
                true
            }
            _ => false,
        }
    }

    /// Reads the list now; at start, before the listener takes connections.
    pub async fn load(&self, store: &dyn Store) -> crate::storage::Result<()> {
        self.replace(store.cert_revocations().await?);
        Ok(())
    }
}

/// Whether `revocation` applies to the certificate.
pub fn revokes(revocation: &CertRevocation, cert: &CertIdentity) -> bool {
    if let Some(serial) = &revocation.serial {
        return normalise_serial(serial) == cert.serial
            && revocation.agent.as_ref().is_none_or(|a| *a == cert.agent);
    }
    revocation.agent.as_ref().is_some_and(|agent| {
        *agent == cert.agent
            && cert.not_before + ISSUE_BACKDATE_SECS <= revocation.revoked_at.timestamp()
    })
}

/// A serial as operators may write it (`01:AB:…`, `0x01ab…`) in the form certificates give.
pub fn normalise_serial(serial: &str) -> String {
    let hex: String = serial
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex
}

/// Reads the list every second until `stop`; on a change closes the connections it revokes.
pub async fn run(
    store: Arc<dyn Store>,
    revocations: Revocations,
    registry: Registry,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(REFRESH) => {}
        }
        match store.cert_revocations().await {
            Ok(list) => {
                if revocations.replace(list) {
                    let closed = registry.close_where(|cert| revocations.is_revoked(cert));
                    metrics.revoked_closed.inc_by(closed as u64);
                    if closed > 0 {
                        tracing::warn!(
                            closed,
                            "closed open agent connections whose certificate is now revoked"
                        );
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read certificate revocations; keeping the last list")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn cert(agent: &str, serial: &str, issued: i64) -> CertIdentity {
        CertIdentity {
            agent: agent.into(),
            serial: serial.into(),
            not_before: issued - ISSUE_BACKDATE_SECS,
        }
    }

    fn revocation(agent: Option<&str>, serial: Option<&str>, at: i64) -> CertRevocation {
        CertRevocation {
            id: 1,
            agent: agent.map(str::to_string),
            serial: serial.map(str::to_string),
            revoked_at: Utc.timestamp_opt(at, 0).unwrap(),
            reason: String::new(),
        }
    }

    #[test]
    fn a_serial_revokes_that_certificate_only() {
        let r = revocation(None, Some("0A:1B:FF"), 1000);
        assert!(revokes(&r, &cert("a", "0a1bff", 500)));
        assert!(revokes(&r, &cert("a", "0a1bff", 5000)));
        assert!(!revokes(&r, &cert("a", "0a1bfe", 500)));
    }

    #[test]
    fn retiring_an_agent_revokes_what_was_issued_before_not_after() {
        let r = revocation(Some("branch-7"), None, 1000);
        assert!(revokes(&r, &cert("branch-7", "01", 999)));
        assert!(revokes(&r, &cert("branch-7", "01", 1000)));
        assert!(!revokes(&r, &cert("branch-7", "02", 1001)));
        assert!(!revokes(&r, &cert("branch-8", "01", 999)));
    }

    #[test]
    fn serials_are_read_in_any_usual_notation() {
        assert_eq!(normalise_serial("0x01AB"), "01ab");
        assert_eq!(normalise_serial(" 01:ab:Cd "), "01abcd");
    }
}
