//! TLS for `https` targets: the job's `tls_config` as a rustls client
//! configuration (the CA file or the system's roots, a client certificate,
//! `server_name`, `insecure_skip_verify`, `min_version`). Alerting uses it
//! too, for the Alertmanagers it forwards alerts to (the same `tls_config`).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::config::TlsConfig;
use super::target::Job;

/// Where Linux distributions keep their CA bundle.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The client configuration for `job`'s `https` targets.
pub fn client_config(job: &Job) -> Result<Arc<ClientConfig>, String> {
    client_config_for(
        job.config
            .tls_config
            .as_ref()
            .unwrap_or(&TlsConfig::default()),
        &job.base_dir,
    )
}

/// The client configuration `tls` describes, its relative file paths
/// resolved against `base_dir` (the config file's directory).
pub fn client_config_for(tls: &TlsConfig, base_dir: &Path) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version.as_deref() {
        None | Some("TLS12") => rustls::ALL_VERSIONS,
        Some("TLS13") => &[&rustls::version::TLS13],
        Some(other) => {
            return Err(format!(
                "tls_config.min_version {other:?} is not supported; use TLS12 or TLS13"
            ));
        }
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        builder.with_root_certificates(roots(base_dir, tls)?)
    };
    let config = match client_identity(base_dir, tls)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("tls_config client certificate: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name the target's certificate must carry: `server_name`, else the address's host.
pub fn server_name(tls: Option<&TlsConfig>, address: &str) -> Result<ServerName<'static>, String> {
    let host = match tls.and_then(|t| t.server_name.as_deref()) {
        Some(name) => name,
        None => address
            .rsplit_once(':')
            .map_or(address, |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']'),
    };
    ServerName::try_from(host.to_owned())
        .map_err(|e| format!("invalid TLS server name {host:?}: {e}"))
}

fn roots(base_dir: &Path, tls: &TlsConfig) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certificates: Vec<CertificateDer<'static>> = if let Some(pem) = &tls.ca {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tls_config.ca: {e}"))?
    } else if let Some(file) = &tls.ca_file {
        let path = base_dir.join(file);
        CertificateDer::pem_file_iter(&path)
            .and_then(Iterator::collect)
            .map_err(|e| format!("tls_config.ca_file {}: {e}", path.display()))?
    } else {
        let bundle = SYSTEM_BUNDLES
            .iter()
            .find(|p| Path::new(p).is_file())
            .ok_or("no CA bundle found on this system; set tls_config.ca_file")?;
        CertificateDer::pem_file_iter(bundle)
            .and_then(Iterator::collect)
            .map_err(|e| format!("{bundle}: {e}"))?
    };
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err("the CA certificates hold no usable certificate".to_owned());
    }
    Ok(roots)
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn client_identity(base_dir: &Path, tls: &TlsConfig) -> Result<Option<Identity>, String> {
    let chain = match (&tls.cert, &tls.cert_file) {
        (Some(pem), _) => CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("tls_config.cert: {e}"))?,
        (None, Some(file)) => {
            let path = base_dir.join(file);
            CertificateDer::pem_file_iter(&path)
                .and_then(Iterator::collect)
                .map_err(|e| format!("tls_config.cert_file {}: {e}", path.display()))?
        }
        (None, None) => return Ok(None),
    };
    let key = match (&tls.key, &tls.key_file) {
        (Some(pem), _) => PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("tls_config.key: {e}"))?,
        (None, Some(file)) => {
            let path = base_dir.join(file);
            PrivateKeyDer::from_pem_file(&path)
                .map_err(|e| format!("tls_config.key_file {}: {e}", path.display()))?
        }
        (None, None) => return Err("tls_config has a client certificate but no key".to_owned()),
    };
    Ok(Some((chain, key)))
}

/// `insecure_skip_verify`: any certificate is accepted, but the handshake's
/// signatures are still checked against it.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
