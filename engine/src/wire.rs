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

mod bytes;
mod cell;
mod chan_msg;
mod cmd;
mod codec;
mod link_spec;
mod relay_cell;
mod relay_msg;

#[cfg(test)]
mod tests;

pub use cell::{Cell, CellView, ChanCell, VarCell, VarCellView};
pub use chan_msg::{Create2, CreateFast, Created2, CreatedFast, Destroy, Netinfo, Versions};
pub use cmd::{ChanCmd, DestroyReason, EndReason, RelayCmd};
pub use codec::CellDecoder;
pub use link_spec::LinkSpec;
pub use relay_cell::{
    emit_relay_cell, finish_relay_cell, RelayCellRepr, RelayCellView, RELAY_DIGEST,
    RELAY_RECOGNIZED,
};
pub use relay_msg::{Begin, Connected, End, Extend2, Extended2, Sendme, Truncated};

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ended inside `field`.
    #[error("input ended inside {field}")]
    Truncated { field: &'static str },
    /// A length field (or a length to be written) is out of range.
    #[error("{field} has a bad length ({len})")]
    BadLength { field: &'static str, len: usize },
    /// A value that is not allowed here.
    #[error("{field} has a value not allowed here")]
    BadValue { field: &'static str },
    /// A variable-length cell declared more than [`MAX_VAR_PAYLOAD_LEN`] bytes of payload.
    #[error("variable-length cell of {len} bytes exceeds the {MAX_VAR_PAYLOAD_LEN}-byte cap")]
    VarCellTooLong { len: usize },
    /// The first cell on a channel was not VERSIONS.
    #[error("first cell on a channel was {cmd:?}, not VERSIONS")]
    ExpectedVersions { cmd: ChanCmd },
    /// The output buffer given to an `emit` is too small for `field`.
    #[error("output buffer too small for {field}")]
    NoSpace { field: &'static str },
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
