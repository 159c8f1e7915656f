//! TLS to Postgres with rustls (ring provider), following libpq's `sslmode`.
//!
//! `prefer` and `require` encrypt without checking the certificate (as libpq does);
//! `verify-ca` checks the chain against `ssl_root_cert` but not the host name;
//! `verify-full` checks both.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// libpq's `sslmode`, parsed by the daemon (tokio-postgres knows only three of them).
///
/// The one type for both places a mode is written: `postgres.sslmode` and a URL's
/// `sslmode=`. Both read the five names of [`TlsMode::parse`]; a URL also takes libpq's
/// `allow` ([`TlsMode::parse_url`]), see there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never TLS.
    Disable,
    /// TLS if the server offers it, unverified.
    Prefer,
    /// TLS always, unverified.
    Require,
    /// TLS, chain verified against the root certificate, any host name.
    VerifyCa,
    /// TLS, chain and host name verified.
    VerifyFull,
}

impl TlsMode {
    /// Every mode, weakest first.
    pub const ALL: [TlsMode; 5] = [Self::Disable, Self::Prefer, Self::Require, Self::VerifyCa, Self::VerifyFull];

    /// The libpq spelling, as written in the config and printed by `check-config`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// Parses one of the five names of [`TlsMode::as_str`]: what `postgres.sslmode`
    /// accepts.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == s)
    }

    /// Parses a URL's `sslmode=`: [`TlsMode::parse`], plus libpq's `allow` read as
    /// `prefer`.
    ///
    /// libpq's `allow` tries without TLS first and with TLS second; the driver has no
    /// such mode. A URL is libpq's syntax and is often copied from libpq tools, so it
    /// keeps working there with the nearest mode (TLS when offered). The config key is
    /// tiercache's own and lists only the modes it implements, so `allow` there is
    /// refused rather than silently changed.
    pub fn parse_url(s: &str) -> Option<Self> {
        if s == "allow" {
            return Some(Self::Prefer);
        }
        Self::parse(s)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why no TLS client configuration could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The mode verifies the server but no root certificate is configured.
    #[error("sslmode verify-ca and verify-full need postgres.ssl_root_cert")]
    NoRootCert,
    /// The root certificate file cannot be read, or holds no usable certificate.
    #[error("{0}")]
    RootCert(String),
    /// rustls refused the configuration.
    #[error("{0}")]
    Rustls(String),
}

/// Builds the rustls client configuration for `mode`.
///
/// # Errors
/// [`TlsError`] when the root certificate cannot be read or is needed but missing.
pub fn client_config(mode: TlsMode, root_cert: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let config = match mode {
        TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lenient { chain: None, provider: provider() }))
            .with_no_client_auth(),
        TlsMode::VerifyCa | TlsMode::VerifyFull => {
            let path = root_cert.ok_or(TlsError::NoRootCert)?;
            let roots = Arc::new(load_roots(path).map_err(TlsError::RootCert)?);
            if mode == TlsMode::VerifyFull {
                builder.with_root_certificates(roots).with_no_client_auth()
            } else {
                let chain = WebPkiServerVerifier::builder_with_provider(roots, provider())
                    .build()
                    .map_err(|e| TlsError::RootCert(e.to_string()))?;
                let verifier = Lenient { chain: Some(chain), provider: provider() };
                builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
            }
        }
    };
    Ok(config)
}

fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read ssl_root_cert {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
        roots.add(cert).map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(roots)
}

/// The verifier of the modes that check less than rustls does: libpq's `require`
/// (nothing: encrypts without authenticating the server) and `verify-ca` (the chain,
/// any host name). Signatures are always checked, with the provider's algorithms
/// (what [`WebPkiServerVerifier`] uses too).
#[derive(Debug)]
struct Lenient {
    /// `None`: any certificate; `Some`: the chain must verify, the name may not.
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    fn openssl(dir: &Path, args: &str) {
        let out =
            std::process::Command::new("openssl").current_dir(dir).args(args.split(' ')).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// CAs `ca` and `other` in `dir`, and `server.pem` for `localhost` signed by `ca`.
    fn certificates(dir: &Path) {
        let key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        for ca in ["ca", "other"] {
            openssl(dir, &format!("req -x509 {key} -days 2 -subj /CN={ca} -keyout {ca}.key -out {ca}.pem"));
        }
        std::fs::write(dir.join("ext"), "subjectAltName = DNS:localhost\nbasicConstraints = CA:FALSE\n").unwrap();
        openssl(dir, &format!("req -new {key} -subj /CN=localhost -keyout server.key -out server.csr"));
        openssl(
            dir,
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out server.pem",
        );
    }

    #[test]
    fn require_takes_any_certificate_and_verify_ca_the_chain_under_any_name() {
        let dir = tempfile::tempdir().unwrap();
        certificates(dir.path());
        let server = CertificateDer::from_pem_file(dir.path().join("server.pem")).unwrap();
        let chain = |ca: &str| {
            let roots = Arc::new(load_roots(&dir.path().join(ca)).unwrap());
            WebPkiServerVerifier::builder_with_provider(roots, provider()).build().unwrap()
        };
        let check = |verifier: &dyn ServerCertVerifier, host: &str| {
            let name = ServerName::try_from(host.to_owned()).unwrap();
            verifier.verify_server_cert(&server, &[], &name, &[], UnixTime::now()).is_ok()
        };
        let verify =
            |ca: Option<&str>, host: &str| check(&Lenient { chain: ca.map(chain), provider: provider() }, host);
        assert!(!check(chain("ca.pem").as_ref(), "db.example.com"), "verify-full checks the name");
        assert!(verify(None, "db.example.com"), "require");
        assert!(verify(Some("ca.pem"), "localhost") && verify(Some("ca.pem"), "db.example.com"), "verify-ca");
        assert!(!verify(Some("other.pem"), "localhost"), "verify-ca with a CA that did not sign it");
    }

    #[test]
    fn the_config_takes_the_five_names_and_a_url_also_takes_allow() {
        for mode in TlsMode::ALL {
            assert_eq!(TlsMode::parse(mode.as_str()), Some(mode));
            assert_eq!(TlsMode::parse_url(mode.as_str()), Some(mode));
        }
        assert_eq!(TlsMode::parse("allow"), None);
        assert_eq!(TlsMode::parse_url("allow"), Some(TlsMode::Prefer));
        for bad in ["", "sometimes", "Require", "verify_full"] {
            assert_eq!((TlsMode::parse(bad), TlsMode::parse_url(bad)), (None, None), "{bad:?}");
        }
    }
}
