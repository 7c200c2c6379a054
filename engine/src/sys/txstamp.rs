//! Kernel transmit timestamps of sampled sends (SO_TIMESTAMPING, Linux): the measured time a
//! written byte spends in the kernel before the qdisc (SCHED), before the driver (SND: the
//! kernel send queue) and before its ACK.
//!
//! A socket is set up once ([`enable`]: OPT_ID, OPT_ID_TCP, OPT_TSONLY, SOFTWARE reporting);
//! only a *sampled* send carries the per-send control message ([`SampleCmsg`]) that asks for
//! the three stamps, so unsampled sends cost nothing. With OPT_ID_TCP the kernel names the
//! stamped packet by the offset of the send's last byte since [`enable`], which
//! [`TxStamps`] counts itself. The stamps come back on the socket's error queue, read only
//! for sockets with samples outstanding: by an io_uring RECVMSG as each arrives
//! (`uring::stamp`), or in batches ([`read_errqueue`]) on POLLERR and once per tick (poll).
//!
//! The kernel stamps with CLOCK_REALTIME, so the submit time is a CLOCK_REALTIME read
//! ([`realtime_now`]) taken just before the send, not the worker's injected clock.

use std::io::{self, IoSlice};
use std::mem;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use kistrel_sched::metrics::KernelStage;

// linux/net_tstamp.h
const SOF_TIMESTAMPING_TX_SOFTWARE: u32 = 1 << 1;
const SOF_TIMESTAMPING_SOFTWARE: u32 = 1 << 4;
const SOF_TIMESTAMPING_OPT_ID: u32 = 1 << 7;
const SOF_TIMESTAMPING_TX_SCHED: u32 = 1 << 8;
const SOF_TIMESTAMPING_TX_ACK: u32 = 1 << 9;
const SOF_TIMESTAMPING_OPT_TSONLY: u32 = 1 << 11;
/// Counts the id from the bytes *written* when enabled (not the unacknowledged ones): Linux 6.2+.
const SOF_TIMESTAMPING_OPT_ID_TCP: u32 = 1 << 16;
/// Enabled once per socket: report software stamps, keyed by byte offset, without payload.
const SOCKET_FLAGS: u32 = SOF_TIMESTAMPING_OPT_ID
    | SOF_TIMESTAMPING_OPT_ID_TCP
    | SOF_TIMESTAMPING_OPT_TSONLY
    | SOF_TIMESTAMPING_SOFTWARE;
/// Requested per sampled send (the control message).
pub const SAMPLE_FLAGS: u32 =
    SOF_TIMESTAMPING_TX_SCHED | SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_TX_ACK;
// linux/errqueue.h
const SCM_TSTAMP_SND: u32 = 0;
const SCM_TSTAMP_SCHED: u32 = 1;
const SCM_TSTAMP_ACK: u32 = 2;
const SO_EE_ORIGIN_TIMESTAMPING: u8 = 4;
// SOL_SOCKET / SO_TIMESTAMPING (the "old" value: native `struct timespec` on 64-bit).
#[cfg(target_os = "linux")]
const SO_TIMESTAMPING: i32 = libc::SO_TIMESTAMPING;
#[cfg(not(target_os = "linux"))]
const SO_TIMESTAMPING: i32 = 37;
const SOL_IP: i32 = 0;
const IP_RECVERR: i32 = 11;
const SOL_IPV6: i32 = 41;
const IPV6_RECVERR: i32 = 25;

/// About one sampled send per this many bytes written on a socket (1,024 cells of 514
/// bytes), and never more than one per send. One in 64 cells cost KIST 15-25% of its 3-hop
/// throughput in the macro gate (`kistrel bench check`: KIST / Vanilla 0.75-0.93 against a
/// baseline of 1.10); one in 1,024 passes it (1.12-1.14). Reading the stamps through io_uring
/// removed their charge on receive memory, but at 1 in 64 each stamp's completion adds a
/// worker turn (+50% turns): docs/methodology.md, "What sampling cost through the error queue".
pub const SAMPLE_EVERY_BYTES: usize = 1024 * 514;
/// Samples a socket keeps waiting for their stamps. While all wait, no send is sampled: a
/// sample is never overwritten before its stamps are read, which would favour short delays.
pub const PENDING_SAMPLES: usize = 32;
/// A sample whose ACK stamp has not come after this long is given up.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Error-queue messages read per socket per call.
pub const ERRQUEUE_BATCH: usize = 64;

