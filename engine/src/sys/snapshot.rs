//! `socket_snapshot`: what KIST needs to know about one socket (see sched/src/socket.rs), and
//! `send_queue`: the send queue by ioctl, off the scheduler's path.
//!
//! Linux: one getsockopt(TCP_INFO) per snapshot: cwnd, unacked, mss and rtt, and
//! `tcpi_notsent_bytes` (Linux 4.6+) for the unsent bytes, the same `write_seq - snd_nxt` the
//! SIOCOUTQNSD ioctl returns (the snapshot used to make that ioctl and SIOCOUTQ too: three
//! system calls per pending socket per run; docs/perf.md has the counts). A kernel whose
//! tcp_info ends before `tcpi_notsent_bytes` gets the SIOCOUTQNSD ioctl as well.
//! Elsewhere the snapshot only checks that the descriptor is a socket: KIST is Linux-only.
//!
//! TCP_INFO cannot be read through io_uring yet: Linux's SOCKET_URING_OP_GETSOCKOPT refuses
//! any level but SOL_SOCKET (io_uring/cmd_net.c); `crate::uring` probes it at ring setup.

use std::io;
use std::os::fd::RawFd;

use kistrel_sched::SocketSnapshot;

/// Whether [`socket_snapshot`] carries TCP_INFO on this platform (Linux): what KIST needs,
/// on either backend. Elsewhere a snapshot has no kernel reading and KIST falls back to
/// KISTLite.
pub const SNAPSHOT_HAS_TCP_INFO: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// Reads the kernel's view of a TCP socket for one scheduling run: one system call on Linux.
///
/// Fields the platform cannot report are `None`. Fails only if a query the platform supports
/// fails (e.g. `EBADF`, or `ENOTSOCK` for a non-socket).
pub fn socket_snapshot(fd: RawFd) -> io::Result<SocketSnapshot> {
    imp::socket_snapshot(fd)
}

/// A socket's send queue as the ioctls report it: for checks and diagnostics, not for the
/// scheduler's per-run path (two system calls on Linux).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendQueue {
    /// Bytes in the send queue, sent or not: SIOCOUTQ (Linux), FIONWRITE (FreeBSD),
    /// SO_NWRITE (macOS).
    pub queued: Option<u32>,
    /// Bytes in the send queue not yet sent: SIOCOUTQNSD (Linux only).
    pub unsent: Option<u32>,
}

/// Reads [`SendQueue`] of a socket by ioctl (getsockopt on macOS). Fails like
/// [`socket_snapshot`].
pub fn send_queue(fd: RawFd) -> io::Result<SendQueue> {
    imp::send_queue(fd)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::{io, mem};

    use kistrel_sched::{SocketSnapshot, TcpInfo};

    use super::super::cvt;
    use super::{RawFd, SendQueue};

    /// `SIOCOUTQ` is the same request number as `TIOCOUTQ` on Linux (linux/sockios.h).
    const SIOCOUTQ: libc::c_ulong = libc::TIOCOUTQ as libc::c_ulong;
    /// linux/sockios.h: `#define SIOCOUTQNSD 0x894B`.
    const SIOCOUTQNSD: libc::c_ulong = 0x894B;
    /// The tcp_info length that covers `tcpi_notsent_bytes` (Linux 4.6+).
    const NOTSENT_END: usize =
        mem::offset_of!(libc::tcp_info, tcpi_notsent_bytes) + mem::size_of::<u32>();

    fn ioctl_int(fd: RawFd, request: libc::c_ulong) -> io::Result<u32> {
        let mut value: libc::c_int = 0;
        // SAFETY: both requests write one `int` through the pointer, which points to a local.
        cvt(unsafe { libc::ioctl(fd, request as _, &mut value as *mut libc::c_int) })?;
        Ok(u32::try_from(value).unwrap_or(0))
    }

    pub(super) fn socket_snapshot(fd: RawFd) -> io::Result<SocketSnapshot> {
        // SAFETY: tcp_info is a plain C struct of integers; all-zero bytes are valid.
        let mut info: libc::tcp_info = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: `info` is a local of `len` bytes; the kernel writes at most `len` bytes
        // (fewer on an older kernel, leaving the rest zero) and stores the count in `len`.
        cvt(unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        })?;
        let notsent = if len as usize >= NOTSENT_END {
            info.tcpi_notsent_bytes
        } else {
            // Before Linux 4.6: the field is not there, ask the ioctl.
            ioctl_int(fd, SIOCOUTQNSD)?
        };
        Ok(SocketSnapshot {
            tcp: Some(TcpInfo {
                cwnd: info.tcpi_snd_cwnd,
                unacked: info.tcpi_unacked,
                mss: info.tcpi_snd_mss,
                rtt_us: info.tcpi_rtt,
            }),
            notsent: Some(notsent),
        })
    }

    pub(super) fn send_queue(fd: RawFd) -> io::Result<SendQueue> {
        Ok(SendQueue {
            queued: Some(ioctl_int(fd, SIOCOUTQ)?),
            unsent: Some(ioctl_int(fd, SIOCOUTQNSD)?),
        })
    }
}

/// Not Linux: no TCP_INFO that KIST could use; the snapshot only checks that `fd` is a socket,
/// so errors are the same everywhere.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use std::io;

    use kistrel_sched::SocketSnapshot;

    use super::{RawFd, SendQueue};

    pub(super) fn socket_snapshot(fd: RawFd) -> io::Result<SocketSnapshot> {
        super::super::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)?;
        Ok(SocketSnapshot::default())
    }

    #[cfg(target_os = "freebsd")]
    pub(super) fn send_queue(fd: RawFd) -> io::Result<SendQueue> {
        let mut value: libc::c_int = 0;
        // SAFETY: FIONWRITE writes one `int` (bytes in the send buffer) to a local.
        super::super::cvt(unsafe {
            libc::ioctl(fd, libc::FIONWRITE, &mut value as *mut libc::c_int)
        })?;
        Ok(SendQueue {
            queued: Some(u32::try_from(value).unwrap_or(0)),
            unsent: None,
        })
    }

    #[cfg(any(target_os = "macos", target_os = "ios"))]
    pub(super) fn send_queue(fd: RawFd) -> io::Result<SendQueue> {
        // SO_NWRITE: bytes written to the socket and not yet acknowledged by the peer.
        let value = super::super::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_NWRITE)?;
        Ok(SendQueue {
            queued: Some(u32::try_from(value).unwrap_or(0)),
            unsent: None,
        })
    }

    #[cfg(not(any(target_os = "freebsd", target_os = "macos", target_os = "ios")))]
    pub(super) fn send_queue(fd: RawFd) -> io::Result<SendQueue> {
        super::super::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)?;
        Ok(SendQueue::default())
    }
}
