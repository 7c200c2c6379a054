//! Ring setup: configuration, what the kernel granted, counters.

use io_uring::IoUring;

use super::{TcpInfoCmd, UringError};

/// Sizes and switches for [`Ring::new`](super::Ring::new).
#[derive(Clone, Debug)]
pub struct RingConfig {
    /// Submission queue entries (the kernel rounds up to a power of two).
    pub sq_entries: u32,
    /// Completion queue entries; large, so bursts of multishot completions do not overflow.
    pub cq_entries: u32,
    /// Provided receive buffers (power of two, <= 32768).
    pub buf_entries: u16,
    /// Size of each receive buffer.
    pub buf_size: u32,
    /// Receive buffers offered to the kernel at once, at the least: one more is offered per
    /// live connection beyond this, so each can take one per wait. Bounds what one wait
    /// takes in, so it is processed while in cache (`bufring`'s "Why a window").
    pub buf_window: u16,
    /// Buffer group id of the receive buffer ring.
    pub buf_group: u16,
    /// Try IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN (falls back if refused).
    pub defer_taskrun: bool,
    /// Wait with an EXT_ARG timeout when the kernel has it; otherwise (or when false) arm a
    /// TIMEOUT operation for the deadline.
    pub ext_arg_wait: bool,
}

impl Default for RingConfig {
    fn default() -> Self {
        Self {
            sq_entries: 256,
            cq_entries: 8192,
            buf_entries: 1024,
            buf_size: 16 * 1024,
            buf_window: 8,
            buf_group: 0,
            defer_taskrun: true,
            ext_arg_wait: true,
        }
    }
}

/// What [`Ring::new`](super::Ring::new) got from the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingFeatures {
    /// SINGLE_ISSUER | DEFER_TASKRUN are set.
    pub defer_taskrun: bool,
    /// Waits use an EXT_ARG timeout (else a TIMEOUT operation).
    pub ext_arg_wait: bool,
    /// Actual submission queue size.
    pub sq_entries: u32,
    /// Actual completion queue size.
    pub cq_entries: u32,
    /// Whether TCP_INFO can be read through the ring (probed at setup; snapshots use
    /// getsockopt(2) whatever it says, see `uring::TcpInfoCmd`).
    pub tcp_info_cmd: TcpInfoCmd,
}

/// Counters for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// `io_uring_enter` calls that waited (one per `run_once`).
    pub waits: u64,
    /// Extra `io_uring_enter` calls made to drain a backlog into a full SQ.
    pub backlog_submits: u64,
    /// Completions reaped (sentinels included).
    pub completions: u64,
    /// SEND operations started (a short send's resubmission not counted).
    pub sends: u64,
    /// SENDs that completed short and were resubmitted with their tail.
    pub short_sends: u64,
    /// RECV completions that delivered bytes.
    pub recvs: u64,
    /// RECVs that ended with ENOBUFS (buffer ring empty).
    pub enobufs: u64,
    /// Multishot RECVs re-armed after a completion without F_MORE.
    pub recv_rearms: u64,
    /// SQEs that found the submission queue full and went to the backlog.
    pub backlog_spills: u64,
    /// SENDs sampled for kernel timestamps (SENDMSG with the SO_TIMESTAMPING cmsg).
    pub stamped_sends: u64,
    /// recvmsg(2) calls with MSG_ERRQUEUE (only on a connection whose error-queue RECVMSG
    /// failed; the ring reads stamps without them).
    pub errqueue_reads: u64,
    /// Error-queue RECVMSGs armed through the ring.
    pub errqueue_arms: u64,
    /// Error-queue RECVMSGs that completed with a message (one stamp each).
    pub errqueue_recvs: u64,
    /// Stamps that never came for samples given up or completed (`TxStamps::take_missing`).
    pub stamps_missing: u64,
}

/// Builds the io_uring with SINGLE_ISSUER | DEFER_TASKRUN and a large CQ, falling back to
/// plain flags, then to the default CQ size, when the kernel refuses. Returns whether the
/// deferred task-run flags are set.
///
/// io_uring_setup failing with EPERM (a seccomp filter, `kernel.io_uring_disabled`) or
/// ENOSYS (no io_uring at all) ends the attempts at once: other flags will not help.
pub(super) fn build_ring(config: &RingConfig) -> Result<(IoUring, bool), UringError> {
    let hopeless =
        |e: &std::io::Error| matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOSYS));
    if config.defer_taskrun {
        let mut b = IoUring::builder();
        b.setup_cqsize(config.cq_entries)
            .setup_single_issuer()
            .setup_defer_taskrun();
        match b.build(config.sq_entries) {
            Ok(ring) => return Ok((ring, true)),
            Err(e) if hopeless(&e) => return Err(UringError::Setup(e)),
            Err(e) => {
                tracing::info!("io_uring: SINGLE_ISSUER|DEFER_TASKRUN refused ({e}); plain setup")
            }
        }
    }
    let mut b = IoUring::builder();
    b.setup_cqsize(config.cq_entries);
    match b.build(config.sq_entries) {
        Ok(ring) => Ok((ring, false)),
        Err(e) if hopeless(&e) => Err(UringError::Setup(e)),
        Err(e) => {
            tracing::info!("io_uring: large CQ refused ({e}); default CQ");
            IoUring::new(config.sq_entries)
                .map(|r| (r, false))
                .map_err(UringError::Setup)
        }
    }
}
