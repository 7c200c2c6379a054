//! The switch of a TLS link's sides to the kernel (kTLS, see `crate::sys::ktls`).
//!
//! - Send (TLS_TX): once the link is open and nothing it sealed is still queued, its send
//!   keys and next sequence number become a crypto info for the kernel; from then on cells
//!   go to the send buffer as plaintext.
//! - Receive (TLS_RX): once the link is open and no partial record waits in its staging
//!   buffer (and the backend has no read in flight), its receive keys and next sequence
//!   number go to the kernel; from then on received bytes are plaintext, and the records
//!   that are not application data come through [`TlsLink::open_kernel_record`]: a TLS 1.3
//!   NewSessionTicket is ignored, an alert or a KeyUpdate closes the link with its reason.

use super::super::{Delivery, LinkError};
use super::{alert, post_handshake, Phase, TlsLink};
use crate::sys::ktls::{content_type, CryptoInfo, KtlsVersion};

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

impl TlsLink {
    /// Whether the link still waits to hand its receive keys to the kernel.
    pub(crate) fn ktls_rx_pending(&self) -> bool {
        matches!(&self.phase, Phase::Records(r) if r.rx_secrets.is_some() && !r.rx_kernel)
    }

    /// The kernel's crypto info for the receive side, when the link is on a record boundary
    /// (nothing staged).
    pub(crate) fn ktls_rx_info(&self) -> Option<CryptoInfo> {
        let Phase::Records(r) = &self.phase else {
            return None;
        };
        if r.rx_kernel || !r.staging.is_empty() {
            return None;
        }
        let version = if r.tls13 {
            KtlsVersion::Tls13
        } else {
            KtlsVersion::Tls12
        };
        CryptoInfo::new_rx(version, r.rx_secrets.as_ref()?, r.rx.seq())
    }

    /// The kernel took the receive keys (`accepted`) or refused them: either way the link
    /// forgets them; from an acceptance on, received bytes are plaintext.
    pub(crate) fn ktls_rx_done(&mut self, accepted: bool) {
        if let Phase::Records(r) = &mut self.phase {
            r.rx_secrets = None;
            r.rx_kernel = accepted;
        }
    }

    /// A record the kernel opened (kTLS RX), with its content type: application data goes
    /// to `deliver`; post-handshake messages and alerts are handled as in user space, except
    /// that a KeyUpdate cannot be followed (the kernel holds the keys) and closes the link.
    pub(crate) fn open_kernel_record(
        &mut self,
        typ: u8,
        body: &[u8],
        deliver: &mut dyn FnMut(Delivery<'_>),
    ) -> Result<(), LinkError> {
        let result = match &mut self.phase {
            Phase::Records(r) if r.rx_kernel => match typ {
                content_type::APPLICATION_DATA => {
                    if !body.is_empty() {
                        deliver(Delivery::Data {
                            bytes: body,
                            auth: &self.facts,
                        });
                    }
                    Ok(())
                }
                content_type::HANDSHAKE => post_handshake(r, body, &mut self.out),
                content_type::ALERT => alert(body),
                other => Err(LinkError::UnexpectedRecord(other)),
            },
            // Only a link whose receive side the kernel took gets kernel records.
            Phase::Records(_) => Err(LinkError::UnexpectedRecord(typ)),
            _ => Err(LinkError::Closed),
        };
        if result.is_err() {
            self.phase = Phase::Closed;
        }
        result
    }
}
