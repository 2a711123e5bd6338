//! The one place that builds rustls configurations for mutual TLS between agents and the
//! collector, and the tonic channel that uses them. Both sides trust only the Netwarden CA;
//! the server requires a client certificate and the client verifies the server's name.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
pub use rustls::{ClientConfig, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} from {path}: {message}")]
    Read {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{path} holds no {what}")]
    Empty { what: &'static str, path: PathBuf },
    #[error("cannot build the TLS configuration: {0}")]
    Build(String),
    #[error("certificate {path} is not usable: {message}")]
    Certificate { path: PathBuf, message: String },
}

/// The three PEM files each side needs.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|err| TlsError::Read {
            what,
            path: path.to_path_buf(),
            message: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|err| TlsError::Read {
        what: "a private key",
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

fn roots(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in load_certs(ca, "CA certificates")? {
        store.add(cert).map_err(|err| TlsError::Certificate {
            path: ca.to_path_buf(),
            message: err.to_string(),
        })?;
    }
    Ok(store)
}

/// Server side: TLS 1.2+ with a client certificate from the CA required.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    server_config_refusing(files, Arc::new(|_: &[u8]| false))
}

/// Whether a client certificate (DER) is revoked; asked after the chain verified.
pub type RevocationCheck = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// Like [`server_config`], refusing during the handshake any client certificate `revoked`
/// says yes to: the client gets a `certificate_revoked` alert and can log why.
pub fn server_config_refusing(
    files: &TlsFiles,
    revoked: RevocationCheck,
) -> Result<ServerConfig, TlsError> {
    let inner =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&files.ca)?), provider())
            .build()
            .map_err(|err| TlsError::Build(err.to_string()))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Build(err.to_string()))?
        .with_client_cert_verifier(Arc::new(Revoking { inner, revoked }));
    with_server_certificate(builder, files)
}

/// The CA's verifier, then the revocation check.
struct Revoking {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    revoked: RevocationCheck,
}

impl std::fmt::Debug for Revoking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revoking").finish_non_exhaustive()
    }
}

impl rustls::server::danger::ClientCertVerifier for Revoking {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if (self.revoked)(end_entity.as_ref()) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Server side without client certificates (the operators' query port, where API tokens
/// authenticate): TLS 1.2+ with the same server certificate.
pub fn server_config_without_client_auth(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Build(err.to_string()))?
        .with_no_client_auth();
    with_server_certificate(builder, files)
}

fn with_server_certificate(
    builder: rustls::ConfigBuilder<ServerConfig, rustls::server::WantsServerCert>,
    files: &TlsFiles,
) -> Result<ServerConfig, TlsError> {
    let mut config = builder
        .with_single_cert(
            load_certs(&files.cert, "a server certificate")?,
            load_key(&files.key)?,
        )
        .map_err(|err| TlsError::Certificate {
            path: files.cert.clone(),
            message: err.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Client side without a client certificate: trusts only the CA (operator tools).
pub fn client_config_without_client_auth(ca: &Path) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Build(err.to_string()))?
        .with_root_certificates(roots(ca)?)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Client side: trusts only the CA and presents the agent's certificate.
pub fn client_config(files: &TlsFiles) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Build(err.to_string()))?
        .with_root_certificates(roots(&files.ca)?)
        .with_client_auth_cert(
            load_certs(&files.cert, "a client certificate")?,
            load_key(&files.key)?,
        )
        .map_err(|err| TlsError::Certificate {
            path: files.cert.clone(),
            message: err.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Facts read from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub common_name: String,
    pub not_before: i64,
    pub not_after: i64,
    /// The serial number in lowercase hex (no separators), as `pki revoke --serial` takes it.
    pub serial: String,
}

/// Reads the subject common name and validity of a DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|err| format!("not a valid X.509 certificate: {err}"))?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| "the certificate subject has no common name".to_string())?
        .to_string();
    Ok(CertInfo {
        common_name,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        serial: cert
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    })
}

/// Days before expiry from which `validate` warns.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// A warning for `validate` when a certificate file has expired or expires within
/// [`EXPIRY_WARNING_DAYS`] of `now` (unix seconds); `None` when it is fine or unreadable (the
/// load itself reports that).
pub fn expiry_warning(what: &str, path: &Path, now: i64) -> Option<String> {
    let info = cert_file_info(path).ok()?;
    let days_left = (info.not_after - now).div_euclid(86_400);
    if info.not_after <= now {
        Some(format!(
            "warning: {what} {} expired {} days ago; peers refuse it",
            path.display(),
            -days_left
        ))
    } else if days_left <= EXPIRY_WARNING_DAYS {
        Some(format!(
            "warning: {what} {} expires in {days_left} days",
            path.display()
        ))
    } else {
        None
    }
}

/// Reads the first certificate of a PEM file and its facts.
pub fn cert_file_info(path: &Path) -> Result<CertInfo, TlsError> {
    let certs = load_certs(path, "a certificate")?;
    cert_info(&certs[0]).map_err(|message| TlsError::Certificate {
        path: path.to_path_buf(),
        message,
    })
}

/// Why a channel could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("invalid collector URL {url:?}: {message}")]
    Url { url: String, message: String },
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// Opens an HTTP/2 channel to `url` (`https://host:port`) over mutual TLS. `server_name`
/// overrides the name checked against the server certificate (default: the URL's host).
pub async fn connect_channel(
    url: &str,
    server_name: Option<&str>,
    config: Arc<ClientConfig>,
    connect_timeout: Duration,
) -> Result<tonic::transport::Channel, ChannelError> {
    let bad = |message: &str| ChannelError::Url {
        url: url.to_string(),
        message: message.to_string(),
    };
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| bad("it must start with https:// (plaintext is not supported)"))?;
    let authority = rest.trim_end_matches('/');
    let uri: http::Uri = format!("http://{authority}")
        .parse()
        .map_err(|_| bad("expected https://HOST:PORT"))?;
    let host = uri
        .host()
        .ok_or_else(|| bad("missing host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let name = ServerName::try_from(server_name.unwrap_or(&host).to_string())
        .map_err(|_| bad("the TLS server name is not a valid DNS name or IP address"))?;

    let connector = tls_connector(host, port, name, config, connect_timeout);
    let channel = tonic::transport::Endpoint::from(uri)
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .connect_with_connector(connector)
        .await?;
    Ok(channel)
}

fn tls_connector(
    host: String,
    port: u16,
    name: ServerName<'static>,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> impl tower::Service<
    http::Uri,
    Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |_uri: http::Uri| {
        let host = host.clone();
        let name = name.clone();
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        async move {
            let work = async {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                connector.connect(name, tcp).await
            };
            let tls = tokio::time::timeout(timeout, work).await.map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS connect timed out")
            })??;
            Ok(hyper_util::rt::TokioIo::new(tls))
        }
    })
}

/// Renders an error and its chain of causes on one line, for log lines that must say why.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
