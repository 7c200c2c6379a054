//! Streaming cell decoder for one channel's byte stream.
//!
//! ```text
//! input ──> partial buffer empty? ──yes──> whole cell in input? ──yes──> parse from input
//!                  │                               └──no──> check header, buffer all of input
//!                  └──no──> top up the partial buffer (header first, then the declared
//!                           length) ──> complete? parse from the buffer and clear it
//! ```
//!
//! The header is checked (first cell VERSIONS, var length within the cap) as soon as its bytes
//! are seen and before anything past it is buffered, so the buffer never holds more than one
//! cell: at most `7 + MAX_VAR_PAYLOAD_LEN` bytes.

use super::cell::var_header_len;
use super::{
    Cell, CellView, ChanCell, ChanCmd, Error, Result, VarCell, VarCellView, CELL_LEN,
    MAX_VAR_PAYLOAD_LEN,
};

/// The circuit id width of the first cell (VERSIONS) and of every later one (link v4/v5).
const FIRST_CIRC_ID_LEN: usize = 2;
const CIRC_ID_LEN: usize = 4;

/// What the bytes at the front of a cell say about its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    /// The header is incomplete: at least this many bytes are needed to learn more.
    NeedHeader(usize),
    /// The whole cell is this many bytes.
    Len(usize),
}

/// Streaming decoder for one channel's byte stream. The first cell must be VERSIONS, read
/// with a 2-byte circuit id; every later cell uses a 4-byte id (kistrel speaks only link
/// v4/v5). Partial cells are buffered internally, at most one cell.
#[derive(Debug)]
pub struct CellDecoder {
    /// Bytes of the one cell being assembled.
    /// INVARIANT: shorter than that cell, so at most `7 + MAX_VAR_PAYLOAD_LEN - 1` bytes.
    partial: Vec<u8>,
    /// True until the first cell (VERSIONS) has been decoded.
    awaiting_versions: bool,
    /// Set by the first error; every later call returns it.
    /// INVARIANT: while `Some`, `partial` is empty.
    poisoned: Option<Error>,
}

impl Default for CellDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl CellDecoder {
    /// A decoder for a fresh channel: expects VERSIONS first, holds nothing.
    pub fn new() -> Self {
        Self {
            partial: Vec::new(),
            awaiting_versions: true,
            poisoned: None,
        }
    }

    /// Decode at most one cell from the front of `input`. Returns the number of bytes of
    /// `input` consumed and the cell if one was completed. A call that returns `(n, None)`
    /// has consumed all of `input` (n == input.len()) into its partial buffer: feed more
    /// bytes. Whole cells in `input` are parsed straight from it (no copy into the partial
    /// buffer). After an `Err` the decoder is poisoned: every later call returns the same
    /// error.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<ChanCell>)> {
        if let Some(err) = self.poisoned {
            return Err(err);
        }
        let result = if self.partial.is_empty() {
            self.decode_direct(input)
        } else {
            self.decode_buffered(input)
        };
        if let Err(err) = result {
            self.poisoned = Some(err);
            self.partial.clear();
        }
        debug_assert!(self.partial.len() < var_header_len(CIRC_ID_LEN) + MAX_VAR_PAYLOAD_LEN);
        result
    }

    /// Bytes of an incomplete cell held from earlier calls.
    pub fn buffered_len(&self) -> usize {
        self.partial.len()
    }

    fn circ_id_len(&self) -> usize {
        if self.awaiting_versions {
            FIRST_CIRC_ID_LEN
        } else {
            CIRC_ID_LEN
        }
    }

    /// Size a cell from the bytes seen so far, rejecting a bad header as early as possible.
    fn frame(&self, head: &[u8]) -> Result<Frame> {
        let id_len = self.circ_id_len();
        let Some(&raw_cmd) = head.get(id_len) else {
            return Ok(Frame::NeedHeader(id_len + 1));
        };
        let cmd = ChanCmd(raw_cmd);
        if self.awaiting_versions && cmd != ChanCmd::VERSIONS {
            return Err(Error::ExpectedVersions { cmd });
        }
        if !cmd.is_var() {
            // Only reachable with 4-byte ids: the 2-byte first cell is VERSIONS, a var cell.
            return Ok(Frame::Len(CELL_LEN));
        }
        let header_len = var_header_len(id_len);
        let Some(len_bytes) = head.get(id_len + 1..header_len) else {
            return Ok(Frame::NeedHeader(header_len));
        };
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if len > MAX_VAR_PAYLOAD_LEN {
            return Err(Error::VarCellTooLong { len });
        }
        Ok(Frame::Len(header_len + len))
    }

    fn decode_direct(&mut self, input: &[u8]) -> Result<(usize, Option<ChanCell>)> {
        match self.frame(input)? {
            Frame::Len(len) if input.len() >= len => {
                let cell = self.parse_cell(&input[..len])?;
                Ok((len, Some(cell)))
            }
            _ => {
                self.partial.extend_from_slice(input);
                Ok((input.len(), None))
            }
        }
    }

    fn decode_buffered(&mut self, input: &[u8]) -> Result<(usize, Option<ChanCell>)> {
        let mut consumed = 0;
        loop {
            let (target, complete) = match self.frame(&self.partial)? {
                Frame::NeedHeader(len) => (len, false),
                Frame::Len(len) => (len, true),
            };
            let want = target.saturating_sub(self.partial.len());
            let rest = input.get(consumed..).unwrap_or_default();
            let take = want.min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            consumed += take;
            if self.partial.len() < target {
                return Ok((consumed, None));
            }
            if complete {
                let partial = core::mem::take(&mut self.partial);
                let cell = self.parse_cell(&partial);
                // Keep the allocation for the next partial cell.
                self.partial = partial;
                self.partial.clear();
                return Ok((consumed, Some(cell?)));
            }
        }
    }

    /// Parse one whole cell whose size `frame` has already checked.
    fn parse_cell(&mut self, bytes: &[u8]) -> Result<ChanCell> {
        let id_len = self.circ_id_len();
        let cell = match bytes.get(id_len).copied().map(ChanCmd) {
            Some(cmd) if cmd.is_var() => ChanCell::Var(VarCell::from_view(
                &VarCellView::new_checked(bytes, id_len)?,
            )),
            _ => ChanCell::Fixed(Cell::from_view(&CellView::new_checked(bytes)?)),
        };
        self.awaiting_versions = false;
        Ok(cell)
    }
}
