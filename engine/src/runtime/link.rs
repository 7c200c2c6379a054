//! The link layer of a channel connection: what sits between the driver's bytes and the cell
//! codec (docs/design.md, "link layer"): TLS (rustls, records in place; kTLS where the kernel
//! takes them) or plain (the benchmark mode).
//!
//! ```text
//!   driver Recv(buf) --> Link::open(&mut buf, deliver) --> Secured / plaintext --> Relay
//!   scheduler grant  --> Link::cell_buf(send buf) <-- Relay::write_cells     (one copy)
//!   end of the run   --> Link::seal(send buf)            (per channel per run, not per cell)
//!   handshake bytes  --> Link::write_out(send buf)       (after open, and at connect)
//! ```
//!
//! - `open` takes `&mut [u8]`: a TLS record is decrypted where it landed in the driver's
//!   buffer, and the plaintext goes to the cell decoder from there. A record cut by the end
//!   of a buffer is finished in a per-link staging buffer (copied once; `RecordStats` counts
//!   how often). One buffer can hold several records, so `open` delivers through a callback.
//! - `cell_buf` hands out the send buffer itself with a record header reserved in front;
//!   cells are written once, as plaintext, where they will be sent, and `seal` encrypts
//!   them in place and appends the tag: records of up to 16 KiB, not one per cell. The
//!   scheduler writes a grant a record's room at a time (`cell_buf_room`; each full record is
//!   sealed where it lies as the next opens) and calls `seal` once per channel per run for
//!   the last one (`CellSource::flush`).
//! - Before the TLS handshake is done no cell flows: `Delivery::Secured` tells the worker
//!   when the relay's link handshake (VERSIONS, CERTS, ...) may start, and the relay reads
//!   what only TLS knows through [`LinkAuth`](crate::relay::LinkAuth).
//! - kTLS (Linux, where the `tls` ULP exists): once the handshake's bytes are out, the
//!   send direction's keys go to the kernel and cells are sent as plaintext; once the link
//!   is on a record boundary (and the backend reads no further ahead: at once on poll,
//!   after draining its multishot receive on io_uring), the receive keys go too, `open` passes plaintext through, and the kernel's non-data records
//!   come through `open_kernel_record` (see `crate::sys::ktls`). Untested on the development
//!   kernel, which has no `tls` ULP.
//!
//! It is an enum, not a trait object: one predictable branch per call, never a call through
//! a pointer per cell.

mod context;
mod exporter;
mod maker;
mod record;
#[cfg(test)]
mod tests;
mod tls;

use std::sync::Arc;

use crate::relay::{LinkAuth, PlainLinkAuth};

pub use context::{TlsContext, TlsSetupError};
pub use maker::LinkStats;
pub use tls::{RecordStats, TlsLink};

pub(crate) use maker::LinkMaker;

/// How a process's channels are carried (`Links` in the config).
#[derive(Clone, Debug)]
pub enum Links {
    /// TLS, with the process's certificate and configurations (the default).
    Tls(Arc<TlsContext>),
    /// Plain TCP: no encryption and no TLS binding of identities. A benchmark mode only;
    /// C Tor peers refuse it.
    Plain,
}

impl Links {
    /// `"tls"` or `"plain"`.
    pub fn name(&self) -> &'static str {
        match self {
            Links::Tls(_) => "tls",
            Links::Plain => "plain",
        }
    }
}

/// What carries a link's records once it is open (the metrics' per-link kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkKind {
    /// Plain TCP.
    Plain,
    /// TLS records sealed and opened by kistrel in user space.
    TlsUser,
    /// TLS records sealed by the kernel (kTLS TX); opened in user space, or by the kernel
    /// too (kTLS RX, counted apart in [`LinkStats::ktls_rx`]).
    Ktls,
}

impl LinkKind {
    /// `"plain"`, `"tls-user"` or `"ktls"`.
    pub fn name(self) -> &'static str {
        match self {
            LinkKind::Plain => "plain",
            LinkKind::TlsUser => "tls-user",
            LinkKind::Ktls => "ktls",
        }
    }
}

/// What a link hands the worker while opening received bytes.
pub enum Delivery<'a> {
    /// The link became secure: the relay's link handshake may start.
    Secured,
    /// Plaintext, and what the transport knows for the link handshake.
    Data {
        /// The bytes, where they were decrypted.
        bytes: &'a [u8],
        /// The TLS facts (certificate digests, exporter).
        auth: &'a dyn LinkAuth,
    },
}

impl std::fmt::Debug for Delivery<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Delivery::Secured => f.write_str("Secured"),
            Delivery::Data { bytes, .. } => write!(f, "Data({} bytes)", bytes.len()),
        }
    }
}

