//! Whether this kernel reads TCP_INFO through the ring: IORING_OP_URING_CMD with
//! SOCKET_URING_OP_GETSOCKOPT, probed once per ring at setup.
//!
//! Linux 6.7 added socket getsockopt through the ring, but `io_uring_cmd_getsockopt`
//! (io_uring/cmd_net.c, unchanged up to at least 6.18) returns -EOPNOTSUPP for any level but
//! SOL_SOCKET, so KIST's TCP_INFO (level IPPROTO_TCP) still takes a getsockopt(2) per pending
//! socket (`crate::sys::socket_snapshot`). The probe records which case this kernel is in
//! ([`TcpInfoCmd`], in `RingFeatures`); reading snapshots through the ring, batched with the
//! loop's submissions, waits for a kernel that reports [`TcpInfoCmd::Supported`].

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue, types::Fd, IoUring, Probe};

use super::op::OpKey;

/// include/uapi/linux/io_uring.h: `SOCKET_URING_OP_SIOCINQ = 0, SIOCOUTQ, GETSOCKOPT, ..`.
const SOCKET_URING_OP_GETSOCKOPT: u32 = 2;
/// Offset of `optlen` in `struct io_uring_sqe` (a union with `splice_fd_in`/`file_index`),
/// which `opcode::UringCmd16` has no setter for.
const SQE_OPTLEN: usize = 44;
const SQE_LEN: usize = 64;
const _: () = assert!(mem::size_of::<squeue::Entry>() == SQE_LEN);

/// What SOCKET_URING_OP_GETSOCKOPT does with `IPPROTO_TCP`/`TCP_INFO` on this kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpInfoCmd {
    /// The ring returned a tcp_info of `len` bytes: a kernel newer than this code knows.
    /// Snapshots still use getsockopt(2).
    Supported {
        /// Bytes of tcp_info the kernel wrote.
        len: u32,
    },
    /// Socket getsockopt through the ring works (SOL_SOCKET) but level IPPROTO_TCP is
    /// refused with EOPNOTSUPP: Linux 6.7 to at least 6.18.
    TcpLevelRefused,
    /// IORING_OP_URING_CMD exists but not for sockets (EOPNOTSUPP at SOL_SOCKET too): before
    /// Linux 6.7.
    NoSocketCmds,
    /// No IORING_OP_URING_CMD at all: before Linux 5.19.
    NoUringCmd,
    /// The probe could not run or got another error (the errno).
    Failed(i32),
}

/// Classifies the probe's completions: `tcp` is the result of GETSOCKOPT(IPPROTO_TCP,
/// TCP_INFO); `sol` that of GETSOCKOPT(SOL_SOCKET, SO_TYPE), asked only when `tcp` was
/// -EOPNOTSUPP, to tell a refused level from no socket commands at all.
pub(super) fn classify(tcp: i32, sol: Option<i32>) -> TcpInfoCmd {
    if let Ok(len) = u32::try_from(tcp) {
        return TcpInfoCmd::Supported { len };
    }
    if tcp != -libc::EOPNOTSUPP {
        return TcpInfoCmd::Failed(tcp.saturating_neg());
    }
    match sol {
        Some(res) if res >= 0 => TcpInfoCmd::TcpLevelRefused,
        Some(res) if res == -libc::EOPNOTSUPP => TcpInfoCmd::NoSocketCmds,
        Some(res) => TcpInfoCmd::Failed(res.saturating_neg()),
        None => TcpInfoCmd::NoSocketCmds,
    }
}

/// Runs the probe on `ring`, which must have nothing in flight (it is called during setup):
/// one or two commands on a fresh, unconnected TCP socket, each waited for. Logs the result
/// at debug level.
pub(super) fn probe_tcp_info(ring: &mut IoUring, opcodes: &Probe) -> TcpInfoCmd {
    let result = run_probe(ring, opcodes);
    tracing::debug!(
        ?result,
        "io_uring: TCP_INFO through URING_CMD getsockopt probed (snapshots use getsockopt(2))"
    );
    result
}

fn run_probe(ring: &mut IoUring, opcodes: &Probe) -> TcpInfoCmd {
    if !opcodes.is_supported(opcode::UringCmd16::CODE) {
        return TcpInfoCmd::NoUringCmd;
    }
    let errno = |e: io::Error| TcpInfoCmd::Failed(e.raw_os_error().unwrap_or(0));
    let sock = match tcp_socket() {
        Ok(s) => s,
        Err(e) => return errno(e),
    };
    let fd = sock.as_raw_fd();
    let info_len = mem::size_of::<libc::tcp_info>() as u32;
    let tcp = match getsockopt(ring, fd, libc::IPPROTO_TCP, libc::TCP_INFO, info_len) {
        Ok(res) => res,
        Err(e) => return errno(e),
    };
    let sol = if tcp == -libc::EOPNOTSUPP {
        match getsockopt(ring, fd, libc::SOL_SOCKET, libc::SO_TYPE, 4) {
            Ok(res) => Some(res),
            Err(e) => return errno(e),
        }
    } else {
        None
    };
    classify(tcp, sol)
}

