//! The short-lived link certificates of one relay (types 5 and 6): made when first needed,
//! renewed before they expire, and re-made when the TLS layer changes its certificate.

use std::time::{Duration, SystemTime};

use rand::RngCore;
use tracing::debug;

use crate::crypto::identity::{Lifetimes, LinkCerts, RelayIdentity};

use super::LinkError;

/// Renew the certificates when they have less than this left (a handshake that starts
/// just before expiry must still verify at the peer).
const RENEW_BEFORE: Duration = Duration::from_secs(3600);

/// A relay's current link certificates.
#[derive(Debug, Default)]
pub(crate) struct LinkKeys {
    certs: Option<LinkCerts>,
    lifetimes: Lifetimes,
}

impl LinkKeys {
    /// Link certificates valid at `now` for a TLS certificate with digest `tls` (`None`:
    /// a plain link; whatever digest the type-5 certificate has stays).
    pub(crate) fn ensure<R: RngCore + ?Sized>(
        &mut self,
        id: &RelayIdentity,
        rng: &mut R,
        now: SystemTime,
        tls: Option<[u8; 32]>,
    ) -> Result<&LinkCerts, LinkError> {
        let fresh = self
            .certs
            .as_ref()
            .is_some_and(|c| c.expires() > now + RENEW_BEFORE);
        if !fresh {
            let digest = tls
                .or(self.certs.as_ref().map(LinkCerts::tls_cert_sha256))
                .unwrap_or([0; 32]);
            let certs = id
                .link_certs(rng, now, &self.lifetimes, digest)
                .map_err(|_| LinkError::OwnCerts)?;
            debug!(expires = ?certs.expires(), "new link certificates");
            self.certs = Some(certs);
        }
        let Some(certs) = self.certs.as_mut() else {
            return Err(LinkError::OwnCerts);
        };
        if let Some(digest) = tls.filter(|d| *d != certs.tls_cert_sha256()) {
            id.recertify_tls(certs, digest)
                .map_err(|_| LinkError::OwnCerts)?;
        }
        Ok(certs)
    }
}
