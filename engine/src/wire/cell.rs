//! Fixed-length and variable-length channel cells (tor-spec section 3).
//!
//! ```text
//! fixed:  CircID u32 | Command u8 | Body [509]                    (514 bytes)
//! var:    CircID u32 | Command u8 | Length u16 | Payload [Length]
//! VERSIONS, first cell on a channel: the same with a 2-byte CircID
//! ```

use core::fmt;

use super::{ChanCmd, CircId, Error, Result, CELL_BODY_LEN, CELL_LEN};

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const CIRC_ID: Range<usize> = 0..4;
    pub(super) const COMMAND: usize = CIRC_ID.end;
    pub(super) const BODY: Range<usize> = COMMAND + 1..COMMAND + 1 + super::CELL_BODY_LEN;

    /// Variable-length cell fields, for a circuit id of `id_len` bytes (2 or 4).
    pub(super) const fn var_circ_id(id_len: usize) -> Range<usize> {
        0..id_len
    }
    pub(super) const fn var_command(id_len: usize) -> usize {
        id_len
    }
    pub(super) const fn var_length(id_len: usize) -> Range<usize> {
        id_len + 1..id_len + 3
    }
    pub(super) const fn var_payload(id_len: usize) -> RangeFrom<usize> {
        id_len + 3..
    }
}

const _: () = assert!(field::BODY.end == CELL_LEN);

/// Header length of a variable-length cell whose circuit id is `circ_id_len` bytes.
pub(super) const fn var_header_len(circ_id_len: usize) -> usize {
    field::var_payload(circ_id_len).start
}

/// A zero-copy view over a 514-byte fixed-length cell.
#[derive(Debug, Clone)]
pub struct CellView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> CellView<T> {
    /// Wrap a buffer without checking it (for emitting into a buffer of `CELL_LEN` bytes).
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let view = Self::new_unchecked(buffer);
        view.check_len()?;
        Ok(view)
    }

    /// Ensure no getter can panic: the buffer holds at least a whole cell.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < CELL_LEN {
            return Err(Error::Truncated { field: "cell" });
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Raw circuit id (0 = no circuit).
    pub fn circ_id(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::CIRC_ID];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The cell command (tor-spec 3): fixes how the body is read.
    pub fn cmd(&self) -> ChanCmd {
        ChanCmd(self.buffer.as_ref()[field::COMMAND])
    }

    /// The circuit, or `None` for circuit id 0.
    pub fn circ(&self) -> Option<CircId> {
        CircId::new(self.circ_id())
    }

    /// The 509-byte body.
    pub fn body(&self) -> &[u8; CELL_BODY_LEN] {
        let bytes = self.buffer.as_ref();
        // Checked by `check_len`: a whole cell, so the body is the last chunk of its bytes.
        let Some(body) = bytes[..CELL_LEN].last_chunk::<CELL_BODY_LEN>() else {
            unreachable!("field::BODY ends at CELL_LEN")
        };
        body
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> CellView<T> {
    /// Write the raw 4-byte circuit id (0 = no circuit), big-endian.
    pub fn set_circ_id(&mut self, circ_id: u32) {
        self.buffer.as_mut()[field::CIRC_ID].copy_from_slice(&circ_id.to_be_bytes());
    }

    /// Write the command byte.
    pub fn set_cmd(&mut self, cmd: ChanCmd) {
        self.buffer.as_mut()[field::COMMAND] = cmd.0;
    }

    /// The 509-byte body, to write a payload into (the rest of it is padding).
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::BODY]
    }
}

/// A fixed-length cell viewed where its bytes lie (the per-cell path's form of a cell).
pub type CellRef<'a> = CellView<&'a [u8]>;

/// A fixed-length cell. `circ_id` is raw (0 = no circuit).
#[derive(Clone, PartialEq, Eq)]
pub struct Cell {
    /// The 4-byte circuit id (link v4/v5), raw: 0 for channel-level cells (NETINFO,
    /// PADDING); see [`Cell::circ`] for the typed form.
    pub circ_id: u32,
    /// The cell command (tor-spec 3): a fixed-length one (below 128, not VERSIONS) for the
    /// bytes to decode as a fixed cell again.
    pub cmd: ChanCmd,
    /// The 509-byte body: the command's payload from the front, then padding (zeros as
    /// `Cell::new` leaves it, or whatever the sender chose).
    pub body: [u8; CELL_BODY_LEN],
}

