//! TLS for the gRPC server and its clients (rustls through tonic).
//!
//! The server serves TLS when [`TlsConfig`] names a certificate and key, and can require client
//! certificates signed by `client_ca` (mTLS, for camera daemons). Files are checked when they are loaded,
//! so a missing file, a certificate that has expired or is not valid yet, or a key that does not belong
//! to the certificate stops start-up with a message that names the file and the fault. Clients verify
//! the server against a CA file ([`ClientTls`]); [`explain`] turns a failed handshake into a sentence
//! that says which side's certificate was refused and why.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The `[tls]` section: the server's certificate and key, and client-certificate checking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first). With `key`, the server speaks TLS only.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert`.
    pub key: Option<PathBuf>,
    /// PEM CA certificate(s) that client certificates must chain to. Setting it turns on mTLS.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: accept clients without a certificate too (those with one must present a
    /// valid one). Default false: a certificate is required.
    pub client_cert_optional: bool,
    /// Serve plaintext on a non-loopback address (behind a TLS-terminating proxy). Without it, crow
    /// refuses to listen unencrypted beyond loopback unless started with `--dev`.
    pub allow_plaintext: bool,
}

impl TlsConfig {
    /// Whether the server is configured to serve TLS (a certificate or a key is set).
    pub fn enabled(&self) -> bool {
        self.cert.is_some() || self.key.is_some()
    }

    /// Problems with the settings themselves (not the files): a certificate without a key, mTLS
    /// without TLS. Each is `(key, rule)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match (&self.cert, &self.key) {
            (Some(_), None) => out.push(("key", "is required when tls.cert is set".to_owned())),
            (None, Some(_)) => out.push(("cert", "is required when tls.key is set".to_owned())),
            _ => {}
        }
        if self.client_ca.is_some() && !self.enabled() {
            out.push((
                "client_ca",
                "needs tls.cert and tls.key (client certificates are checked during TLS)"
                    .to_owned(),
            ));
        }
        out
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which file (e.g. "tls.cert").
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is not what it should be (no PEM certificate, unparsable certificate, no key).
    #[error("{what} {path}: {reason}")]
    Invalid {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A certificate is outside its validity period.
    #[error("{what} {path} ({subject}) {state}")]
    Validity {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The certificate's subject.
        subject: String,
        /// "expired on ..." or "is not valid before ...".
        state: String,
    },
    /// The settings do not form a usable TLS configuration.
    #[error("{0}")]
    Config(String),
}

/// What a certificate file holds, as checked at load time.
#[derive(Debug, Clone)]
pub struct CertificateInfo {
    /// Subject of the first (leaf) certificate.
    pub subject: String,
    /// Issuer of the first certificate.
    pub issuer: String,
    /// End of validity, seconds since the Unix epoch.
    pub not_after_s: i64,
    /// Number of certificates in the file.
    pub count: usize,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Reads and checks a PEM certificate file: at least one certificate, every one parsable and inside
/// its validity period now.
pub fn check_certificates(what: &'static str, path: &Path) -> Result<CertificateInfo, TlsError> {
    let pem = read(what, path)?;
    inspect_certificates(what, path, &pem, now_s())
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn inspect_certificates(
    what: &'static str,
    path: &Path,
    pem: &[u8],
    now_s: i64,
) -> Result<CertificateInfo, TlsError> {
    let invalid = |reason: String| TlsError::Invalid {
        what,
        path: path.to_owned(),
        reason,
    };
    let mut info: Option<CertificateInfo> = None;
    let mut count = 0;
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| invalid(format!("not valid PEM: {e}")))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        count += 1;
        let (_, cert) = X509Certificate::from_der(&block.contents)
            .map_err(|e| invalid(format!("certificate {count} cannot be parsed: {e}")))?;
        let validity = cert.validity();
        let subject = cert.subject().to_string();
        let state = if validity.not_after.timestamp() < now_s {
            Some(format!("expired on {}", validity.not_after))
        } else if validity.not_before.timestamp() > now_s {
            Some(format!("is not valid before {}", validity.not_before))
        } else {
            None
        };
        if let Some(state) = state {
            return Err(TlsError::Validity {
                what,
                path: path.to_owned(),
                subject,
                state,
            });
        }
        info.get_or_insert(CertificateInfo {
            subject,
            issuer: cert.issuer().to_string(),
            not_after_s: validity.not_after.timestamp(),
            count: 0,
        });
    }
    let mut info = info.ok_or_else(|| invalid("holds no PEM certificate".to_owned()))?;
    info.count = count;
    Ok(info)
}