/// One timestamp from the error queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxStamp {
    /// Which point of the send path.
    pub stage: KernelStage,
    /// OPT_ID key: offset of the stamped send's last byte since [`enable`].
    pub id: u32,
    /// The software stamp (CLOCK_REALTIME since the epoch).
    pub at: Duration,
}

/// CLOCK_REALTIME since the epoch (the kernel's timestamp clock).
pub fn realtime_now() -> Duration {
    // SAFETY: all-zero bytes are a valid timespec.
    let mut ts: libc::timespec = unsafe { mem::zeroed() };
    // SAFETY: `ts` is a local the kernel fills; CLOCK_REALTIME always exists.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    if ret != 0 {
        return Duration::ZERO;
    }
    // time_t and c_long are 32 bits on some targets.
    #[allow(clippy::useless_conversion)]
    let (sec, nsec) = (i64::from(ts.tv_sec), i64::from(ts.tv_nsec));
    timespec(sec, nsec)
}

fn timespec(sec: i64, nsec: i64) -> Duration {
    let sec = u64::try_from(sec).unwrap_or(0);
    let nsec = u32::try_from(nsec).unwrap_or(0).min(999_999_999);
    Duration::new(sec, nsec)
}

/// Enables stamping on a connected TCP socket (once, before its first byte is written: the
/// byte counter of [`TxStamps`] starts here). Fails with the kernel's error (EINVAL before
/// OPT_ID_TCP existed or on a non-TCP socket, EOPNOTSUPP) or `Unsupported` off Linux.
pub fn enable(fd: RawFd) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let flags = i32::try_from(SOCKET_FLAGS).unwrap_or(0);
        super::setsockopt_int(fd, libc::SOL_SOCKET, SO_TIMESTAMPING, flags)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Room for one cmsg with a 4-byte payload (CMSG_SPACE(4) is at most 24 bytes), aligned.
const CMSG_WORDS: usize = 4;

/// The control message of a sampled send (SOL_SOCKET / SO_TIMESTAMPING = [`SAMPLE_FLAGS`]),
/// in memory that does not move: a backend keeps it alive until the send completes.
#[derive(Clone, Debug)]
pub struct SampleCmsg {
    buf: [u64; CMSG_WORDS],
    len: usize,
}

impl Default for SampleCmsg {
    fn default() -> Self {
        Self::new()
    }
}

impl SampleCmsg {
    /// Builds the control message.
    pub fn new() -> Self {
        let mut buf = [0u64; CMSG_WORDS];
        let bytes = encode_cmsg(
            libc::SOL_SOCKET,
            SO_TIMESTAMPING,
            &SAMPLE_FLAGS.to_ne_bytes(),
            &mut buf,
        );
        SampleCmsg { buf, len: bytes }
    }

    /// Pointer to the control bytes.
    pub fn as_ptr(&self) -> *const libc::c_void {
        self.buf.as_ptr().cast()
    }

    /// Length of the control bytes (CMSG_SPACE of the payload).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Size of `struct cmsghdr` and the alignment of its data (`size_t` on Linux).
const CMSG_HDR: usize = mem::size_of::<libc::cmsghdr>();
const CMSG_ALIGN_TO: usize = mem::size_of::<usize>();

fn cmsg_align(n: usize) -> usize {
    (n + CMSG_ALIGN_TO - 1) & !(CMSG_ALIGN_TO - 1)
}

/// Writes one cmsg into `out`; returns its CMSG_SPACE. Pure byte layout, tested below.
fn encode_cmsg(level: i32, ty: i32, data: &[u8], out: &mut [u64; CMSG_WORDS]) -> usize {
    let mut bytes = [0u8; CMSG_WORDS * 8];
    let len = CMSG_HDR + data.len();
    let space = cmsg_align(CMSG_HDR) + cmsg_align(data.len());
    // cmsg_len is the first field (size_t on Linux, socklen_t elsewhere), then level, type.
    let len_width = CMSG_HDR - 8;
    let len_bytes = len.to_ne_bytes();
    for (dst, src) in bytes.iter_mut().zip(len_bytes.iter().take(len_width)) {
        *dst = *src;
    }
    copy_into(&mut bytes, len_width, &level.to_ne_bytes());
    copy_into(&mut bytes, len_width + 4, &ty.to_ne_bytes());
    copy_into(&mut bytes, cmsg_align(CMSG_HDR), data);
    for (word, chunk) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        *word = u64::from_ne_bytes(w);
    }
    space
}

