//! AutoMTLS as go-plugin does it: Terraform hands the plugin its client
//! certificate in `PLUGIN_CLIENT_CERT`; the plugin makes a fresh self-signed
//! server certificate, accepts exactly Terraform's certificate, and prints
//! its own in the handshake line.

use std::sync::Arc;

use base64::Engine;
use rustls::DigitallySignedStruct;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, ServerConfig, SignatureScheme};

/// A server certificate and the TLS configuration that pins the client's.
pub struct PluginTls {
    pub config: Arc<ServerConfig>,
    /// The server certificate, base64 (standard alphabet, no padding) for the handshake line.
    pub cert_b64: String,
}

/// Build the TLS setup from the PEM text of Terraform's client certificate.
pub fn from_client_pem(client_pem: &str) -> Result<PluginTls, String> {
    let client_der = rustls_pemfile::certs(&mut client_pem.as_bytes())
        .next()
        .ok_or("PLUGIN_CLIENT_CERT holds no PEM certificate")?
        .map_err(|e| format!("PLUGIN_CLIENT_CERT is not a valid PEM certificate: {e}"))?;

    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).map_err(|e| e.to_string())?;
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "terraform-provider-cxflow");
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature, rcgen::KeyUsagePurpose::KeyEncipherment, rcgen::KeyUsagePurpose::KeyCertSign];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::seconds(30);
    params.not_after = now + time::Duration::days(365 * 30);
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let cert_der: CertificateDer<'static> = cert.der().clone();
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));

    // ring does the handshake (fast start, no slow RNG seeding); Terraform's
    // P-521 client signature is checked with aws-lc-rs, which supports it.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedClient { expected: client_der.to_vec(), provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()) });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert_der.clone()], key_der)
        .map_err(|e| e.to_string())?;
    // grpc-go insists on ALPN h2 over TLS.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(PluginTls { config: Arc::new(config), cert_b64: base64::engine::general_purpose::STANDARD_NO_PAD.encode(cert_der.as_ref()) })
}

/// Accepts exactly one client certificate. Terraform's certificate is a
/// self-signed CA, which path-building verifiers refuse as an end entity;
/// pinning its bytes is the stricter check anyway.
#[derive(Debug)]
struct PinnedClient {
    expected: Vec<u8>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for PinnedClient {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(&self, end_entity: &CertificateDer<'_>, _intermediates: &[CertificateDer<'_>], _now: UnixTime) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_slice() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