fn tcp_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One SOCKET_URING_OP_GETSOCKOPT into a buffer of `len` bytes, submitted and waited for;
/// returns the completion's result (optlen, or -errno).
fn getsockopt(
    ring: &mut IoUring,
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    len: u32,
) -> io::Result<i32> {
    let mut buf = vec![0u8; len as usize].into_boxed_slice();
    let entry = getsockopt_entry(fd, level, name, buf.as_mut_ptr(), len).user_data(OpKey::PROBE);
    // SAFETY: the entry points into `buf`, which lives until the completion is reaped below,
    // or forever (leaked) if it cannot be.
    if unsafe { ring.submission().push(&entry) }.is_err() {
        return Err(io::Error::from(io::ErrorKind::WouldBlock));
    }
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // The kernel may still write into `buf`: never free it.
                mem::forget(buf);
                return Err(e);
            }
        }
        if let Some(cqe) = ring.completion().find(|c| c.user_data() == OpKey::PROBE) {
            return Ok(cqe.result());
        }
    }
}

/// The SQE of SOCKET_URING_OP_GETSOCKOPT, laid out as `io_uring_prep_cmd_sock` does:
/// `level` and `optname` share `addr`, `optval` is `addr3` (the first word of `cmd`), `optlen`
/// has its own slot.
fn getsockopt_entry(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    optval: *mut u8,
    optlen: u32,
) -> squeue::Entry {
    let mut level_name = [0u8; 8];
    level_name[..4].copy_from_slice(&level.to_ne_bytes());
    level_name[4..].copy_from_slice(&name.to_ne_bytes());
    let mut cmd = [0u8; 16];
    cmd[..8].copy_from_slice(&(optval as u64).to_ne_bytes());
    let entry = opcode::UringCmd16::new(Fd(fd), SOCKET_URING_OP_GETSOCKOPT)
        .addr(Some(u64::from_ne_bytes(level_name)))
        .cmd(cmd)
        .build();
    // SAFETY: `squeue::Entry` is `#[repr(C)]` around `struct io_uring_sqe`, 64 bytes of
    // integers and unions of integers (size checked above): every byte pattern is a valid
    // value of either type.
    let mut raw: [u8; SQE_LEN] = unsafe { mem::transmute(entry) };
    raw[SQE_OPTLEN..SQE_OPTLEN + 4].copy_from_slice(&optlen.to_ne_bytes());
    // SAFETY: as above.
    unsafe { mem::transmute::<[u8; SQE_LEN], squeue::Entry>(raw) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_tells_the_kernels_apart() {
        let nope = -libc::EOPNOTSUPP;
        assert_eq!(classify(232, None), TcpInfoCmd::Supported { len: 232 });
        assert_eq!(classify(0, None), TcpInfoCmd::Supported { len: 0 });
        assert_eq!(classify(nope, Some(4)), TcpInfoCmd::TcpLevelRefused);
        assert_eq!(classify(nope, Some(nope)), TcpInfoCmd::NoSocketCmds);
        assert_eq!(classify(nope, None), TcpInfoCmd::NoSocketCmds);
        assert_eq!(
            classify(nope, Some(-libc::EBADF)),
            TcpInfoCmd::Failed(libc::EBADF)
        );
        assert_eq!(
            classify(-libc::EINVAL, None),
            TcpInfoCmd::Failed(libc::EINVAL)
        );
    }

    /// (major, minor) of the running kernel, from /proc/sys/kernel/osrelease.
    fn kernel_version() -> (u32, u32) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut parts = release.trim().split(['.', '-']);
        let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        (next(), next())
    }

    #[test]
    fn the_probe_matches_the_running_kernel() {
        let Ok(mut ring) = IoUring::new(4) else {
            return; // no io_uring here (a sandbox): nothing to probe
        };
        let mut opcodes = Probe::new();
        ring.submitter().register_probe(&mut opcodes).unwrap();
        let got = probe_tcp_info(&mut ring, &opcodes);
        match kernel_version() {
            v if v < (5, 19) => assert_eq!(got, TcpInfoCmd::NoUringCmd),
            v if v < (6, 7) => assert_eq!(got, TcpInfoCmd::NoSocketCmds),
            // io_uring/cmd_net.c: SOL_SOCKET only, up to at least 6.18.
            v if v <= (6, 18) => assert_eq!(got, TcpInfoCmd::TcpLevelRefused),
            v => assert!(!matches!(got, TcpInfoCmd::Failed(_)), "{v:?}: {got:?}"),
        }
        assert!(
            ring.completion().is_empty(),
            "the probe reaped its completions"
        );
        let features = crate::uring::probe().unwrap();
        assert_eq!(
            features.tcp_info_cmd, got,
            "a ring's setup records the same"
        );
    }

    #[test]
    fn the_entry_has_the_kernel_layout() {
        let mut buf = [0u8; 8];
        let e = getsockopt_entry(7, libc::IPPROTO_TCP, libc::TCP_INFO, buf.as_mut_ptr(), 232);
        // SAFETY: as in `getsockopt_entry`.
        let raw: [u8; SQE_LEN] = unsafe { mem::transmute(e) };
        let u32_at = |o: usize| u32::from_ne_bytes(raw[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_ne_bytes(raw[o..o + 8].try_into().unwrap());
        assert_eq!(raw[0], opcode::UringCmd16::CODE);
        assert_eq!(u32_at(4), 7, "fd");
        assert_eq!(u32_at(8), SOCKET_URING_OP_GETSOCKOPT, "cmd_op");
        assert_eq!(u32_at(16), libc::IPPROTO_TCP as u32, "level");
        assert_eq!(u32_at(20), libc::TCP_INFO as u32, "optname");
        assert_eq!(u32_at(44), 232, "optlen");
        assert_eq!(u64_at(48), buf.as_mut_ptr() as u64, "optval");
    }
}