fn copy_into(dst: &mut [u8], at: usize, src: &[u8]) {
    if let Some(d) = dst.get_mut(at..at + src.len()) {
        d.copy_from_slice(src);
    }
}

fn read_ne<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at + N)?.try_into().ok()
}

fn read_word(b: &[u8], at: usize, width: usize) -> Option<i64> {
    match width {
        4 => read_ne::<4>(b, at).map(|v| i64::from(i32::from_ne_bytes(v))),
        8 => read_ne::<8>(b, at).map(i64::from_ne_bytes),
        _ => None,
    }
}

/// Parses the control bytes of one error-queue message: an `scm_timestamping` (software
/// stamp in `ts[0]`) and an IP_RECVERR/IPV6_RECVERR `sock_extended_err` from
/// SO_EE_ORIGIN_TIMESTAMPING. None if either is missing or the message is another error.
pub fn parse_control(control: &[u8]) -> Option<TxStamp> {
    let len_width = CMSG_HDR - 8;
    let word = mem::size_of::<libc::c_long>();
    let (mut at, mut stamp, mut ee) = (0usize, None, None);
    while at + CMSG_HDR <= control.len() {
        let len = usize::try_from(read_word(control, at, len_width)?).ok()?;
        let level = i32::from_ne_bytes(read_ne(control, at + len_width)?);
        let ty = i32::from_ne_bytes(read_ne(control, at + len_width + 4)?);
        if len < CMSG_HDR || at + len > control.len() {
            return None;
        }
        let data = control.get(at + cmsg_align(CMSG_HDR)..at + len)?;
        if level == libc::SOL_SOCKET && ty == SO_TIMESTAMPING && data.len() >= 6 * word {
            let sec = read_word(data, 0, word)?;
            let nsec = read_word(data, word, word)?;
            stamp = Some(timespec(sec, nsec));
        } else if (level, ty) == (SOL_IP, IP_RECVERR) || (level, ty) == (SOL_IPV6, IPV6_RECVERR) {
            // struct sock_extended_err: errno u32, origin u8, type u8, code u8, pad u8,
            // info u32, data u32.
            let origin = *data.get(4)?;
            let info = u32::from_ne_bytes(read_ne(data, 8)?);
            let id = u32::from_ne_bytes(read_ne(data, 12)?);
            if origin == SO_EE_ORIGIN_TIMESTAMPING {
                ee = Some((info, id));
            }
        }
        at += cmsg_align(len);
    }
    let (info, id) = ee?;
    let stage = match info {
        SCM_TSTAMP_SCHED => KernelStage::Sched,
        SCM_TSTAMP_SND => KernelStage::Sent,
        SCM_TSTAMP_ACK => KernelStage::Acked,
        _ => return None,
    };
    Some(TxStamp {
        stage,
        id,
        at: stamp?,
    })
}

/// Reads up to [`ERRQUEUE_BATCH`] messages from `fd`'s error queue (recvmsg with
/// MSG_ERRQUEUE, non-blocking) and hands each timestamp to `f`. Returns the number of
/// recvmsg calls made; stops at the first EAGAIN.
pub fn read_errqueue(fd: RawFd, f: impl FnMut(TxStamp)) -> io::Result<u32> {
    #[cfg(target_os = "linux")]
    {
        read_errqueue_linux(fd, f)
    }
    #[cfg(not(target_os = "linux"))]
    {
        // Stamping is never enabled off Linux, so there is nothing to read.
        let _ = (fd, f);
        Ok(0)
    }
}

