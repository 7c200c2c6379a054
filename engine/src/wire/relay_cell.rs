//! The relay cell layout inside a RELAY / RELAY_EARLY body (tor-spec section 6.1).
//!
//! ```text
//! relay_cmd u8 | recognized u16 | stream_id u16 | digest [4] | length u16 | data [498]
//! data = payload [length] | 4 zero bytes | random bytes to the end of the body
//! ```

use core::ops::Range;

use rand::RngCore;

use super::{Error, RelayCmd, Result, StreamId, CELL_BODY_LEN, RELAY_DATA_LEN, RELAY_HEADER_LEN};

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const COMMAND: usize = 0;
    pub(super) const RECOGNIZED: Range<usize> = 1..3;
    pub(super) const STREAM_ID: Range<usize> = 3..5;
    pub(super) const DIGEST: Range<usize> = 5..9;
    pub(super) const LENGTH: Range<usize> = 9..11;
    pub(super) const DATA: RangeFrom<usize> = LENGTH.end..;
}

const _: () = assert!(field::DATA.start == RELAY_HEADER_LEN);

/// Where `recognized` sits in a relay body (the crypto module checks it is zero).
pub const RELAY_RECOGNIZED: Range<usize> = field::RECOGNIZED;
/// Where the 4-byte digest sits in a relay body (zeroed while the running digest is taken).
pub const RELAY_DIGEST: Range<usize> = field::DIGEST;

/// How many zero bytes follow the data before the random padding. tor-spec (section 6.1,
/// since 0.4.x) asks for 4 zero bytes then random bytes, so the padding cannot be used to
/// predict the digest; C Tor 0.4.9 fills it the same way (spec "Details confirmed").
const ZERO_PAD_LEN: usize = 4;

/// A zero-copy view over a decrypted relay cell body (normally the 509-byte cell body).
#[derive(Debug, Clone)]
pub struct RelayCellView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RelayCellView<T> {
    /// Wrap a buffer without checking it (for emitting).
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let view = Self::new_unchecked(buffer);
        view.check_len()?;
        Ok(view)
    }

    /// Ensure no getter can panic and that `length() <= RELAY_DATA_LEN` and the data fits in
    /// the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < RELAY_HEADER_LEN {
            return Err(Error::Truncated {
                field: "relay header",
            });
        }
        let data_len = usize::from(self.length());
        if data_len > RELAY_DATA_LEN {
            return Err(Error::BadLength {
                field: "relay length",
                len: data_len,
            });
        }
        if len < RELAY_HEADER_LEN + data_len {
            return Err(Error::Truncated {
                field: "relay data",
            });
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The relay command (tor-spec 6.1); meaningful only once the cell is recognized.
    pub fn cmd(&self) -> RelayCmd {
        RelayCmd(self.buffer.as_ref()[field::COMMAND])
    }

    /// Zero on a cell meant for this hop (once decrypted).
    pub fn recognized(&self) -> u16 {
        self.u16_at(field::RECOGNIZED)
    }

    /// The stream, or `None` for stream id 0 (a circuit-level message).
    pub fn stream_id(&self) -> Option<StreamId> {
        StreamId::new(self.u16_at(field::STREAM_ID))
    }

    /// The first 4 bytes of the sender's running digest (tor-spec 6.1), checked by
    /// `crypto::relay_crypto`.
    pub fn digest(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::DIGEST];
        [b[0], b[1], b[2], b[3]]
    }

    /// Declared data length (at most `RELAY_DATA_LEN` after `new_checked`).
    pub fn length(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// The message data, `length()` bytes.
    pub fn data(&self) -> &[u8] {
        let start = field::DATA.start;
        &self.buffer.as_ref()[start..start + usize::from(self.length())]
    }

    fn u16_at(&self, range: Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[range];
        u16::from_be_bytes([b[0], b[1]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RelayCellView<T> {
    /// Write the relay command byte.
    pub fn set_cmd(&mut self, cmd: RelayCmd) {
        self.buffer.as_mut()[field::COMMAND] = cmd.0;
    }

    /// Write `recognized` (0 on every cell we originate; the crypto layer seals over it).
    pub fn set_recognized(&mut self, recognized: u16) {
        self.buffer.as_mut()[field::RECOGNIZED].copy_from_slice(&recognized.to_be_bytes());
    }

    /// Write the stream id; `None` writes 0 (a circuit-level message).
    pub fn set_stream_id(&mut self, stream_id: Option<StreamId>) {
        let raw = stream_id.map_or(0, StreamId::get);
        self.buffer.as_mut()[field::STREAM_ID].copy_from_slice(&raw.to_be_bytes());
    }

    /// Write the 4 digest bytes (zeros while the running digest is taken, then its prefix).
    pub fn set_digest(&mut self, digest: &[u8; 4]) {
        self.buffer.as_mut()[field::DIGEST].copy_from_slice(digest);
    }

    /// Write the length field; a value over `RELAY_DATA_LEN` makes `check_len` fail.
    pub fn set_length(&mut self, length: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&length.to_be_bytes());
    }

    /// The whole data area after the header (data and padding), to write data into.
    pub fn data_area_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }
}

/// A parsed relay cell: what a hop that recognized the cell acts on. `recognized` and the
/// digest are the crypto layer's business and are not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayCellRepr<'a> {
    /// The relay command (tor-spec 6.1).
    pub cmd: RelayCmd,
    /// The stream the message is for; `None` (0 on the wire) for circuit-level messages.
    pub stream_id: Option<StreamId>,
    /// The message data (`length` bytes; padding excluded). At most [`RELAY_DATA_LEN`]
    /// bytes after `parse`; `emit` refuses more with `TooLong`.
    pub data: &'a [u8],
}

impl<'a> RelayCellRepr<'a> {
    /// Parse a decrypted relay body (checks the header and `length <= RELAY_DATA_LEN`).
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        let view = RelayCellView::new_checked(body)?;
        let start = field::DATA.start;
        let data = body
            .get(start..start + usize::from(view.length()))
            .ok_or(Error::Truncated {
                field: "relay data",
            })?;
        Ok(Self {
            cmd: view.cmd(),
            stream_id: view.stream_id(),
            data,
        })
    }

    /// [`emit_relay_cell`] with this cell's fields.
    pub fn emit<R: RngCore + ?Sized>(
        &self,
        body: &mut [u8; CELL_BODY_LEN],
        rng: &mut R,
    ) -> Result<()> {
        emit_relay_cell(body, self.cmd, self.stream_id, self.data, rng)
    }
}

