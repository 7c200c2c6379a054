//! Sampled sends on io_uring (`sys::txstamp`): about one send in 1,024 cells' worth of bytes
//! becomes a SENDMSG carrying the SO_TIMESTAMPING control message; every other send stays a
//! plain SEND. The `msghdr`, its `iovec` and the control bytes live in one heap block made
//! once per connection, owned by the SEND op while the kernel may read it and handed back
//! to the connection when the op completes.
//!
//! The stamps are read through the ring too: while a connection has samples waiting, one
//! RECVMSG with MSG_ERRQUEUE is armed on it. io_uring polls such a request for POLLERR only
//! (io_uring/net.c sets REQ_F_CLEAR_POLLIN for MSG_ERRQUEUE), so it completes as soon as a
//! stamp is queued, with no system call of ours; each completion carries one stamp and the
//! op is re-armed while samples remain. Its `msghdr` and control buffer are a second heap
//! block made once per connection and owned by the op while it is armed. Reading promptly
//! matters: a queued stamp is charged to the socket's receive memory until it is read.

use std::fmt;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types::Fd};

use crate::sys::txstamp::{self, KernelStage, SampleCmsg, TxStamp, TxStamps, PENDING_SAMPLES};

/// Measured delays a connection keeps for the worker's next collection: every stamp of
/// every pending sample (they cannot outnumber this).
const READY_CAP: usize = 3 * PENDING_SAMPLES;

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

/// Room for the two control messages of one stamp (about 100 bytes), aligned for `cmsghdr`.
#[repr(C, align(8))]
struct Control([u8; 128]);

/// The memory an error-queue RECVMSG points to: its header and the control buffer the
/// kernel writes the stamp into (no payload: OPT_TSONLY).
pub(super) struct ErrMsg {
    hdr: libc::msghdr,
    control: Control,
}

impl fmt::Debug for ErrMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrMsg")
            .field("controllen", &self.hdr.msg_controllen)
            .finish_non_exhaustive()
    }
}

impl ErrMsg {
    /// The stamp the kernel wrote, if the completed RECVMSG carried one whole.
    fn stamp(&self) -> Option<TxStamp> {
        if self.hdr.msg_flags & libc::MSG_CTRUNC != 0 {
            return None;
        }
        // msg_controllen is size_t on glibc, socklen_t on musl; the kernel wrote it back.
        #[allow(clippy::useless_conversion)]
        let len = usize::try_from(self.hdr.msg_controllen).unwrap_or(0);
        txstamp::parse_control(self.control.0.get(..len)?)
    }
}

/// A connection's transmit timestamps and its reusable SENDMSG and error-queue blocks.
#[derive(Debug, Default)]
pub(super) struct Stamping {
    pub(super) tx: TxStamps,
    /// Present when stamping is on and no sampled SEND is in flight.
    msg: Option<Box<SendMsg>>,
    /// Present when stamping is on and no error-queue RECVMSG is armed.
    errmsg: Option<Box<ErrMsg>>,
    /// The `user_data` (an `OpKey`) of the armed error-queue RECVMSG, cancelled on close.
    pub(super) errq_op: Option<u64>,
    /// The error-queue RECVMSG failed (not cancelled): the stamps are read with recvmsg(2)
    /// once per collection instead.
    errq_failed: bool,
    /// Delays read by completions since the worker last collected them (capacity
    /// [`READY_CAP`], reserved once: never grows).
    ready: Vec<(KernelStage, u64)>,
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
            // SAFETY: all-zero bytes are a valid msghdr; it is filled before each use.
            let hdr = unsafe { std::mem::zeroed() };
            self.errmsg = Some(Box::new(ErrMsg {
                hdr,
                control: Control([0; 128]),
            }));
            self.ready = Vec::with_capacity(READY_CAP);
        }
    }

    /// The RECVMSG (MSG_ERRQUEUE) to arm when samples wait for stamps and none is armed;
    /// the returned block must stay alive and unmoved on the heap until its completion (the
    /// op owns it). The caller records the op's key in `errq_op`.
    pub(super) fn errqueue_entry(&mut self, fd: RawFd) -> Option<(squeue::Entry, Box<ErrMsg>)> {
        if self.errq_op.is_some() || self.errq_failed || !self.tx.outstanding() {
            return None;
        }
        let mut m = self.errmsg.take()?;
        m.hdr.msg_name = std::ptr::null_mut();
        m.hdr.msg_namelen = 0;
        m.hdr.msg_iov = std::ptr::null_mut();
        m.hdr.msg_iovlen = 0;
        m.hdr.msg_control = m.control.0.as_mut_ptr().cast();
        m.hdr.msg_controllen = m.control.0.len() as _;
        m.hdr.msg_flags = 0;
        let entry = opcode::RecvMsg::new(Fd(fd), &mut m.hdr)
            .flags(libc::MSG_ERRQUEUE as u32)
            .build();
        Some((entry, m))
    }

    /// The error-queue block was lost with an op that could not be queued: read by
    /// recvmsg(2) from now on.
    pub(super) fn errq_lost(&mut self) {
        self.errq_failed = true;
    }

    /// The error-queue RECVMSG completed with `res` (0: a stamp in `m`'s control bytes):
    /// keeps its delay for the worker and the block for the next arming. Returns whether to
    /// re-arm (samples still wait and the op did not fail).
    pub(super) fn on_errqueue(&mut self, res: i32, m: Box<ErrMsg>) -> bool {
        self.errq_op = None;
        if res >= 0 {
            if let Some((stage, us)) = m.stamp().and_then(|s| self.tx.on_stamp(s)) {
                if self.ready.len() < self.ready.capacity() {
                    self.ready.push((stage, us));
                }
            }
        } else if res != -libc::ECANCELED {
            // E.g. a kernel without MSG_ERRQUEUE on io_uring: read by recvmsg(2) instead.
            tracing::debug!(
                error = %std::io::Error::from_raw_os_error(-res),
                "error-queue RECVMSG failed; reading stamps with recvmsg(2)"
            );
            self.errq_failed = true;
        }
        self.errmsg = Some(m);
        !self.errq_failed && self.tx.outstanding()
    }

    /// Hands the delays read since the last call to `record`, gives up samples whose
    /// stamps never came, and returns the recvmsg(2) calls made (only after the ring path
    /// failed on this connection).
    pub(super) fn collect(&mut self, fd: RawFd, record: &mut dyn FnMut(KernelStage, u64)) -> u32 {
        for (stage, us) in self.ready.drain(..) {
            record(stage, us);
        }
        if self.errq_failed {
            return self.tx.drain(fd, record);
        }
        if self.tx.outstanding() {
            self.tx.expire(txstamp::realtime_now());
        }
        0
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