#[cfg(target_os = "linux")]
fn read_errqueue_linux(fd: RawFd, mut f: impl FnMut(TxStamp)) -> io::Result<u32> {
    let mut calls = 0;
    for _ in 0..ERRQUEUE_BATCH {
        let mut control = ControlBuf([0; 128]);
        // SAFETY: all-zero bytes are a valid msghdr (no name, no iovec, no control).
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len() as _;
        calls += 1;
        // SAFETY: `msg` points to `control`, a local of `msg_controllen` bytes, and to no
        // iovec (OPT_TSONLY: no payload comes back); the kernel writes only within them.
        let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock => Ok(calls),
                io::ErrorKind::Interrupted => continue,
                _ => Err(err),
            };
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            continue;
        }
        // msg_controllen is size_t on Linux/glibc, socklen_t on musl and elsewhere.
        #[allow(clippy::useless_conversion)]
        let len = usize::try_from(msg.msg_controllen).unwrap_or(0);
        if let Some(stamp) = parse_control(control.0.get(..len).unwrap_or_default()) {
            f(stamp);
        }
    }
    Ok(calls)
}

/// Room for the two control messages of a stamp (about 100 bytes), aligned for `cmsghdr`.
#[repr(C, align(8))]
struct ControlBuf([u8; 128]);