impl Cell {
    /// A cell with a zeroed body.
    pub fn new(circ_id: u32, cmd: ChanCmd) -> Self {
        Self {
            circ_id,
            cmd,
            body: [0; CELL_BODY_LEN],
        }
    }

    /// Copy a cell out of a checked view.
    pub fn from_view<T: AsRef<[u8]>>(view: &CellView<T>) -> Self {
        let mut cell = Self::new(view.circ_id(), view.cmd());
        cell.body.copy_from_slice(view.body());
        cell
    }

    /// Parse the first `CELL_LEN` bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Ok(Self::from_view(&CellView::new_checked(bytes)?))
    }

    /// The circuit, or `None` for circuit id 0.
    pub fn circ(&self) -> Option<CircId> {
        CircId::new(self.circ_id)
    }

    /// Write the cell with a 4-byte circuit id.
    pub fn emit(&self, out: &mut [u8; CELL_LEN]) {
        let mut view = CellView::new_unchecked(&mut out[..]);
        view.set_circ_id(self.circ_id);
        view.set_cmd(self.cmd);
        view.body_mut().copy_from_slice(&self.body);
    }

    /// Append the cell's `CELL_LEN` bytes to `out`.
    pub fn append_to(&self, out: &mut Vec<u8>) {
        out.reserve(CELL_LEN);
        out.extend_from_slice(&self.circ_id.to_be_bytes());
        out.push(self.cmd.0);
        out.extend_from_slice(&self.body);
    }
}

impl fmt::Debug for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cell")
            .field("circ_id", &self.circ_id)
            .field("cmd", &self.cmd)
            .finish_non_exhaustive()
    }
}

/// A zero-copy view over a variable-length cell with a 2- or 4-byte circuit id.
#[derive(Debug, Clone)]
pub struct VarCellView<T: AsRef<[u8]>> {
    buffer: T,
    /// Width of the circuit id field, in bytes.
    /// INVARIANT: 2 or 4 (`new_unchecked` maps anything else to 4).
    circ_id_len: usize,
}

impl<T: AsRef<[u8]>> VarCellView<T> {
    /// Wrap a buffer without checking it. `circ_id_len` is 2 (VERSIONS as the first cell of a
    /// channel) or 4; any other value is taken as 4.
    pub fn new_unchecked(buffer: T, circ_id_len: usize) -> Self {
        let circ_id_len = if circ_id_len == 2 { 2 } else { 4 };
        Self {
            buffer,
            circ_id_len,
        }
    }

    /// Wrap a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T, circ_id_len: usize) -> Result<Self> {
        let view = Self::new_unchecked(buffer, circ_id_len);
        view.check_len()?;
        Ok(view)
    }

    /// Ensure no getter can panic: the header and `length()` payload bytes are present.
    /// The payload cap ([`MAX_VAR_PAYLOAD_LEN`](super::MAX_VAR_PAYLOAD_LEN)) is the decoder's
    /// business, not the view's.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < var_header_len(self.circ_id_len) {
            return Err(Error::Truncated {
                field: "var cell header",
            });
        }
        if len < self.total_len() {
            return Err(Error::Truncated {
                field: "var cell payload",
            });
        }
        Ok(())
    }

    /// Header plus declared payload length, in bytes.
    pub fn total_len(&self) -> usize {
        var_header_len(self.circ_id_len) + usize::from(self.length())
    }

    /// Width of the circuit id field in bytes: 2 or 4.
    pub fn circ_id_len(&self) -> usize {
        self.circ_id_len
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Raw circuit id, widened to `u32` for a 2-byte id.
    pub fn circ_id(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::var_circ_id(self.circ_id_len)];
        b.iter().fold(0, |id, &byte| id << 8 | u32::from(byte))
    }

    /// The cell command: VERSIONS or one of 128 and above (tor-spec 3).
    pub fn cmd(&self) -> ChanCmd {
        ChanCmd(self.buffer.as_ref()[field::var_command(self.circ_id_len)])
    }

    /// Declared payload length.
    pub fn length(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::var_length(self.circ_id_len)];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The payload, `length()` bytes (anything after it in the buffer is the next cell).
    pub fn payload(&self) -> &[u8] {
        let start = field::var_payload(self.circ_id_len).start;
        &self.buffer.as_ref()[start..self.total_len()]
    }
}

