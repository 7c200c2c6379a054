//! Thin, audited wrappers over the socket system calls the runtime needs and std does not
//! offer: socket snapshots for the scheduler (one TCP_INFO), the send queue by ioctl
//! (SIOCOUTQ, SIOCOUTQNSD), a SO_REUSEPORT listener, and a few socket options. Also the
//! relay crypto's AES-128-CTR on the CPU's AES instructions ([`aes_ctr`]) and the per-cell
//! path's fixed-size copies ([`copy`]), whose intrinsics need `unsafe` for their loads and
//! stores.
//!
//! With `engine::uring` this is one of the two places in the workspace where `unsafe` is
//! allowed. Every call here passes a pointer to a local, correctly sized value and a length
//! that matches it; a bad file descriptor gives `EBADF`, never undefined behaviour.
//!
//! Everything compiles on every unix target: what the OS cannot report is `None` (in a
//! snapshot) or an `io::ErrorKind::Unsupported` error (for an option).
#![allow(unsafe_code)]

pub mod aes_ctr;
pub mod copy;
pub mod ktls;
pub mod poll_sys;
pub mod sha1_blocks;
mod snapshot;
pub mod txstamp;

pub use snapshot::{send_queue, socket_snapshot, SendQueue, SNAPSHOT_HAS_TCP_INFO};

use std::io;
use std::mem;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Turns a `-1` return value into the thread's `errno`.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `setsockopt` for an option whose value is a plain C value (int or bytes).
fn setsockopt_raw(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: *const libc::c_void,
    len: usize,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "socket option too long"))?;
    // SAFETY: `value` points to `len` readable bytes owned by the caller for the duration of
    // the call (every caller passes a reference to a local or a slice); the kernel only reads
    // them.
    cvt(unsafe { libc::setsockopt(fd, level, name, value, len) })?;
    Ok(())
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: i32) -> io::Result<()> {
    let value: libc::c_int = value;
    setsockopt_raw(
        fd,
        level,
        name,
        (&value as *const libc::c_int).cast(),
        mem::size_of::<libc::c_int>(),
    )
}

fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are locals; `len` is the size of `value`, so the kernel writes
    // at most that many bytes.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Sets TCP_NODELAY (disable Nagle): cells are batched by the scheduler, not by the kernel.
pub fn set_tcp_nodelay(fd: RawFd, on: bool) -> io::Result<()> {
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, i32::from(on))
}

/// Sets SO_SNDBUF. Linux doubles the value and clamps it to `net.core.wmem_max`.
pub fn set_send_buffer(fd: RawFd, bytes: u32) -> io::Result<()> {
    let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, bytes)
}

/// Sets SO_RCVBUF. Linux doubles the value and clamps it to `net.core.rmem_max`.
pub fn set_recv_buffer(fd: RawFd, bytes: u32) -> io::Result<()> {
    let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes)
}

/// Reads SO_SNDBUF back (the kernel's effective value, e.g. doubled on Linux).
pub fn send_buffer(fd: RawFd) -> io::Result<u32> {
    let v = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF)?;
    Ok(u32::try_from(v).unwrap_or(0))
}

/// Selects the congestion control algorithm by name (TCP_CONGESTION), e.g. `"cubic"`.
///
/// On Linux an unprivileged socket may only pick an algorithm listed in
/// `net.ipv4.tcp_allowed_congestion_control`; otherwise this fails with `EPERM`. A name the
/// kernel does not know fails with `ENOENT`. Unsupported on targets without the option.
pub fn set_tcp_congestion(fd: RawFd, name: &str) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        setsockopt_raw(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr().cast(),
            name.len(),
        )
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        let _ = (fd, name);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "TCP_CONGESTION is not available on this platform",
        ))
    }
}

/// Reads the congestion control algorithm's name (TCP_CONGESTION).
pub fn tcp_congestion(fd: RawFd) -> io::Result<String> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        // TCP_CA_NAME_MAX is 16 on Linux and FreeBSD.
        let mut buf = [0u8; 16];
        let mut len = buf.len() as libc::socklen_t;
        // SAFETY: `buf` is a local of `len` bytes and the kernel writes at most `len` bytes.
        cvt(unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_CONGESTION,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        })?;
        let len = usize::try_from(len).unwrap_or(0).min(buf.len());
        let name = buf.get(..len).unwrap_or_default();
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Ok(String::from_utf8_lossy(name.get(..end).unwrap_or_default()).into_owned())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        let _ = fd;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "TCP_CONGESTION is not available on this platform",
        ))
    }
}