fn check_key(path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read("tls.key", path)?;
    let has_key = x509_parser::pem::Pem::iter_from_buffer(&pem)
        .filter_map(Result::ok)
        .any(|b| b.label.ends_with("PRIVATE KEY"));
    if !has_key {
        return Err(TlsError::Invalid {
            what: "tls.key",
            path: path.to_owned(),
            reason: "holds no PEM private key".to_owned(),
        });
    }
    Ok(pem)
}

/// A checked server TLS configuration, ready for tonic.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: ServerTlsConfig,
    /// The server certificate, as checked.
    pub certificate: CertificateInfo,
    /// Whether client certificates are required.
    pub requires_client_cert: bool,
}

impl ServerTls {
    /// Loads and checks the files `config` names; `Ok(None)` when TLS is not configured.
    pub fn load(config: &TlsConfig) -> Result<Option<ServerTls>, TlsError> {
        if let Some((key, rule)) = config.problems().into_iter().next() {
            return Err(TlsError::Config(format!("tls.{key} {rule}")));
        }
        let (Some(cert_path), Some(key_path)) = (&config.cert, &config.key) else {
            return Ok(None);
        };
        let certificate = check_certificates("tls.cert", cert_path)?;
        let cert = read("tls.cert", cert_path)?;
        let key = check_key(key_path)?;
        let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if let Some(ca_path) = &config.client_ca {
            check_certificates("tls.client_ca", ca_path)?;
            tls = tls
                .client_ca_root(Certificate::from_pem(read("tls.client_ca", ca_path)?))
                .client_auth_optional(config.client_cert_optional);
        }
        // tonic builds the rustls configuration here: a key that does not belong to the certificate,
        // or one rustls cannot use, fails now rather than at the first handshake.
        tonic::transport::Server::builder()
            .tls_config(tls.clone())
            .map_err(|e| TlsError::Invalid {
                what: "tls.key",
                path: key_path.clone(),
                reason: format!(
                    "cannot be used with tls.cert {}: {}",
                    cert_path.display(),
                    error_chain(&e)
                ),
            })?;
        Ok(Some(ServerTls {
            config: tls,
            certificate,
            requires_client_cert: config.client_ca.is_some() && !config.client_cert_optional,
        }))
    }

    /// The tonic configuration.
    pub fn tonic(&self) -> ServerTlsConfig {
        self.config.clone()
    }
}

/// What a client trusts and presents for TLS: the CA that signed the server's certificate, and
/// optionally its own certificate and key (for servers that require client certificates).
#[derive(Clone, Default)]
pub struct ClientTls {
    ca: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    domain: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca.is_some())
            .field("identity", &self.identity.is_some())
            .field("domain", &self.domain)
            .finish()
    }
}

impl ClientTls {
    /// Trust the CA certificate(s) in the PEM file `ca` (checked: parsable and not expired).
    pub fn with_ca_file(mut self, ca: &Path) -> Result<ClientTls, TlsError> {
        check_certificates("CA file", ca)?;
        self.ca = Some(read("CA file", ca)?);
        Ok(self)
    }

    /// Trust the CA certificate(s) in `pem`.
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> ClientTls {
        self.ca = Some(pem.into());
        self
    }

    /// Present the client certificate `cert` with its key `key` (PEM files).
    pub fn with_identity_files(mut self, cert: &Path, key: &Path) -> Result<ClientTls, TlsError> {
        check_certificates("client certificate", cert)?;
        self.identity = Some((read("client certificate", cert)?, check_key(key)?));
        Ok(self)
    }

