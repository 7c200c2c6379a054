//! The seam between a channel's transport and the link handshake: what only the TLS layer
//! knows (its certificates and its keying-material exporter).

/// What the channel's transport (TLS, or plain for benchmarks) knows that the Tor link
/// handshake needs (tor-spec 4.2 "SCERT", type-5 cert check, 4.4.2 "TLSSECRETS").
pub trait LinkAuth {
    /// SHA-256 of the DER of the certificate the peer presented in TLS (None: plain link).
    fn peer_cert_sha256(&self) -> Option<[u8; 32]>;
    /// SHA-256 of the DER of our own TLS certificate (None: plain link, or we are a client).
    fn own_cert_sha256(&self) -> Option<[u8; 32]>;
    /// RFC 5705 keying material exporter of the TLS session (None: plain link, or the TLS
    /// layer cannot export); 32 bytes for the label and context given.
    fn export_keying_material(&self, label: &[u8], context: &[u8]) -> Option<[u8; 32]>;
}

/// A plain link (`Links = "plain"`, the benchmark mode): no TLS, so nothing to bind the
/// handshake to. Identities are still proven by CERTS and ntor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlainLinkAuth;

impl LinkAuth for PlainLinkAuth {
    fn peer_cert_sha256(&self) -> Option<[u8; 32]> {
        None
    }

    fn own_cert_sha256(&self) -> Option<[u8; 32]> {
        None
    }

    fn export_keying_material(&self, _label: &[u8], _context: &[u8]) -> Option<[u8; 32]> {
        None
    }
}