/// Creates a TCP socket for `addr`'s family, non-blocking and close-on-exec, not yet bound
/// or connected (for a CONNECT through io_uring, or a listener).
pub fn tcp_socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: plain system call with integer arguments.
        let fd = cvt(unsafe { libc::socket(domain, ty, 0) })?;
        // SAFETY: `fd` was just returned by socket() and is owned by nobody else yet.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        // SAFETY: plain system call with integer arguments.
        let fd = cvt(unsafe { libc::socket(domain, libc::SOCK_STREAM, 0) })?;
        // SAFETY: `fd` was just returned by socket() and is owned by nobody else yet.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        set_cloexec_nonblocking(fd)?;
        Ok(owned)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn set_cloexec_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments on a descriptor the caller owns.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
    Ok(())
}

/// A socket address in the C layout, for `bind` and for io_uring's CONNECT.
#[derive(Clone, Copy)]
pub struct RawSockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl std::fmt::Debug for RawSockAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSockAddr")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl RawSockAddr {
    /// Converts a std address to the C layout.
    pub fn new(addr: &SocketAddr) -> Self {
        // SAFETY: sockaddr_storage is a plain C struct for which all-zero bytes are valid.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in
                // (that is its purpose); we write one sockaddr_in at its start.
                let sin = unsafe {
                    &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr = libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                };
                mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe {
                    &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_addr = libc::in6_addr {
                    s6_addr: a.ip().octets(),
                };
                sin6.sin6_scope_id = a.scope_id();
                mem::size_of::<libc::sockaddr_in6>()
            }
        };
        #[cfg(any(
            target_os = "freebsd",
            target_os = "macos",
            target_os = "ios",
            target_os = "openbsd",
            target_os = "netbsd",
            target_os = "dragonfly"
        ))]
        {
            // BSDs carry the length in the address itself.
            storage.ss_len = len as u8;
        }
        Self {
            storage,
            len: len as libc::socklen_t,
        }
    }

    /// Pointer to the C address, valid as long as `self` is not moved or dropped.
    pub fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }

    /// Length of the C address in bytes.
    pub fn len(&self) -> libc::socklen_t {
        self.len
    }

    /// Always false: an address has a family and a port.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Creates a non-blocking TCP listener on `addr` with SO_REUSEADDR and SO_REUSEPORT set, so
/// every worker can bind the same address and the kernel spreads incoming connections over
/// them (docs/design.md "The shape").
pub fn reuseport_listener(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let fd = tcp_socket(&addr)?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    let sa = RawSockAddr::new(&addr);
    // SAFETY: `sa` is a valid socket address of `sa.len()` bytes that lives across the call.
    cvt(unsafe { libc::bind(raw, sa.as_ptr(), sa.len()) })?;
    // SAFETY: plain system call with integer arguments.
    cvt(unsafe { libc::listen(raw, backlog) })?;
    Ok(TcpListener::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn raw_sockaddr_roundtrips_through_bind() {
        let l = reuseport_listener("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = l.local_addr().unwrap();
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), 0);
        // A second listener may bind the same port because of SO_REUSEPORT.
        let l2 = reuseport_listener(addr, 16).unwrap();
        assert_eq!(l2.local_addr().unwrap(), addr);
    }

    #[test]
    fn listener_is_nonblocking() {
        let l = reuseport_listener("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let err = l.accept().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn bad_fd_gives_ebadf() {
        let err = set_tcp_nodelay(-1, true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        let err = socket_snapshot(-1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn send_buffer_option_is_applied() {
        let fd = tcp_socket(&"127.0.0.1:0".parse().unwrap()).unwrap();
        set_send_buffer(fd.as_raw_fd(), 8192).unwrap();
        let got = send_buffer(fd.as_raw_fd()).unwrap();
        // Linux doubles the requested value; other kernels store it as is.
        assert!((8192..=2 * 8192).contains(&got), "SO_SNDBUF = {got}");
        set_tcp_nodelay(fd.as_raw_fd(), true).unwrap();
        set_recv_buffer(fd.as_raw_fd(), 8192).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn congestion_control_by_name() {
        let fd = tcp_socket(&"127.0.0.1:0".parse().unwrap()).unwrap();
        let current = tcp_congestion(fd.as_raw_fd()).unwrap();
        assert!(!current.is_empty());
        // Setting the current algorithm again is always allowed.
        set_tcp_congestion(fd.as_raw_fd(), &current).unwrap();
        assert_eq!(tcp_congestion(fd.as_raw_fd()).unwrap(), current);
        let err = set_tcp_congestion(fd.as_raw_fd(), "no-such-cc").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }
}
