//! The memory of the RECVMSG that reads one non-data record of a kTLS RX socket: a `msghdr`
//! without name or iovec (the payload goes to a provided buffer) and a control buffer for
//! the TLS_GET_RECORD_TYPE message. Made only when such a record waits (rare: post-handshake
//! messages, alerts), owned by the op until its completion.

use std::fmt;

use crate::sys::ktls::{content_type, record_type};

/// Control bytes offered (room for a few messages, aligned as `cmsghdr`).
const CONTROL_WORDS: usize = 8;

/// The blocks a record RECVMSG points to; the `msghdr` points into the same heap block, so
/// it stays valid as the `Box` moves.
pub(crate) struct RecordMsg {
    hdr: libc::msghdr,
    control: [u64; CONTROL_WORDS],
}

impl fmt::Debug for RecordMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordMsg").finish_non_exhaustive()
    }
}

impl RecordMsg {
    /// A zeroed control buffer and a `msghdr` naming it (no iovec: with buffer select the
    /// kernel takes the whole provided buffer for the payload).
    pub(crate) fn new() -> Box<Self> {
        // SAFETY: all-zero bytes are a valid msghdr (null pointers, zero lengths).
        let hdr = unsafe { std::mem::zeroed() };
        let mut m = Box::new(RecordMsg {
            hdr,
            control: [0; CONTROL_WORDS],
        });
        m.hdr.msg_control = m.control.as_mut_ptr().cast();
        m.hdr.msg_controllen = std::mem::size_of_val(&m.control) as _;
        m
    }

    /// The `msghdr` for the SQE (valid while `self` is neither dropped nor written).
    pub(crate) fn hdr_ptr(&mut self) -> *mut libc::msghdr {
        &mut self.hdr
    }

    /// The record's content type: from the TLS_GET_RECORD_TYPE message the kernel wrote;
    /// application data without one (what a socket without TLS_RX gives). The whole zeroed
    /// buffer is parsed, so the result does not depend on the kernel writing
    /// `msg_controllen` back (a zero header ends the walk).
    pub(crate) fn content_type(&self) -> u8 {
        let mut bytes = [0u8; CONTROL_WORDS * 8];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(self.control) {
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        record_type(&bytes).unwrap_or(content_type::APPLICATION_DATA)
    }
}
