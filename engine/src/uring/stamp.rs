//! Sampled sends on io_uring (`sys::txstamp`): about one send in 1,024 cells' worth of bytes
//! becomes a SENDMSG carrying the SO_TIMESTAMPING control message; every other send stays a
//! plain SEND. The `msghdr`, its `iovec` and the control bytes live in one heap block made
//! once per connection, owned by the SEND op while the kernel may read it and handed back
//! to the connection when the op completes.

use std::fmt;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types::Fd};

use crate::sys::txstamp::{SampleCmsg, TxStamps};

/// The memory a sampled SENDMSG points to.
pub(super) struct SendMsg {
    hdr: libc::msghdr,
    iov: libc::iovec,
    cmsg: SampleCmsg,
}

impl fmt::Debug for SendMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendMsg")
            .field("len", &self.iov.iov_len)
            .finish_non_exhaustive()
    }
}

/// A connection's transmit timestamps and its reusable SENDMSG block.
#[derive(Debug, Default)]
pub(super) struct Stamping {
    pub(super) tx: TxStamps,
    /// Present when stamping is on and no sampled SEND is in flight.
    msg: Option<Box<SendMsg>>,
}

impl Stamping {
    /// Turns stamping on for a connected socket, before its first byte is sent.
    pub(super) fn enable(&mut self, fd: RawFd) {
        if self.tx.enable(fd).is_ok() {
            // SAFETY: all-zero bytes are a valid msghdr and iovec (null pointers, zero
            // lengths); they are filled before each use.
            let (hdr, iov) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
            self.msg = Some(Box::new(SendMsg {
                hdr,
                iov,
                cmsg: SampleCmsg::new(),
            }));
        }
    }

    /// The SQE sending `len` bytes at `ptr`: a SENDMSG with the timestamp request when the
    /// sampler picks this send (then the returned block must stay alive and unmoved on the
    /// heap until the completion: the op owns it), else a SEND.
    pub(super) fn send_entry(
        &mut self,
        fd: RawFd,
        ptr: *const u8,
        len: usize,
    ) -> (squeue::Entry, Option<Box<SendMsg>>) {
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        if self.msg.is_some() && self.tx.sample(len) {
            if let Some(mut m) = self.msg.take() {
                m.iov = libc::iovec {
                    iov_base: ptr as *mut libc::c_void,
                    iov_len: len32 as usize,
                };
                m.hdr.msg_iov = &mut m.iov;
                m.hdr.msg_iovlen = 1;
                m.hdr.msg_control = m.cmsg.as_ptr() as *mut libc::c_void;
                m.hdr.msg_controllen = m.cmsg.len() as _;
                let entry = opcode::SendMsg::new(Fd(fd), &m.hdr)
                    .flags(libc::MSG_NOSIGNAL as u32)
                    .build();
                return (entry, Some(m));
            }
        }
        let entry = opcode::Send::new(Fd(fd), ptr, len32)
            .flags(libc::MSG_NOSIGNAL)
            .build();
        (entry, None)
    }

    /// The first completion of a SEND (`res` as the kernel gave it): counts the bytes for
    /// the stamp ids and, for a sampled one, records the sample.
    pub(super) fn on_first_completion(&mut self, res: i32, sampled: bool) {
        self.tx.on_sent(usize::try_from(res).unwrap_or(0), sampled);
    }

    /// A short send's continuation went out as a plain SEND: counts its bytes.
    pub(super) fn on_more_sent(&mut self, res: i32) {
        self.tx.on_sent(usize::try_from(res).unwrap_or(0), false);
    }

    /// The SEND op is done with the block: keep it for the next sample.
    pub(super) fn give_back(&mut self, msg: Option<Box<SendMsg>>) {
        if msg.is_some() {
            self.msg = msg;
        }
    }
}
