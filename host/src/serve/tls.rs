//! TLS for `tls:` listeners and for `omni-cpi --remote tls:…` (rustls on ring, TLS 1.2 and 1.3
//! only). The server's key must be private to its owner, as the token file is; a client trusts
//! the CA file it is given, or else Mozilla's roots. Certificates are read again on SIGHUP, so a
//! renewed certificate is served without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The certificate chain and private key a `tls:` listener presents.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM: the server's certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM: the certificate's private key (PKCS#8, PKCS#1 or SEC1), mode 0600.
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the TLS key {path} can be read by other users (mode {mode:o}); make it private: chmod 600 {path}")]
    KeyNotPrivate { path: PathBuf, mode: u32 },
    #[error("{path} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (`-----BEGIN PRIVATE KEY-----` or an RSA/EC key)")]
    NoKey { path: PathBuf },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("the key {key} does not go with the certificate {cert}, or is of a kind rustls cannot use: {message}")]
    Mismatch { cert: PathBuf, key: PathBuf, message: String },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The acceptor for `tls:` listeners, from `files`; every failure names the file and the fix.
pub fn acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let certs = certificates(&files.cert)?;
    let key = private_key(&files.key)?;
    let mismatch = |e: rustls::Error| TlsError::Mismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        message: e.to_string(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(mismatch)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(mismatch)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A connector that trusts the certificates in `ca` (PEM), or Mozilla's roots without one.
pub fn connector(ca: Option<&Path>) -> Result<tokio_rustls::TlsConnector, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in certificates(path)? {
                roots.add(cert).map_err(|e| TlsError::Invalid { path: path.to_path_buf(), message: e.to_string() })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid { path: PathBuf::from("rustls"), message: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The name a client checks the server's certificate against: a DNS name or an IP address.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string()).map_err(|_| format!("`{host}` is neither a DNS name nor an IP address"))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid { path: path.to_path_buf(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let read = |source| TlsError::Read { path: path.to_path_buf(), source };
    let mode = std::fs::metadata(path).map_err(read)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyNotPrivate { path: path.to_path_buf(), mode: mode & 0o777 });
    }
    let pem = std::fs::read(path).map_err(read)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey { path: path.to_path_buf() },
        other => TlsError::Invalid { path: path.to_path_buf(), message: other.to_string() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    /// The error of a load that must fail.
    fn refused(files: TlsFiles) -> TlsError {
        match acceptor(&files) {
            Ok(_) => panic!("{files:?} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn bad_certificate_and_key_files_are_named_with_the_fix() {
        let dir = tempfile::tempdir().expect("temp dir");
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let cert = write(dir.path(), "cert.pem", &made.cert.pem(), 0o644);
        let key = write(dir.path(), "key.pem", &made.signing_key.serialize_pem(), 0o600);
        assert!(acceptor(&TlsFiles { cert: cert.clone(), key: key.clone() }).is_ok());

        let open_key = write(dir.path(), "open.pem", &made.signing_key.serialize_pem(), 0o640);
        let e = refused(TlsFiles { cert: cert.clone(), key: open_key });
        assert!(e.to_string().contains("chmod 600"), "{e}");

        let empty = write(dir.path(), "empty.pem", "", 0o600);
        let e = refused(TlsFiles { cert: empty.clone(), key: key.clone() });
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        let e = refused(TlsFiles { cert: cert.clone(), key: empty });
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");

        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let other_key = write(dir.path(), "other.pem", &other.signing_key.serialize_pem(), 0o600);
        let e = refused(TlsFiles { cert, key: other_key });
        assert!(matches!(e, TlsError::Mismatch { .. }), "{e}");

        let e = refused(TlsFiles { cert: dir.path().join("missing.pem"), key });
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }

    #[test]
    fn servers_are_named_by_dns_name_or_address() {
        assert!(server_name("omni.example").is_ok());
        assert!(matches!(server_name("127.0.0.1"), Ok(ServerName::IpAddress(_))));
        assert!(server_name("not a name").is_err());
    }
}
