//! A simulated TLS session per link: what each end's [`LinkAuth`] reports. Both ends agree
//! (the responder's certificate digest, an exporter keyed by a per-link secret), so the
//! link handshake's TLS-bound checks run in the harness; a [`TlsLie`] makes one end report
//! something else, for the failure tests.

use sha2::{Digest, Sha256};

use crate::relay::LinkAuth;

/// The TLS session of one simulated link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SimTls {
    /// SHA-256 of the responder's (simulated) TLS certificate.
    pub(super) responder_cert: [u8; 32],
    /// What the exporter is keyed with: the same at both ends.
    pub(super) secret: [u8; 32],
}

/// What a lying end of a link reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsLie {
    /// The peer presented another TLS certificate than the one its CERTS certify (a
    /// man in the middle with its own certificate).
    PeerCert,
    /// The exporter gives another value than the peer's (another TLS session).
    Exporter,
    /// The TLS layer has certificates but cannot export keying material.
    NoExporter,
}

/// One end of a simulated link, as its relay's [`LinkAuth`].
#[derive(Clone, Copy, Debug)]
pub(super) struct SimEnd {
    pub(super) tls: Option<SimTls>,
    pub(super) initiator: bool,
    pub(super) lie: Option<TlsLie>,
}

impl LinkAuth for SimEnd {
    fn peer_cert_sha256(&self) -> Option<[u8; 32]> {
        let tls = self.tls.filter(|_| self.initiator)?;
        Some(match self.lie {
            Some(TlsLie::PeerCert) => Sha256::digest(tls.responder_cert).into(),
            _ => tls.responder_cert,
        })
    }

    fn own_cert_sha256(&self) -> Option<[u8; 32]> {
        self.tls
            .filter(|_| !self.initiator)
            .map(|t| t.responder_cert)
    }

    fn export_keying_material(&self, label: &[u8], context: &[u8]) -> Option<[u8; 32]> {
        let tls = self.tls?;
        let mut h = Sha256::new();
        h.update(tls.secret);
        match self.lie {
            Some(TlsLie::NoExporter) => return None,
            Some(TlsLie::Exporter) => h.update(b"another session"),
            _ => {}
        }
        h.update(label);
        h.update(context);
        Some(h.finalize().into())
    }
}
