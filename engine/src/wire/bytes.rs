//! A bounds-checked cursor pair for the message layouts: every read and write names its field
//! so a failure becomes a precise [`Error`], and nothing here can panic or allocate.

use super::{Error, Result};

/// Reads big-endian fields from the front of a slice.
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub(super) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(super) fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8]> {
        if len > self.rest.len() {
            return Err(Error::Truncated { field });
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    pub(super) fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(super) fn u16(&mut self, field: &'static str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
}

/// Writes big-endian fields into the front of a slice, counting what it wrote.
pub(super) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(super) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub(super) fn written(&self) -> usize {
        self.pos
    }

    pub(super) fn bytes(&mut self, bytes: &[u8], field: &'static str) -> Result<()> {
        let end = self.pos.checked_add(bytes.len());
        let dst = end
            .and_then(|end| self.buf.get_mut(self.pos..end))
            .ok_or(Error::NoSpace { field })?;
        dst.copy_from_slice(bytes);
        self.pos += bytes.len();
        Ok(())
    }

    pub(super) fn u8(&mut self, value: u8, field: &'static str) -> Result<()> {
        self.bytes(&[value], field)
    }

    pub(super) fn u16(&mut self, value: u16, field: &'static str) -> Result<()> {
        self.bytes(&value.to_be_bytes(), field)
    }

    pub(super) fn u32(&mut self, value: u32, field: &'static str) -> Result<()> {
        self.bytes(&value.to_be_bytes(), field)
    }

    /// A `u16` length prefix for `len` bytes, refusing lengths that do not fit (`TooLong`).
    pub(super) fn len_u16(&mut self, len: usize, field: &'static str) -> Result<()> {
        let len16 = u16::try_from(len).map_err(|_| Error::TooLong { field, len })?;
        self.u16(len16, field)
    }
}
