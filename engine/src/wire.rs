//! Tor cell formats (tor-spec, link protocol v4/v5): cells, relay cells and every payload
//! kistrel speaks, as zero-copy views plus parsed representations, and a streaming decoder.
//!
//! ```text
//!  bytes from a socket ──> CellDecoder ──> ChanCell::Fixed(Cell) ─┬─> Create2 / Destroy / ... ::parse(body)
//!                                      └─> ChanCell::Var(VarCell) │   (channel messages)
//!                                          (VERSIONS, VPADDING..) └─> RelayCellView::new_checked(body)
//!                                                                      └─> Begin / Sendme / ... ::parse(data)
//! ```
//!
//! # The view/repr contract (as smoltcp's `wire`)
//!
//! - A view (`CellView`, `VarCellView`, `RelayCellView`) only wraps a buffer. Untrusted bytes
//!   enter through `new_checked`; once it returned `Ok`, no getter panics. `new_unchecked`
//!   is for buffers we are about to fill: the emit paths size from the layout constants and
//!   never use the checked form (a reused buffer's stale length field would fail it).
//! - Setters never panic on a checked view; `set_length` can make a view fail a later
//!   `check_len` (that is how a relay length field is written before its data).
//! - A representation (`Versions`, `Begin`, ...) is a small value with `parse(bytes)` and
//!   `emit(&self, out) -> Result<usize>` (bytes written). `emit` writes only those bytes: a
//!   fixed body is expected to be zeroed beforehand (`Cell::new` does that).
//! - Every error is the small `Copy` [`Error`]: which field, and why. No heap data, so
//!   rejecting garbage costs nothing; the layer above adds context.

use core::num::{NonZeroU16, NonZeroU32};

use crate::{ErrorKind, HasKind};

mod bytes;
mod cell;
mod chan_msg;
mod cmd;
mod codec;
mod link_auth;
mod link_spec;
mod relay_cell;
mod relay_msg;
mod resolve;
pub mod tor_cert;

#[cfg(test)]
mod tests;

pub use cell::{Cell, CellRef, CellView, ChanCell, ChanCellRef, VarCell, VarCellView};
pub use chan_msg::{Create2, CreateFast, Created2, CreatedFast, Destroy, Netinfo, Versions};
pub use cmd::{ChanCmd, DestroyReason, EndReason, RelayCmd};
pub use codec::{CarriedCell, CellDecoder, Decoded};
pub use link_auth::{Auth3, Auth3Fields, AuthChallenge, Authenticate, CertType, Certs};
pub use link_spec::LinkSpec;
pub use relay_cell::{
    emit_relay_cell, finish_relay_cell, RelayCellRepr, RelayCellView, RELAY_DIGEST,
    RELAY_RECOGNIZED,
};
pub use relay_msg::{Begin, Connected, End, Extend2, Extended2, Sendme, Truncated};
pub use resolve::{Resolve, Resolved, ResolvedAnswer};
pub use tor_cert::{Ed25519Cert, RsaCrosscert};

/// Length of a fixed-length cell on link protocol v4/v5: 4-byte circuit id, 1-byte command,
/// 509-byte body. (509 = 512 - 3, the body size of the original 2-byte-id cell format, kept
/// when v4 widened the circuit id; tor-cell's `CELL_DATA_LEN` documents the same.)
pub const CELL_LEN: usize = 514;
/// Body ("payload") length of a fixed-length cell.
pub const CELL_BODY_LEN: usize = 509;
/// Relay header: command u8, recognized u16, stream id u16, digest `[4]`, length u16.
pub const RELAY_HEADER_LEN: usize = 11;
/// Most data one relay cell can carry.
pub const RELAY_DATA_LEN: usize = CELL_BODY_LEN - RELAY_HEADER_LEN;
/// Cap on a variable-length cell's payload. Handshake cells are far smaller (C Tor's CERTS is
/// about 1.5 KiB); a longer declared length is rejected before any byte of it is buffered.
pub const MAX_VAR_PAYLOAD_LEN: usize = 4096;

const _: () = assert!(CELL_LEN == 4 + 1 + CELL_BODY_LEN);
const _: () = assert!(RELAY_DATA_LEN == 498);