/// Why a link failed; the worker closes the channel with the reason logged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// rustls refused the handshake (bad or unexpected TLS messages, a bad signature, ...).
    #[error("TLS handshake: {0}")]
    Tls(rustls::Error),
    /// The first bytes are a Tor cell (a VERSIONS cell) sent without TLS.
    #[error("a plaintext Tor cell where a TLS record was expected (the peer's links are plain)")]
    PlaintextCell,
    /// The first bytes are not a TLS record.
    #[error("not TLS: the first record has type {0} (want 22, a ClientHello)")]
    NotTls(u8),
    /// A record header announced a body over 2^14 + 256 bytes.
    #[error("TLS record of {0} bytes, over the limit")]
    RecordTooLong(usize),
    /// A record failed to decrypt (wrong key, or tampered with).
    #[error("TLS record failed authentication")]
    Decrypt,
    /// A record too short for its framing.
    #[error("malformed TLS record")]
    BadRecord,
    /// A TLS 1.3 record whose outer type is not application data.
    #[error("unprotected TLS record of type {0} after the handshake")]
    UnexpectedPlaintextRecord(u8),
    /// A record type with no place after the handshake.
    #[error("TLS record of type {0} after the handshake")]
    UnexpectedRecord(u8),
    /// A handshake message with no place after the handshake.
    #[error("TLS handshake message {0} after the handshake")]
    UnexpectedHandshake(u8),
    /// A post-handshake message split over records (not supported).
    #[error("TLS handshake message split over records after the handshake")]
    FragmentedHandshake,
    /// A malformed KeyUpdate.
    #[error("malformed TLS KeyUpdate")]
    BadKeyUpdate,
    /// A KeyUpdate that needs our keys renewed while the kernel holds them.
    #[error("the peer asked for a TLS key update while the kernel holds our keys (kTLS)")]
    KeyUpdateOnKtls,
    /// A KeyUpdate of the peer's keys while the kernel holds our receive keys (renewing
    /// them needs Linux 6.13's TLS_RX rekey).
    #[error("the peer updated its TLS keys while the kernel holds our receive keys (kTLS RX)")]
    KeyUpdateOnKtlsRx,
    /// The peer sent a fatal alert.
    #[error("TLS alert {0} from the peer")]
    Alert(u8),
    /// The peer closed TLS (close_notify).
    #[error("the peer closed the TLS session")]
    PeerClosed,
    /// The link failed before; nothing more goes through it.
    #[error("link already failed")]
    Closed,
    /// 2^64 records on one key.
    #[error("TLS record sequence number exhausted")]
    SequenceExhausted,
    /// rustls negotiated a suite the record layer does not know.
    #[error("negotiated TLS cipher suite not supported by the record layer")]
    UnsupportedSuite,
    /// Early data (never enabled) or another unexpected rustls state.
    #[error("unexpected TLS state (early data)")]
    EarlyData,
    /// rustls could not encode a handshake message.
    #[error("encoding a TLS handshake message failed")]
    Encode,
    /// Sealing a record failed.
    #[error("TLS record encryption failed")]
    Encrypt,
    /// The TLS connection could not be made.
    #[error("setting up a TLS connection failed")]
    Setup,
}

impl crate::HasKind for LinkError {
    fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind;
        match self {
            LinkError::SequenceExhausted => ErrorKind::ResourceExhausted,
            LinkError::UnsupportedSuite
            | LinkError::EarlyData
            | LinkError::Encode
            | LinkError::Encrypt
            | LinkError::Setup => ErrorKind::Internal,
            LinkError::KeyUpdateOnKtls | LinkError::KeyUpdateOnKtlsRx => ErrorKind::Unsupported,
            LinkError::PeerClosed | LinkError::Closed => ErrorKind::Network,
            _ => ErrorKind::PeerProtocol,
        }
    }
}

/// A channel connection's link layer. See the module docs.
#[derive(Debug, Default)]
#[non_exhaustive]
pub enum Link {
    /// Plain TCP: bytes pass through untouched, at no cost.
    #[default]
    Plain,
    /// TLS.
    Tls(Box<TlsLink>),
}

impl Link {
    /// The link of a channel we open: a TLS link has its ClientHello ready to write.
    pub fn connect(links: &Links) -> Result<Self, LinkError> {
        match links {
            Links::Plain => Ok(Link::Plain),
            Links::Tls(ctx) => Ok(Link::Tls(Box::new(TlsLink::connect(ctx)?))),
        }
    }

    /// The link of a channel a peer opened.
    pub fn accept(links: &Links) -> Result<Self, LinkError> {
        match links {
            Links::Plain => Ok(Link::Plain),
            Links::Tls(ctx) => Ok(Link::Tls(Box::new(TlsLink::accept(ctx)?))),
        }
    }

    /// Whether cells may flow (a TLS link is open once its handshake is done).
    #[inline]
    pub fn is_open(&self) -> bool {
        match self {
            Link::Plain => true,
            Link::Tls(t) => t.is_open(),
        }
    }

    /// What carries the link's records.
    pub fn kind(&self) -> LinkKind {
        match self {
            Link::Plain => LinkKind::Plain,
            Link::Tls(t) if t.tx_in_kernel() => LinkKind::Ktls,
            Link::Tls(_) => LinkKind::TlsUser,
        }
    }

    /// Whether an open TLS link still waits to hand its send keys to the kernel (kTLS).
    pub fn ktls_pending(&self) -> bool {
        matches!(self, Link::Tls(t) if t.ktls_pending())
    }

