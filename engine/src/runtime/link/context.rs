//! What every TLS link of a process shares: rustls' client and server configurations, the
//! link certificate a responder presents, and whether the kernel can take the records
//! (kTLS). Made once at start, shared by the workers behind an `Arc`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, UnbufferedClientConnection};
use rustls::crypto::{
    aws_lc_rs as provider, verify_tls12_signature, verify_tls13_signature, CryptoProvider,
    WebPkiSupportedAlgorithms,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::{NoServerSessionStorage, UnbufferedServerConnection};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use rustls::{SupportedProtocolVersion, ALL_VERSIONS};

use super::exporter::{sha256, Capture};
use super::LinkError;
use crate::sys::ktls::{self, KtlsSupport};

/// Why TLS could not be set up at start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// The link certificate could not be made.
    #[error("making the TLS link certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

impl crate::HasKind for TlsSetupError {
    fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::Internal
    }
}

/// The process-wide TLS setup of channel links. See the module docs.
#[derive(Debug)]
pub struct TlsContext {
    client: ClientConfig,
    server: ServerConfig,
    own_cert: CertificateDer<'static>,
    own_cert_sha256: [u8; 32],
    ktls: KtlsSupport,
}

impl TlsContext {
    /// TLS 1.3 and 1.2, a fresh link key, kTLS probed.
    pub fn new() -> Result<Self, TlsSetupError> {
        Self::with_versions(ALL_VERSIONS, ktls::probe())
    }

    /// As [`TlsContext::new`] with only `versions` offered and accepted, and `ktls` as the
    /// kernel's support (tests: force TLS 1.2, or user-space records).
    pub fn with_versions(
        versions: &[&'static SupportedProtocolVersion],
        ktls: KtlsSupport,
    ) -> Result<Self, TlsSetupError> {
        Self::with_provider(link_provider(), versions, ktls)
    }

    /// As [`TlsContext::with_versions`] with only `suites` (tests: one suite at a time).
    #[cfg(test)]
    pub(crate) fn with_suites(
        suites: Vec<rustls::SupportedCipherSuite>,
        versions: &[&'static SupportedProtocolVersion],
        ktls: KtlsSupport,
    ) -> Result<Self, TlsSetupError> {
        let provider = CryptoProvider {
            cipher_suites: suites,
            ..link_provider()
        };
        Self::with_provider(provider, versions, ktls)
    }

    fn with_provider(
        provider: CryptoProvider,
        versions: &[&'static SupportedProtocolVersion],
        ktls: KtlsSupport,
    ) -> Result<Self, TlsSetupError> {
        let provider = Arc::new(provider);
        let (own_cert, key) = link_certificate()?;
        let verifier = Arc::new(AnyCertVerifier {
            algorithms: provider.signature_verification_algorithms,
            capture: Arc::new(Capture::default()),
        });
        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // tor-spec 2.2: no session resumption, no compression (rustls has none).
        client.resumption = Resumption::disabled();
        client.enable_sni = false;
        client.enable_secret_extraction = true;
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)?
            .with_no_client_auth()
            .with_single_cert(vec![own_cert.clone()], key)?;
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        server.ignore_client_order = true;
        server.enable_secret_extraction = true;
        Ok(TlsContext {
            client,
            server,
            own_cert_sha256: sha256(&own_cert),
            own_cert,
            ktls,
        })
    }

    /// The DER of the certificate this process presents as a responder (Tor's link
    /// certificate: the type-5 Ed25519 cert certifies its SHA-256).
    pub fn own_cert_der(&self) -> &[u8] {
        &self.own_cert
    }

    /// SHA-256 of [`TlsContext::own_cert_der`].
    pub fn own_cert_sha256(&self) -> [u8; 32] {
        self.own_cert_sha256
    }

    /// The client configuration of outbound links (accepts any certificate, records none:
    /// for a test's own TLS peer; links make their own per connection).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::new(self.client.clone())
    }

    /// The server configuration of inbound links (this process's certificate, no client
    /// certificates, no resumption: for a test's own TLS peer).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::new(self.server.clone())
    }