/// Why bytes could not be parsed or emitted. Small and `Copy`: which field, and why.
///
/// Parsing peer bytes fails with `Truncated`, `BadLength`, `BadValue`, `VarCellTooLong` or
/// `ExpectedVersions` (all [`ErrorKind::PeerProtocol`]); emitting fails with `TooLong` or
/// `Unencodable` (the caller asked for something the wire cannot carry:
/// [`ErrorKind::BadApiUsage`]) or `NoSpace` (we sized a buffer wrong: [`ErrorKind::Internal`]).
/// When an emit carries bytes a peer sent (EXTENDED2 wrapping a CREATED2 reply), its failure
/// is the peer's doing: the caller knows that, the kind cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ended inside `field`.
    #[error("input ended inside {field}")]
    Truncated {
        /// The field being read when the bytes ran out (`"netinfo time"`, `"relay data"`).
        field: &'static str,
    },
    /// A length field read from the input is out of range for its message.
    #[error("{field} has a bad length ({len})")]
    BadLength {
        /// The length field, or the element whose size it fixes (`"relay length"`).
        field: &'static str,
        /// The length found, in bytes.
        len: usize,
    },
    /// A value read from the input that is not allowed here.
    #[error("{field} has a value not allowed here")]
    BadValue {
        /// The offending field (`"begin port"`, `"sendme version"`).
        field: &'static str,
    },
    /// A variable-length cell declared more than [`MAX_VAR_PAYLOAD_LEN`] bytes of payload.
    #[error("variable-length cell of {len} bytes exceeds the {MAX_VAR_PAYLOAD_LEN}-byte cap")]
    VarCellTooLong {
        /// The declared payload length (the cell's `u16` length field), in bytes.
        len: usize,
    },
    /// The first cell on a channel was not VERSIONS (tor-spec 4.1: it must be).
    #[error("first cell on a channel was {cmd:?}, not VERSIONS")]
    ExpectedVersions {
        /// The command the first cell carried instead.
        cmd: ChanCmd,
    },
    /// A value given to an `emit` is longer than its length field or its cell can carry.
    #[error("{field} is too long to encode ({len})")]
    TooLong {
        /// The field whose length or count does not fit (`"relay data"`, `"extend2 nspec"`).
        field: &'static str,
        /// The length (bytes) or count (items) given.
        len: usize,
    },
    /// A value given to an `emit` has no encoding on the wire (port 0, a malformed host,
    /// 0.0.0.0 in CONNECTED, a link specifier whose value was not kept).
    #[error("{field} cannot be encoded")]
    Unencodable {
        /// The field that cannot be written.
        field: &'static str,
    },
    /// The output buffer given to an `emit` is too small for `field`.
    #[error("output buffer too small for {field}")]
    NoSpace {
        /// The field that did not fit.
        field: &'static str,
    },
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Truncated { .. }
            | Error::BadLength { .. }
            | Error::BadValue { .. }
            | Error::VarCellTooLong { .. }
            | Error::ExpectedVersions { .. } => ErrorKind::PeerProtocol,
            Error::TooLong { .. } | Error::Unencodable { .. } => ErrorKind::BadApiUsage,
            Error::NoSpace { .. } => ErrorKind::Internal,
        }
    }
}

/// Result of wire parsing and emitting.
pub type Result<T> = core::result::Result<T, Error>;

/// A circuit id on a channel; 0 is never a circuit (tor-spec, "CircID").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CircId(NonZeroU32);

impl CircId {
    /// `None` for 0, which means "no circuit" on the wire.
    pub fn new(raw: u32) -> Option<Self> {
        NonZeroU32::new(raw).map(Self)
    }

    /// The raw value.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

/// A stream id on a circuit; 0 means "not a stream" (control messages) on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(NonZeroU16);

impl StreamId {
    /// `None` for 0, which means "no stream" on the wire.
    pub fn new(raw: u16) -> Option<Self> {
        NonZeroU16::new(raw).map(Self)
    }

    /// The raw value.
    pub fn get(self) -> u16 {
        self.0.get()
    }
}
