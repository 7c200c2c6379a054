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
//!
//! [`CellDecoder::decode_ref`] is the per-cell path: a whole cell in the input is viewed
//! where it lies ([`ChanCellRef`], nothing copied); a cell split across inputs is assembled
//! in the carry buffer and handed out by moving the buffer ([`CellDecoder::take_carried`]),
//! not by copying it. [`CellDecoder::decode`] copies each cell into an owned [`ChanCell`],
//! for tests and tools.

use super::cell::var_header_len;
use super::{
    CellRef, ChanCell, ChanCellRef, ChanCmd, Error, Result, CELL_LEN, MAX_VAR_PAYLOAD_LEN,
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
    /// Bytes of the one cell being assembled, or of the complete cell `carried` announces.
    /// INVARIANT: at most `7 + MAX_VAR_PAYLOAD_LEN` bytes, and shorter than the cell unless
    /// `carried` is set.
    partial: Vec<u8>,
    /// `Some(circ_id_len)` when `partial` holds a whole cell not yet taken.
    carried: Option<usize>,
    /// True until the first cell (VERSIONS) has been decoded.
    awaiting_versions: bool,
    /// Set by the first error; every later call returns it.
    /// INVARIANT: while `Some`, `partial` is empty.
    poisoned: Option<Error>,
}

/// What [`CellDecoder::decode_ref`] found at the front of its input.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// A whole cell lying in the input (its first `used` bytes), viewed in place.
    Cell {
        /// Bytes of the input the cell takes.
        used: usize,
        /// The cell, borrowed from the input.
        cell: ChanCellRef<'a>,
    },
    /// The first `used` bytes of the input completed a cell split across earlier inputs: take
    /// it with [`CellDecoder::take_carried`] (the next call drops it otherwise).
    Carried {
        /// Bytes of the input consumed.
        used: usize,
    },
    /// All of the input (`used` bytes) is held for a cell that is not complete yet.
    Partial {
        /// Bytes of the input consumed: all of it.
        used: usize,
    },
}

/// A whole cell that arrived split across inputs, moved out of the decoder's carry buffer.
/// Give it back with [`CellDecoder::restore`] to keep the buffer's allocation.
#[derive(Debug, Default)]
pub struct CarriedCell {
    bytes: Vec<u8>,
    circ_id_len: usize,
}

impl CarriedCell {
    /// The cell, viewed in the carry buffer.
    pub fn cell(&self) -> Result<ChanCellRef<'_>> {
        ChanCellRef::new_checked(&self.bytes, self.circ_id_len)
    }
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
            carried: None,
            awaiting_versions: true,
            poisoned: None,
        }
    }

    /// Decode at most one cell from the front of `input`, copying it into an owned
    /// [`ChanCell`]. Returns the number of bytes of `input` consumed and the cell if one was
    /// completed. A call that returns `(n, None)` has consumed all of `input` (n ==
    /// input.len()) into its partial buffer: feed more bytes. After an `Err` the decoder is
    /// poisoned: every later call returns the same error.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<ChanCell>)> {
        match self.decode_ref(input)? {
            Decoded::Cell { used, cell } => Ok((used, Some(cell.to_owned_cell()))),
            Decoded::Carried { used } => {
                let carried = self.take_carried().unwrap_or_default();
                let cell = carried.cell().map(|c| c.to_owned_cell());
                self.restore(carried);
                Ok((used, Some(cell?)))
            }
            Decoded::Partial { used } => Ok((used, None)),
        }
    }

    /// Decode at most one cell from the front of `input` without copying it: see
    /// [`Decoded`]. Whole cells in `input` are viewed where they lie; only a cell split
    /// across inputs goes through the carry buffer. After an `Err` the decoder is poisoned:
    /// every later call returns the same error.
    pub fn decode_ref<'a>(&mut self, input: &'a [u8]) -> Result<Decoded<'a>> {
        // The per-cell case, first and in few instructions: an open link's decoder with no
        // bytes held, a whole fixed-length cell at the front. The same answer as the general
        // path below (`frame` sizes a fixed command at CELL_LEN; its length is checked here).
        if self.partial.is_empty()
            && !self.awaiting_versions
            && self.carried.is_none()
            && self.poisoned.is_none()
        {
            if let Some(bytes) = input.get(..CELL_LEN) {
                if !ChanCmd(bytes[CIRC_ID_LEN]).is_var() {
                    let cell = ChanCellRef::Fixed(CellRef::new_unchecked(bytes));
                    return Ok(Decoded::Cell {
                        used: CELL_LEN,
                        cell,
                    });
                }
            }
        }
        if let Some(err) = self.poisoned {
            return Err(err);
        }
        if self.carried.take().is_some() {
            self.partial.clear();
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
        debug_assert!(self.partial.len() <= var_header_len(CIRC_ID_LEN) + MAX_VAR_PAYLOAD_LEN);
        result
    }

    /// The cell the last [`decode_ref`](Self::decode_ref) completed in the carry buffer
    /// (`Decoded::Carried`), moved out; `None` if there is none.
    pub fn take_carried(&mut self) -> Option<CarriedCell> {
        let circ_id_len = self.carried.take()?;
        Some(CarriedCell {
            bytes: core::mem::take(&mut self.partial),
            circ_id_len,
        })
    }

    /// Hands a carry buffer back for its allocation (kept only if the decoder holds none).
    pub fn restore(&mut self, carried: CarriedCell) {
        if self.partial.capacity() == 0 && self.carried.is_none() {
            self.partial = carried.bytes;
            self.partial.clear();
        }
    }

    /// Bytes of an incomplete cell held from earlier calls.
    pub fn buffered_len(&self) -> usize {
        if self.carried.is_some() {
            0
        } else {
            self.partial.len()
        }
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

    fn decode_direct<'a>(&mut self, input: &'a [u8]) -> Result<Decoded<'a>> {
        match self.frame(input)? {
            Frame::Len(len) if input.len() >= len => {
                let cell = ChanCellRef::new_checked(&input[..len], self.circ_id_len())?;
                self.awaiting_versions = false;
                Ok(Decoded::Cell { used: len, cell })
            }
            _ => {
                self.partial.extend_from_slice(input);
                Ok(Decoded::Partial { used: input.len() })
            }
        }
    }

    fn decode_buffered<'a>(&mut self, input: &'a [u8]) -> Result<Decoded<'a>> {
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
                return Ok(Decoded::Partial { used: consumed });
            }
            if complete {
                let id_len = self.circ_id_len();
                ChanCellRef::new_checked(&self.partial, id_len)?;
                self.awaiting_versions = false;
                self.carried = Some(id_len);
                return Ok(Decoded::Carried { used: consumed });
            }
        }
    }
}
