//! The link layer of a channel connection: what sits between the driver's bytes and the cell
//! codec (docs/design.md, "link layer").
//!
//! ```text
//!   driver Recv(buf) --> Link::open(&mut buf, deliver) --> plaintext --> Relay::handle_recv
//!   scheduler grant  --> Link::cell_buf(send buf) <-- Relay::write_one_cell (one copy)
//!   end of the run   --> Link::seal(send buf)            (per channel per run, not per cell)
//! ```
//!
//! Today the only link is [`Link::Plain`] (the benchmark mode): `open` hands the driver's
//! buffer to the decoder as it is, `cell_buf` is the connection's send buffer itself and
//! `seal` does nothing. It is an enum, not a trait object: with one variant every `match`
//! folds away, and with TLS beside it there is one predictable branch per call, never a call
//! through a pointer per cell.
//!
//! What issue #14 puts here, and why the calls have these shapes:
//! - rustls through its unbuffered API: records are decrypted in place in the receive buffer
//!   (hence `open` takes `&mut [u8]`, and a driver's buffer is `DerefMut`) and one buffer can
//!   hold several records (hence `open` delivers through a callback, once per plaintext run);
//!   cells are staged in the link and encrypted into the send buffer by `seal`, which the
//!   scheduler calls once per channel per run (`CellSource::flush`).
//! - kTLS: once the handshake is done the kernel does the records, and the link is plain.
//! - A handshake phase before any cell flows ([`Link::is_open`]), at whose end the link hands
//!   [`LinkFacts`] (the peer's certificate, the RFC 5705 exporter) to the relay's sans-IO link
//!   handshake (CERTS / AUTHENTICATE).

/// A channel connection's link layer. See the module docs.
#[derive(Debug, Default)]
#[non_exhaustive]
pub enum Link {
    /// Plain TCP: bytes pass through untouched, at no cost.
    #[default]
    Plain,
}

/// What a secured link learned in its handshake, for the relay's link handshake. A plain link
/// has none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkFacts {
    /// The peer's TLS certificate (DER), which CERTS binds to its identity.
    pub peer_certificate: Option<Vec<u8>>,
    /// The RFC 5705 keying material AUTHENTICATE signs.
    pub exporter: Option<[u8; 32]>,
}

/// Why a link failed; the worker closes the channel with the reason logged. A plain link
/// cannot fail, so today there is no variant (TLS adds record and handshake errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {}

impl crate::HasKind for LinkError {
    fn kind(&self) -> crate::ErrorKind {
        match *self {}
    }
}

impl Link {
    /// Whether cells may flow (a TLS link is open once its handshake is done).
    #[inline]
    pub fn is_open(&self) -> bool {
        match self {
            Link::Plain => true,
        }
    }

    /// What the handshake learned, once the link is open; `None` for a plain link.
    pub fn facts(&self) -> Option<&LinkFacts> {
        match self {
            Link::Plain => None,
        }
    }

    /// Bytes received on the connection: hands their plaintext to `deliver` (in order, in
    /// one or more runs), opening records in place.
    #[inline]
    pub fn open(
        &mut self,
        received: &mut [u8],
        mut deliver: impl FnMut(&[u8]),
    ) -> Result<(), LinkError> {
        match self {
            Link::Plain => {
                deliver(received);
                Ok(())
            }
        }
    }

    /// The buffer cells are written into for the connection whose send buffer is `send`.
    #[inline]
    pub fn cell_buf<'a>(&'a mut self, send: &'a mut Vec<u8>) -> &'a mut Vec<u8> {
        match self {
            Link::Plain => send,
        }
    }

    /// Whether bytes written through [`Link::cell_buf`] wait for [`Link::seal`] (never for
    /// a plain link: they are in the send buffer already).
    #[inline]
    pub fn has_staged(&self) -> bool {
        match self {
            Link::Plain => false,
        }
    }

    /// Moves what was written through [`Link::cell_buf`] into `send`, as records.
    #[inline]
    pub fn seal(&mut self, send: &mut Vec<u8>) -> Result<(), LinkError> {
        match self {
            Link::Plain => {
                let _ = send;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_passes_bytes_through_without_copying() {
        let mut link = Link::default();
        assert!(link.is_open());
        assert!(!link.has_staged());
        assert_eq!(link.facts(), None);
        let mut received = *b"cells";
        let ptr = received.as_ptr();
        let mut runs = Vec::new();
        link.open(&mut received, |p| runs.push((p.as_ptr(), p.to_vec())))
            .unwrap();
        assert_eq!(
            runs,
            vec![(ptr, b"cells".to_vec())],
            "one run, the buffer itself"
        );

        let mut send = Vec::with_capacity(16);
        let send_ptr: *const Vec<u8> = &send;
        let buf = link.cell_buf(&mut send);
        assert!(
            std::ptr::eq(buf, send_ptr),
            "cells go straight into the send buffer"
        );
        buf.extend_from_slice(b"abc");
        link.seal(&mut send).unwrap();
        assert_eq!(send, b"abc");
    }
}
