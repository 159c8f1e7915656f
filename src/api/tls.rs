//! HTTPS on TCP listeners (`api.tls_cert`, `api.tls_key`), with rustls and its `ring`
//! provider only.
//!
//! The server's certificate comes from a [`CertResolver`] that reads an `ArcSwap`, so a
//! SIGHUP that loads new files changes the certificate for every new connection
//! without rebinding; connections already open keep the one they started with.

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// Why the certificate or key could not be used; names the key (`api.tls_cert` or
/// `api.tls_key`) at fault, never the key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub(crate) struct TlsError {
    /// `api.tls_cert` or `api.tls_key`.
    pub key: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the PEM certificate chain and private key and checks that they belong
/// together.
///
/// # Errors
/// [`TlsError`] naming the file at fault.
pub(crate) fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_err = |problem: String| TlsError { key: "api.tls_cert", problem };
    let key_err = |problem: String| TlsError { key: "api.tls_key", problem };
    let cert_pem = std::fs::read(cert).map_err(|e| cert_err(format!("cannot read {}: {e}", cert.display())))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("{} is not a PEM certificate chain: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(cert_err(format!("{} holds no PEM certificate", cert.display())));
    }
    let key_pem = std::fs::read(key).map_err(|e| key_err(format!("cannot read {}: {e}", key.display())))?;
    // No error text from the parser: it could quote the file.
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| key_err(format!("{} holds no usable PEM private key", key.display())))?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            key_err(format!("{} does not match the certificate in {}", key.display(), cert.display()))
        }
        other => key_err(format!("{} cannot be used: {other}", key.display())),
    })
}

/// Hands the current certificate to every new TLS connection.
pub(crate) struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver").finish_non_exhaustive()
    }
}

impl CertResolver {
    /// A resolver serving `key`.
    pub(crate) fn new(key: CertifiedKey) -> Self {
        Self { current: ArcSwap::from_pointee(key) }
    }

    /// Loads the files of `cert` and `key`.
    ///
    /// # Errors
    /// See [`load_certified_key`].
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        load_certified_key(cert, key).map(Self::new)
    }

    /// Serves `key` to the connections that start from now on.
    pub(crate) fn replace(&self, key: CertifiedKey) {
        self.current.store(Arc::new(key));
    }

    /// The certificate now served (its end-entity certificate first).
    #[cfg(test)]
    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The rustls server configuration of every HTTPS listener: TLS 1.2 and 1.3 with
/// ring's safe defaults, no client certificates (actix-web adds the ALPN protocols).
///
/// # Errors
/// Only if the ring provider refused its own default protocol versions.
pub(crate) fn server_config(resolver: Arc<CertResolver>) -> Result<ServerConfig, rustls::Error> {
    Ok(ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    #[test]
    fn loads_a_matching_pair_and_swaps_it() {
        let dir = tempfile::tempdir().unwrap();
        let (a_cert, a_key) = self_signed(dir.path(), "a");
        let (b_cert, b_key) = self_signed(dir.path(), "b");
        let resolver = Arc::new(CertResolver::load(&a_cert, &a_key).unwrap());
        let first = resolver.current().cert[0].clone();
        resolver.replace(load_certified_key(&b_cert, &b_key).unwrap());
        assert_ne!(resolver.current().cert[0], first);
        assert!(server_config(resolver).is_ok());
    }

    #[test]
    fn refuses_mismatched_missing_and_garbage_files() {
        let dir = tempfile::tempdir().unwrap();
        let (a_cert, _) = self_signed(dir.path(), "a");
        let (_, b_key) = self_signed(dir.path(), "b");
        let err = load_certified_key(&a_cert, &b_key).unwrap_err();
        assert_eq!(err.key, "api.tls_key", "{err}");
        assert!(err.problem.contains("does not match"), "{err}");

        let err = load_certified_key(&dir.path().join("none.crt"), &b_key).unwrap_err();
        assert_eq!(err.key, "api.tls_cert");

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a pem file\n").unwrap();
        assert_eq!(load_certified_key(&junk, &b_key).unwrap_err().key, "api.tls_cert");
        let err = load_certified_key(&a_cert, &junk).unwrap_err();
        assert_eq!(err.key, "api.tls_key");
        assert!(!err.problem.contains("not a pem file"), "{err}");
    }
}