    /// Present the client certificate and key in `cert_pem` / `key_pem`.
    pub fn with_identity_pem(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> ClientTls {
        self.identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Check the server's certificate against this name instead of the URL's host.
    pub fn with_domain(mut self, domain: impl Into<String>) -> ClientTls {
        self.domain = Some(domain.into());
        self
    }

    /// From `CROW_TLS_CA`, `CROW_TLS_CERT` and `CROW_TLS_KEY` (each optional; cert and key together).
    pub fn from_env() -> Result<ClientTls, TlsError> {
        Self::from_paths(
            std::env::var_os("CROW_TLS_CA")
                .map(PathBuf::from)
                .as_deref(),
            std::env::var_os("CROW_TLS_CERT")
                .map(PathBuf::from)
                .as_deref(),
            std::env::var_os("CROW_TLS_KEY")
                .map(PathBuf::from)
                .as_deref(),
        )
    }

    /// From optional file paths (a client certificate needs its key and the other way round).
    pub fn from_paths(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<ClientTls, TlsError> {
        let mut tls = ClientTls::default();
        if let Some(ca) = ca {
            tls = tls.with_ca_file(ca)?;
        }
        match (cert, key) {
            (Some(c), Some(k)) => tls = tls.with_identity_files(c, k)?,
            (None, None) => {}
            _ => {
                return Err(TlsError::Config(
                    "a client certificate needs its key: give both --cert and --key".to_owned(),
                ))
            }
        }
        Ok(tls)
    }

    /// Whether a CA is set.
    pub fn has_ca(&self) -> bool {
        self.ca.is_some()
    }

    /// The tonic configuration. An `https://` URL needs a CA: crow does not consult the system's
    /// roots, because store deployments sign their own certificates.
    pub fn tonic(&self) -> Result<ClientTlsConfig, TlsError> {
        let Some(ca) = &self.ca else {
            return Err(TlsError::Config(
                "an https:// server needs the CA that signed its certificate: pass --ca FILE or set CROW_TLS_CA".to_owned(),
            ));
        };
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if let Some((cert, key)) = &self.identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        if let Some(domain) = &self.domain {
            tls = tls.domain_name(domain.clone());
        }
        Ok(tls)
    }
}

/// The error and its sources, joined by ": ".
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

/// Says in words what a failed connection or call means for TLS, from the error text (rustls and
/// hyper name the fault, not always readably). `None` when the error is not about TLS.
pub fn explain(error_text: &str) -> Option<&'static str> {
    let t = error_text;
    let has = |needle: &str| t.contains(needle);
    Some(if has("UnknownIssuer") {
        "the server's certificate is not signed by a CA this client trusts (check --ca / CROW_TLS_CA)"
    } else if has("invalid peer certificate: Expired") || has("CertExpired") {
        "the server's certificate has expired"
    } else if has("NotValidYet") || has("CertNotValidYet") {
        "the server's certificate is not valid yet (check the clocks)"
    } else if has("NotValidForName") {
        "the server's certificate is not valid for the host name in the URL"
    } else if has("CertificateRequired") || has("certificate required") {
        "the server requires a client certificate (pass --cert and --key, or CROW_TLS_CERT and CROW_TLS_KEY)"
    } else if has("UnknownCA") || has("BadCertificate") || has("CertificateExpired") {
        "the server refused this client's certificate (not signed by its client CA, or expired)"
    } else if has("InvalidContentType") || has("corrupt message") {
        "the server does not speak TLS on this port: use an http:// URL"
    } else if has("frame with invalid size")
        || has("connection reset")
        || has("broken pipe")
        || has("connection closed before message completed")
        || has("unexpected end of file")
        || has("connection was not ready")
    {
        "the server closed the connection: if it serves TLS, use an https:// URL and --ca"
    } else {
        return None;
    })
}