/// `sendmsg` of `bytes` with the sampling control message (the poll backend's sampled send).
pub fn sendmsg_sampled(fd: RawFd, bufs: &[IoSlice<'_>], cmsg: &SampleCmsg) -> io::Result<usize> {
    // SAFETY: all-zero bytes are a valid msghdr.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` on unix (std documents it); the kernel only
    // reads the array.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len() as _;
    msg.msg_control = cmsg.as_ptr() as *mut libc::c_void;
    msg.msg_controllen = cmsg.len() as _;
    #[cfg(target_os = "linux")]
    let flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
    #[cfg(not(target_os = "linux"))]
    let flags = libc::MSG_DONTWAIT;
    // SAFETY: `msg` points to the iovecs of `bufs` and to `cmsg`'s bytes, all borrowed for
    // the call; the kernel only reads them.
    let n = unsafe { libc::sendmsg(fd, &msg, flags) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Whether a socket's stamping is on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StampState {
    /// Not set up (no real socket, or not yet connected).
    #[default]
    Off,
    /// Sampling.
    On,
    /// The kernel refused [`enable`]: the measured figures are unavailable for this socket.
    Unavailable,
}

#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    id: u32,
    sent_at: Duration,
    /// Stages seen, a bit per `KernelStage`; the slot is free when 0 and `live` is false.
    seen: u8,
    live: bool,
}

/// One socket's sampler and the samples waiting for their stamps: fixed size, no allocation.
#[derive(Clone, Debug, Default)]
pub struct TxStamps {
    state: StampState,
    /// Bytes the kernel accepted since [`enable`] (wrapping, like the kernel's u32 key).
    written: u32,
    since_sample: usize,
    /// Submit time of the sampled send in flight.
    in_flight: Option<Duration>,
    pending: [Pending; PENDING_SAMPLES],
    /// Stamps that never came for the samples freed since [`TxStamps::take_missing`]: lost
    /// to a full receive budget (the kernel drops a stamp with ENOMEM when the socket's
    /// receive memory is used up) or to a closed connection.
    missing: u32,
}

impl TxStamps {
    /// Enables stamping on `fd` (see [`enable`]); on failure the socket is `Unavailable`.
    /// The first refusal is logged (once per process).
    pub fn enable(&mut self, fd: RawFd) -> io::Result<()> {
        static LOGGED: AtomicBool = AtomicBool::new(false);
        let res = enable(fd);
        self.state = match &res {
            Ok(()) => StampState::On,
            Err(e) => {
                if !LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "kernel transmit timestamps unavailable: the measured kernel queue figures stay empty");
                }
                StampState::Unavailable
            }
        };
        res
    }

    /// The socket's state.
    pub fn state(&self) -> StampState {
        self.state
    }

    /// Called before a send of `len` bytes: whether to sample it (then the caller attaches
    /// a [`SampleCmsg`] and reports the outcome with [`TxStamps::on_sent`]). Reads the
    /// clock only when it says yes.
    pub fn sample(&mut self, len: usize) -> bool {
        if self.state != StampState::On || self.in_flight.is_some() || len == 0 {
            return false;
        }
        if self.pending.iter().all(|p| p.live) {
            return false;
        }
        self.since_sample = self.since_sample.saturating_add(len);
        if self.since_sample < SAMPLE_EVERY_BYTES {
            return false;
        }
        self.since_sample = 0;
        self.in_flight = Some(realtime_now());
        true
    }

    /// The kernel accepted `n` bytes of a send (0 on failure); `sampled` if it was the
    /// sampled one. Its id is the offset of its last accepted byte.
    pub fn on_sent(&mut self, n: usize, sampled: bool) {
        // The kernel's key is a u32 byte offset that wraps: keep only the low bits.
        self.written = self.written.wrapping_add(n as u32);
        let at = if sampled { self.in_flight.take() } else { None };
        if let (Some(sent_at), 1..) = (at, n) {
            // `sample` said yes only with a slot free.
            if let Some(p) = self.pending.iter_mut().find(|p| !p.live) {
                *p = Pending {
                    id: self.written.wrapping_sub(1),
                    sent_at,
                    seen: 0,
                    live: true,
                };
            }
        }
    }

    /// Whether samples wait for stamps (the error queue is worth reading).
    pub fn outstanding(&self) -> bool {
        self.pending.iter().any(|p| p.live)
    }

    /// Matches a stamp to its sample; returns the stage and the delay since the write in
    /// microseconds. The ACK stamp (the last) frees the sample.
    pub fn on_stamp(&mut self, s: TxStamp) -> Option<(KernelStage, u64)> {
        let p = self.pending.iter_mut().find(|p| p.live && p.id == s.id)?;
        let bit = 1u8 << (s.stage as u8);
        if p.seen & bit != 0 {
            return None;
        }
        p.seen |= bit;
        if s.stage == KernelStage::Acked {
            // The ACK stamp comes last: an earlier stage not seen by now never comes.
            p.live = false;
            self.missing = self.missing.saturating_add(3 - p.seen.count_ones());
        }
        let us = s.at.saturating_sub(p.sent_at).as_micros();
        Some((s.stage, u64::try_from(us).unwrap_or(u64::MAX)))
    }

    /// Gives up samples older than 30 s (`SAMPLE_TIMEOUT`) at `now` (stamps lost to a full error
    /// queue or a closed connection).
    pub fn expire(&mut self, now: Duration) {
        for p in &mut self.pending {
            if p.live && now.saturating_sub(p.sent_at) > SAMPLE_TIMEOUT {
                p.live = false;
                self.missing = self.missing.saturating_add(3 - p.seen.count_ones());
            }
        }
    }

    /// Stamps missing from the samples freed since the last call (see the field).
    pub fn take_missing(&mut self) -> u32 {
        std::mem::take(&mut self.missing)
    }

    /// Reads `fd`'s error queue and reports each matched delay to `record`. Returns the
    /// recvmsg calls made (0 when nothing is outstanding).
    pub fn drain(&mut self, fd: RawFd, record: &mut dyn FnMut(KernelStage, u64)) -> u32 {
        if !self.outstanding() {
            return 0;
        }
        let calls = match read_errqueue(fd, |s| {
            if let Some((stage, us)) = self.on_stamp(s) {
                record(stage, us);
            }
        }) {
            Ok(calls) => calls,
            Err(e) => {
                tracing::debug!(error = %e, "reading the error queue failed");
                1
            }
        };
        self.expire(realtime_now());
        calls
    }
}

#[cfg(test)]
mod tests;

#[cfg(all(test, target_os = "linux"))]
mod drivers;
