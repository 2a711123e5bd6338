//! A small CA for Netwarden: `pki init` makes a CA and the collector's server certificate,
//! `pki issue-agent` makes an agent's client certificate (its common name is the agent's
//! identity). Keys are ECDSA P-256, written with mode 0600.

use netwarden_shared::AgentId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.pem";
pub const SERVER_KEY: &str = "server.key";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{0} already exists; pass --force to replace the CA (every issued certificate stops working)")]
    Exists(PathBuf),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {action}: {message}")]
    Certificate {
        action: &'static str,
        message: String,
    },
    #[error(transparent)]
    Name(#[from] netwarden_shared::InvalidAgentId),
    #[error("invalid --host {0:?}: give a DNS name or an IP address")]
    Host(String),
}

pub type Result<T> = std::result::Result<T, PkiError>;

/// Paths of a certificate and its key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn cert_err(action: &'static str) -> impl Fn(rcgen::Error) -> PkiError {
    move |err| PkiError::Certificate {
        action,
        message: err.to_string(),
    }
}

fn write(path: &Path, contents: &str, private: bool) -> Result<()> {
    let io = |source| PkiError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    // A private key is created 0600 (never world-readable, not even between a write and a
    // chmod); the chmod then also tightens a file that existed before.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    std::io::Write::write_all(&mut file, contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Netwarden");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn validity(params: &mut CertificateParams, days: u32) {
    // A little back-dating tolerates clock skew between hosts.
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(i64::from(days));
}