    /// Whether links hand their records to the kernel, and if not why.
    pub fn ktls(&self) -> &KtlsSupport {
        &self.ktls
    }

    /// The shared configurations with `capture` as their key log (tests: rustls' buffered
    /// connections on the other end).
    #[cfg(test)]
    pub(crate) fn configs(&self, capture: Arc<Capture>) -> (ClientConfig, ServerConfig) {
        let (mut c, mut s) = (self.client.clone(), self.server.clone());
        c.key_log = capture.clone();
        s.key_log = capture;
        (c, s)
    }

    /// A client connection for an outbound link, with its own capture of the handshake.
    pub(crate) fn client_conn(
        &self,
    ) -> Result<(UnbufferedClientConnection, Arc<Capture>), LinkError> {
        let capture = Arc::new(Capture::default());
        let mut cfg = self.client.clone();
        cfg.key_log = capture.clone();
        let algorithms = cfg.crypto_provider().signature_verification_algorithms;
        cfg.dangerous()
            .set_certificate_verifier(Arc::new(AnyCertVerifier {
                algorithms,
                capture: capture.clone(),
            }));
        // Tor clients name no server: the name is neither sent (SNI off) nor checked.
        let name = ServerName::try_from("kistrel.invalid").map_err(|_| LinkError::Setup)?;
        let conn = UnbufferedClientConnection::new(Arc::new(cfg), name).map_err(LinkError::Tls)?;
        Ok((conn, capture))
    }

    /// A server connection for an inbound link, with its own capture of the handshake.
    pub(crate) fn server_conn(
        &self,
    ) -> Result<(UnbufferedServerConnection, Arc<Capture>), LinkError> {
        let capture = Arc::new(Capture::default());
        let mut cfg = self.server.clone();
        cfg.key_log = capture.clone();
        let conn = UnbufferedServerConnection::new(Arc::new(cfg)).map_err(LinkError::Tls)?;
        Ok((conn, capture))
    }
}

/// rustls' aws-lc-rs provider with AES-128-GCM first: it is the cheapest suite here (0.12-0.14
/// CPU-s/GiB sealing 16 KiB records vs 0.15-0.17 for AES-256-GCM and 1.2 for ChaCha20, on
/// this VAES machine), and a responder picks by its own order.
fn link_provider() -> CryptoProvider {
    let mut p = provider::default_provider();
    p.cipher_suites = vec![
        provider::cipher_suite::TLS13_AES_128_GCM_SHA256,
        provider::cipher_suite::TLS13_AES_256_GCM_SHA384,
        provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        provider::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        provider::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        provider::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    p
}

/// A fresh RSA-2048 link key and a self-signed certificate for it, one certificate in the
/// chain as a Tor relay's v3 handshake has. C Tor 0.4.9 checks the link certificate only
/// through the type-5 Ed25519 cert, but it reads the certificate's key as RSA: an ECDSA key
/// completes the handshake yet leaves "TLS error: expecting an rsa key" warnings in its log
/// (seen here; Arti notes the same, tor#41226). So RSA-2048, as C Tor's own link keys; made
/// once per process, and a responder's signature per TLS handshake is C Tor's cost too.
/// Random host names, as C Tor's, so the name says nothing.
fn link_certificate() -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsSetupError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
    let mut names = [0u8; 6];
    rand::Rng::fill(&mut rand::rng(), &mut names);
    let host = format!("www.{}.net", hex_lower(&names));
    let params = rcgen::CertificateParams::new(vec![host])?;
    let cert = params.self_signed(&key)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((cert.der().clone(), key))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Accepts whatever certificate the responder presents (Tor proves identities with the
/// CERTS cell, not by PKI) and records its digest, but still checks that the handshake was
/// signed by that certificate's key.
#[derive(Debug)]
struct AnyCertVerifier {
    algorithms: WebPkiSupportedAlgorithms,
    capture: Arc<Capture>,
}

impl ServerCertVerifier for AnyCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.capture.set_peer_cert(end_entity);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