/// Emit a relay cell into a body: header (recognized 0, digest 0), `data`, then 4 zero bytes,
/// then random bytes to the end. Fails with `TooLong` if `data` is over `RELAY_DATA_LEN`.
/// `#[inline]`: an endpoint builds every DATA cell with it (as `Relay::enqueue_slot`:
/// inlining across the crate's codegen units is otherwise left to how they split).
#[inline]
pub fn emit_relay_cell<R: RngCore + ?Sized>(
    body: &mut [u8; CELL_BODY_LEN],
    cmd: RelayCmd,
    stream_id: Option<StreamId>,
    data: &[u8],
    rng: &mut R,
) -> Result<()> {
    check_data_len(data.len())?;
    body[field::DATA][..data.len()].copy_from_slice(data);
    finish_relay_cell(body, cmd, stream_id, data.len(), rng)
}

/// As [`emit_relay_cell`], for `len` bytes of data the caller already wrote at
/// `body[RELAY_HEADER_LEN..][..len]` (so an exit can read socket bytes straight into a cell).
/// `#[inline]`, as [`emit_relay_cell`].
#[inline]
pub fn finish_relay_cell<R: RngCore + ?Sized>(
    body: &mut [u8; CELL_BODY_LEN],
    cmd: RelayCmd,
    stream_id: Option<StreamId>,
    len: usize,
    rng: &mut R,
) -> Result<()> {
    let len16 = check_data_len(len)?;
    let mut view = RelayCellView::new_unchecked(&mut body[..]);
    view.set_cmd(cmd);
    view.set_recognized(0);
    view.set_stream_id(stream_id);
    view.set_digest(&[0; 4]);
    view.set_length(len16);
    let padding = &mut view.data_area_mut()[len..];
    let zeros = padding.len().min(ZERO_PAD_LEN);
    let (zero_pad, random_pad) = padding.split_at_mut(zeros);
    zero_pad.fill(0);
    rng.fill_bytes(random_pad);
    Ok(())
}

fn check_data_len(len: usize) -> Result<u16> {
    if len > RELAY_DATA_LEN {
        return Err(Error::TooLong {
            field: "relay data",
            len,
        });
    }
    // RELAY_DATA_LEN < u16::MAX, so this cannot fail after the check above.
    u16::try_from(len).map_err(|_| Error::TooLong {
        field: "relay data",
        len,
    })
}