/// Creates the CA and the server certificate in `dir`. `hosts` become the server
/// certificate's SANs (`localhost` and `127.0.0.1` when empty).
pub fn init(dir: &Path, hosts: &[String], days: u32, force: bool) -> Result<(Issued, Issued)> {
    let ca_cert_path = dir.join(CA_CERT);
    if ca_cert_path.exists() && !force {
        return Err(PkiError::Exists(ca_cert_path));
    }
    let ca_key = KeyPair::generate().map_err(cert_err("generate the CA key"))?;
    let mut ca = CertificateParams::default();
    // A unique name per CA lets operators tell two installations' certificates apart.
    let serial: u32 = rand::random();
    ca.distinguished_name = name(&format!("Netwarden CA {serial:08x}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca, days.saturating_mul(2).max(days));
    let ca_cert = ca
        .self_signed(&ca_key)
        .map_err(cert_err("sign the CA certificate"))?;
    write(&ca_cert_path, &ca_cert.pem(), false)?;
    write(&dir.join(CA_KEY), &ca_key.serialize_pem(), true)?;
    let ca_files = Issued {
        cert: ca_cert_path,
        key: dir.join(CA_KEY),
    };

    let server = issue_server_from(&Issuer::new(ca, ca_key), dir, hosts, days)?;
    Ok((ca_files, server))
}

/// Issues a new server certificate and key from the existing CA in `dir` (rotation: agents
/// keep trusting it).
pub fn issue_server(dir: &Path, hosts: &[String], days: u32) -> Result<Issued> {
    issue_server_from(&load_issuer(dir)?, dir, hosts, days)
}

fn issue_server_from(
    issuer: &Issuer<'_, KeyPair>,
    dir: &Path,
    hosts: &[String],
    days: u32,
) -> Result<Issued> {
    let hosts: Vec<String> = if hosts.is_empty() {
        vec!["localhost".into(), "127.0.0.1".into()]
    } else {
        hosts.to_vec()
    };
    issue(
        issuer,
        &hosts[0],
        &hosts,
        ExtendedKeyUsagePurpose::ServerAuth,
        days,
        &dir.join(SERVER_CERT),
        &dir.join(SERVER_KEY),
    )
}

fn load_issuer(dir: &Path) -> Result<Issuer<'static, KeyPair>> {
    let key = KeyPair::from_pem(&read(&dir.join(CA_KEY))?).map_err(cert_err("load the CA key"))?;
    Issuer::from_ca_cert_pem(&read(&dir.join(CA_CERT))?, key)
        .map_err(cert_err("load the CA certificate"))
}

/// Issues a client certificate for agent `name`, valid from `not_before` to `not_after`
/// (tests use this to make expired certificates).
pub fn issue_agent_with_validity(
    dir: &Path,
    agent: &str,
    out_dir: &Path,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Issued> {
    let agent = AgentId::new(agent)?;
    let issuer = load_issuer(dir)?;
    let key = KeyPair::generate().map_err(cert_err("generate the agent key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(agent.as_str());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(cert_err("sign the agent certificate"))?;
    let files = Issued {
        cert: out_dir.join(format!("{agent}.pem")),
        key: out_dir.join(format!("{agent}.key")),
    };
    write(&files.cert, &cert.pem(), false)?;
    write(&files.key, &key.serialize_pem(), true)?;
    Ok(files)
}

/// Issues a client certificate for agent `name` into `out_dir` (`NAME.pem`, `NAME.key`).
pub fn issue_agent(dir: &Path, agent: &str, out_dir: &Path, days: u32) -> Result<Issued> {
    let now = OffsetDateTime::now_utc();
    issue_agent_with_validity(
        dir,
        agent,
        out_dir,
        now - Duration::hours(1),
        now + Duration::days(i64::from(days)),
    )
}

fn issue(
    issuer: &Issuer<'_, KeyPair>,
    common_name: &str,
    hosts: &[String],
    usage: ExtendedKeyUsagePurpose,
    days: u32,
    cert_path: &Path,
    key_path: &Path,
) -> Result<Issued> {
    let key = KeyPair::generate().map_err(cert_err("generate a key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.subject_alt_names = hosts
        .iter()
        .map(|h| match h.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => h
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| PkiError::Host(h.clone())),
        })
        .collect::<Result<Vec<_>>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    validity(&mut params, days);
    let cert = params
        .signed_by(&key, issuer)
        .map_err(cert_err("sign a certificate"))?;
    write(cert_path, &cert.pem(), false)?;
    write(key_path, &key.serialize_pem(), true)?;
    Ok(Issued {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_issue_makes_certificates_with_the_right_names() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, server) = init(dir.path(), &[], 30, false).unwrap();
        assert!(ca.cert.exists() && server.key.exists());
        let agent = issue_agent(dir.path(), "branch-7", &dir.path().join("agents"), 30).unwrap();
        let info = netwarden_shared::tls::cert_file_info(&agent.cert).unwrap();
        assert_eq!(info.common_name, "branch-7");
        assert!(info.not_after > info.not_before);
        // A second init must not silently replace the CA.
        assert!(matches!(
            init(dir.path(), &[], 30, false),
            Err(PkiError::Exists(_))
        ));
        assert!(matches!(
            issue_agent(dir.path(), "bad name", dir.path(), 1),
            Err(PkiError::Name(_))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&agent.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_reissued_server_certificate_comes_from_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, server) = init(dir.path(), &[], 30, false).unwrap();
        let ca_before = std::fs::read(&ca.cert).unwrap();
        let cert_before = std::fs::read(&server.cert).unwrap();
        let hosts = ["collector.noc.test".to_string()];
        let again = issue_server(dir.path(), &hosts, 30).unwrap();
        assert_eq!(again.cert, server.cert);
        assert_ne!(std::fs::read(&again.cert).unwrap(), cert_before);
        assert_eq!(
            std::fs::read(&ca.cert).unwrap(),
            ca_before,
            "the CA is kept"
        );
        let info = netwarden_shared::tls::cert_file_info(&again.cert).unwrap();
        assert_eq!(info.common_name, "collector.noc.test");
        // Without a CA there is nothing to reissue from.
        let empty = tempfile::tempdir().unwrap();
        assert!(issue_server(empty.path(), &hosts, 30).is_err());
    }
}