    /// The kernel's crypto info for this link's send side, if the switch can happen now
    /// (call only when the connection has nothing queued).
    pub fn ktls_tx_info(&self) -> Option<crate::sys::ktls::CryptoInfo> {
        match self {
            Link::Tls(t) => t.ktls_tx_info(),
            Link::Plain => None,
        }
    }

    /// The kernel took the send keys (`accepted`) or refused them.
    pub fn ktls_tx_done(&mut self, accepted: bool) {
        if let Link::Tls(t) = self {
            t.ktls_tx_done(accepted);
        }
    }

    /// Whether an open TLS link still waits to hand its receive keys to the kernel.
    pub fn ktls_rx_pending(&self) -> bool {
        matches!(self, Link::Tls(t) if t.ktls_rx_pending())
    }

    /// The kernel's crypto info for this link's receive side, if the link is on a record
    /// boundary (nothing staged; the caller makes sure no read of the socket is in flight).
    pub fn ktls_rx_info(&self) -> Option<crate::sys::ktls::CryptoInfo> {
        match self {
            Link::Tls(t) => t.ktls_rx_info(),
            Link::Plain => None,
        }
    }

    /// The kernel took the receive keys (`accepted`: received bytes are plaintext from now
    /// on) or refused them.
    pub fn ktls_rx_done(&mut self, accepted: bool) {
        if let Link::Tls(t) = self {
            t.ktls_rx_done(accepted);
        }
    }

    /// A record the kernel opened that was not application data (kTLS RX; its type came in
    /// a TLS_GET_RECORD_TYPE control message), or application data read with it.
    pub fn open_kernel_record(
        &mut self,
        content_type: u8,
        body: &[u8],
        mut deliver: impl FnMut(Delivery<'_>),
    ) -> Result<(), LinkError> {
        match self {
            Link::Tls(t) => t.open_kernel_record(content_type, body, &mut deliver),
            Link::Plain => Err(LinkError::UnexpectedRecord(content_type)),
        }
    }

    /// Record counters (zero for a plain link).
    pub fn record_stats(&self) -> RecordStats {
        match self {
            Link::Plain => RecordStats::default(),
            Link::Tls(t) => t.stats(),
        }
    }

    /// What the transport knows for the relay's link handshake.
    pub fn auth(&self) -> &dyn LinkAuth {
        match self {
            Link::Plain => &PlainLinkAuth,
            Link::Tls(t) => t.facts(),
        }
    }

    /// Bytes received on the connection: hands their plaintext to `deliver` (in order, in
    /// one or more runs), opening records in place; `Delivery::Secured` comes first, once,
    /// when a TLS handshake completes.
    #[inline]
    pub fn open(
        &mut self,
        received: &mut [u8],
        mut deliver: impl FnMut(Delivery<'_>),
    ) -> Result<(), LinkError> {
        match self {
            Link::Plain => {
                deliver(Delivery::Data {
                    bytes: received,
                    auth: &PlainLinkAuth,
                });
                Ok(())
            }
            Link::Tls(t) => t.open(received, &mut deliver),
        }
    }

    /// Whether handshake or control bytes wait for [`Link::write_out`].
    #[inline]
    pub fn wants_write(&self) -> bool {
        match self {
            Link::Plain => false,
            Link::Tls(t) => t.wants_write(),
        }
    }

    /// Moves waiting handshake or control bytes into the send buffer `send`.
    pub fn write_out(&mut self, send: &mut Vec<u8>) {
        if let Link::Tls(t) = self {
            t.write_out(send);
        }
    }

    /// The buffer cells are written into for the connection whose send buffer is `send`.
    #[inline]
    pub fn cell_buf<'a>(&'a mut self, send: &'a mut Vec<u8>) -> &'a mut Vec<u8> {
        match self {
            Link::Plain => send,
            Link::Tls(t) => t.cell_buf(send),
        }
    }

    /// [`Link::cell_buf`] with how many cells may be written into it before the next call:
    /// the cells that fit in the open TLS record, `u32::MAX` where nothing bounds them. The
    /// scheduler's grants are written in such steps, so a record never overfills.
    #[inline]
    pub fn cell_buf_room<'a>(&'a mut self, send: &'a mut Vec<u8>) -> (&'a mut Vec<u8>, u32) {
        match self {
            Link::Plain => (send, u32::MAX),
            Link::Tls(t) => t.cell_buf_room(send),
        }
    }

    /// Whether bytes written through [`Link::cell_buf`] wait for [`Link::seal`] (never for
    /// a plain link: they are in the send buffer already).
    #[inline]
    pub fn has_staged(&self) -> bool {
        match self {
            Link::Plain => false,
            Link::Tls(t) => t.has_staged(),
        }
    }

    /// Turns what was written through [`Link::cell_buf`] into records in `send`.
    #[inline]
    pub fn seal(&mut self, send: &mut Vec<u8>) -> Result<(), LinkError> {
        match self {
            Link::Plain => Ok(()),
            Link::Tls(t) => t.seal(send),
        }
    }
}
