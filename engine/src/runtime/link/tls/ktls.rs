//! The switch of a TLS link's send side to the kernel (kTLS TX, see `crate::sys::ktls`):
//! once the link is open and nothing it sealed is still queued, its send keys and next
//! sequence number become a crypto info for the kernel; from then on cells go to the send
//! buffer as plaintext. Receiving stays in user space.

use super::{Phase, TlsLink};
use crate::sys::ktls::{CryptoInfo, KtlsVersion};

impl TlsLink {
    /// Whether the link still waits to hand its send keys to the kernel.
    pub(crate) fn ktls_pending(&self) -> bool {
        matches!(&self.phase, Phase::Records(r) if r.tx_secrets.is_some() && !r.tx_kernel)
    }

    /// The kernel's crypto info for the send side, when the switch can happen now: nothing
    /// of ours is staged, open or waiting (the caller checks that the connection's queue is
    /// empty too).
    pub(crate) fn ktls_tx_info(&self) -> Option<CryptoInfo> {
        let Phase::Records(r) = &self.phase else {
            return None;
        };
        if r.tx_kernel
            || self.open_record.is_some()
            || !self.out.is_empty()
            || !self.early.is_empty()
        {
            return None;
        }
        let version = if r.tls13 {
            KtlsVersion::Tls13
        } else {
            KtlsVersion::Tls12
        };
        CryptoInfo::new(version, r.tx_secrets.as_ref()?, r.tx.seq())
    }

    /// The kernel took the send keys (`accepted`), or refused them: either way the link
    /// forgets them; from an acceptance on, it writes plaintext.
    pub(crate) fn ktls_tx_done(&mut self, accepted: bool) {
        if let Phase::Records(r) = &mut self.phase {
            r.tx_secrets = None;
            r.tx_kernel = accepted;
        }
    }
}