/// A variable-length cell (handshake only, so owning its payload is fine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarCell {
    /// The circuit id, raw and widened to `u32` (a 2-byte VERSIONS id fits); 0 on every
    /// handshake cell kistrel sends or expects.
    pub circ_id: u32,
    /// The cell command: VERSIONS, or 128 and above (VPADDING, CERTS, AUTH_CHALLENGE, ...).
    pub cmd: ChanCmd,
    /// The payload. Decoded cells hold at most [`MAX_VAR_PAYLOAD_LEN`](super::MAX_VAR_PAYLOAD_LEN)
    /// bytes; [`VarCell::append_to`] writes at most `u16::MAX`.
    pub payload: Vec<u8>,
}

impl VarCell {
    /// Copy a cell out of a checked view.
    pub fn from_view<T: AsRef<[u8]>>(view: &VarCellView<T>) -> Self {
        Self {
            circ_id: view.circ_id(),
            cmd: view.cmd(),
            payload: view.payload().to_vec(),
        }
    }

    /// Append the encoded cell to `out`. `circ_id_len` is 2 for VERSIONS as the first cell of
    /// a channel, else 4 (any other value is taken as 4). A 2-byte id keeps the low 16 bits
    /// of `circ_id`; a payload over `u16::MAX` bytes is cut at `u16::MAX` so the length field
    /// always matches what is written (the decoder rejects anything over
    /// `MAX_VAR_PAYLOAD_LEN` anyway).
    pub fn append_to(&self, out: &mut Vec<u8>, circ_id_len: usize) {
        debug_assert!(circ_id_len == 2 || circ_id_len == 4);
        let len = u16::try_from(self.payload.len()).unwrap_or(u16::MAX);
        let payload = self.payload.get(..usize::from(len)).unwrap_or_default();
        if circ_id_len == 2 {
            // Truncation intended: only v1-v3 links (and VERSIONS) have 2-byte ids.
            out.extend_from_slice(&(self.circ_id as u16).to_be_bytes());
        } else {
            out.extend_from_slice(&self.circ_id.to_be_bytes());
        }
        out.push(self.cmd.0);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(payload);
    }
}

/// One cell read from a channel.
// Boxing the fixed cell would put an allocation on the per-cell path; the var cell is rare.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChanCell {
    /// A 514-byte cell (every command below 128 except VERSIONS).
    Fixed(Cell),
    /// A variable-length cell (VERSIONS, and commands 128 and above).
    Var(VarCell),
}

impl ChanCell {
    /// The raw circuit id (0 = no circuit).
    pub fn circ_id(&self) -> u32 {
        match self {
            Self::Fixed(cell) => cell.circ_id,
            Self::Var(cell) => cell.circ_id,
        }
    }

    /// The cell command.
    pub fn cmd(&self) -> ChanCmd {
        match self {
            Self::Fixed(cell) => cell.cmd,
            Self::Var(cell) => cell.cmd,
        }
    }
}

/// One cell read from a channel, viewed where its bytes lie (the receive buffer, or the
/// decoder's carry buffer for a cell split across reads): nothing copied.
#[derive(Debug, Clone)]
pub enum ChanCellRef<'a> {
    /// A 514-byte cell (every command below 128 except VERSIONS).
    Fixed(CellView<&'a [u8]>),
    /// A variable-length cell (VERSIONS, and commands 128 and above).
    Var(VarCellView<&'a [u8]>),
}

impl<'a> ChanCellRef<'a> {
    /// View the whole cell `bytes` whose circuit id is `circ_id_len` bytes (2 or 4), its
    /// kind read from the command byte.
    pub fn new_checked(bytes: &'a [u8], circ_id_len: usize) -> Result<Self> {
        let id_len = if circ_id_len == 2 { 2 } else { 4 };
        match bytes.get(id_len).copied().map(ChanCmd) {
            Some(cmd) if cmd.is_var() => Ok(Self::Var(VarCellView::new_checked(bytes, id_len)?)),
            _ => Ok(Self::Fixed(CellView::new_checked(bytes)?)),
        }
    }

    /// The raw circuit id (0 = no circuit).
    pub fn circ_id(&self) -> u32 {
        match self {
            Self::Fixed(cell) => cell.circ_id(),
            Self::Var(cell) => cell.circ_id(),
        }
    }

    /// The cell command.
    pub fn cmd(&self) -> ChanCmd {
        match self {
            Self::Fixed(cell) => cell.cmd(),
            Self::Var(cell) => cell.cmd(),
        }
    }

    /// An owned copy (for the link handshake and for tests; not on the per-cell path).
    pub fn to_owned_cell(&self) -> ChanCell {
        match self {
            Self::Fixed(cell) => ChanCell::Fixed(Cell::from_view(cell)),
            Self::Var(cell) => ChanCell::Var(VarCell::from_view(cell)),
        }
    }
}
