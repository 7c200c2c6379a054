//! `socket_snapshot`: what KIST needs to know about one socket (see sched/src/socket.rs).
//!
//! Linux: TCP_INFO (cwnd, unacked, mss, rtt) via getsockopt, SIOCOUTQ (bytes in the send
//! queue, sent or not) and SIOCOUTQNSD (bytes not yet sent) via ioctl; three system calls,
//! ~1.4 us in all here (docs/perf.md), so the caller snapshots only sockets that have work.
//! FreeBSD: FIONWRITE for the send queue. macOS: SO_NWRITE. Elsewhere: nothing.

use std::io;
use std::os::fd::RawFd;

use kistrel_sched::SocketSnapshot;

/// Reads the kernel's view of a TCP socket for one scheduling run.
///
/// Fields the platform cannot report are `None`. Fails only if a query the platform supports
/// fails (e.g. `EBADF`, or `ENOTSOCK` for a non-socket).
pub fn socket_snapshot(fd: RawFd) -> io::Result<SocketSnapshot> {
    imp::socket_snapshot(fd)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::{io, mem};

    use kistrel_sched::{SocketSnapshot, TcpInfo};

    use super::super::cvt;
    use super::RawFd;

    /// `SIOCOUTQ` is the same request number as `TIOCOUTQ` on Linux (linux/sockios.h).
    const SIOCOUTQ: libc::c_ulong = libc::TIOCOUTQ as libc::c_ulong;
    /// linux/sockios.h: `#define SIOCOUTQNSD 0x894B`.
    const SIOCOUTQNSD: libc::c_ulong = 0x894B;

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
        // (fewer on an older kernel, leaving the rest zero).
        cvt(unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        })?;
        let tcp = TcpInfo {
            cwnd: info.tcpi_snd_cwnd,
            unacked: info.tcpi_unacked,
            mss: info.tcpi_snd_mss,
            rtt_us: info.tcpi_rtt,
        };
        Ok(SocketSnapshot {
            tcp: Some(tcp),
            outq: Some(ioctl_int(fd, SIOCOUTQ)?),
            notsent: Some(ioctl_int(fd, SIOCOUTQNSD)?),
        })
    }
}

#[cfg(target_os = "freebsd")]
mod imp {
    use std::io;

    use kistrel_sched::SocketSnapshot;

    use super::super::cvt;
    use super::RawFd;

    pub(super) fn socket_snapshot(fd: RawFd) -> io::Result<SocketSnapshot> {
        let mut value: libc::c_int = 0;
        // SAFETY: FIONWRITE writes one `int` (bytes in the send buffer) to a local.
        cvt(unsafe { libc::ioctl(fd, libc::FIONWRITE, &mut value as *mut libc::c_int) })?;
        Ok(SocketSnapshot {
            tcp: None,
            outq: Some(u32::try_from(value).unwrap_or(0)),
            notsent: None,
        })
    }
}

#[cfg(any(target_os = "macos", target_os = "ios"))]
mod imp {
    use std::io;

    use kistrel_sched::SocketSnapshot;

    use super::RawFd;

    pub(super) fn socket_snapshot(fd: RawFd) -> io::Result<SocketSnapshot> {
        // SO_NWRITE: bytes written to the socket and not yet acknowledged by the peer.
        let value = super::super::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_NWRITE)?;
        Ok(SocketSnapshot {
            tcp: None,
            outq: Some(u32::try_from(value).unwrap_or(0)),
            notsent: None,
        })
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "macos",
    target_os = "ios"
)))]
mod imp {
    use std::io;

    use kistrel_sched::SocketSnapshot;

    use super::RawFd;

    pub(super) fn socket_snapshot(fd: RawFd) -> io::Result<SocketSnapshot> {
        // Still check that `fd` is a socket, so errors are the same everywhere.
        super::super::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)?;
        Ok(SocketSnapshot::default())
    }
}
